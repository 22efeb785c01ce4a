//! `raftkv bench`: a closed-loop load generator over RESP, in the spirit of
//! redis-benchmark: N clients (one connection, one request in flight each)
//! for a duration, uniform keys, fixed-size values; a progress line every
//! second on stderr; then throughput and latency percentiles on stdout.
//! Error replies are counted, not retried.

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
    crate::server_cmd::raise_fd_limit();
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
        let client = Client::connect(&ep)
            .await
            .map_err(|e| format!("cannot connect to {ep}: {e}"))?;
        tasks.push(tokio::spawn(client_loop(
            client,
            c as u64,
            a.keys,
            a.mix,
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
    );
    Ok(())
}

async fn client_loop(
    mut client: Client,
    id: u64,
    keys: u64,
    mix: Mix,
    value: Vec<u8>,
    shared: Arc<Shared>,
) -> Vec<u32> {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut lat = Vec::with_capacity(1 << 16);
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
        let t0 = Instant::now();
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
            let mut c = Client::connect(&ep)
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

fn report(a: &BenchArgs, lat: &mut [u32], errors: u64, elapsed: Duration) {
    lat.sort_unstable();
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0
        }
    };
    println!(
        "mix={:?} clients={} value_size={} keys={} duration={:.1}s",
        a.mix,
        a.clients,
        a.value_size,
        a.keys,
        elapsed.as_secs_f64()
    );
    println!(
        "ops={} errors={} throughput={:.0} ops/s",
        lat.len(),
        errors,
        lat.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency ms: p50={:.3} p99={:.3} p999={:.3} max={:.3}",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        lat.last().copied().unwrap_or(0) as f64 / 1000.0
    );
}
