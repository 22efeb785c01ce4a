//! The sharded driver's side of segment removal: hands each hosted group's
//! `storage::SegmentRemoval` (the WAL segments a durable snapshot covers) to
//! the process's removal thread (`crate::driver::removal_thread`), and keeps
//! what that needs across parks and reopens.
//!
//! Each store gets a ticket at its first removal (forgotten when its group
//! is parked, so a reopened store gets a new one): a failure carrying a live
//! ticket stops the process, naming the group; one of a store since dropped is
//! only logged, since its reopen recovers from whatever is on disk.
//!
//! Safety rule (no segment vanishes under a recovery): a parked group whose
//! store handed removals over is reopened only after they have run
//! ([`GroupRemovals::before_reopen`]), and the driver drains the thread
//! before it exits ([`GroupRemovals::drain`]).

use std::collections::{BTreeMap, BTreeSet};

use shardmeta::GroupId;

use super::driver::Node;
use crate::driver::removal_thread::RemovalThread;

pub(super) struct GroupRemovals {
    thread: RemovalThread,
    /// The ticket of each hosted group's store that has handed a removal over.
    tickets: BTreeMap<GroupId, u64>,
    next_ticket: u64,
    /// Groups that handed removals over since the last drain.
    removing: BTreeSet<GroupId>,
}

impl GroupRemovals {
    pub(super) fn start() -> GroupRemovals {
        GroupRemovals {
            thread: RemovalThread::start(),
            tickets: BTreeMap::new(),
            next_ticket: 0,
            removing: BTreeSet::new(),
        }
    }

    /// After every drive: stops the process if an earlier removal of a hosted
    /// group's store failed, then hands over every store's new removal.
    pub(super) fn hand_over(&mut self, node: &mut Node) -> Result<(), host::HostError> {
        let stopped = |group, e| host::HostError::Replica {
            group,
            source: replica::ReplicaError::Storage(e),
        };
        if let Some((ticket, e)) = self.thread.take_failed() {
            match self.tickets.iter().find(|&(_, &t)| t == ticket) {
                Some((&group, _)) => return Err(stopped(group, e)),
                None => tracing::warn!("segment removal of a parked group's dropped store failed (its reopen recovers from what is on disk): {e}"),
            }
        }
        for (group, storage) in node.storages_mut() {
            let Some(removal) = storage.take_segment_removal() else {
                continue;
            };
            let ticket = *self.tickets.entry(group).or_insert_with(|| {
                self.next_ticket += 1;
                self.next_ticket
            });
            if !self.thread.send(ticket, removal) {
                let gone = raft::StorageError::Io("the segment removal thread is gone".into());
                return Err(stopped(group, gone));
            }
            self.removing.insert(group);
        }
        Ok(())
    }

    /// `parked` groups' stores were dropped: a failure of their removals is moot.
    pub(super) fn forget(&mut self, parked: &BTreeSet<GroupId>) {
        self.tickets.retain(|g, _| !parked.contains(g));
    }

    /// Before parked `group` is reopened: its old store's removals run first
    /// (module docs: safety rule).
    pub(super) fn before_reopen(&mut self, group: GroupId) {
        if self.removing.contains(&group) {
            self.drain();
        }
    }

    /// Blocks until every removal handed over so far has run.
    pub(super) fn drain(&mut self) {
        self.thread.drain();
        self.removing.clear();
    }
}
