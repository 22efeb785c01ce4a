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
//! Every connection opens with a handshake ([`handshake`]) in which both
//! sides check the cluster id and, with `--peer-secret-file`, prove the
//! shared secret; only then does the acceptor read anything else.
//!
//! Invariants: nothing a peer sends can panic a node: every frame is length-
//! bounded (tightly until the handshake completes), decoded fallibly, and
//! checked against the handshake's sender id;
//! a bad frame closes that one connection with a logged error. Outgoing queues
//! are bounded; when full, Raft messages are dropped (Raft retransmits) and
//! forwarded requests fail as "not sent". A link over which nothing gets
//! through for a bounded time is closed and re-dialled ([`liveness`]).

pub mod handshake;
pub mod inbound;
pub mod liveness;
pub mod outbound;
pub mod shard_wire;
pub mod wire;

pub use handshake::{PeerAuth, PeerSecret};
pub use liveness::LinkTimeouts;
pub use outbound::{Outgoing, PeerSender, Peers};
pub use shard_wire::{GroupAnswer, GroupForward, ShardFrame};
pub use wire::{ForwardReply, ForwardRequest, PeerFrame};
