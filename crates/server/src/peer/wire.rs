//! Peer frames on the wire: a 4-byte big-endian length (tokio-util's
//! `LengthDelimitedCodec`, capped at [`MAX_FRAME_BYTES`]) followed by the
//! postcard encoding of one [`PeerFrame`].
//!
//! Why postcard: `raft::Message` already derives serde; postcard is compact
//! (varint integers, no field names, no per-field tags: an empty heartbeat is
//! ~10 bytes), has a documented, stable wire format since 1.0, and decodes
//! untrusted input fallibly with no unbounded pre-allocation driven by
//! lengths in the input. bincode 1 uses fixed-width integers by default
//! (3-4x larger heartbeats) and bincode 2 changed its API wholesale.

use bytes::Bytes;
use raft::{Message, NodeId};
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

use super::handshake::{Nonce, Tag};

/// Largest frame accepted or sent. A frame holds either a batch of Raft
/// messages (bounded by [`MAX_BATCH_BYTES`], but one entry may hold a value
/// of up to `kv::MAX_VALUE_BYTES`) or one forwarded request.
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// Largest frame read before the handshake completes: its frames are tiny,
/// and an unauthenticated peer must not make the node allocate more.
pub const HANDSHAKE_MAX_FRAME_BYTES: usize = 4 << 10;
/// A batch of Raft messages is closed once it reaches this many bytes.
pub const MAX_BATCH_BYTES: u64 = 4 << 20;
/// Most messages in one batch frame.
pub const MAX_BATCH_MESSAGES: usize = 1024;

/// What flows over a peer connection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerFrame {
    /// First frame of every connection: who is dialling whom, in which
    /// cluster, and the dialer's challenge nonce (`super::handshake`).
    Hello {
        from: NodeId,
        to: NodeId,
        cluster: String,
        nonce: Nonce,
    },
    /// The acceptor's answer to `Hello`: its cluster, its challenge nonce,
    /// and its proof of the shared secret (`None` without a secret).
    Challenge {
        cluster: String,
        nonce: Nonce,
        proof: Option<Tag>,
    },
    /// The dialer's proof of the shared secret; the handshake's last frame.
    Proof { proof: Option<Tag> },
    /// Raft messages, in send order.
    Raft(Vec<Message>),
    /// A client request a non-leader hands to the leader it knows.
    Forward { id: u64, req: ForwardRequest },
    /// The leader's answer to `Forward { id }`.
    ForwardReply { id: u64, reply: ForwardReply },
    /// Sent on every link every `LinkTimeouts::keepalive` (`peer::liveness`):
    /// `conn` is this connection's id; the sender has read `read` bytes on
    /// the receiver's connection `heard_conn` (0: none yet).
    Keepalive {
        conn: u64,
        heard_conn: u64,
        read: u64,
    },
    /// Sharded deployments only: group-tagged traffic (`shard_wire`).
    Shard(super::shard_wire::ShardFrame),
}

/// A client request forwarded to the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Propose `kv::Command::RegisterSession`.
    Register,
    /// Propose `kv::Command::Request`, encoded with `kv::encode_request`.
    Write(Bytes),
    /// A linearizable read of a read-only op (ReadIndex on the leader).
    Read(kv::Op),
}

/// The leader's answer; mirrors [`crate::driver::Answer`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardReply {
    /// Applied: `kv::encode_response` bytes.
    Applied(Bytes),
    /// A ReadIndex read's reply.
    Value(kv::Reply),
    NotLeader {
        hint: Option<NodeId>,
    },
    Busy,
    Unknown,
    ReadAborted,
}

/// The length-prefix codec with our frame cap.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// The length-prefix codec for a connection still in its handshake; raise
/// its cap to [`MAX_FRAME_BYTES`] once the peer is authenticated.
/// `LengthDelimitedCodec` checks an announced length against the cap before
/// it reserves any buffer for the frame.
pub fn handshake_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(HANDSHAKE_MAX_FRAME_BYTES)
        .new_codec()
}

pub fn encode(frame: &PeerFrame) -> Bytes {
    Bytes::from(postcard::to_stdvec(frame).expect("postcard encodes every PeerFrame"))
}

/// Decodes one frame body. Garbage is an `Err`, never a panic.
pub fn decode(body: &[u8]) -> Result<PeerFrame, postcard::Error> {
    postcard::from_bytes(body)
}
