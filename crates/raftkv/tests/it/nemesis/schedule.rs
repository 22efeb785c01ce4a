//! The nemesis's fault schedule: a seeded RNG and every fault of a run,
//! drawn in full from one seed before the run starts, so a failing run
//! replays from its seed. Invariant: nothing here reads a clock or the
//! environment; the same seed gives the same schedule.

use std::collections::{BTreeMap, BTreeSet};

use super::WARMUP_MS;
use crate::common::proxy::Fault;

/// splitmix64: every random choice of a run derives from the seed.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// In `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            xs.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng(self.next() ^ salt.wrapping_mul(0xA24B_AED4_963E_E407))
    }
}

// ------------------------------------------------------------------ schedule

#[derive(Clone, Debug)]
pub enum Act {
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
pub struct Event {
    pub at_ms: u64,
    pub act: Act,
    /// Faulty nodes (killed, stopped, or cut off by a net fault) after it.
    pub faulty: BTreeSet<u64>,
}

impl Event {
    pub fn line(&self, n: u64) -> String {
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
pub struct FaultState {
    pub n: u64,
    pub killed: BTreeSet<u64>,
    pub stopped: BTreeSet<u64>,
    pub net: BTreeMap<usize, BTreeSet<u64>>,
}

impl FaultState {
    pub fn faulty(&self) -> BTreeSet<u64> {
        let mut f: BTreeSet<u64> = self.killed.union(&self.stopped).copied().collect();
        for a in self.net.values() {
            f.extend(a);
        }
        f
    }
    pub fn apply(&mut self, act: &Act) {
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
pub fn schedule(rng: &mut Rng, n: u64, secs: u64, election_ms: u64) -> Vec<Event> {
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
                    let how = net_fault(rng);
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
                    let how = net_fault(rng);
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
                    let how = net_fault(rng);
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

/// How a cut link fails: half the time it goes silent (a black hole: bytes
/// vanish, the connection stays open), else it refuses connections.
fn net_fault(rng: &mut Rng) -> Fault {
    if rng.chance(50) {
        Fault::Blackhole
    } else {
        Fault::Refuse
    }
}
