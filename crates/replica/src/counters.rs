//! `Counters`: what one replica has done since it was created, as plain
//! counts (never a time: the replica has no clock), for `/metrics`.
//!
//! Invariant: every field only grows (until the process restarts; the
//! counters are not persisted), so a scraper may take rates of them. The
//! replica bumps them on the paths it already runs — a field add, nothing
//! more — and hands a copy out with [`crate::Status`].

use raft::{Message, MessageBody, NodeId, Term};

/// Monotonic counts of one replica's work (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Commands accepted into the log by `propose` (as leader): the host's
    /// client commands and session registrations, not the replica's own
    /// session ticks.
    pub proposals: u64,
    /// `propose` calls refused (not the leader, or too much uncommitted).
    pub proposals_rejected: u64,
    /// ReadIndex rounds started (one serves a whole batch of reads).
    pub read_index_rounds: u64,
    /// Leaderships seen: terms in which this replica learned of a leader
    /// (itself included). Each term has at most one leader (§5.2), so this
    /// counts elections that produced one, each once however many drives see it.
    pub leader_changes: u64,
    /// InstallSnapshot chunks sent to followers, and their data bytes.
    pub snapshot_chunks_sent: u64,
    pub snapshot_bytes_sent: u64,
    /// Snapshots from a leader installed here, and their bytes.
    pub snapshots_installed: u64,
    pub snapshot_bytes_installed: u64,
    /// Snapshots this replica took of its own state machine (log compactions).
    pub snapshots_taken: u64,
}

impl Counters {
    /// Counts an outgoing message (snapshot chunks only).
    pub(crate) fn on_send(&mut self, m: &Message) {
        if let MessageBody::Snapshot { data, .. } = &m.body {
            self.snapshot_chunks_sent += 1;
            self.snapshot_bytes_sent += data.len() as u64;
        }
    }

    /// Counts a new leadership: a leader known in a term after
    /// `last_term`, the latest term in which one was counted.
    pub(crate) fn on_leader(&mut self, last_term: &mut Term, term: Term, leader: Option<NodeId>) {
        if leader.is_some() && term > *last_term {
            self.leader_changes += 1;
            *last_term = term;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_term_with_a_leader_counts_once() {
        let mut c = Counters::default();
        let mut last = 0;
        let seen = [
            (1, None),
            (1, Some(1)),
            (1, Some(1)), // the same leadership, seen again
            (2, None),    // an election without a winner yet
            (3, Some(1)), // the same node, elected again: a new leadership
            (4, Some(2)),
            (4, Some(2)),
        ];
        for (term, leader) in seen {
            c.on_leader(&mut last, term, leader);
        }
        assert_eq!(c.leader_changes, 3);
    }
}
