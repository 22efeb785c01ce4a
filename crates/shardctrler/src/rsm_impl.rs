//! [`Controller`] as an [`rsm::StateMachine`], so `replica` (and the
//! multi-group host above it) drives the controller group like any other
//! machine. Every method forwards to the inherent one of the same name.
//!
//! A ReadIndex read is `Option<u64>` (a configuration number, `None` for
//! the latest) and answers that [`Config`]; answered once
//! `applied_index >= read index`, so "the latest" is linearizable.

use bytes::Bytes;
use shardmeta::Config;

use crate::command::{Command, Response};
use crate::machine::Controller;

impl rsm::StateMachine for Controller {
    type Command = Command;
    type Response = Response;
    type Query = Option<u64>;
    type QueryResult = Config;

    fn encode_command(&self, cmd: &Command, now_ms: u64) -> Bytes {
        Controller::encode_command(self, cmd, now_ms)
    }

    fn tick_command(&self, now_ms: u64) -> Option<Bytes> {
        Controller::tick_command(self, now_ms)
    }

    fn apply(&mut self, index: u64, data: &[u8]) -> Response {
        Controller::apply(self, index, data)
    }

    fn applied_index(&self) -> u64 {
        Controller::applied_index(self)
    }

    fn query(&self, num: &Option<u64>) -> Config {
        Controller::query(self, num)
    }

    fn snapshot_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        Controller::snapshot_to(self, out)
    }

    /// Adopts the snapshot's settings along with its state (see `settings`).
    fn restore(&mut self, data: &[u8]) -> Result<(), rsm::SnapshotError> {
        *self = Controller::restore(data).map_err(rsm::SnapshotError::new)?;
        Ok(())
    }

    /// Configurations held (the history grows by one per change).
    fn item_count(&self) -> usize {
        self.configs().len()
    }

    fn session_count(&self) -> usize {
        Controller::session_count(self)
    }
}

#[cfg(test)]
mod tests {
    use rsm::StateMachine;

    use super::*;
    use crate::{Reply, Settings};

    #[test]
    fn drives_through_the_trait() {
        fn drive<M: StateMachine<Command = Command, Query = Option<u64>>>(
            m: &mut M,
        ) -> M::QueryResult {
            let reg = m.encode_command(&Command::RegisterSession, 5);
            m.apply(1, &[]);
            m.apply(2, &reg);
            let tick = m.tick_command(9).unwrap();
            m.apply(3, &tick);
            m.query(&None)
        }
        let mut c = Controller::new(Settings::default());
        assert_eq!(drive(&mut c), Config::initial(10));
        assert_eq!(StateMachine::applied_index(&c), 3);
        assert_eq!(c.log_time_ms(), 9);
        assert_eq!(StateMachine::session_count(&c), 1);
        let mut copy = Controller::new(Settings::with_shards(3));
        StateMachine::restore(&mut copy, &StateMachine::snapshot(&c)).unwrap();
        assert_eq!(copy, c, "settings adopted from the snapshot");
        assert!(StateMachine::restore(&mut copy, b"junk").is_err());
        assert_eq!(copy, c, "unchanged on error");
        let r = StateMachine::apply(&mut copy, 4, b"\x01junk");
        assert!(
            matches!(r, Err(crate::CtrlError::Malformed { .. })),
            "{r:?}"
        );
        assert_ne!(r, Ok(Reply::Done));
    }
}
