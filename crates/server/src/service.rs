//! What a RESP connection talks to: a single-group node ([`Requests`]) or a
//! sharded process ([`Router`]). Both give the same linearizable
//! read/write contract (`-CLUSTERDOWN` only when nothing may have been
//! proposed, `-TIMEOUT` once it may have) over one op vocabulary (`kv::Op`,
//! which the sharded groups run too).

use shardmeta::NodeId;

use crate::requests::{RequestError, Requests};
use crate::shard::router::Router;

pub enum Service {
    Single(Requests),
    Sharded(Router),
}

impl Service {
    pub fn id(&self) -> NodeId {
        match self {
            Service::Single(r) => r.id,
            Service::Sharded(r) => r.id,
        }
    }

    pub fn is_sharded(&self) -> bool {
        matches!(self, Service::Sharded(_))
    }

    /// A linearizable read of a read-only op (ReadIndex, no log entry).
    pub async fn read(&self, op: kv::Op) -> Result<kv::Reply, RequestError> {
        match self {
            Service::Single(r) => r.read(op).await,
            Service::Sharded(r) => r.read(op).await,
        }
    }

    pub async fn write(&self, op: kv::Op) -> Result<kv::Reply, RequestError> {
        match self {
            Service::Single(r) => r.write(op).await,
            Service::Sharded(r) => r.write(op).await,
        }
    }
}
