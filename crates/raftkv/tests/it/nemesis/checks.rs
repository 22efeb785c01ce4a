//! What the nemesis checks after a run, and the run's directory: the
//! longest stall while at most a minority was faulty, which value tokens
//! reads saw, moving leadership for the convergence check, and keeping the
//! logs of a failed run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use lincheck::{KvOperation, KvOutput};

use crate::common::num;
use crate::common::proxy::Fault;

use super::schedule::Event;
use super::world::World;

/// Deletes the run's directory when the test passes; keeps it and prints
/// how to replay when it fails.
pub struct RunDir {
    pub path: PathBuf,
    pub replay: String,
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\nNEMESIS FAILED. Replay the schedule with: {}\nnode logs, data dirs and history kept in {}",
                self.replay,
                self.path.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// Longest time without any completed operation while at most a minority
/// was faulty, after a grace period of `grace_us` following each time a
/// majority was faulty (and following the start).
pub fn longest_stall(
    completions: &[u64],
    events: &[(u64, Event)],
    minority: u64,
    grace_us: u64,
    until: u64,
) -> (u64, u64) {
    // Intervals [from, to) excused: majority faulty, plus the grace after.
    let mut excused: Vec<(u64, u64)> = vec![(0, grace_us)];
    let mut open: Option<u64> = None;
    for (at, e) in events {
        let over = e.faulty.len() as u64 > minority;
        match (over, open) {
            (true, None) => open = Some(*at),
            (false, Some(from)) => {
                excused.push((from, at + grace_us));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        excused.push((from, u64::MAX));
    }
    let mut pts = completions.to_vec();
    pts.push(until);
    pts.sort_unstable();
    let (mut worst, mut worst_at) = (0, 0);
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        // The gap's length outside excused intervals.
        let mut covered = 0;
        let mut cursor = a;
        let mut ex: Vec<(u64, u64)> = excused
            .iter()
            .map(|&(f, t)| (f.max(a), t.min(b)))
            .filter(|(f, t)| f < t)
            .collect();
        ex.sort_unstable();
        for (f, t) in ex {
            let f = f.max(cursor);
            if t > f {
                covered += t - f;
                cursor = t;
            }
        }
        let stall = (b - a) - covered;
        if stall > worst {
            (worst, worst_at) = (stall, a);
        }
    }
    (worst, worst_at)
}

/// Value tokens (`c{cl}.{i};`) that reads returned.
pub fn read_tokens(history: &[KvOperation]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for (idx, op) in history.iter().enumerate() {
        if let Some(KvOutput::Get(Some(v))) = op.output() {
            for tok in String::from_utf8_lossy(v).split_inclusive(';') {
                seen.entry(tok.to_string()).or_insert(idx);
            }
        }
    }
    seen
}

/// Deposes leaders (cutting each off until the others elect another) until
/// `x` leads, with every link healed again; returns its term.
pub async fn make_leader(w: &World, x: u64, ids: &[u64]) -> u64 {
    for _ in 0..40 {
        let l = w.c.wait_leader(ids, Duration::from_secs(20)).await;
        if l == x {
            if let Some(info) = w.c.info(x).await {
                if info.get("role").map(String::as_str) == Some("leader") {
                    return num(&info, "term");
                }
            }
            continue;
        }
        w.net.isolate(l, Fault::Refuse).await;
        let others: Vec<u64> = ids.iter().copied().filter(|&i| i != l).collect();
        w.c.wait_leader(&others, Duration::from_secs(20)).await;
        w.net.heal_all();
    }
    panic!("node {x} never became leader in 40 elections");
}
