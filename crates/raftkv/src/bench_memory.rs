//! `raftkv bench --load-keys N`: what a data set costs in memory. Writes N
//! distinct keys once (pipelined `SET key:I VALUE`, spread over the
//! endpoints), waits until every endpoint reports at least N keys in `INFO keyspace`
//! (its own applied state: followers included), and prints per endpoint the
//! resident set, its peak, `used_memory` and bytes per key.
//!
//! Any RESP server that answers `INFO` in Redis's format can be measured,
//! `redis-server` included, so one run can put raftkv beside Redis. RSS and
//! peak come from `/proc/PID/status` (`VmRSS`, `VmHWM`) when the endpoint is
//! a loopback address (its `process_id` is then a process here), else from INFO's
//! `used_memory_rss` / `used_memory_peak`. "bytes/key" is the growth of RSS
//! during the load over N (the empty process's footprint left out); "RSS/key"
//! is the whole resident set over the keys held.

use std::time::{Duration, Instant};

use server::client::Client;
use server::resp::Frame;

use crate::cli::BenchArgs;

/// How long to wait for every endpoint to hold the loaded keys.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);

/// One endpoint's memory at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Memory {
    keys: u64,
    rss: u64,
    rss_peak: u64,
    used: u64,
    /// Whether rss/peak were read from /proc (else from INFO).
    from_proc: bool,
}

pub async fn run(a: &BenchArgs, n: u64) -> Result<(), String> {
    if n == 0 || a.clients == 0 || a.pipeline == 0 {
        return Err("--load-keys, --clients and --pipeline must be positive".into());
    }
    let mut before = Vec::new();
    for ep in &a.ep.endpoints {
        before.push(measure(ep).await?);
    }
    let value = vec![b'x'; a.value_size];
    let start = Instant::now();
    load(a, n, &value).await?;
    let load_s = start.elapsed().as_secs_f64();
    eprintln!(
        "loaded {n} keys in {load_s:.1} s ({:.0} keys/s)",
        n as f64 / load_s
    );
    let mut after = Vec::new();
    for ep in &a.ep.endpoints {
        // At least N keys (more if the endpoint held other keys already;
        // a second load over the same keys overwrites them).
        after.push(settle(ep, before_keys(&before, ep, a).max(n)).await?);
    }
    println!(
        "keys={n} value_size={} clients={} pipeline={} load_s={load_s:.1}",
        a.value_size, a.clients, a.pipeline
    );
    println!(
        "{:<22} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "endpoint", "keys", "rss_MiB", "peak_MiB", "used_MiB", "grew_MiB", "bytes/key", "rss/key"
    );
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    for ((ep, b), m) in a.ep.endpoints.iter().zip(&before).zip(&after) {
        let grew = m.rss.saturating_sub(b.rss);
        println!(
            "{ep:<22} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.0} {:>9.0}{}",
            m.keys,
            mib(m.rss),
            mib(m.rss_peak),
            mib(m.used),
            mib(grew),
            grew as f64 / n as f64,
            m.rss as f64 / m.keys.max(1) as f64,
            if m.from_proc { "" } else { "  (RSS from INFO)" },
        );
    }
    Ok(())
}

fn before_keys(before: &[Memory], ep: &str, a: &BenchArgs) -> u64 {
    let i = a.ep.endpoints.iter().position(|e| e == ep).unwrap_or(0);
    before[i].keys
}

/// Writes `key:0..key:n` once: `a.clients` connections, each keeping
/// `a.pipeline` SETs in flight. A SET answered with a transient error
/// (`-TIMEOUT`, `-CLUSTERDOWN`, `-TRYAGAIN`: a leader change or a stall) is
/// sent again (a SET is idempotent), at most `MAX_RETRIES` times per client.
async fn load(a: &BenchArgs, n: u64, value: &[u8]) -> Result<(), String> {
    let workers = (a.clients as u64).min(n);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let ep = a.ep.endpoints[w as usize % a.ep.endpoints.len()].clone();
        let keys: Vec<u64> = (w..n).step_by(workers as usize).collect();
        tasks.push(tokio::spawn(load_keys(
            ep,
            keys,
            value.to_vec(),
            a.pipeline,
        )));
    }
    let mut retried = 0;
    for t in tasks {
        retried += t.await.map_err(|e| e.to_string())??;
    }
    if retried > 0 {
        eprintln!("{retried} SETs answered a transient error and were sent again");
    }
    Ok(())
}

/// Retries of transient errors one loading client allows itself.
const MAX_RETRIES: u64 = 10_000;

/// One client's share of the load; returns how many SETs it sent again.
async fn load_keys(
    ep: String,
    keys: Vec<u64>,
    value: Vec<u8>,
    depth: usize,
) -> Result<u64, String> {
    let mut c = Client::connect(&ep)
        .await
        .map_err(|e| format!("cannot connect to {ep}: {e}"))?;
    let mut todo: std::collections::VecDeque<u64> = keys.into();
    let mut retried = 0;
    while !todo.is_empty() {
        let batch: Vec<u64> = todo.drain(..depth.min(todo.len())).collect();
        for k in &batch {
            c.queue(&[b"SET".as_slice(), format!("key:{k}").as_bytes(), &value]);
        }
        c.flush().await.map_err(|e| format!("{ep}: {e}"))?;
        for k in &batch {
            match c.read_reply().await {
                Ok(Frame::Error(e)) if transient(&e) && retried < MAX_RETRIES => {
                    retried += 1;
                    todo.push_back(*k);
                }
                Ok(Frame::Error(e)) => return Err(format!("{ep}: SET answered {e}")),
                Err(e) => return Err(format!("{ep}: {e}")),
                Ok(_) => {}
            }
        }
    }
    Ok(retried)
}

fn transient(error: &str) -> bool {
    ["TIMEOUT", "CLUSTERDOWN", "TRYAGAIN"]
        .iter()
        .any(|p| error.starts_with(p))
}

/// Polls `ep` until it holds at least `keys` keys, then measures it.
async fn settle(ep: &str, keys: u64) -> Result<Memory, String> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let m = measure(ep).await?;
        if m.keys >= keys {
            return Ok(m);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{ep} holds {} keys after {SETTLE_TIMEOUT:?}, expected {keys}",
                m.keys
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One endpoint's keys and memory, from `INFO` (and `/proc` when local).
async fn measure(ep: &str) -> Result<Memory, String> {
    let mut c = Client::connect(ep)
        .await
        .map_err(|e| format!("cannot connect to {ep}: {e}"))?;
    let text = match c.call(&["INFO"]).await {
        Ok(Frame::Bulk(b)) | Ok(Frame::Verbatim(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(other) => return Err(format!("{ep}: INFO answered {other:?}")),
        Err(e) => return Err(format!("{ep}: INFO: {e}")),
    };
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    let keys = text
        .lines()
        .find_map(|l| l.strip_prefix("db0:keys="))
        .and_then(|v| v.split(',').next()?.parse().ok())
        .unwrap_or(0);
    let mut m = Memory {
        keys,
        rss: field("used_memory_rss").unwrap_or(0),
        rss_peak: field("used_memory_peak").unwrap_or(0),
        used: field("used_memory").unwrap_or(0),
        from_proc: false,
    };
    let local = ep.starts_with("127.") || ep.starts_with("localhost:") || ep.starts_with("[::1]");
    if let Some((rss, peak)) = field("process_id").filter(|_| local).and_then(proc_rss) {
        (m.rss, m.rss_peak, m.from_proc) = (rss, peak, true);
    }
    Ok(m)
}

/// `(VmRSS, VmHWM)` in bytes of a process on this machine.
fn proc_rss(pid: u64) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| -> Option<u64> {
        let v = status.lines().find_map(|l| l.strip_prefix(name))?;
        Some(v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()? * 1024)
    };
    Some((kib("VmRSS:")?, kib("VmHWM:")?))
}
