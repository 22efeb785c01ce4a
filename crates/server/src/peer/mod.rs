//! The peer transport: persistent TCP connections between the nodes of one
//! group (or, in a sharded deployment, between all processes), carrying Raft
//! messages and forwarded client requests (sharded: also group-tagged Raft
//! messages and migration traffic, [`shard_wire`]).
//!
//! Shape: each node dials every other node once ([`outbound`]) and only
//! writes on that connection; it accepts the others' dials ([`inbound`]) and
//! only reads from those. So a pair of nodes uses two connections, each with
//! one direction and one owner, and a reply (to a forwarded request) travels
//! back on the replier's own outbound connection. Frames are in [`wire`].
//!
//! Invariants: nothing a peer sends can panic a node: every frame is length-
//! bounded, decoded fallibly, and checked against the handshake's sender id;
//! a bad frame closes that one connection with a logged error. Outgoing queues
//! are bounded; when full, Raft messages are dropped (Raft retransmits) and
//! forwarded requests fail as "not sent". A link over which nothing gets
//! through for a bounded time is closed and re-dialled ([`liveness`]).

pub mod inbound;
pub mod liveness;
pub mod outbound;
pub mod shard_wire;
pub mod wire;

pub use liveness::LinkTimeouts;
pub use outbound::{Outgoing, PeerSender, Peers};
pub use shard_wire::{GroupAnswer, GroupForward, ShardFrame};
pub use wire::{ForwardReply, ForwardRequest, PeerFrame};
