//! What clerks and servers say to each other in the simulation: one request
//! type, one reply type. (The server crate speaks RESP instead; these carry the
//! same meaning.)
//!
//! `op_id` names the clerk's operation (not the attempt): any reply to any
//! attempt of the current operation is a valid answer to it, because every
//! attempt carries the same (client id, seq) and a read attempt is
//! linearized inside the operation's interval.

use bytes::Bytes;
use replica::Rejected;

/// How a kv request ended.
pub type Outcome = replica::Outcome<kv::StateMachine>;

use crate::kv::net::ClientId;

#[derive(Clone, Debug)]
pub struct ClientRequest {
    pub client: ClientId,
    pub op_id: u64,
    pub body: RequestBody,
}

#[derive(Clone, Debug)]
pub enum RequestBody {
    /// Open a session (`kv::Command::RegisterSession`).
    Register,
    /// A write inside the clerk's session.
    Write(kv::Request),
    /// A ReadIndex read.
    Read { key: Bytes },
}

#[derive(Clone, Debug)]
pub struct ClientReply {
    pub op_id: u64,
    pub body: ReplyBody,
}

#[derive(Clone, Debug)]
pub enum ReplyBody {
    /// The server took the request and this is how it ended.
    Done(Outcome),
    /// The server refused it: it certainly did not take effect.
    Rejected(Rejected),
}
