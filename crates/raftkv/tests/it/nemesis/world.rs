//! The executor: the cluster, its per-link proxies, and which links each
//! net fault cut; applies one scheduled act at a time and records the
//! processes that ended on their own.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::proxy::{Fault, Net};
use crate::common::Cluster;

use super::schedule::*;

/// The cluster, its proxies, and which links are cut by which net fault.
pub struct World {
    pub c: Cluster,
    pub net: Net,
    pub n: u64,
    pub stopped: BTreeSet<u64>,
    pub cuts: BTreeMap<usize, (Vec<(u64, u64)>, Fault)>,
    /// Links currently cut at the proxies.
    pub cut_now: BTreeSet<(u64, u64)>,
    /// (node, when, status): processes that ended on their own.
    pub crashes: Vec<(u64, u64, String)>,
}

impl World {
    pub async fn apply(&mut self, act: &Act) {
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
    pub async fn sync_links(&mut self) {
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
    pub fn reap(&mut self, now_us: u64) {
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
