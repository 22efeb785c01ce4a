//! Peer frames on the wire: a 4-byte big-endian length (capped at
//! [`MAX_FRAME_BYTES`]; read by [`FrameDecoder`]) followed by the postcard
//! encoding of one [`PeerFrame`].
//!
//! Why postcard: `raft::Message` already derives serde; postcard is compact
//! (varint integers, no field names, no per-field tags: an empty heartbeat is
//! ~10 bytes), has a documented, stable wire format since 1.0, and decodes
//! untrusted input fallibly with no unbounded pre-allocation driven by
//! lengths in the input. bincode 1 uses fixed-width integers by default
//! (3-4x larger heartbeats) and bincode 2 changed its API wholesale.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft::{Message, NodeId};
use serde::{Deserialize, Serialize};
use tokio_util::codec::Decoder;

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
    /// A membership, leadership or backup request (`crate::admin`), run on
    /// the leader itself (never forwarded again).
    Admin(crate::admin::AdminOp),
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
    /// The leader's file system is below `--min-free-bytes`: refused, no effect.
    NoSpace(String),
    /// The answer to `ForwardRequest::Admin`.
    Admin(crate::admin::AdminOutcome),
}

/// Bytes of the length prefix.
const HEAD_BYTES: usize = 4;

/// Reads length-prefixed frames, refusing an announced length over its cap
/// as soon as the 4-byte head arrives (before any of the frame is kept).
///
/// Unlike tokio-util's `LengthDelimitedCodec`, it never reserves room for
/// the announced length: the read buffer grows only as bytes arrive
/// (`FramedRead` doubles it when full), so a peer announcing a 64 MiB frame
/// and sending nothing more holds a few KiB, not 64 MiB (issue 10).
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
}

impl FrameDecoder {
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameDecoder { max_frame_bytes }
    }

    /// Raises (or lowers) the cap, e.g. once the handshake completed.
    pub fn set_max_frame_length(&mut self, max_frame_bytes: usize) {
        self.max_frame_bytes = max_frame_bytes;
    }
}

impl Decoder for FrameDecoder {
    type Item = BytesMut;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, std::io::Error> {
        let Some(head) = src.get(..HEAD_BYTES) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(head.try_into().expect("4 bytes")) as usize;
        if len > self.max_frame_bytes {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a frame of {len} bytes announced, over the {}-byte limit",
                    self.max_frame_bytes
                ),
            ));
        }
        if src.len() < HEAD_BYTES + len {
            return Ok(None);
        }
        src.advance(HEAD_BYTES);
        Ok(Some(src.split_to(len)))
    }
}

/// The frame reader with our full frame cap (an authenticated peer).
pub fn codec() -> FrameDecoder {
    FrameDecoder::new(MAX_FRAME_BYTES)
}

/// The frame reader for a connection still in its handshake; raise its cap
/// to [`MAX_FRAME_BYTES`] once the peer is authenticated.
pub fn handshake_codec() -> FrameDecoder {
    FrameDecoder::new(HANDSHAKE_MAX_FRAME_BYTES)
}

pub fn encode(frame: &PeerFrame) -> Bytes {
    Bytes::from(postcard::to_stdvec(frame).expect("postcard encodes every PeerFrame"))
}

/// Appends `frame` to `out` as it goes on the wire (length prefix, then body),
/// encoded in place: room for about `size_hint` bytes is reserved first, so a
/// batch of entries is copied once, not grown by doubling and then copied
/// again. Returns the body's length; a body over [`MAX_FRAME_BYTES`] is taken
/// back off `out` (`None`).
pub fn encode_into(frame: &PeerFrame, size_hint: usize, out: &mut BytesMut) -> Option<usize> {
    let start = out.len();
    out.reserve(HEAD_BYTES + size_hint);
    out.put_u32(0);
    postcard::serialize_with_flavor(frame, Extend(out)).expect("postcard encodes every PeerFrame");
    let len = out.len() - start - HEAD_BYTES;
    if len > MAX_FRAME_BYTES {
        out.truncate(start);
        return None;
    }
    out[start..start + HEAD_BYTES].copy_from_slice(&(len as u32).to_be_bytes());
    Some(len)
}

/// A postcard output that appends to a `BytesMut` (slices copied whole).
struct Extend<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for Extend<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.put_u8(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes one frame body. Garbage is an `Err`, never a panic.
pub fn decode(body: &[u8]) -> Result<PeerFrame, postcard::Error> {
    postcard::from_bytes(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place encoder writes what `encode` does, behind its length.
    #[test]
    fn encode_into_matches_encode() {
        let frame = PeerFrame::Raft(vec![Message {
            from: 1,
            to: 2,
            term: 3,
            body: raft::MessageBody::Append {
                prev_index: 4,
                prev_term: 3,
                entries: vec![raft::Entry::normal(3, 5, Bytes::from(vec![7u8; 300]))],
                commit: 4,
            },
        }]);
        let body = encode(&frame);
        for hint in [0, 10, 1000] {
            let mut out = BytesMut::from(&b"xy"[..]);
            assert_eq!(encode_into(&frame, hint, &mut out), Some(body.len()));
            assert_eq!(&out[..2], b"xy");
            assert_eq!(&out[2..6], &(body.len() as u32).to_be_bytes());
            assert_eq!(&out[6..], &body[..]);
        }
    }

    /// A frame's head announcing the cap is accepted, one byte more is
    /// refused at once; the buffer is never grown for what is announced.
    #[test]
    fn announced_lengths_are_capped_and_never_reserved() {
        let mut d = FrameDecoder::new(1000);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&1000u32.to_be_bytes());
        buf.extend_from_slice(b"abc");
        let cap = buf.capacity();
        assert!(d.decode(&mut buf).unwrap().is_none());
        assert_eq!(
            buf.capacity(),
            cap,
            "nothing reserved for the announced length"
        );
        buf.extend_from_slice(&[7; 997]);
        let body = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(body.len(), 1000);
        assert!(buf.is_empty());

        buf.extend_from_slice(&1001u32.to_be_bytes());
        let err = d.decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("1001 bytes"), "{err}");

        let mut d = FrameDecoder::new(4);
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 1, 2, 0, 0][..]);
        assert_eq!(&d.decode(&mut buf).unwrap().unwrap()[..], &[1, 2]);
        assert!(d.decode(&mut buf).unwrap().is_none(), "half a head");
    }
}
