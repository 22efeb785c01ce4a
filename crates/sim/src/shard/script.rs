//! Scripted clients of the sharded simulation: what a client does next
//! after each operation.
//!
//! - an *appender* owns one key: it puts a random value, then appends random
//!   strings to it, and knows exactly what the key must hold (the lab's
//!   concurrent tests check every key against its appender at the end);
//! - a *random* client does the lab's mix over shared keys (half appends, a
//!   tenth of the rest puts, the rest gets); only lincheck judges it.

use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::events::Micros;
use crate::kv::{ClerkOp, ClerkResult};

#[derive(Clone, Debug)]
pub enum Script {
    Appender {
        key: Bytes,
        value_len: usize,
        think: Micros,
        /// What the key holds after every finished operation, while known.
        expected: Option<String>,
        started: bool,
    },
    Random {
        keys: Vec<Bytes>,
        value_len: usize,
    },
}

impl Script {
    pub fn appender(key: Bytes, value_len: usize, think: Micros) -> Self {
        Script::Appender {
            key,
            value_len,
            think,
            expected: Some(String::new()),
            started: false,
        }
    }

    pub fn random(keys: Vec<Bytes>, value_len: usize) -> Self {
        Script::Random { keys, value_len }
    }

    /// Longest pause between two operations.
    pub fn think(&self) -> Micros {
        match self {
            Script::Appender { think, .. } => *think,
            Script::Random { .. } => 0,
        }
    }

    pub fn next_op(&mut self, rng: &mut ChaCha8Rng) -> ClerkOp {
        match self {
            Script::Appender {
                key,
                value_len,
                started,
                ..
            } => {
                let v = Bytes::from(random_string(rng, *value_len));
                if !*started {
                    *started = true;
                    ClerkOp::Put(key.clone(), v)
                } else {
                    ClerkOp::Append(key.clone(), v)
                }
            }
            Script::Random { keys, value_len } => {
                let key = keys[rng.gen_range(0..keys.len())].clone();
                let v = Bytes::from(random_string(rng, *value_len));
                if rng.gen_range(0..1000) < 500 {
                    ClerkOp::Append(key, v)
                } else if rng.gen_range(0..1000) < 100 {
                    ClerkOp::Put(key, v)
                } else {
                    ClerkOp::Get(key)
                }
            }
        }
    }

    /// Records how an operation ended. An appender whose write ended with
    /// an unknown outcome no longer knows its key's value.
    pub fn on_result(&mut self, op: &ClerkOp, result: &ClerkResult) {
        let Script::Appender { expected, .. } = self else {
            return;
        };
        let Some(value) = expected.as_mut() else {
            return;
        };
        match (op, result) {
            (ClerkOp::Put(_, v), ClerkResult::Done) => {
                *value = String::from_utf8_lossy(v).into_owned();
            }
            (ClerkOp::Append(_, v), ClerkResult::Length(n)) => {
                value.push_str(&String::from_utf8_lossy(v));
                assert_eq!(*n as usize, value.len(), "append reported another length");
            }
            _ => *expected = None,
        }
    }

    /// An appender's key and the value it must hold (`None`: not an
    /// appender, or it lost track after an unknown outcome).
    pub fn expected(&self) -> Option<(Bytes, String)> {
        match self {
            Script::Appender { key, expected, .. } => Some((key.clone(), expected.clone()?)),
            Script::Random { .. } => None,
        }
    }
}

fn random_string(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n).map(|_| rng.gen_range(b'a'..=b'z') as char).collect()
}
