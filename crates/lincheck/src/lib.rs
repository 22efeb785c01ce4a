//! A linearizability checker for histories of client operations, used by
//! raftkv's simulator (virtual time) and real-process tests.
//!
//! A history is a list of [`Operation`]s: who called what, when it was
//! called, and when and with what it returned (or that its outcome is
//! unknown). [`check`] decides whether some total order of the operations,
//! consistent with real time (an operation that returned before another was
//! called comes first), is a legal sequential execution of a [`Model`].
//!
//! The search is Wing & Gong's, with Lowe's memoisation of (set of
//! linearized operations, model state), as in Porcupine; the history is first
//! split by [`Model::partition`] (per key for [`KvModel`]) and each partition
//! checked on its own, which is sound because a history is linearizable iff
//! each per-object sub-history is (Herlihy & Wing, locality). An operation
//! with unknown outcome may take effect at any instant after its call, or
//! never. Linearizability checking is NP-complete, so each partition has a
//! step budget ([`CheckOptions`]); past it the answer is
//! [`CheckResult::Unknown`] rather than a hang.
//!
//! ```
//! use lincheck::{check_kv, HistoryRecorder, KvInput, KvOutput};
//!
//! let mut rec = HistoryRecorder::new();
//! let put = rec.invoke(1, KvInput::put("x", "1"), 0);
//! let get = rec.invoke(2, KvInput::get("x"), 1);
//! rec.complete(put, KvOutput::Put, 5);
//! rec.complete(get, KvOutput::Get(None), 6); // concurrent: may read before the put
//! assert!(check_kv(rec.history()).is_ok());
//!
//! // A read that starts after the put returned must see it.
//! let late = rec.invoke(3, KvInput::get("x"), 7);
//! rec.complete(late, KvOutput::Get(None), 8);
//! let result = check_kv(rec.history());
//! let violation = result.violation().expect("stale read");
//! assert_eq!(violation.blocked, 2);
//! println!("{violation}");
//! ```
//!
//! Files, one job each: `history` (the operation record), `recorder`
//! (building a history as a test runs), `model` (the sequential spec trait),
//! `kv` (the key-value spec), `redis` (strings, counters, expiry as far as
//! a client can observe it, and `MULTI`/`EXEC` blocks), `check` (partitioning and entry points),
//! `search` (the per-partition search), `entries` (the event list it walks),
//! `bitset` and `fxhash` (memoisation key and its hasher), `verdict` (results
//! and explanations), `synth` (seeded synthetic histories for tests and
//! benchmarks).

mod bitset;
mod check;
mod entries;
mod fxhash;
mod history;
pub mod kv;
mod model;
mod recorder;
pub mod redis;
mod search;
pub mod synth;
mod verdict;

pub use check::{check, check_kv, check_with, CheckOptions, Report, Stats};
pub use history::{Operation, Return};
pub use kv::{KvInput, KvModel, KvOperation, KvOutput};
pub use model::Model;
pub use recorder::{HistoryRecorder, OpHandle};
pub use redis::{RedisInput, RedisModel, RedisOperation, RedisOutput, TtlKind};
pub use verdict::{describe, CheckResult, Violation};
