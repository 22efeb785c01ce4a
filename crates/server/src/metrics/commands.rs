//! Per client command, for `/metrics`: calls, error replies by kind (the
//! reply's first word: `ERR`, `MOVED`, `TIMEOUT` ...), and a latency
//! histogram (parse to reply, the replication round trip included).
//!
//! Invariant: one entry per row of the command table (and subcommand row),
//! plus `unknown`, all made when the port starts; recording a command is a
//! hash lookup and relaxed atomic adds — no lock, no allocation. Unlike
//! INFO's commandstats (`crate::stats`), `CONFIG RESETSTAT` does not zero
//! these: Prometheus counters only grow.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::histogram::Histogram;
use crate::name_map::NameMap;
use crate::resp::table::COMMANDS;

/// The error kinds counted by name; any other first word is `OTHER`.
pub const ERROR_KINDS: [&str; 16] = [
    "ERR",
    "WRONGTYPE",
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "TIMEOUT",
    "NOTLEADER",
    "CROSSSLOT",
    "NOAUTH",
    "WRONGPASS",
    "MISCONF",
    "EXECABORT",
    "NOPROTO",
    "BUSY",
    "OTHER",
];

/// The label of requests that name no command raftkv knows.
pub const UNKNOWN: &str = "unknown";

/// One command's counters.
#[derive(Debug, Default)]
pub struct CommandEntry {
    /// Requests naming the command: executed, or refused before running.
    pub calls: AtomicU64,
    /// Error replies, by [`ERROR_KINDS`] index.
    pub errors: [AtomicU64; ERROR_KINDS.len()],
    /// Executed calls only (a refusal is not timed).
    pub latency: Histogram,
}

/// Every command's entry (see the module docs).
#[derive(Debug)]
pub struct CommandMetrics {
    by_name: NameMap<CommandEntry>,
    unknown: CommandEntry,
}

impl Default for CommandMetrics {
    fn default() -> Self {
        let names = COMMANDS
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands))
            .map(|c| (c.name, CommandEntry::default()));
        CommandMetrics {
            by_name: names.collect(),
            unknown: CommandEntry::default(),
        }
    }
}

impl CommandMetrics {
    /// An executed command that took `took`; `error` is its error reply.
    pub fn done(&self, name: Option<&str>, error: Option<&str>, took: Duration) {
        let e = self.entry(name);
        e.calls.fetch_add(1, Relaxed);
        e.latency.observe(took);
        if let Some(error) = error {
            e.errors[kind_index(error)].fetch_add(1, Relaxed);
        }
    }

    /// A request refused before it ran (arity, authentication, unknown).
    pub fn refused(&self, name: Option<&str>, error: &str) {
        let e = self.entry(name);
        e.calls.fetch_add(1, Relaxed);
        e.errors[kind_index(error)].fetch_add(1, Relaxed);
    }

    fn entry(&self, name: Option<&str>) -> &CommandEntry {
        name.and_then(|n| self.by_name.get(n))
            .unwrap_or(&self.unknown)
    }

    /// Every command called at least once, by name (`unknown` last).
    pub fn called(&self) -> Vec<(&'static str, &CommandEntry)> {
        let mut out: Vec<_> = self
            .by_name
            .iter()
            .map(|(n, e)| (*n, e))
            .chain(std::iter::once((UNKNOWN, &self.unknown)))
            .filter(|(_, e)| e.calls.load(Relaxed) > 0)
            .collect();
        out.sort_by_key(|(n, _)| (*n == UNKNOWN, *n));
        out
    }
}

/// The [`ERROR_KINDS`] index of an error reply's first word.
pub fn kind_index(error: &str) -> usize {
    let word = error.split(' ').next().unwrap_or("");
    ERROR_KINDS
        .iter()
        .position(|k| *k == word)
        .unwrap_or(ERROR_KINDS.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_errors_land_on_their_command_and_kind() {
        let m = CommandMetrics::default();
        let us = Duration::from_micros(50);
        m.done(Some("set"), None, us);
        m.done(Some("set"), Some("MOVED 12 127.0.0.1:7001"), us);
        m.done(Some("client|list"), None, us);
        m.refused(None, "ERR unknown command 'nope'");
        m.done(Some("get"), Some("SOMETHINGNEW x"), us);
        let called = m.called();
        let names: Vec<&str> = called.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["client|list", "get", "set", "unknown"]);
        let set = called[2].1;
        assert_eq!(set.calls.load(Relaxed), 2);
        assert_eq!(set.errors[kind_index("MOVED")].load(Relaxed), 1);
        assert_eq!(set.latency.snapshot().count, 2);
        let unknown = called[3].1;
        assert_eq!(unknown.errors[0].load(Relaxed), 1, "ERR");
        assert_eq!(
            unknown.latency.snapshot().count,
            0,
            "refusals are not timed"
        );
        assert_eq!(kind_index("SOMETHINGNEW x"), ERROR_KINDS.len() - 1);
    }
}
