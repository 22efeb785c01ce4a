//! Client sessions of a sharded group: exactly-once across shard moves.
//!
//! Owns: the session table (client id -> highest applied seq and the cached
//! responses of a window of recent seqs) and its log-time expiry index.
//!
//! How this differs from `kv`'s table, and why it is a separate, focused
//! one: `kv` registers sessions through the log (the id is the register
//! entry's index) and orders them by that group's log index. Here a client
//! talks to many groups with one globally unique id, sessions are created
//! lazily on a client's first request to this group, and whole tables are
//! *merged* when a shard arrives from another group — so there is no
//! per-group log index to order by, and eviction would be unsafe (a lazily
//! re-created session cannot tell a retry from a new request). Instead:
//!
//! - a window of `response_window` seqs, exactly as in `kv`: a seq in
//!   `[highest - window + 1, highest]` is applied iff its response is
//!   cached; an older one is `StaleRequest`;
//! - creation is refused at `max_sessions` (`SessionsFull`, nothing
//!   applied) instead of evicting a live session;
//! - expiry by idle *log time* only;
//! - merge = union of cached responses, highest = max, trimmed to the
//!   window, last activity = the later of the two.
//!
//! The client's rules (what makes a lazily created session safe):
//! 1. never retry a request later than `session_timeout_ms / 2` after first
//!    sending it (then give up and report "unknown outcome"): a session that
//!    applied it is idle for at most that long when the retry is stamped, so
//!    it cannot have expired (the other half absorbs clock skew between
//!    leaders and the time a shard spends in transit);
//! 2. never send seq `s` before every seq `<= s - window` is answered, so a
//!    retry always falls inside the window.
//!
//! Invariants (checked by `validate`): `by_time` holds exactly
//! `(last_active_ms, id)` for every session; every cached seq is in its
//! session's window and `highest_seq`, when non-zero, is cached.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::command::{OpResult, SessionExport};

/// One client's state in this group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Log time of the last entry that touched it (possibly another group's
    /// log time, after a merge).
    pub last_active_ms: u64,
    /// Highest applied seq (0 before the first).
    pub highest_seq: u64,
    /// Responses of the applied seqs within the window.
    pub responses: BTreeMap<u64, OpResult>,
}

impl Session {
    fn lowest_retained_seq(&self, window: u64) -> u64 {
        (self.highest_seq.saturating_sub(window) + 1).max(1)
    }

    /// Whether a session received from elsewhere is well formed: its
    /// highest seq is its newest cached one and the cache is bounded.
    pub(crate) fn is_well_formed(&self) -> bool {
        let newest = self.responses.keys().next_back().copied().unwrap_or(0);
        newest == self.highest_seq && self.responses.len() as u64 <= kv::MAX_RESPONSE_WINDOW
    }
}

/// What the table says about an incoming request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Below the response window.
    Stale,
    /// Applied before: the original response.
    Duplicate(OpResult),
    /// Not applied yet (the session may not exist yet).
    New,
}

/// All live sessions of the group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sessions {
    map: BTreeMap<u64, Session>,
    // Invariant: exactly {(s.last_active_ms, id) | (id, s) in map}.
    by_time: BTreeSet<(u64, u64)>,
}

impl Sessions {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, client_id: u64) -> Option<&Session> {
        self.map.get(&client_id)
    }

    /// The whole table, as shipped with a shard (and as snapshotted).
    pub fn export(&self) -> SessionExport {
        self.map.clone()
    }

    pub(crate) fn check(&self, client_id: u64, seq: u64, window: u64) -> Verdict {
        let lowest = match self.map.get(&client_id) {
            Some(s) => s.lowest_retained_seq(window),
            None => 1,
        };
        if seq < lowest {
            return Verdict::Stale;
        }
        match self.map.get(&client_id).and_then(|s| s.responses.get(&seq)) {
            Some(resp) => Verdict::Duplicate(resp.clone()),
            None => Verdict::New,
        }
    }

    /// Marks `client_id` active at `now_ms`, creating its session if
    /// needed. False (and no change) if it is new and the table is at
    /// `max_sessions`.
    pub(crate) fn touch(&mut self, client_id: u64, now_ms: u64, max_sessions: u64) -> bool {
        let full = self.map.len() as u64 >= max_sessions;
        match self.map.get_mut(&client_id) {
            Some(s) => {
                self.by_time.remove(&(s.last_active_ms, client_id));
                s.last_active_ms = s.last_active_ms.max(now_ms);
                self.by_time.insert((s.last_active_ms, client_id));
            }
            None if full => return false,
            None => {
                let s = Session {
                    last_active_ms: now_ms,
                    highest_seq: 0,
                    responses: BTreeMap::new(),
                };
                self.map.insert(client_id, s);
                self.by_time.insert((now_ms, client_id));
            }
        }
        true
    }

    /// Caches the response of newly applied `seq` and slides the window.
    pub(crate) fn record(&mut self, client_id: u64, seq: u64, response: OpResult, window: u64) {
        let s = self
            .map
            .get_mut(&client_id)
            .expect("record for a touched session");
        let previous = s.responses.insert(seq, response);
        assert!(
            previous.is_none(),
            "seq {seq} of client {client_id} applied twice"
        );
        s.highest_seq = s.highest_seq.max(seq);
        let lowest = s.lowest_retained_seq(window);
        s.responses = s.responses.split_off(&lowest);
    }

    /// Drops every session idle for more than `timeout_ms` at `now_ms`.
    pub(crate) fn expire(&mut self, now_ms: u64, timeout_ms: u64) {
        while let Some(&(active_ms, id)) = self.by_time.first() {
            if now_ms.saturating_sub(active_ms) <= timeout_ms {
                break;
            }
            self.by_time.pop_first();
            self.map.remove(&id);
        }
    }

    /// Merges a table shipped with a shard. Callers pass only well-formed
    /// sessions (checked when the entry was decoded). Idempotent.
    pub(crate) fn merge(&mut self, incoming: &SessionExport, window: u64) {
        for (&id, theirs) in incoming {
            let Some(ours) = self.map.get_mut(&id) else {
                let mut s = theirs.clone();
                let lowest = s.lowest_retained_seq(window);
                s.responses = s.responses.split_off(&lowest);
                self.by_time.insert((s.last_active_ms, id));
                self.map.insert(id, s);
                continue;
            };
            self.by_time.remove(&(ours.last_active_ms, id));
            ours.last_active_ms = ours.last_active_ms.max(theirs.last_active_ms);
            ours.highest_seq = ours.highest_seq.max(theirs.highest_seq);
            for (&seq, resp) in &theirs.responses {
                ours.responses.entry(seq).or_insert_with(|| resp.clone());
            }
            let lowest = ours.lowest_retained_seq(window);
            ours.responses = ours.responses.split_off(&lowest);
            self.by_time.insert((ours.last_active_ms, id));
        }
    }

    /// Rebuilds a table from a snapshot's sessions.
    pub(crate) fn from_export(map: SessionExport) -> Self {
        let by_time = map.iter().map(|(&id, s)| (s.last_active_ms, id)).collect();
        Sessions { map, by_time }
    }

    /// The invariants, reported rather than panicking (snapshots use it).
    pub(crate) fn validate(&self, window: u64) -> Result<(), &'static str> {
        if self.by_time.len() != self.map.len() {
            return Err("session time index and table disagree");
        }
        for (id, s) in &self.map {
            if !self.by_time.contains(&(s.last_active_ms, *id)) {
                return Err("session missing from the time index");
            }
            let lowest = s.lowest_retained_seq(window);
            if s.responses.keys().any(|&q| q < lowest || q > s.highest_seq) {
                return Err("cached seq outside the response window");
            }
            if s.highest_seq > 0 && !s.responses.contains_key(&s.highest_seq) {
                return Err("highest applied seq has no cached response");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Reply;

    const W: u64 = 4;

    fn applied(t: &mut Sessions, id: u64, seq: u64, now_ms: u64) {
        assert!(t.touch(id, now_ms, 100));
        t.record(id, seq, Ok(Reply::Length(seq)), W);
    }

    #[test]
    fn lazily_created_then_duplicate_then_stale() {
        let mut t = Sessions::default();
        assert_eq!(t.check(7, 1, W), Verdict::New);
        for seq in 1..=5 {
            applied(&mut t, 7, seq, 10);
        }
        assert_eq!(t.check(7, 5, W), Verdict::Duplicate(Ok(Reply::Length(5))));
        assert_eq!(t.check(7, 1, W), Verdict::Stale);
        assert_eq!(t.check(7, 6, W), Verdict::New);
        assert_eq!(t.check(8, 0, W), Verdict::Stale);
        t.validate(W).unwrap();
    }

    #[test]
    fn creation_is_refused_at_the_cap_but_existing_sessions_go_on() {
        let mut t = Sessions::default();
        assert!(t.touch(1, 0, 1));
        assert!(!t.touch(2, 0, 1));
        assert!(t.touch(1, 5, 1));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn expiry_is_by_idle_log_time() {
        let mut t = Sessions::default();
        applied(&mut t, 1, 1, 10);
        applied(&mut t, 2, 1, 20);
        t.expire(30, 20);
        assert_eq!(t.len(), 2);
        t.expire(31, 20);
        assert!(t.get(1).is_none() && t.get(2).is_some());
        t.validate(W).unwrap();
    }

    #[test]
    fn merge_is_a_union_trimmed_to_the_window_and_idempotent() {
        let mut a = Sessions::default();
        let mut b = Sessions::default();
        applied(&mut a, 1, 1, 10);
        applied(&mut a, 1, 2, 11);
        applied(&mut b, 1, 3, 50);
        applied(&mut b, 2, 9, 5);
        let before = b.clone();
        b.merge(&a.export(), W);
        let s = b.get(1).unwrap();
        assert_eq!(s.highest_seq, 3);
        assert_eq!(s.responses.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(s.last_active_ms, 50);
        let once = b.clone();
        b.merge(&a.export(), W);
        assert_eq!(b, once);
        assert_ne!(b, before);
        b.validate(W).unwrap();
        // A narrower window trims what arrives.
        let mut c = Sessions::default();
        c.merge(&once.export(), 1);
        assert_eq!(c.get(1).unwrap().responses.len(), 1);
        c.validate(1).unwrap();
    }
}
