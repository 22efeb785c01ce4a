//! The leader's view of one follower: how far it matches, what to send next, and how
//! many Appends are in flight (the pipelining window).
//!
//! States (as in etcd's `tracker`): `Probe` sends one Append at a time until the match
//! point is found; `Replicate` streams Appends optimistically, at most
//! `max_inflight_appends` unacknowledged; `Snapshot` streams an InstallSnapshot in chunks
//! and sends no Appends.
//!
//! Invariant: `matched < next`; in `Replicate`, `inflight` holds strictly increasing
//! last-indexes of unacknowledged Appends, all `>= matched`.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::membership::Membership;
use crate::types::{Index, SnapshotMeta};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    Probe,
    Replicate,
    Snapshot,
}

/// A snapshot being streamed to a follower, chunk by chunk (stop-and-wait).
#[derive(Clone, Debug)]
pub struct SnapshotSend {
    pub meta: SnapshotMeta,
    pub conf: Option<Membership>,
    pub data: Bytes,
    /// Bytes the follower confirmed holding.
    pub acked_bytes: u64,
    /// Whether an acknowledgement arrived since the last heartbeat (otherwise resend).
    pub acked_recently: bool,
}

#[derive(Clone, Debug)]
pub struct Progress {
    pub matched: Index,
    pub next: Index,
    pub state: ProgressState,
    /// In `Probe`: an Append is outstanding; wait for its answer or the next heartbeat.
    pub probe_sent: bool,
    pub inflight: VecDeque<Index>,
    /// Heard from within the current check-quorum period.
    pub recent_active: bool,
    /// Leader ticks since this follower last answered (`hazard`).
    pub silent_ticks: u32,
    pub snapshot: Option<SnapshotSend>,
    /// The follower's last index, when it last said its log ends before
    /// `matched`: it lost entries it had acknowledged as durable (a wiped
    /// data dir, or one restored from an old copy). The leader cannot repair
    /// that silently — a voter that forgot what it acknowledged may have been
    /// part of a commit quorum — so it only reports it (`Raft::lost_log`).
    /// Cleared by the follower's next acknowledgement. A leader elected
    /// after the loss never saw those acknowledgements: it cannot tell, and
    /// catches the member up like a new one.
    pub lost_log: Option<Index>,
}

impl Progress {
    pub fn new(next: Index) -> Self {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            recent_active: false,
            silent_ticks: 0,
            snapshot: None,
            lost_log: None,
        }
    }

    pub fn become_probe(&mut self) {
        let floor = self.snapshot.take().map_or(0, |s| s.meta.index + 1);
        self.state = ProgressState::Probe;
        self.next = (self.matched + 1).max(floor);
        self.probe_sent = false;
        self.inflight.clear();
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflight.clear();
        self.snapshot = None;
    }

    pub fn become_snapshot(&mut self, meta: SnapshotMeta, conf: Option<Membership>, data: Bytes) {
        self.state = ProgressState::Snapshot;
        self.probe_sent = false;
        self.inflight.clear();
        self.snapshot = Some(SnapshotSend {
            meta,
            conf,
            data,
            acked_bytes: 0,
            acked_recently: true,
        });
    }

    /// A successful Append response up to `index`. Returns whether `matched` grew.
    pub fn maybe_update(&mut self, index: Index) -> bool {
        self.lost_log = None;
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index + 1);
        while self.inflight.front().is_some_and(|&i| i <= index) {
            self.inflight.pop_front();
        }
        updated
    }

    /// A rejection of the Append whose `prev_index` was `rejected`; `hint_next` is where
    /// the leader computed the follower's log may diverge. Returns false for a stale rejection.
    pub fn maybe_decrease_to(&mut self, rejected: Index, hint_next: Index) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected < self.matched + 1 {
                return false; // stale: we already know it matches past this point
            }
            self.next = hint_next.min(rejected).max(self.matched + 1);
            self.state = ProgressState::Probe;
            self.inflight.clear();
            self.probe_sent = false;
            return true;
        }
        if self.next == 0 || rejected != self.next - 1 {
            return false; // stale: not the probe we are waiting for
        }
        self.next = hint_next.min(rejected).max(self.matched + 1);
        self.probe_sent = false;
        true
    }

    pub fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight.len() >= max_inflight,
            ProgressState::Snapshot => true,
        }
    }

    /// Records an Append just sent whose last entry is `last`.
    pub fn on_append_sent(&mut self, last: Index, had_entries: bool) {
        match self.state {
            ProgressState::Replicate if had_entries => {
                self.next = last + 1;
                self.inflight.push_back(last);
            }
            ProgressState::Probe => self.probe_sent = true,
            _ => {}
        }
    }
}
