//! raftkv's replica: one Raft node ([`raft::RawNode`]) joined to one
//! replicated state machine (any [`rsm::StateMachine`]: the kv store, the
//! shard controller, a sharded group, the simulator's lab applier), sans-I/O.
//!
//! The simulator and the server host this very code: what the simulator
//! proves is what runs. The host owns sockets, timers and files; the replica
//! owns everything between them:
//!
//! - the Ready handling in the driver contract's order (messages that may
//!   leave before the fsync go first, so the leader's own log write runs in
//!   parallel with replication);
//! - pending proposals, keyed by log slot (index, term): a proposal whose
//!   slot is taken by another term's entry, or whose leader steps down, ends
//!   [`Outcome::Unknown`] ("may or may not have taken effect": the client
//!   retries with the same session and seq, which is exactly-once);
//! - pending ReadIndex reads, batched: one `read_index` round in flight at a
//!   time, and all reads queued while it is out share the next one; each is
//!   served once the state machine has applied its read index (dissertation
//!   §6.4);
//! - the leader's no-op (applied as an empty entry: only the index moves);
//! - snapshots: when the persisted log reaches
//!   [`Config::snapshot_threshold_bytes`] (or, if set, every
//!   [`Config::snapshot_every_entries`] applied entries), the replica compacts
//!   it, streaming [`rsm::StateMachine::snapshot_to`] into the store (never the
//!   whole snapshot in memory); at boot it restores the machine
//!   the host passed from the storage's snapshot
//!   ([`rsm::StateMachine::restore`]) and Raft replays the rest;
//! - log time for session expiry: the host passes `now_ms` into `tick` and
//!   `propose`; every entry carries it (the machine's
//!   [`rsm::StateMachine::encode_command`] stamps it), and an idle leader
//!   proposes the machine's [`rsm::StateMachine::tick_command`] every
//!   [`Config::session_tick_interval_ms`].
//!
//! The replica never looks inside a payload: what a command, a response, a
//! query and its answer are is the machine's business (its associated
//! types); [`Outcome`] carries them through.
//!
//! # The host's loop
//!
//! ```text
//! on timer (every tick):      replica.tick(now_ms)
//! on peer message:            replica.step(msg)
//! on client write:            replica.propose(token, command, now_ms)?   // Err: NotLeader{hint} / Busy
//! on client read:             replica.read(token, query)?
//! after any of the above:     for c in replica.drive(&mut |m| transport.send(m))? { answer(c.token, c.outcome) }
//! ```
//!
//! Every request accepted (`Ok`) gets exactly one [`Completion`] from a later
//! `drive` — unless the host drops the replica (a crash), which drops them all.
//!
//! ```
//! use bytes::Bytes;
//! use kv::{Command, Op, Reply, Request};
//! use raft::MemStorage;
//! use replica::{Config, Outcome, Replica};
//!
//! let cfg = Config::new(raft::Config::new(1, vec![1]));
//! let machine = kv::StateMachine::new(kv::Config::default());
//! let mut r = Replica::new(cfg, MemStorage::new(), machine).unwrap();
//! let mut send = |_m: raft::Message| {}; // a single node has no peers
//! for t in 0..30 {
//!     r.tick(t * 10);
//!     r.drive(&mut send).unwrap();
//! }
//! assert!(r.is_leader());
//!
//! r.propose(1, Command::RegisterSession, 300).unwrap();
//! let done = r.drive(&mut send).unwrap();
//! let Outcome::Applied(Ok(Reply::Registered { client_id })) = done[0].outcome.clone() else { panic!() };
//!
//! let put = Op::Put { key: Bytes::from("k"), value: Bytes::from("v") };
//! r.propose(2, Command::Request(Request { client_id, seq: 1, op: put }), 310).unwrap();
//! r.read(3, kv::Op::Get { key: Bytes::from("k") }).unwrap();
//! let done = r.drive(&mut send).unwrap();
//! assert!(done.iter().any(|c| c.token == 2 && c.outcome == Outcome::Applied(Ok(Reply::Done))));
//! assert!(done.iter().any(|c| c.token == 3 && c.outcome == Outcome::Value(kv::Reply::Value(Some(Bytes::from("v"))))));
//! ```
//!
//! Files, one job each: `config`, `error`, `outcome` (the API's data),
//! `counters` (monotonic counts of the replica's work, for metrics),
//! `proposals` and `reads` (pending requests), `log_size` (the snapshot
//! trigger), `replica` (the driver loop), `space` (what a host does while
//! the disk is full).

mod config;
mod counters;
mod error;
mod log_size;
mod outcome;
mod proposals;
mod reads;
mod replica;
pub mod space;

pub use config::{Config, HARD_STATE_BYTES};
pub use counters::Counters;
pub use error::{Rejected, ReplicaError};
pub use log_size::persisted_bytes;
pub use outcome::{Completion, Outcome, Token};
pub use replica::{Replica, Status, SyncRequest};
pub use space::{SpaceWait, DISK_FULL_RETRY_MS};
