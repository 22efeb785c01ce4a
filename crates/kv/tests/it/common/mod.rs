//! Test harness: drives a `StateMachine` the way the replica will, one
//! encoded entry at a time with consecutive indexes and a test-controlled
//! leader clock.
#![allow(dead_code)]

use bytes::Bytes;
use kv::{encode_entry, Command, Config, Entry, Op, Reply, Request, Response, StateMachine};

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: b(key),
        value: b(value),
    }
}

pub fn append(key: &str, value: &str) -> Op {
    Op::Append {
        key: b(key),
        value: b(value),
    }
}

pub fn get(key: &str) -> Op {
    Op::Get { key: b(key) }
}

pub fn delete(key: &str) -> Op {
    Op::Delete { key: b(key) }
}

pub fn request_entry(now_ms: u64, client_id: u64, seq: u64, op: Op) -> Bytes {
    encode_entry(&Entry {
        timestamp_ms: now_ms,
        cmd: Command::Request(Request { client_id, seq, op }),
    })
}

/// One replica plus the position of the next entry.
pub struct Harness {
    pub sm: StateMachine,
    pub now_ms: u64,
}

impl Harness {
    pub fn new(config: Config) -> Self {
        Harness {
            sm: StateMachine::new(config),
            now_ms: 1_000,
        }
    }

    pub fn next_index(&self) -> u64 {
        self.sm.applied_index() + 1
    }

    pub fn apply_bytes(&mut self, bytes: &[u8]) -> Response {
        let index = self.next_index();
        self.sm.apply(index, bytes)
    }

    pub fn apply_cmd(&mut self, cmd: Command) -> Response {
        let bytes = encode_entry(&Entry {
            timestamp_ms: self.now_ms,
            cmd,
        });
        self.apply_bytes(&bytes)
    }

    pub fn register(&mut self) -> u64 {
        match self.apply_cmd(Command::RegisterSession) {
            Ok(Reply::Registered { client_id }) => client_id,
            other => panic!("register replied {other:?}"),
        }
    }

    pub fn request(&mut self, client_id: u64, seq: u64, op: Op) -> Response {
        self.apply_cmd(Command::Request(Request { client_id, seq, op }))
    }

    pub fn tick(&mut self) -> Response {
        self.apply_cmd(Command::Tick)
    }
}

/// One registered client of a fresh state machine, numbering its requests
/// 1, 2, 3, ...; the command-by-command tests add their helpers to it.
pub struct T {
    pub h: Harness,
    pub client: u64,
    pub seq: u64,
}

impl Default for T {
    fn default() -> Self {
        T::new()
    }
}

impl T {
    pub fn new() -> Self {
        let mut h = Harness::new(Config::default());
        let client = h.register();
        T { h, client, seq: 0 }
    }

    /// Applies `op` as this client's next request; panics if it was refused.
    pub fn run(&mut self, op: Op) -> Reply {
        self.seq += 1;
        self.h.request(self.client, self.seq, op).expect("applied")
    }
}
