//! [`GroupMachine`]: the one machine type a sharded process hosts — either
//! the shard controller or a sharded data group — so a single
//! [`crate::Host`] runs a process's controller replica and its data-group
//! replicas side by side.
//!
//! The enum only dispatches; each variant keeps its own machine's rules.
//! Invariant: a group's machine never changes kind (group
//! [`shardmeta::CONTROLLER_GROUP`] is always `Ctrl`, every other group
//! `Data`), and a command, query or snapshot of the other kind is a host
//! bug: `encode_command` and `query` panic on one, `restore` refuses it.

use bytes::Bytes;
use shardctrler::Controller;
use shardkv::ShardKv;
use shardmeta::Config;

/// A controller or a data group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupMachine {
    Ctrl(Controller),
    Data(ShardKv),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupCommand {
    Ctrl(shardctrler::Command),
    Data(shardkv::Command),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupResponse {
    Ctrl(shardctrler::Response),
    Data(shardkv::Response),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupQuery {
    /// A configuration by number (`None`: the latest).
    Ctrl(Option<u64>),
    /// A data group's read-only op (`shardkv::Query`).
    Data(shardkv::Query),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupQueryResult {
    Ctrl(Config),
    Data(shardkv::QueryResult),
}

impl GroupMachine {
    pub fn as_ctrl(&self) -> Option<&Controller> {
        match self {
            GroupMachine::Ctrl(c) => Some(c),
            GroupMachine::Data(_) => None,
        }
    }

    pub fn as_data(&self) -> Option<&ShardKv> {
        match self {
            GroupMachine::Data(d) => Some(d),
            GroupMachine::Ctrl(_) => None,
        }
    }
}

impl rsm::StateMachine for GroupMachine {
    type Command = GroupCommand;
    type Response = GroupResponse;
    type Query = GroupQuery;
    type QueryResult = GroupQueryResult;

    fn encode_command(&self, cmd: &GroupCommand, now_ms: u64) -> Bytes {
        match (self, cmd) {
            (GroupMachine::Ctrl(m), GroupCommand::Ctrl(c)) => m.encode_command(c, now_ms),
            (GroupMachine::Data(m), GroupCommand::Data(c)) => m.encode_command(c, now_ms),
            (m, c) => panic!(
                "command {c:?} for a machine of the other kind ({})",
                kind(m)
            ),
        }
    }

    fn tick_command(&self, now_ms: u64) -> Option<Bytes> {
        match self {
            GroupMachine::Ctrl(m) => rsm::StateMachine::tick_command(m, now_ms),
            GroupMachine::Data(m) => rsm::StateMachine::tick_command(m, now_ms),
        }
    }

    fn apply(&mut self, index: u64, data: &[u8]) -> GroupResponse {
        match self {
            GroupMachine::Ctrl(m) => GroupResponse::Ctrl(rsm::StateMachine::apply(m, index, data)),
            GroupMachine::Data(m) => GroupResponse::Data(rsm::StateMachine::apply(m, index, data)),
        }
    }

    fn applied_index(&self) -> u64 {
        match self {
            GroupMachine::Ctrl(m) => rsm::StateMachine::applied_index(m),
            GroupMachine::Data(m) => rsm::StateMachine::applied_index(m),
        }
    }

    fn query(&self, q: &GroupQuery) -> GroupQueryResult {
        match (self, q) {
            (GroupMachine::Ctrl(m), GroupQuery::Ctrl(num)) => {
                GroupQueryResult::Ctrl(rsm::StateMachine::query(m, num))
            }
            (GroupMachine::Data(m), GroupQuery::Data(q)) => {
                GroupQueryResult::Data(rsm::StateMachine::query(m, q))
            }
            (m, q) => panic!("query {q:?} for a machine of the other kind ({})", kind(m)),
        }
    }

    fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        match self {
            GroupMachine::Ctrl(m) => rsm::StateMachine::snapshot_to(m, out),
            GroupMachine::Data(m) => rsm::StateMachine::snapshot_to(m, out),
        }
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), rsm::SnapshotError> {
        match self {
            GroupMachine::Ctrl(m) => rsm::StateMachine::restore(m, data),
            GroupMachine::Data(m) => rsm::StateMachine::restore(m, data),
        }
    }

    fn replace_with_snapshot(
        &mut self,
        input: rsm::SnapshotInput<'_>,
    ) -> Result<(), rsm::SnapshotError> {
        match self {
            GroupMachine::Ctrl(m) => rsm::StateMachine::replace_with_snapshot(m, input),
            GroupMachine::Data(m) => rsm::StateMachine::replace_with_snapshot(m, input),
        }
    }

    fn item_count(&self) -> usize {
        match self {
            GroupMachine::Ctrl(m) => rsm::StateMachine::item_count(m),
            GroupMachine::Data(m) => rsm::StateMachine::item_count(m),
        }
    }

    fn purge_due(&self, now_ms: u64) -> bool {
        match self {
            GroupMachine::Ctrl(m) => rsm::StateMachine::purge_due(m, now_ms),
            GroupMachine::Data(m) => rsm::StateMachine::purge_due(m, now_ms),
        }
    }

    fn expiring_count(&self) -> usize {
        match self {
            GroupMachine::Ctrl(m) => rsm::StateMachine::expiring_count(m),
            GroupMachine::Data(m) => rsm::StateMachine::expiring_count(m),
        }
    }

    fn expired_count(&self) -> u64 {
        match self {
            GroupMachine::Ctrl(m) => rsm::StateMachine::expired_count(m),
            GroupMachine::Data(m) => rsm::StateMachine::expired_count(m),
        }
    }

    fn session_count(&self) -> usize {
        match self {
            GroupMachine::Ctrl(m) => rsm::StateMachine::session_count(m),
            GroupMachine::Data(m) => rsm::StateMachine::session_count(m),
        }
    }
}

fn kind(m: &GroupMachine) -> &'static str {
    match m {
        GroupMachine::Ctrl(_) => "controller",
        GroupMachine::Data(_) => "data group",
    }
}
