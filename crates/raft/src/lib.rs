//! raftkv's consensus core: a pure, deterministic Raft state machine.
//!
//! No I/O, no clock, no threads, no unseeded randomness: time enters as `tick()`,
//! input as `step()` / `propose()` / `read_index()`, and everything to do leaves as a
//! [`Ready`]. See [`raw_node`] for the driver contract.
//!
//! Files, one job each: `types`/`message`/`config`/`error` (plain data), `storage` (the
//! durable-state trait and an in-memory store), `unstable` + `log` (the log view),
//! `membership` (who votes, changes through the log, the safety argument),
//! `progress` + `quorum` (leader bookkeeping and majority math), `raft` (state and
//! dispatch), `election`, `replication` (leader), `append` (follower), `snapshot`,
//! `read_index`, `reconfig` (membership changes on the leader), `hazard` (changes that would risk availability), `transfer` (leadership transfer), `raw_node` (the Ready interface), `coalesce` (one message per peer where several would say the same).

pub mod config;
pub mod error;
pub mod log;
pub mod membership;
pub mod message;
pub mod progress;
pub mod quorum;
pub mod raft;
pub mod raw_node;
pub mod storage;
pub mod types;

mod append;
mod coalesce;
mod election;
mod hazard;
mod read_index;
mod reconfig;
mod replication;
mod snapshot;
mod transfer;
mod unstable;

pub use config::Config;
pub use error::{RaftError, Result, StorageError};
pub use membership::{ConfChange, ConfChangeEntry, Membership};
pub use message::{Message, MessageBody, RejectHint};
pub use raw_node::{RawNode, Ready, Status};
pub use storage::{MemStorage, Storage, StorageResult, WriteSnapshot};
pub use types::*;
