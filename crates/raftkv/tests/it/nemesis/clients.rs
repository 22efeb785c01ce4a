//! The nemesis's clients: each issues seeded random GET/SET/APPEND/DEL on
//! the current epoch's keys through a random node and logs every operation
//! with its outcome (a write with no answer is unknown, one refused with
//! `-CLUSTERDOWN` is left out).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lincheck::{KvInput, KvOperation, KvOutput, Operation};
use server::client::Client;
use server::resp::Frame;

use super::{EPOCH_MS, KEYS_PER_EPOCH};
use crate::common::history::micros;

use super::schedule::Rng;

#[derive(Default)]
pub struct ClientLog {
    pub ops: Vec<KvOperation>,
    /// Writes answered `-CLUSTERDOWN`: certainly without effect, so left out
    /// of the history (kept for diagnostics: key, value token).
    pub refused: Vec<(String, String)>,
    /// Replies of an unexpected type or error (each a bug or a harness gap).
    pub unexpected: Vec<String>,
}

/// What became of one request.
pub enum Sent {
    /// The connection failed: the request never left, so it had no effect.
    Not,
    /// Sent, and no reply within the timeout (or the connection broke).
    Lost,
    Reply(Frame),
}

pub async fn call_within(endpoint: &str, args: &[&[u8]], within: Duration) -> Sent {
    let fut = async {
        let Ok(mut c) = Client::connect(endpoint).await else {
            return Sent::Not;
        };
        match c.call(args).await {
            Ok(f) => Sent::Reply(f),
            Err(_) => Sent::Lost,
        }
    };
    tokio::time::timeout(within, fut)
        .await
        .unwrap_or(Sent::Lost)
}

pub fn key_name(epoch: u64, k: u64) -> String {
    format!("e{epoch}k{k}")
}

pub fn spawn_client(
    cl: u64,
    mut rng: Rng,
    eps: Vec<String>,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    t0: Instant,
) -> tokio::task::JoinHandle<ClientLog> {
    tokio::spawn(async move {
        let mut log = ClientLog::default();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(rng.range(5, 25))).await;
            i += 1;
            let epoch = t0.elapsed().as_millis() as u64 / EPOCH_MS;
            let op = rng.below(100);
            // A tenth of the reads look at an older epoch's key (stale reads
            // of keys nobody writes any more).
            let key_epoch = if op >= 65 && epoch > 0 && rng.chance(10) {
                rng.below(epoch)
            } else {
                epoch
            };
            let key = key_name(key_epoch, rng.below(KEYS_PER_EPOCH));
            let val = format!("c{cl}.{i};");
            let (input, args): (KvInput, Vec<&[u8]>) = match op {
                0..=44 => (
                    KvInput::put(key.clone(), val.clone()),
                    vec![b"SET", key.as_bytes(), val.as_bytes()],
                ),
                45..=56 => (
                    KvInput::append(key.clone(), val.clone()),
                    vec![b"APPEND", key.as_bytes(), val.as_bytes()],
                ),
                57..=64 => (KvInput::delete(key.clone()), vec![b"DEL", key.as_bytes()]),
                _ => (KvInput::get(key.clone()), vec![b"GET", key.as_bytes()]),
            };
            let ep = &eps[rng.below(eps.len() as u64) as usize];
            let call = micros(t0);
            let reply = match call_within(ep, &args, timeout).await {
                Sent::Not => continue, // never sent: no effect, not part of the history
                Sent::Lost => None,
                Sent::Reply(f) => Some(f),
            };
            let ret = micros(t0);
            let out = match (&input, &reply) {
                (KvInput::Put { .. }, Some(Frame::Simple(s))) if s == "OK" => Some(KvOutput::Put),
                (KvInput::Append { .. }, Some(Frame::Integer(n))) => {
                    Some(KvOutput::Append(Some(*n as u64)))
                }
                (KvInput::Delete { .. }, Some(Frame::Integer(n @ (0 | 1)))) => {
                    Some(KvOutput::Delete(Some(*n == 1)))
                }
                (KvInput::Get { .. }, Some(Frame::Bulk(b))) => Some(KvOutput::Get(Some(b.clone()))),
                (KvInput::Get { .. }, Some(Frame::Null)) => Some(KvOutput::Get(None)),
                (KvInput::Get { .. }, Some(Frame::Error(e)))
                    if e.starts_with("CLUSTERDOWN") || e.starts_with("TIMEOUT") =>
                {
                    None
                }
                (_, Some(Frame::Error(e))) if e.starts_with("CLUSTERDOWN") => {
                    // Definitely not applied: not part of the history.
                    log.refused.push((key.clone(), val.clone()));
                    continue;
                }
                (_, Some(Frame::Error(e))) if e.starts_with("TIMEOUT") => None,
                (_, None) => None,
                (_, Some(other)) => {
                    log.unexpected.push(format!("{ep} {input:?} -> {other:?}"));
                    None
                }
            };
            let unknown = out.is_none() && !matches!(input, KvInput::Get { .. });
            log.ops.push(match out {
                Some(out) => Operation::returned(cl, input, call, ret, out),
                None => Operation::unknown(cl, input, call),
            });
            if unknown {
                // Each unknown write may take effect at any later time, which
                // multiplies the checker's search: back off, as a crashed
                // client would.
                tokio::time::sleep(Duration::from_millis(rng.range(100, 300))).await;
            }
        }
        log
    })
}
