//! Concurrent RESP clients that record a history for the linearizability
//! checker, and the check itself.
//!
//! Each client issues SET/APPEND/DEL/GET on a small key space through the
//! endpoints in turn. A reply of the expected type completes the operation;
//! an error or no reply leaves it unknown (it may or may not have taken
//! effect, which is what `-TIMEOUT` means). Clients are bounded in
//! operations so the (NP-complete) check stays decisive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lincheck::{
    check_with, CheckOptions, HistoryRecorder, KvInput, KvModel, KvOperation, KvOutput,
};
use server::resp::Frame;

use super::call;

pub type Recorder = Arc<Mutex<HistoryRecorder<KvInput, KvOutput>>>;

pub fn recorder() -> Recorder {
    Arc::new(Mutex::new(HistoryRecorder::new()))
}

/// Microseconds since `t0`: the history's clock.
pub fn micros(t0: Instant) -> u64 {
    t0.elapsed().as_micros() as u64
}

/// Spawns one client per entry of `routes`, each issuing at most `max_ops`
/// operations (one every `pause` or slower) until `stop`; client `cl` sends
/// its i-th operation to `routes[cl][(cl + i) % routes[cl].len()]`.
pub fn spawn_clients(
    routes: &[Vec<String>],
    max_ops: u64,
    pause: Duration,
    rec: &Recorder,
    stop: &Arc<AtomicBool>,
    t0: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0u64..)
        .zip(routes)
        .map(|(cl, eps)| {
            let (rec, stop, eps) = (rec.clone(), stop.clone(), eps.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) && i < max_ops {
                    tokio::time::sleep(pause).await;
                    i += 1;
                    let key = format!("k{}", (cl * 5 + i * 3) % 16);
                    let val = format!("{cl}.{i};");
                    let (input, args): (KvInput, Vec<&[u8]>) = match (cl * 7 + i * 13) % 10 {
                        0..=3 => (
                            KvInput::put(key.clone(), val.clone()),
                            vec![b"SET", key.as_bytes(), val.as_bytes()],
                        ),
                        4 => (
                            KvInput::append(key.clone(), val.clone()),
                            vec![b"APPEND", key.as_bytes(), val.as_bytes()],
                        ),
                        5 => (KvInput::delete(key.clone()), vec![b"DEL", key.as_bytes()]),
                        _ => (KvInput::get(key.clone()), vec![b"GET", key.as_bytes()]),
                    };
                    let h = rec.lock().unwrap().invoke(cl, input.clone(), micros(t0));
                    let reply = call(&eps[((cl + i) % eps.len() as u64) as usize], &args).await;
                    let out = match (&input, reply) {
                        (KvInput::Put { .. }, Some(Frame::Simple(_))) => Some(KvOutput::Put),
                        (KvInput::Append { .. }, Some(Frame::Integer(n))) => {
                            Some(KvOutput::Append(Some(n as u64)))
                        }
                        (KvInput::Delete { .. }, Some(Frame::Integer(n))) => {
                            Some(KvOutput::Delete(Some(n == 1)))
                        }
                        (KvInput::Get { .. }, Some(Frame::Bulk(b))) => Some(KvOutput::Get(Some(b))),
                        (KvInput::Get { .. }, Some(Frame::Null)) => Some(KvOutput::Get(None)),
                        _ => None, // an error or no reply: outcome unknown
                    };
                    if let Some(out) = out {
                        rec.lock().unwrap().complete(h, out, micros(t0));
                    }
                }
            })
        })
        .collect()
}

/// Operations invoked in `[from, to)` (µs) that completed.
pub fn completed_between(history: &[KvOperation], from: u64, to: u64) -> usize {
    history
        .iter()
        .filter(|o| o.call >= from && o.call < to && !o.is_unknown())
        .count()
}

/// Panics unless the checker decides `history` is linearizable.
pub fn assert_linearizable(history: &[KvOperation]) {
    let report = check_with(
        &KvModel,
        history,
        &CheckOptions {
            max_steps_per_partition: 50_000_000,
        },
    );
    eprintln!("lincheck: {:?}", report.stats);
    let result = report.result;
    assert!(
        !result.is_illegal(),
        "NOT LINEARIZABLE: {:?}",
        result.violation().map(|v| v.to_string())
    );
    assert!(
        result.is_ok(),
        "checker undecided on {} ops: {result:?}",
        history.len()
    );
}
