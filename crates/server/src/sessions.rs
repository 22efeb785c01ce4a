//! The node's client sessions toward Raft (kv's exactly-once sessions,
//! dissertation §6.3): a small pool, so many client connections can have
//! writes in flight at once while each session obeys kv's window rule.
//!
//! kv's rule: never send seq `s` while some seq `<= s - window` is still
//! unanswered. Each pooled session tracks its outstanding seqs; `try_take`
//! hands out the next seq of the first session where the rule allows it.
//! A seq stays outstanding across internal retries (same seq, so a retry is
//! exactly-once) until `release`. Invariant: for every session,
//! `next_seq < min(outstanding) + window`.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Sessions one node keeps at most.
pub const MAX_SESSIONS: usize = 64;

#[derive(Debug)]
struct Session {
    client_id: u64,
    next_seq: u64,
    outstanding: BTreeSet<u64>,
}

/// A pool of registered sessions.
#[derive(Debug)]
pub struct SessionPool {
    window: u64,
    sessions: Mutex<Vec<Session>>,
}

/// What `try_take` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Use (client_id, seq).
    Seq(u64, u64),
    /// Every session is at its window, and there is room for another: register one.
    Register,
    /// Every session is at its window and the pool is full: wait.
    Full,
}

impl SessionPool {
    pub fn new(window: u64) -> Self {
        assert!(window >= 1);
        SessionPool {
            window,
            sessions: Mutex::new(Vec::new()),
        }
    }

    /// kv's response window these sessions obey.
    pub fn window(&self) -> u64 {
        self.window
    }

    pub fn try_take(&self) -> Take {
        let mut sessions = self.sessions.lock().expect("session pool");
        for s in sessions.iter_mut() {
            let low = s.outstanding.first().copied().unwrap_or(s.next_seq);
            if s.next_seq < low + self.window {
                let seq = s.next_seq;
                s.next_seq += 1;
                s.outstanding.insert(seq);
                return Take::Seq(s.client_id, seq);
            }
        }
        if sessions.len() < MAX_SESSIONS {
            Take::Register
        } else {
            Take::Full
        }
    }

    /// Up to `max` consecutive seqs of one session (the one with the most room,
    /// the first of equals), for a pipelined unit (`crate::pipeline`); empty
    /// when no session has room.
    /// One session, because a session that expired fails every seq of its own
    /// and only those: a unit spread over two could have one session's part
    /// refused while the other's applies, and the refused part, retried under
    /// fresh seqs, would land after commands that followed it.
    pub fn take_run(&self, max: usize) -> Vec<(u64, u64)> {
        let window = self.window;
        let room = |s: &Session| {
            let low = s.outstanding.first().copied().unwrap_or(s.next_seq);
            low + window - s.next_seq
        };
        let mut sessions = self.sessions.lock().expect("session pool");
        let mut best: Option<&mut Session> = None;
        for s in sessions.iter_mut() {
            if room(s) > best.as_deref().map_or(0, room) {
                best = Some(s);
            }
        }
        let Some(s) = best else {
            return Vec::new();
        };
        let n = (room(s) as usize).min(max);
        let seqs: Vec<_> = (s.next_seq..)
            .take(n)
            .map(|seq| (s.client_id, seq))
            .collect();
        s.next_seq += n as u64;
        s.outstanding.extend(seqs.iter().map(|&(_, seq)| seq));
        seqs
    }

    /// Adds a freshly registered session.
    pub fn add(&self, client_id: u64) {
        let mut sessions = self.sessions.lock().expect("session pool");
        if sessions.len() < MAX_SESSIONS {
            sessions.push(Session {
                client_id,
                next_seq: 1,
                outstanding: BTreeSet::new(),
            });
        }
    }

    /// The request (client_id, seq) has been answered to the client.
    pub fn release(&self, client_id: u64, seq: u64) {
        let mut sessions = self.sessions.lock().expect("session pool");
        if let Some(s) = sessions.iter_mut().find(|s| s.client_id == client_id) {
            s.outstanding.remove(&seq);
        }
    }

    /// The session expired on the state machine: stop using it.
    pub fn forget(&self, client_id: u64) {
        self.sessions
            .lock()
            .expect("session pool")
            .retain(|s| s.client_id != client_id);
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().expect("session pool").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit's seqs come from one session (the roomiest), within its window.
    #[test]
    fn a_run_of_seqs_stays_in_one_session() {
        let pool = SessionPool::new(4);
        pool.add(7);
        pool.add(8);
        assert_eq!(pool.take_run(3), vec![(7, 1), (7, 2), (7, 3)]);
        assert_eq!(pool.take_run(3), vec![(8, 1), (8, 2), (8, 3)]);
        // One seq of room in each: the run stops at one, not in the other session.
        assert_eq!(pool.take_run(9), vec![(7, 4)]);
        assert_eq!(pool.take_run(2), vec![(8, 4)]);
        assert!(pool.take_run(2).is_empty());
        pool.release(7, 1);
        assert_eq!(pool.take_run(2), vec![(7, 5)]);
    }

    #[test]
    fn window_rule_holds() {
        let pool = SessionPool::new(2);
        assert_eq!(pool.try_take(), Take::Register);
        pool.add(7);
        assert_eq!(pool.try_take(), Take::Seq(7, 1));
        assert_eq!(pool.try_take(), Take::Seq(7, 2));
        assert_eq!(pool.try_take(), Take::Register); // seq 3 needs seq 1 answered
        pool.release(7, 2);
        assert_eq!(pool.try_take(), Take::Register); // still seq 1
        pool.release(7, 1);
        assert_eq!(pool.try_take(), Take::Seq(7, 3));
    }
}
