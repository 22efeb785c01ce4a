//! The KV simulation: N servers of the real `replica` (Raft + kv state
//! machine, the same code the server hosts) and simulated clients (clerks)
//! in one deterministic event loop, with every client operation recorded
//! and checked for linearizability.
//!
//! Files, one job each (virtual-time events come from `sim::events`): `net` (links between
//! servers and clients, message fates), `wire` (client↔server messages),
//! `server` (hosting one replica), `clerk` (the client state machine),
//! `history` (recording into lincheck), `workload` (the lab's client loop
//! and append checks), `cluster` (the world: event loop, faults, checks),
//! `lab` (the lab's `GenericTest` and speed test), `sweep` (random fault
//! schedules).

pub mod clerk;
pub mod cluster;
pub mod history;
pub mod lab;
pub mod net;
pub mod server;
pub mod sweep;
pub mod wire;
pub mod workload;

pub use clerk::{Clerk, ClerkConfig, ClerkOp, ClerkResult};
pub use cluster::{KvCluster, KvConfig};
pub use net::{Addr, ClientId};
