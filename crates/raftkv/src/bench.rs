//! `raftkv bench`: a load generator over RESP, in the spirit of
//! redis-benchmark: N clients (one connection, one request in flight each)
//! for a duration, uniform keys, fixed-size values; a progress line every
//! second on stderr; then throughput, latency percentiles and a latency
//! histogram on stdout (and as JSON with `--json FILE`). Error replies are
//! counted, not retried. `--load-keys N` measures memory instead
//! (`bench_memory`).
//!
//! Closed loop by default (each client sends when its previous request was
//! answered). With `--rate OPS`, open loop: client c's k-th request is due at
//! `start + k * clients / OPS`, sent then (or at once if the client is
//! behind), and its latency measured from when it was due, so a stalled
//! server shows as latency instead of hiding it (coordinated omission).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use server::client::Client;
use server::resp::Frame;

use crate::cli::{BenchArgs, Mix};

struct Shared {
    ops: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

pub async fn run(a: BenchArgs) -> Result<(), String> {
    if a.clients == 0 || a.keys == 0 || a.duration == 0 {
        return Err("--clients, --keys and --duration must be positive".into());
    }
    if a.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("--rate must be a positive number of operations per second".into());
    }
    crate::server_cmd::raise_fd_limit();
    if let Some(n) = a.load_keys {
        return crate::bench_memory::run(&a, n).await;
    }
    let value = vec![b'x'; a.value_size];
    if a.mix != Mix::Write {
        preload(&a, &value).await?;
    }
    let shared = Arc::new(Shared {
        ops: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let ep = a.ep.endpoints[c % a.ep.endpoints.len()].clone();
        let client = crate::connect::connect(&ep)
            .await
            .map_err(|e| format!("cannot connect to {ep}: {e}"))?;
        let pace = a
            .rate
            .map(|r| Duration::from_secs_f64(a.clients as f64 / r));
        tasks.push(tokio::spawn(client_loop(
            client,
            Load {
                id: c as u64,
                keys: a.keys,
                mix: a.mix,
                pace,
            },
            value.clone(),
            shared.clone(),
        )));
    }
    let start = Instant::now();
    progress(&shared, Duration::from_secs(a.duration)).await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<u32> = Vec::new();
    for t in tasks {
        lat.extend(t.await.map_err(|e| e.to_string())?);
    }
    report(
        &a,
        &mut lat,
        shared.errors.load(Ordering::Relaxed),
        start.elapsed(),
    )
}

/// What one client sends.
struct Load {
    id: u64,
    keys: u64,
    mix: Mix,
    /// Open loop: time between this client's requests.
    pace: Option<Duration>,
}

async fn client_loop(
    mut client: Client,
    load: Load,
    value: Vec<u8>,
    shared: Arc<Shared>,
) -> Vec<u32> {
    let Load {
        id,
        keys,
        mix,
        pace,
    } = load;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut lat = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    let mut sent: u32 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let key = format!("key:{}", rng % keys);
        let write = match mix {
            Mix::Write => true,
            Mix::Read => false,
            Mix::Mixed => rng & (1 << 40) != 0,
        };
        let t0 = match pace {
            None => Instant::now(),
            Some(p) => {
                let due = start + p * sent;
                sent += 1;
                tokio::time::sleep_until(due.into()).await;
                due
            }
        };
        let reply = if write {
            client
                .call(&[b"SET".as_slice(), key.as_bytes(), &value])
                .await
        } else {
            client.call(&[b"GET".as_slice(), key.as_bytes()]).await
        };
        match reply {
            Ok(Frame::Error(_)) => drop(shared.errors.fetch_add(1, Ordering::Relaxed)),
            Ok(_) => {
                lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                shared.ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    lat
}

async fn progress(shared: &Shared, duration: Duration) {
    let start = Instant::now();
    let mut last = 0;
    while start.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1).min(duration.saturating_sub(start.elapsed())))
            .await;
        let ops = shared.ops.load(Ordering::Relaxed);
        eprint!(
            "\r{:>5.1}s  {:>10} ops  {:>9} ops/s  {} errors   ",
            start.elapsed().as_secs_f64(),
            ops,
            ops - last,
            shared.errors.load(Ordering::Relaxed)
        );
        last = ops;
    }
    eprintln!();
}

/// Writes every key once so reads hit existing values.
async fn preload(a: &BenchArgs, value: &[u8]) -> Result<(), String> {
    let workers = 32.min(a.keys) as usize;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let ep = a.ep.endpoints[w % a.ep.endpoints.len()].clone();
        let (keys, value) = (a.keys, value.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut c = crate::connect::connect(&ep)
                .await
                .map_err(|e| format!("cannot connect to {ep}: {e}"))?;
            for k in (w as u64..keys).step_by(workers) {
                match c
                    .call(&[b"SET".as_slice(), format!("key:{k}").as_bytes(), &value])
                    .await
                {
                    Ok(Frame::Error(e)) => return Err(format!("preload: {e}")),
                    Err(e) => return Err(format!("preload: {e}")),
                    Ok(_) => {}
                }
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

fn report(a: &BenchArgs, lat: &mut [u32], errors: u64, elapsed: Duration) -> Result<(), String> {
    lat.sort_unstable();
    let ms = |us: u32| us as f64 / 1000.0;
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            ms(lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)])
        }
    };
    let max = ms(lat.last().copied().unwrap_or(0));
    let throughput = lat.len() as f64 / elapsed.as_secs_f64();
    let mode = match a.rate {
        Some(r) => format!("open loop at {r} ops/s"),
        None => "closed loop".into(),
    };
    println!(
        "mix={:?} clients={} value_size={} keys={} duration={:.1}s {mode}",
        a.mix,
        a.clients,
        a.value_size,
        a.keys,
        elapsed.as_secs_f64()
    );
    println!(
        "ops={} errors={errors} throughput={throughput:.0} ops/s",
        lat.len()
    );
    let (p50, p90, p99, p999) = (pct(0.50), pct(0.90), pct(0.99), pct(0.999));
    println!("latency ms: p50={p50:.3} p90={p90:.3} p99={p99:.3} p99.9={p999:.3} max={max:.3}");
    let buckets = histogram(lat);
    println!("latency histogram (ms, upper bound: count):");
    let most = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    for (le, n) in &buckets {
        let bar = "#".repeat((n * 40).div_ceil(most) as usize);
        let le = if le.is_infinite() {
            "+Inf".to_string()
        } else {
            format!("{le}")
        };
        println!("  <= {le:>7}: {n:>9} {bar}");
    }
    let Some(file) = &a.json else { return Ok(()) };
    let doc = serde_json::json!({
        "mix": format!("{:?}", a.mix).to_lowercase(),
        "clients": a.clients,
        "value_size": a.value_size,
        "keys": a.keys,
        "rate": a.rate,
        "duration_s": elapsed.as_secs_f64(),
        "ops": lat.len(),
        "errors": errors,
        "throughput_ops_s": throughput,
        "latency_ms": { "p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": max },
        "histogram_ms": buckets.iter().map(|(le, n)| serde_json::json!({
            "le": if le.is_infinite() { serde_json::Value::from("+Inf") } else { serde_json::Value::from(*le) },
            "count": n,
        })).collect::<Vec<_>>(),
    });
    std::fs::write(file, format!("{doc:#}\n"))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// Counts per bucket of doubling upper bounds (0.125 ms .. 1024 ms, then
/// +Inf); `sorted_us` is sorted. Empty buckets above the largest are left out.
fn histogram(sorted_us: &[u32]) -> Vec<(f64, u64)> {
    let mut out = Vec::new();
    let mut from = 0;
    let mut le_ms = 0.125;
    while le_ms <= 1024.0 && from < sorted_us.len() {
        let to = sorted_us.partition_point(|&us| f64::from(us) <= le_ms * 1000.0);
        out.push((le_ms, (to - from) as u64));
        from = to;
        le_ms *= 2.0;
    }
    if from < sorted_us.len() {
        out.push((f64::INFINITY, (sorted_us.len() - from) as u64));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::histogram;

    #[test]
    fn histogram_counts_every_sample_once() {
        let us = [100, 125, 126, 900, 5_000, 2_000_000];
        let h = histogram(&us);
        assert_eq!(h[0], (0.125, 2));
        assert_eq!(h[1], (0.25, 1));
        assert_eq!(h.iter().map(|b| b.1).sum::<u64>(), us.len() as u64);
        assert_eq!(h.last().unwrap(), &(f64::INFINITY, 1));
    }
}
