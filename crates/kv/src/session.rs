//! Client sessions: the table behind exactly-once semantics (dissertation §6.3).
//!
//! Owns: the live sessions, each with its response window, and their
//! least-recently-used order. Decides whether a request is new, a duplicate
//! (answer from cache), stale, or from an unknown session; expires and evicts
//! sessions. Every decision is a function of applied log entries only (log
//! index and log time), so all replicas decide identically.
//!
//! Pipelining: a session caches the response of every applied seq in the
//! window `[highest_seq - window + 1, highest_seq]`. A seq in the window is
//! applied iff its response is cached, so requests may be applied out of
//! order (e.g. seq 6 commits before a retried seq 5) and each still applies
//! exactly once. A seq below the window is rejected as stale. The client's
//! rule: never send seq `s` before every seq `<= s - window` has been
//! answered; then a retry always falls inside the window. With `window = 1`
//! this is the classic "one outstanding request per client" rule.
//!
//! The table is generic over the cached response type `R` (kv's
//! [`Response`] by default), so every replicated machine with kv's session
//! semantics — registration through the log, a response window, log-time
//! expiry, LRU eviction at a cap — shares this one implementation (the
//! shard controller does). A machine's snapshot code reads sessions with
//! [`SessionTable::iter`] and the [`Session`] accessors, and rebuilds them
//! with [`Session::restored`], [`SessionTable::insert_restored`],
//! [`SessionTable::validate`] and [`SessionTable::validate_against_log`].
//!
//! Invariants (checked by `check_invariants`):
//! - `lru` holds exactly one entry per session, keyed by its `last_index`;
//!   log indexes are unique, so the LRU order is total and deterministic;
//! - since log time never decreases with index, LRU order is also
//!   `last_active_ms` order, so expiry pops from the front only;
//! - every cached seq lies in the session's window and `<= highest_seq`,
//!   and `highest_seq` itself (when non-zero) is always cached;
//! - the table never holds more than `max_sessions` sessions.

use std::collections::BTreeMap;

use crate::command::Response;

/// One client's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session<R = Response> {
    /// Log time of the last entry that touched this session.
    pub(crate) last_active_ms: u64,
    /// Log index of the last entry that touched this session (its LRU key).
    pub(crate) last_index: u64,
    /// Highest seq applied so far (0 before the first request).
    pub(crate) highest_seq: u64,
    /// Responses of applied seqs within the window.
    pub(crate) responses: BTreeMap<u64, R>,
}

/// What the table says about an incoming request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<R = Response> {
    /// No such session: never registered, expired or evicted.
    Unknown,
    /// Below the response window.
    Stale,
    /// Already applied: here is the original response.
    Duplicate(R),
    /// Not applied yet: apply it and `record` the response.
    New,
}

/// All live sessions, keyed by client id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTable<R = Response> {
    sessions: BTreeMap<u64, Session<R>>,
    // Invariant: lru[s.last_index] == id for every (id, s) in sessions, and nothing else.
    lru: BTreeMap<u64, u64>,
}

impl<R> Session<R> {
    /// A session read back from a snapshot; the table's `validate` checks it.
    pub fn restored(
        last_active_ms: u64,
        last_index: u64,
        highest_seq: u64,
        responses: BTreeMap<u64, R>,
    ) -> Self {
        Session {
            last_active_ms,
            last_index,
            highest_seq,
            responses,
        }
    }

    /// Log time of the last entry that touched this session.
    pub fn last_active_ms(&self) -> u64 {
        self.last_active_ms
    }

    /// Log index of the last entry that touched this session.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Highest seq applied so far (0 before the first request).
    pub fn highest_seq(&self) -> u64 {
        self.highest_seq
    }

    /// Cached responses of the applied seqs within the window, by seq.
    pub fn responses(&self) -> &BTreeMap<u64, R> {
        &self.responses
    }

    fn lowest_retained_seq(&self, window: u64) -> u64 {
        (self.highest_seq.saturating_sub(window) + 1).max(1)
    }
}

impl<R> Default for SessionTable<R> {
    fn default() -> Self {
        SessionTable {
            sessions: BTreeMap::new(),
            lru: BTreeMap::new(),
        }
    }
}

impl<R: Clone> SessionTable<R> {
    pub fn new() -> Self {
        SessionTable::default()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn contains(&self, client_id: u64) -> bool {
        self.sessions.contains_key(&client_id)
    }

    /// Sessions in client-id order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Session<R>)> {
        self.sessions.iter()
    }

    /// Opens session `client_id` at log position (`index`, `now_ms`),
    /// first evicting least-recently-used sessions to stay within
    /// `max_sessions`. Returns the evicted ids.
    pub fn register(
        &mut self,
        client_id: u64,
        index: u64,
        now_ms: u64,
        max_sessions: u64,
    ) -> Vec<u64> {
        assert!(
            !self.sessions.contains_key(&client_id),
            "session {client_id} registered twice"
        );
        let mut evicted = Vec::new();
        while self.sessions.len() as u64 >= max_sessions {
            evicted.push(self.pop_lru().expect("max_sessions >= 1 and table is full"));
        }
        let session = Session::<R> {
            last_active_ms: now_ms,
            last_index: index,
            highest_seq: 0,
            responses: BTreeMap::new(),
        };
        self.sessions.insert(client_id, session);
        self.lru.insert(index, client_id);
        evicted
    }

    /// Expires every session idle for more than `timeout_ms` of log time at
    /// `now_ms`. Returns the expired ids, least recently used first.
    pub fn expire(&mut self, now_ms: u64, timeout_ms: u64) -> Vec<u64> {
        let mut expired = Vec::new();
        while let Some((_, &id)) = self.lru.first_key_value() {
            let idle_ms = now_ms.saturating_sub(self.sessions[&id].last_active_ms);
            if idle_ms <= timeout_ms {
                break;
            }
            expired.push(self.pop_lru().expect("lru is non-empty"));
        }
        expired
    }

    /// Classifies request `seq` of `client_id`.
    pub fn check(&self, client_id: u64, seq: u64, window: u64) -> Verdict<R> {
        let Some(session) = self.sessions.get(&client_id) else {
            return Verdict::Unknown;
        };
        if seq < session.lowest_retained_seq(window) {
            return Verdict::Stale;
        }
        match session.responses.get(&seq) {
            Some(resp) => Verdict::Duplicate(resp.clone()),
            None => Verdict::New,
        }
    }

    /// The usual apply step: classifies request `seq` of `client_id` and,
    /// unless the session is unknown, marks it used by the entry at
    /// (`index`, `now_ms`). The caller applies a [`Verdict::New`] request
    /// and [`SessionTable::record`]s its response.
    pub fn admit(
        &mut self,
        client_id: u64,
        seq: u64,
        window: u64,
        index: u64,
        now_ms: u64,
    ) -> Verdict<R> {
        let verdict = self.check(client_id, seq, window);
        if !matches!(verdict, Verdict::Unknown) {
            self.touch(client_id, index, now_ms);
        }
        verdict
    }

    /// Marks the session used by the entry at (`index`, `now_ms`).
    pub fn touch(&mut self, client_id: u64, index: u64, now_ms: u64) {
        let session = self
            .sessions
            .get_mut(&client_id)
            .expect("touch of a live session");
        assert!(
            index > session.last_index,
            "log index went backwards for session {client_id}"
        );
        self.lru.remove(&session.last_index);
        session.last_index = index;
        session.last_active_ms = now_ms;
        self.lru.insert(index, client_id);
    }

    /// Caches the response of a newly applied `seq` and slides the window.
    pub fn record(&mut self, client_id: u64, seq: u64, response: R, window: u64) {
        let session = self
            .sessions
            .get_mut(&client_id)
            .expect("record for a live session");
        let previous = session.responses.insert(seq, response);
        assert!(
            previous.is_none(),
            "seq {seq} of session {client_id} applied twice"
        );
        session.highest_seq = session.highest_seq.max(seq);
        let lowest = session.lowest_retained_seq(window);
        // In place (usually one response leaves, or none): `split_off` would build
        // a new tree on every applied request.
        while let Some(oldest) = session.responses.first_entry() {
            if *oldest.key() >= lowest {
                break;
            }
            oldest.remove();
        }
    }

    /// Adds a session read from a snapshot. The caller runs `validate`
    /// once all are in; this only refuses what would corrupt the maps.
    pub fn insert_restored(&mut self, client_id: u64, s: Session<R>) -> Result<(), &'static str> {
        if self.sessions.contains_key(&client_id) {
            return Err("duplicate session id");
        }
        if self.lru.contains_key(&s.last_index) {
            return Err("two sessions share a last index");
        }
        self.lru.insert(s.last_index, client_id);
        self.sessions.insert(client_id, s);
        Ok(())
    }

    /// Panics with context if an invariant is broken.
    pub fn check_invariants(&self, max_sessions: u64, window: u64) {
        if let Err(why) = self.validate(max_sessions, window) {
            panic!("session table invariant broken: {why}");
        }
    }

    /// The invariants as a check that reports instead of panicking (the
    /// snapshot decoder uses it on untrusted input).
    pub fn validate(&self, max_sessions: u64, window: u64) -> Result<(), &'static str> {
        if self.sessions.len() as u64 > max_sessions {
            return Err("more sessions than the cap");
        }
        if self.lru.len() != self.sessions.len() {
            return Err("lru and sessions disagree");
        }
        let mut last_ms = 0;
        for (&index, &id) in &self.lru {
            let s = self
                .sessions
                .get(&id)
                .ok_or("lru names a missing session")?;
            if s.last_index != index {
                return Err("lru key differs from the session's last index");
            }
            if s.last_active_ms < last_ms {
                return Err("lru order is not log-time order");
            }
            last_ms = s.last_active_ms;
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

    /// Checks restored sessions against the machine's log position: each
    /// was last touched at or after its registration (`client_id`) and at
    /// or before `applied_index`, no later than `log_time_ms`, and is not
    /// yet expired by `timeout_ms` (expiry would have removed it).
    pub fn validate_against_log(
        &self,
        applied_index: u64,
        log_time_ms: u64,
        timeout_ms: u64,
    ) -> Result<(), &'static str> {
        for (&id, s) in &self.sessions {
            if s.last_index < id || s.last_index > applied_index {
                return Err("session last index out of range");
            }
            if s.last_active_ms > log_time_ms {
                return Err("session active after log time");
            }
            if log_time_ms - s.last_active_ms > timeout_ms {
                return Err("snapshot holds an expired session");
            }
        }
        Ok(())
    }

    fn pop_lru(&mut self) -> Option<u64> {
        let (_, id) = self.lru.pop_first()?;
        self.sessions.remove(&id).expect("lru names a live session");
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{KvError, Reply};

    const W: u64 = 4;

    fn table_with(ids: &[u64]) -> SessionTable {
        let mut t = SessionTable::<Response>::new();
        for &id in ids {
            t.register(id, id, id * 10, 100);
        }
        t
    }

    #[test]
    fn unknown_session_is_unknown() {
        assert_eq!(
            SessionTable::<Response>::new().check(1, 1, W),
            Verdict::Unknown
        );
    }

    #[test]
    fn new_then_duplicate_then_stale() {
        let mut t = table_with(&[1]);
        assert_eq!(t.check(1, 1, W), Verdict::New);
        t.record(1, 1, Ok(Reply::Done), W);
        assert_eq!(t.check(1, 1, W), Verdict::Duplicate(Ok(Reply::Done)));
        for seq in 2..=5 {
            t.record(1, seq, Ok(Reply::Length(seq)), W);
        }
        // window is now [2, 5]
        assert_eq!(t.check(1, 1, W), Verdict::Stale);
        assert_eq!(t.check(1, 2, W), Verdict::Duplicate(Ok(Reply::Length(2))));
        assert_eq!(t.check(1, 0, W), Verdict::Stale);
        t.check_invariants(100, W);
    }

    #[test]
    fn out_of_order_within_window_applies_once() {
        let mut t = table_with(&[1]);
        t.record(1, 2, Ok(Reply::Done), W);
        assert_eq!(t.check(1, 1, W), Verdict::New);
        t.record(1, 1, Err(KvError::ValueTooLarge { len: 1, max: 0 }), W);
        assert!(matches!(t.check(1, 1, W), Verdict::Duplicate(Err(_))));
        t.check_invariants(100, W);
    }

    #[test]
    fn window_of_one_is_the_classic_rule() {
        let mut t = table_with(&[1]);
        t.record(1, 1, Ok(Reply::Done), 1);
        t.record(1, 2, Ok(Reply::Done), 1);
        assert_eq!(t.check(1, 1, 1), Verdict::Stale);
        assert_eq!(t.check(1, 2, 1), Verdict::Duplicate(Ok(Reply::Done)));
        assert_eq!(t.check(1, 3, 1), Verdict::New);
    }

    #[test]
    fn expiry_is_by_idle_log_time() {
        // sessions 1, 2, 3 last active at 10, 20, 30 ms
        let mut t = table_with(&[1, 2, 3]);
        t.touch(1, 4, 40);
        assert_eq!(t.expire(45, 20), vec![2]); // idle 25 > 20
        assert_eq!(t.expire(50, 20), Vec::<u64>::new()); // 3 idle exactly 20: kept
        assert_eq!(t.expire(61, 20), vec![3, 1]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn cap_evicts_least_recently_used() {
        let mut t = SessionTable::<Response>::new();
        t.register(1, 1, 0, 2);
        t.register(2, 2, 0, 2);
        t.touch(1, 3, 0);
        assert_eq!(t.register(4, 4, 0, 2), vec![2]);
        assert!(t.contains(1) && t.contains(4) && !t.contains(2));
        t.check_invariants(2, W);
    }
}
