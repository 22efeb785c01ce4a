//! [`ShardKv`] as an [`rsm::StateMachine`], so `replica` (and the
//! multi-group host above it) drives a sharded group like any other
//! machine. Every method forwards to the inherent one of the same name.
//!
//! A ReadIndex read is a [`Query`] (a read-only op, keyed or over named
//! shards); its result is the op's reply, or [`WrongGroup`] when a shard it
//! reads is not served in the configuration applied by the time the read is
//! answered (`applied_index >= read index`).

use bytes::Bytes;

use crate::command::{Command, Query, QueryResult, Response};
use crate::machine::ShardKv;

impl rsm::StateMachine for ShardKv {
    type Command = Command;
    type Response = Response;
    type Query = Query;
    type QueryResult = QueryResult;

    fn encode_command(&self, cmd: &Command, now_ms: u64) -> Bytes {
        ShardKv::encode_command(self, cmd, now_ms)
    }

    fn tick_command(&self, now_ms: u64) -> Option<Bytes> {
        ShardKv::tick_command(self, now_ms)
    }

    fn apply(&mut self, index: u64, data: &[u8]) -> Response {
        ShardKv::apply(self, index, data)
    }

    fn applied_index(&self) -> u64 {
        ShardKv::applied_index(self)
    }

    fn query(&self, q: &Query) -> QueryResult {
        ShardKv::query_any(self, q)
    }

    fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        ShardKv::snapshot_to(self, out)
    }

    /// Refuses a snapshot of another group or shard count (see
    /// [`ShardKv::restore`]); adopts the snapshot's session tunables.
    fn restore(&mut self, data: &[u8]) -> Result<(), rsm::SnapshotError> {
        ShardKv::restore(self, data).map_err(rsm::SnapshotError::new)
    }

    /// As `restore`, but the current state is dropped first (on `Err` the machine is
    /// empty, with its settings) and the input's parts are released as they are read;
    /// keeps this process's expired-keys count.
    fn replace_with_snapshot(
        &mut self,
        input: rsm::SnapshotInput<'_>,
    ) -> Result<(), rsm::SnapshotError> {
        *self = ShardKv {
            expired: self.expired,
            ..ShardKv::new(self.settings)
        };
        ShardKv::restore_input(self, input).map_err(rsm::SnapshotError::new)
    }

    fn item_count(&self) -> usize {
        self.key_count()
    }

    fn session_count(&self) -> usize {
        self.sessions().len()
    }

    fn purge_due(&self, now_ms: u64) -> bool {
        ShardKv::purge_due(self, now_ms)
    }

    fn expiring_count(&self) -> usize {
        ShardKv::expiring_count(self)
    }

    fn expired_count(&self) -> u64 {
        ShardKv::expired_count(self)
    }
}

#[cfg(test)]
mod tests {
    use rsm::StateMachine;

    use super::*;
    use crate::{Op, Request, Settings, WrongGroup};

    /// The trait path behaves as the inherent one: a key of a shard not
    /// served answers WrongGroup; snapshots round-trip; garbage is refused.
    #[test]
    fn drives_through_the_trait() {
        fn drive<M: StateMachine<Command = Command, Query = Query>>(m: &mut M) -> M::QueryResult {
            let op = Op::Put {
                key: Bytes::from("k"),
                value: Bytes::from("v"),
            };
            let put = m.encode_command(
                &Command::Request(Request {
                    client_id: 1,
                    seq: 1,
                    op,
                }),
                5,
            );
            m.apply(1, &[]);
            m.apply(2, &put);
            m.query(&Query::Op(Op::Get {
                key: Bytes::from("k"),
            }))
        }
        let mut sm = ShardKv::new(Settings::new(1, 10));
        assert!(matches!(
            drive(&mut sm),
            Err(WrongGroup { config_num: 0, .. })
        ));
        assert_eq!(StateMachine::applied_index(&sm), 2);
        let mut copy = ShardKv::new(Settings::new(1, 10));
        StateMachine::restore(&mut copy, &StateMachine::snapshot(&sm)).unwrap();
        assert_eq!(copy, sm);
        assert!(StateMachine::restore(&mut copy, b"junk").is_err());
    }
}
