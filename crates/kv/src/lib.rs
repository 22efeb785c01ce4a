//! raftkv's replicated key-value state machine, independent of Raft.
//!
//! The `replica` layer hands every committed log entry to
//! [`StateMachine::apply`] in index order and serves ReadIndex reads with
//! [`StateMachine::get`]. This crate owns:
//!
//! - the commands ([`Op`], [`Request`], [`Command`], [`Entry`]) and their
//!   replies ([`Reply`], [`CmdError`], [`KvError`], [`Response`]);
//! - the typed key space ([`Store`]: values, expiry in log time, per-key
//!   versions) and the meaning of every data op ([`ops::apply`] and
//!   [`ops::query`]) — one implementation that `shardkv` runs on each of its
//!   shards too;
//! - Redis's number syntax ([`numbers`]), shared with the RESP parser;
//! - their compact, versioned binary encoding ([`encode_entry`],
//!   [`encode_request`], [`encode_response`] and the `decode_*` duals);
//! - client sessions for exactly-once semantics (Raft dissertation §6.3),
//!   in [`session`]: public and generic over the response type, so other
//!   machines with the same session rules (the shard controller) reuse it;
//! - the snapshot format ([`StateMachine::snapshot`] / [`StateMachine::restore`]).
//!
//! # Sessions, in short
//!
//! 1. A client proposes [`Command::RegisterSession`]; the reply
//!    [`Reply::Registered`] carries its `client_id`: the log index of that
//!    entry (unique, never reused).
//! 2. Each write is a [`Request`] `{ client_id, seq, op }` with seq = 1, 2, ….
//!    A retry reuses its seq and gets the cached original response; nothing
//!    is applied twice. Up to [`Config::response_window`] requests may be in
//!    flight per session (pipelining); an older seq gets
//!    [`KvError::StaleRequest`].
//! 3. Every entry carries the leader's `timestamp_ms`; a session idle longer
//!    than [`Config::session_timeout_ms`] of that *log time* is expired by
//!    every replica at the same entry, and the session cap evicts the least
//!    recently used one. A request from a session that is gone gets
//!    [`KvError::SessionExpired`] — never a silent re-apply — and the client
//!    registers anew.
//!
//! Why explicit registration rather than creating sessions on first use: an
//! expired session and a brand-new one would otherwise look the same, and a
//! retry after expiry would be applied a second time.
//!
//! ```
//! use bytes::Bytes;
//! use kv::{encode_entry, Command, Config, Entry, Op, Reply, Request, StateMachine};
//!
//! let mut sm = StateMachine::new(Config::default());
//! let register = Entry { timestamp_ms: 1_000, cmd: Command::RegisterSession };
//! let Ok(Reply::Registered { client_id }) = sm.apply(1, &encode_entry(&register)) else { panic!() };
//!
//! let put = Request { client_id, seq: 1, op: Op::Put { key: Bytes::from("k"), value: Bytes::from("v") } };
//! let entry = encode_entry(&Entry { timestamp_ms: 1_005, cmd: Command::Request(put) });
//! assert_eq!(sm.apply(2, &entry), Ok(Reply::Done));
//! assert_eq!(sm.apply(3, &entry), Ok(Reply::Done)); // a duplicate: cached, not re-applied
//! assert_eq!(sm.get(b"k"), Some(Bytes::from("v")));
//!
//! let restored = StateMachine::restore(&sm.snapshot()).unwrap();
//! assert_eq!(restored, sm);
//! ```

mod codec;
mod command;
mod config;
mod expired;
pub mod glob;
pub mod numbers;
pub mod ops;
pub mod session;
mod snapshot;
mod snapshot_flavor;
mod snapshot_v1;
mod state_machine;
pub mod store;
mod wire;
mod wire_v1;

pub use codec::DecodeError;
pub use command::{
    CmdError, Command, Entry, ExpireCond, Expiry, GetExTtl, KvError, Op, Reply, Request, Response,
    SetCond, SetTtl, TtlQuery,
};
pub use config::{Config, MAX_KEY_BYTES, MAX_REASON_BYTES, MAX_RESPONSE_WINDOW, MAX_VALUE_BYTES};
pub use expired::ExpiredKeys;
pub use snapshot::{SnapshotError, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use snapshot_flavor::take_from_input;
pub use state_machine::{StateMachine, PURGE_PER_ENTRY};
pub use store::Store;
pub use wire::{
    decode_entry, decode_request, decode_response, encode_entry, encode_request, encode_response,
    WIRE_VERSION,
};
