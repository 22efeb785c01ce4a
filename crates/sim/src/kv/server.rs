//! One simulated KV server: the real `replica::Replica` over a `MemStorage`,
//! plus the host's map from replica tokens to the client operation awaiting
//! each answer. This is the only glue between the sim and the replica; the
//! driver loop itself is the replica's.
//!
//! Crash model: the `MemStorage` changes only inside `Replica::drive`, which
//! runs to completion within one event, so at a crash it holds exactly what
//! was synced. The replica and the token map are volatile.

use std::collections::BTreeMap;

use raft::{MemStorage, Message};
use replica::{ReplicaError, Token};

type Replica = replica::Replica<MemStorage, kv::StateMachine>;
type Completion = replica::Completion<kv::StateMachine>;

use crate::kv::net::ClientId;
use crate::kv::wire::{ClientReply, ClientRequest, ReplyBody, RequestBody};

pub struct KvServer {
    pub replica: Replica,
    /// token -> (client, op_id) of accepted requests not yet answered.
    waiting: BTreeMap<Token, (ClientId, u64)>,
    next_token: Token,
}

impl KvServer {
    pub fn boot(
        cfg: replica::Config,
        kv: kv::Config,
        storage: MemStorage,
    ) -> Result<Self, ReplicaError> {
        Ok(KvServer {
            replica: Replica::new(cfg, storage, kv::StateMachine::new(kv))?,
            waiting: BTreeMap::new(),
            next_token: 0,
        })
    }

    /// Hands a client request to the replica; a refusal is answered at once.
    pub fn on_request(
        &mut self,
        req: ClientRequest,
        now_ms: u64,
    ) -> Option<(ClientId, ClientReply)> {
        self.next_token += 1;
        let token = self.next_token;
        let result = match req.body {
            RequestBody::Register => {
                self.replica
                    .propose(token, kv::Command::RegisterSession, now_ms)
            }
            RequestBody::Write(r) => self.replica.propose(token, kv::Command::Request(r), now_ms),
            RequestBody::Read { key } => self.replica.read(token, kv::Op::Get { key }),
        };
        match result {
            Ok(()) => {
                self.waiting.insert(token, (req.client, req.op_id));
                None
            }
            Err(why) => Some((
                req.client,
                ClientReply {
                    op_id: req.op_id,
                    body: ReplyBody::Rejected(why),
                },
            )),
        }
    }

    /// Runs the replica's driver loop; returns the replies to send.
    pub fn drive(&mut self, send: &mut dyn FnMut(Message)) -> Vec<(ClientId, ClientReply)> {
        let done = self
            .replica
            .drive(send)
            .expect("MemStorage never fails; snapshots come from our own kv");
        done.into_iter().map(|c| self.reply(c)).collect()
    }

    fn reply(&mut self, c: Completion) -> (ClientId, ClientReply) {
        let (client, op_id) = self
            .waiting
            .remove(&c.token)
            .expect("a completion for a token we gave out");
        (
            client,
            ClientReply {
                op_id,
                body: ReplyBody::Done(c.outcome),
            },
        )
    }

    pub fn into_storage(self) -> MemStorage {
        self.replica.into_storage()
    }
}
