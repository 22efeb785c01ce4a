//! A randomized Jepsen-style "nemesis" test with real `raftkv server`
//! processes on 127.0.0.1.
//!
//! Three nodes (`NEMESIS_NODES=5` for five), every peer link through a
//! per-link proxy (`common::proxy`). Six to nine clients issue random
//! GET/SET/APPEND/DEL on a small key set (rotating every few seconds, so
//! each key sees a bounded number of operations and the checker stays
//! decisive) through every node's client port, and record a history. A
//! write answered `-TIMEOUT` or not answered is unknown (it may or may not
//! have taken effect); one answered `-CLUSTERDOWN` certainly did not, so it
//! is left out of the history (if it took effect anyway, a read exposes it);
//! a read that fails has no effect. Meanwhile a nemesis follows a fault
//! schedule drawn in full from one seed before the run starts: kill -9 and
//! restart from the same data dir, SIGSTOP/SIGCONT (some shorter than an
//! election timeout, most longer), isolating a node, splitting into random
//! halves, one-way cuts, rarely a full-cluster kill -9, and healing
//! everything. Most of the time at most a minority is faulty; sometimes a
//! majority is, briefly (the cluster must refuse, then recover). The
//! server's election timeout, request timeout and snapshot threshold are
//! drawn from the seed too. At the end everything is healed and restarted
//! and the test checks:
//!
//! 1. the history, with a final read of every key through every node, is
//!    linearizable (lincheck must answer Ok, not Unknown): every
//!    acknowledged write is visible, no refused write took effect, no read
//!    was stale;
//! 2. no node process died on its own;
//! 3. all nodes converge: the same term, leader, commit, applied, last
//!    index and key count in INFO, and the same state machine contents
//!    (each node is made leader in turn and every key is read through it,
//!    so the read is served from its own state);
//! 4. the cluster kept serving while at most a minority was faulty (no
//!    stall longer than `NEMESIS_MAX_STALL_MS`, 3 s of grace after each
//!    majority fault) and serves again after the final heal.
//!
//! Environment: `NEMESIS_SEED` replays a schedule (real processes are not
//! deterministic; the schedule, the server flags and each client's choices
//! are), `NEMESIS_SECS` (default 15) sets the fault phase's length,
//! `NEMESIS_NODES` (3 or 5), `NEMESIS_MAX_STALL_MS` (default 10000). The
//! seed, flags and schedule are printed first. Node logs (info level), data
//! dirs, the schedule as planned and as executed, and the history are kept
//! under `$CARGO_TARGET_TMPDIR/nemesis-<seed>-<pid>` when the test fails and
//! removed when it passes. Node ports are drawn below the ephemeral port
//! range, so a killed node's port is not taken by some outgoing connection
//! before it restarts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::history::micros;
use common::proxy::{Fault, Net};
use common::{num, port_below_ephemeral, serial, wait_converged, Cluster};
use lincheck::{check_with, describe, CheckOptions, KvInput, KvOperation, KvOutput, Operation};
use server::client::Client;
use server::resp::Frame;

/// A client gives up on a reply this long after the server's request
/// timeout (then the outcome is unknown).
const CLIENT_SLACK: Duration = Duration::from_secs(1);
/// Keys rotate every epoch, so each key sees a bounded number of operations
/// and the checker stays decisive.
const EPOCH_MS: u64 = 4000;
const KEYS_PER_EPOCH: u64 = 3;
/// Clean traffic before the first fault, and after the final heal.
const WARMUP_MS: u64 = 1000;
const COOLDOWN_MS: u64 = 2500;

// ---------------------------------------------------------------- randomness

/// splitmix64: every random choice of a run derives from the seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// In `[lo, hi]`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            xs.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
    fn fork(&mut self, salt: u64) -> Rng {
        Rng(self.next() ^ salt.wrapping_mul(0xA24B_AED4_963E_E407))
    }
}

// ------------------------------------------------------------------ schedule

#[derive(Clone, Debug)]
enum Act {
    Kill(u64),
    Restart(u64),
    /// kill -9 every node (a full-cluster crash; HEAL ALL restarts them).
    KillAll,
    Stop(u64),
    Cont(u64),
    /// Net fault `id` begins: its links are cut (one direction each).
    Cut {
        id: usize,
        what: String,
        links: Vec<(u64, u64)>,
        how: Fault,
        affected: BTreeSet<u64>,
    },
    /// Net fault `id` ends (links no other fault holds are healed).
    Heal {
        id: usize,
    },
    /// Heal every link, SIGCONT every stopped node, restart every killed one.
    HealAll,
}

#[derive(Clone, Debug)]
struct Event {
    at_ms: u64,
    act: Act,
    /// Faulty nodes (killed, stopped, or cut off by a net fault) after it.
    faulty: BTreeSet<u64>,
}

impl Event {
    fn line(&self, n: u64) -> String {
        let what = match &self.act {
            Act::Kill(i) => format!("kill -9 {i}"),
            Act::KillAll => "kill -9 ALL".to_string(),
            Act::Restart(i) => format!("restart {i}"),
            Act::Stop(i) => format!("SIGSTOP {i}"),
            Act::Cont(i) => format!("SIGCONT {i}"),
            Act::Cut { id, what, how, .. } => format!("net#{id} {what} ({how:?})"),
            Act::Heal { id } => format!("heal net#{id}"),
            Act::HealAll => "HEAL ALL".to_string(),
        };
        let majority = if self.faulty.len() as u64 > (n - 1) / 2 {
            "  MAJORITY FAULTY"
        } else {
            ""
        };
        format!(
            "{:>7} ms  {what:<40} faulty {:?}{majority}",
            self.at_ms, self.faulty
        )
    }
}

/// What the schedule has done so far (the generator's model of the cluster).
struct FaultState {
    n: u64,
    killed: BTreeSet<u64>,
    stopped: BTreeSet<u64>,
    net: BTreeMap<usize, BTreeSet<u64>>,
}

impl FaultState {
    fn faulty(&self) -> BTreeSet<u64> {
        let mut f: BTreeSet<u64> = self.killed.union(&self.stopped).copied().collect();
        for a in self.net.values() {
            f.extend(a);
        }
        f
    }
    fn apply(&mut self, act: &Act) {
        match act {
            Act::Kill(i) => {
                self.killed.insert(*i);
            }
            Act::Restart(i) => {
                self.killed.remove(i);
            }
            Act::KillAll => {
                self.stopped.clear();
                self.killed.extend(1..=self.n);
            }
            Act::Stop(i) => {
                self.stopped.insert(*i);
            }
            Act::Cont(i) => {
                self.stopped.remove(i);
            }
            Act::Cut { id, affected, .. } => {
                self.net.insert(*id, affected.clone());
            }
            Act::Heal { id } => {
                self.net.remove(id);
            }
            Act::HealAll => {
                self.killed.clear();
                self.stopped.clear();
                self.net.clear();
            }
        }
    }
}

/// Draws the whole fault schedule for `n` nodes over `secs` seconds.
fn schedule(rng: &mut Rng, n: u64, secs: u64, election_ms: u64) -> Vec<Event> {
    let ids: Vec<u64> = (1..=n).collect();
    let minority = (n - 1) / 2;
    let end = WARMUP_MS + secs * 1000;
    let mut st = FaultState {
        n,
        killed: BTreeSet::new(),
        stopped: BTreeSet::new(),
        net: BTreeMap::new(),
    };
    let mut events: Vec<Event> = Vec::new();
    // Scheduled recoveries: (at, act).
    let mut pending: Vec<(u64, Act)> = Vec::new();
    let mut net_ids = 0usize;
    let mut push = |st: &mut FaultState, at_ms: u64, act: Act| {
        st.apply(&act);
        events.push(Event {
            at_ms,
            act,
            faulty: st.faulty(),
        });
    };
    let mut t = WARMUP_MS;
    while t < end {
        // Recoveries due by now, in time order.
        pending.sort_by_key(|p| p.0);
        while pending.first().is_some_and(|p| p.0 <= t) {
            let (at, act) = pending.remove(0);
            push(&mut st, at, act);
        }
        let before = st.faulty();
        if before.len() as u64 > minority {
            // A majority is down: only recoveries until it is back.
        } else if !before.is_empty() && rng.chance(8) {
            pending.clear();
            push(&mut st, t, Act::HealAll);
        } else if rng.chance(3) {
            // A full-cluster crash under load, restarted soon.
            push(&mut st, t, Act::KillAll);
            pending.push((t + rng.range(300, 2000), Act::HealAll));
        } else {
            // Each draw makes one candidate fault; it goes in if it keeps a
            // majority healthy, or (rarely) anyway, briefly.
            let running: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|i| !st.killed.contains(i) && !st.stopped.contains(i))
                .collect();
            let kind = rng.below(100);
            let (act, mut dur, victims): (Act, u64, BTreeSet<u64>) = match kind {
                0..=19 if !running.is_empty() => {
                    let v = rng.pick(&running);
                    (Act::Kill(v), rng.range(300, 4000), [v].into())
                }
                20..=39 if !running.is_empty() => {
                    let v = rng.pick(&running);
                    // Some pauses end before an election timeout, most after.
                    let d = if rng.chance(35) {
                        rng.range(30, election_ms - 30)
                    } else {
                        rng.range(2 * election_ms, 4000)
                    };
                    (Act::Stop(v), d, [v].into())
                }
                40..=59 => {
                    let v = rng.pick(&ids);
                    let links = ids
                        .iter()
                        .filter(|&&o| o != v)
                        .flat_map(|&o| [(v, o), (o, v)])
                        .collect();
                    let how = if rng.chance(50) {
                        Fault::Blackhole
                    } else {
                        Fault::Refuse
                    };
                    let act = Act::Cut {
                        id: net_ids + 1,
                        what: format!("isolate {v}"),
                        links,
                        how,
                        affected: [v].into(),
                    };
                    (act, rng.range(500, 5000), [v].into())
                }
                60..=79 => {
                    let mut shuffled = ids.clone();
                    rng.shuffle(&mut shuffled);
                    let k = rng.range(1, n / 2) as usize;
                    let (a, b) = shuffled.split_at(k);
                    let (a, b): (BTreeSet<u64>, BTreeSet<u64>) =
                        (a.iter().copied().collect(), b.iter().copied().collect());
                    let links = a
                        .iter()
                        .flat_map(|&x| b.iter().flat_map(move |&y| [(x, y), (y, x)]))
                        .collect();
                    let how = if rng.chance(50) {
                        Fault::Blackhole
                    } else {
                        Fault::Refuse
                    };
                    let act = Act::Cut {
                        id: net_ids + 1,
                        what: format!("split {a:?} | {b:?}"),
                        links,
                        how,
                        affected: a.clone(),
                    };
                    (act, rng.range(500, 5000), a)
                }
                _ => {
                    // One-way: a single link, a node nobody hears, or a node that hears nobody.
                    let v = rng.pick(&ids);
                    let others: Vec<u64> = ids.iter().copied().filter(|&o| o != v).collect();
                    let (what, links, affected): (String, Vec<(u64, u64)>, BTreeSet<u64>) =
                        match rng.below(3) {
                            0 => {
                                let w = rng.pick(&others);
                                (format!("one-way {v}->{w}"), vec![(v, w)], [w].into())
                            }
                            1 => (
                                format!("one-way {v}->all"),
                                others.iter().map(|&o| (v, o)).collect(),
                                [v].into(),
                            ),
                            _ => (
                                format!("one-way all->{v}"),
                                others.iter().map(|&o| (o, v)).collect(),
                                [v].into(),
                            ),
                        };
                    let how = if rng.chance(50) {
                        Fault::Blackhole
                    } else {
                        Fault::Refuse
                    };
                    let act = Act::Cut {
                        id: net_ids + 1,
                        what,
                        links,
                        how,
                        affected: affected.clone(),
                    };
                    (act, rng.range(500, 5000), affected)
                }
            };
            let after: BTreeSet<u64> = before.union(&victims).copied().collect();
            let majority = after.len() as u64 > minority;
            if !majority || rng.chance(25) {
                if majority {
                    dur = rng.range(500, 2500); // briefly
                }
                let recovery = match &act {
                    Act::Kill(v) => Act::Restart(*v),
                    Act::Stop(v) => Act::Cont(*v),
                    Act::Cut { id, .. } => Act::Heal { id: *id },
                    _ => unreachable!(),
                };
                if matches!(act, Act::Cut { .. }) {
                    net_ids += 1;
                }
                push(&mut st, t, act);
                pending.push((t + dur, recovery));
            }
        }
        t += rng.range(500, 1500);
    }
    pending.sort_by_key(|p| p.0);
    for (at, act) in pending.into_iter().filter(|p| p.0 < end) {
        push(&mut st, at, act);
    }
    push(&mut st, end, Act::HealAll);
    events
}

// ------------------------------------------------------------------ executor

/// The cluster, its proxies, and which links are cut by which net fault.
struct World {
    c: Cluster,
    net: Net,
    n: u64,
    stopped: BTreeSet<u64>,
    cuts: BTreeMap<usize, (Vec<(u64, u64)>, Fault)>,
    /// Links currently cut at the proxies.
    cut_now: BTreeSet<(u64, u64)>,
    /// (node, when, status): processes that ended on their own.
    crashes: Vec<(u64, u64, String)>,
}

impl World {
    async fn apply(&mut self, act: &Act) {
        match act {
            Act::Kill(i) => {
                if self.stopped.remove(i) && self.c.pid(*i).is_some() {
                    self.c.signal(*i, libc::SIGCONT);
                }
                self.c.kill(*i);
            }
            Act::KillAll => {
                for i in 1..=self.n {
                    if self.stopped.remove(&i) && self.c.pid(i).is_some() {
                        self.c.signal(i, libc::SIGCONT);
                    }
                    self.c.kill(i);
                }
            }
            Act::Restart(i) => {
                if self.c.pid(*i).is_none() {
                    self.c.spawn(*i);
                }
            }
            Act::Stop(i) => {
                if self.c.pid(*i).is_some() {
                    self.c.signal(*i, libc::SIGSTOP);
                    self.stopped.insert(*i);
                }
            }
            Act::Cont(i) => {
                if self.stopped.remove(i) && self.c.pid(*i).is_some() {
                    self.c.signal(*i, libc::SIGCONT);
                }
            }
            Act::Cut { id, links, how, .. } => {
                self.cuts.insert(*id, (links.clone(), *how));
                self.sync_links().await;
            }
            Act::Heal { id } => {
                self.cuts.remove(id);
                self.sync_links().await;
            }
            Act::HealAll => {
                self.cuts.clear();
                self.sync_links().await;
                for i in std::mem::take(&mut self.stopped) {
                    if self.c.pid(i).is_some() {
                        self.c.signal(i, libc::SIGCONT);
                    }
                }
                for i in 1..=self.n {
                    if self.c.pid(i).is_none() {
                        self.c.spawn(i);
                    }
                }
            }
        }
    }

    /// Makes the proxies cut exactly the union of the active net faults' links.
    async fn sync_links(&mut self) {
        let mut want: BTreeMap<(u64, u64), Fault> = BTreeMap::new();
        for (links, how) in self.cuts.values() {
            for &l in links {
                want.entry(l).or_insert(*how);
            }
        }
        for &l in self.cut_now.difference(&want.keys().copied().collect()) {
            self.net.heal(l.0, l.1);
        }
        for (&l, &how) in &want {
            if !self.cut_now.contains(&l) {
                self.net.cut(l.0, l.1, how).await;
            }
        }
        self.cut_now = want.into_keys().collect();
    }

    /// Notes (and forgets) node processes that ended without being killed.
    fn reap(&mut self, now_us: u64) {
        for i in 1..=self.n {
            if let Some(status) = self.c.exited(i) {
                eprintln!(
                    "!!! node {i} exited on its own at {} ms: {status}",
                    now_us / 1000
                );
                self.crashes.push((i, now_us, status.to_string()));
                self.stopped.remove(&i);
            }
        }
    }
}

// ------------------------------------------------------------------- clients

#[derive(Default)]
struct ClientLog {
    ops: Vec<KvOperation>,
    /// Writes answered `-CLUSTERDOWN`: certainly without effect, so left out
    /// of the history (kept for diagnostics: key, value token).
    refused: Vec<(String, String)>,
    /// Replies of an unexpected type or error (each a bug or a harness gap).
    unexpected: Vec<String>,
}

/// What became of one request.
enum Sent {
    /// The connection failed: the request never left, so it had no effect.
    Not,
    /// Sent, and no reply within the timeout (or the connection broke).
    Lost,
    Reply(Frame),
}

async fn call_within(endpoint: &str, args: &[&[u8]], within: Duration) -> Sent {
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

fn key_name(epoch: u64, k: u64) -> String {
    format!("e{epoch}k{k}")
}

fn spawn_client(
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

// --------------------------------------------------------------------- checks

/// Deletes the run's directory when the test passes; keeps it and prints
/// how to replay when it fails.
struct RunDir {
    path: PathBuf,
    replay: String,
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

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// Longest time without any completed operation while at most a minority
/// was faulty, after a grace period of `grace_us` following each time a
/// majority was faulty (and following the start).
fn longest_stall(
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
fn read_tokens(history: &[KvOperation]) -> BTreeMap<String, usize> {
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
async fn make_leader(w: &World, x: u64, ids: &[u64]) -> u64 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis() {
    let _g = serial();
    let seed = env_u64("NEMESIS_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        (t.as_nanos() as u64 ^ (std::process::id() as u64) << 32) % 1_000_000_000
    });
    let secs = env_u64("NEMESIS_SECS").unwrap_or(15);
    let n = env_u64("NEMESIS_NODES").unwrap_or(3);
    assert!(n == 3 || n == 5, "NEMESIS_NODES must be 3 or 5");
    let max_stall = Duration::from_millis(env_u64("NEMESIS_MAX_STALL_MS").unwrap_or(10_000));
    let minority = (n - 1) / 2;
    let replay = format!("NEMESIS_SEED={seed} NEMESIS_SECS={secs} NEMESIS_NODES={n} cargo test [--release] -p raftkv --test nemesis -- --nocapture");
    eprintln!("nemesis: seed {seed}, {secs} s, {n} nodes\nreplay: {replay}");

    let mut rng = Rng(seed);
    let mut sched_rng = rng.fork(1);
    let mut port_rng = rng.fork(2);
    let mut client_rng = rng.fork(3);
    // Server settings vary by seed too.
    let mut flag_rng = rng.fork(4);
    let election_ms = flag_rng.pick(&[200, 300, 500]);
    let request_ms = flag_rng.pick(&[1000, 2000]);
    let snapshot_bytes = flag_rng.pick(&[8192, 32768, 1 << 20]);
    let client_timeout = Duration::from_millis(request_ms) + CLIENT_SLACK;
    let flags: Vec<String> = [
        ("--election-timeout-ms", election_ms),
        ("--request-timeout-ms", request_ms),
        ("--snapshot-threshold-bytes", snapshot_bytes),
    ]
    .iter()
    .flat_map(|(f, v)| [f.to_string(), v.to_string()])
    .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    eprintln!("server flags: {}", flags.join(" "));
    let events = schedule(&mut sched_rng, n, secs, election_ms);
    let mut plan = String::new();
    for e in &events {
        let _ = writeln!(plan, "  {}", e.line(n));
    }
    eprintln!("fault schedule ({} events):\n{plan}", events.len());

    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("nemesis-{seed}-{}", std::process::id()));
    std::fs::create_dir_all(&path).unwrap();
    let run_dir = RunDir {
        path: path.clone(),
        replay,
    };
    std::fs::write(path.join("schedule.txt"), &plan).unwrap();

    // Proxies first (they hold their ports), then node ports below the
    // ephemeral range (a restarted node must find its ports free).
    let ids: Vec<u64> = (1..=n).collect();
    let mut net = Net::bind(&ids).await;
    let mut c = Cluster::with_layout(n, &flags, &path, || {
        port_below_ephemeral(|| port_rng.range(16_000, 31_999) as u16)
    });
    c.log_level = "info".into();
    c.log_dir = Some(path.clone());
    net.start(|j| c.nodes[j as usize - 1].peer.clone());
    for &id in &ids {
        c.set_view(id, |j| net.addr(id, j));
        c.spawn(id);
    }
    let mut w = World {
        c,
        net,
        n,
        stopped: BTreeSet::new(),
        cuts: BTreeMap::new(),
        cut_now: BTreeSet::new(),
        crashes: Vec::new(),
    };
    w.c.wait_leader(&ids, Duration::from_secs(15)).await;

    // Clients.
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let eps: Vec<String> = ids.iter().map(|&i| w.c.endpoint(i)).collect();
    let n_clients = client_rng.range(6, 9);
    let clients: Vec<_> = (0..n_clients)
        .map(|cl| {
            spawn_client(
                cl,
                client_rng.fork(cl),
                eps.clone(),
                client_timeout,
                stop.clone(),
                t0,
            )
        })
        .collect();

    // The nemesis.
    let mut executed: Vec<(u64, Event)> = Vec::new();
    for e in &events {
        let due = t0 + Duration::from_millis(e.at_ms);
        while Instant::now() < due {
            w.reap(micros(t0));
            tokio::time::sleep((due - Instant::now()).min(Duration::from_millis(50))).await;
        }
        w.reap(micros(t0));
        let at = micros(t0);
        w.apply(&e.act).await;
        let late = at / 1000 - e.at_ms.min(at / 1000);
        if late > 200 {
            eprintln!("(event at {} ms ran {late} ms late)", e.at_ms);
        }
        executed.push((at, e.clone()));
    }
    let healed_at = micros(t0);
    // Everything is healed: the cluster must serve again. A few more
    // seconds of traffic, then stop.
    w.c.wait_leader(&ids, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(COOLDOWN_MS)).await;
    w.reap(micros(t0));
    stop.store(true, Ordering::Relaxed);
    let mut history: Vec<KvOperation> = Vec::new();
    let (mut refused, mut unexpected) = (Vec::new(), Vec::new());
    for cl in clients {
        let log = cl.await.unwrap();
        history.extend(log.ops);
        refused.extend(log.refused);
        unexpected.extend(log.unexpected);
    }
    let stopped_at = micros(t0);

    // Final reads: every key through every node while it leads, so each
    // read is served from that node's own state machine (a leader answers
    // a read from its state after ReadIndex); the states must be equal.
    // Converged first: no entry is left that a later leader could still
    // commit between two nodes' reads.
    wait_converged(&w.c, &ids, Duration::from_secs(30)).await;
    let keys: BTreeSet<Bytes> = history.iter().map(|o| o.input.key().clone()).collect();
    let mut states: BTreeMap<u64, BTreeMap<Bytes, Option<Bytes>>> = BTreeMap::new();
    for &id in &ids {
        let mut tries = 0;
        let state = loop {
            tries += 1;
            assert!(
                tries <= 5,
                "node {id} did not stay leader through its final reads"
            );
            let term = make_leader(&w, id, &ids).await;
            let mut state = BTreeMap::new();
            for key in &keys {
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let call = micros(t0);
                    let value = match call_within(
                        &w.c.endpoint(id),
                        &[b"GET".as_slice(), key.as_ref()],
                        client_timeout,
                    )
                    .await
                    {
                        Sent::Reply(Frame::Bulk(b)) => Some(b),
                        Sent::Reply(Frame::Null) => None,
                        Sent::Reply(other) => {
                            assert!(
                                Instant::now() < deadline,
                                "final read of {key:?} via node {id} failed for 20 s: {other:?}"
                            );
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        _ => {
                            assert!(
                                Instant::now() < deadline,
                                "final read of {key:?} via node {id} failed for 20 s: no reply"
                            );
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    history.push(Operation::returned(
                        1000 + id,
                        KvInput::get(key.clone()),
                        call,
                        micros(t0),
                        KvOutput::Get(value.clone()),
                    ));
                    state.insert(key.clone(), value);
                    break;
                }
            }
            let info = w.c.info(id).await.unwrap_or_default();
            if info.get("role").map(String::as_str) == Some("leader") && num(&info, "term") == term
            {
                break state;
            }
        };
        states.insert(id, state);
    }

    // The history, for the record.
    let mut dump = String::new();
    let mut order: Vec<usize> = (0..history.len()).collect();
    order.sort_by_key(|&i| history[i].call);
    for &i in &order {
        let _ = writeln!(dump, "{}", describe(i, &history[i]));
    }
    std::fs::write(path.join("history.txt"), &dump).unwrap();
    let mut exec_log = String::new();
    for (at, e) in &executed {
        let _ = writeln!(
            exec_log,
            "{:>7} ms (planned {:>6})  {}",
            at / 1000,
            e.at_ms,
            e.line(n)
        );
    }
    std::fs::write(path.join("executed.txt"), &exec_log).unwrap();

    let total = history.len();
    let unknown_writes = history
        .iter()
        .filter(|o| o.is_unknown() && !matches!(o.input, KvInput::Get { .. }))
        .count();
    let failed_reads = history
        .iter()
        .filter(|o| o.is_unknown() && matches!(o.input, KvInput::Get { .. }))
        .count();
    let completed: Vec<u64> = history
        .iter()
        .filter_map(|o| o.return_time())
        .filter(|&t| t < stopped_at)
        .collect();
    let after_heal = completed.iter().filter(|&&t| t > healed_at).count();
    let (stall, stall_at) = longest_stall(&completed, &executed, minority, 3_000_000, healed_at);
    eprintln!(
        "history: {total} ops over {} keys from {n_clients} clients; {} completed, {unknown_writes} unknown writes, {failed_reads} failed reads, \
         {} refused writes (CLUSTERDOWN), {after_heal} completed after the final heal; longest stall under a minority fault: {} ms at {} ms",
        keys.len(),
        completed.len(),
        refused.len(),
        stall / 1000,
        stall_at / 1000
    );

    // (2) no crash.
    assert!(
        w.crashes.is_empty(),
        "node processes died on their own: {:?}",
        w.crashes
    );
    // (1) linearizable, decisively.
    let report = check_with(
        &lincheck::KvModel,
        &history,
        &CheckOptions {
            max_steps_per_partition: 50_000_000,
        },
    );
    eprintln!("lincheck: {:?}", report.stats);
    if let Some(v) = report.result.violation() {
        // Did a refused write take effect?
        let refused_tokens: BTreeMap<&str, &str> = refused
            .iter()
            .map(|(k, v)| (v.as_str(), k.as_str()))
            .collect();
        for (tok, idx) in read_tokens(&history) {
            if let Some(k) = refused_tokens.get(tok.as_str()) {
                eprintln!(
                    "!!! {tok} was answered -CLUSTERDOWN (key {k}) yet read by op #{idx}: {}",
                    describe(idx, &history[idx])
                );
            }
        }
        panic!("NOT LINEARIZABLE (seed {seed}):\n{}", v.explanation());
    }
    assert!(
        report.result.is_ok(),
        "checker undecided on {total} ops: {:?}",
        report.result
    );
    assert!(unexpected.is_empty(), "unexpected replies: {unexpected:#?}");
    // (3) convergence: the same state machine on every node, and the same
    // indexes.
    for (&id, state) in &states {
        let (first, reference) = states.iter().next().unwrap();
        let diff: Vec<String> = keys
            .iter()
            .filter(|k| state.get(*k) != reference.get(*k))
            .map(|k| {
                format!(
                    "{k:?}: node {first} has {:?}, node {id} has {:?}",
                    reference.get(k),
                    state.get(k)
                )
            })
            .collect();
        assert!(diff.is_empty(), "state machines diverge: {diff:#?}");
    }
    let agreed = wait_converged(&w.c, &ids, Duration::from_secs(30)).await;
    eprintln!(
        "converged: term {} leader {} commit {} applied {} last_index {} snapshot_index {} keys {}",
        num(&agreed, "term"),
        num(&agreed, "leader"),
        num(&agreed, "commit"),
        num(&agreed, "applied"),
        num(&agreed, "last_index"),
        num(&agreed, "snapshot_index"),
        num(&agreed, "keys"),
    );
    let live_keys = states[&1].values().filter(|v| v.is_some()).count() as u64;
    assert_eq!(
        num(&agreed, "keys"),
        live_keys,
        "INFO keys disagrees with the final reads"
    );
    // (4) availability.
    assert!(
        after_heal > 20,
        "only {after_heal} operations completed after the final heal"
    );
    assert!(
        Duration::from_micros(stall) <= max_stall,
        "the cluster served nothing for {} ms (from {} ms) while at most a minority was faulty",
        stall / 1000,
        stall_at / 1000
    );
    drop(w);
    drop(run_dir);
}
