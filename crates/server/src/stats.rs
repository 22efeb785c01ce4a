//! Counters of one RESP port for INFO's `stats` section (and `redis-cli
//! --stat`): connections received and rejected, commands processed, bytes
//! in and out, keyspace hits and misses, error replies; plus the
//! instantaneous rates Redis reports, averaged like Redis over the last 16
//! samples taken every 100 ms ([`Stats::sample`], driven by the listener).
//!
//! All counters are relaxed atomics: each is exact on its own; a reader may
//! see one counter a moment ahead of another, as with Redis's INFO.
//! `CONFIG RESETSTAT` zeroes them ([`Stats::reset`]). The per-command
//! counters exist for every row of the command table from the start, so
//! counting a command takes no lock (it is on every request's path).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::name_map::NameMap;
use crate::resp::table::COMMANDS;
use crate::resp::Frame;

/// How often the listener calls [`Stats::sample`].
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Samples averaged for an instantaneous rate (Redis's `STATS_METRIC_SAMPLES`).
const SAMPLES: usize = 16;

pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub error_replies: AtomicU64,
    /// Error replies by their code (`ERR`, `MOVED`, `TIMEOUT` ...): INFO's errorstats.
    errors_by_code: Mutex<BTreeMap<String, u64>>,
    /// Per command (table full name, every row): INFO's commandstats.
    per_command: NameMap<CommandCounters>,
    rates: Mutex<Rates>,
    /// The same events for `/metrics` (lock-free, never reset).
    pub commands: crate::metrics::commands::CommandMetrics,
}

impl Default for Stats {
    fn default() -> Self {
        let per_command = COMMANDS
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands))
            .map(|c| (c.name, CommandCounters::default()))
            .collect();
        Stats {
            connections_received: AtomicU64::default(),
            rejected_connections: AtomicU64::default(),
            commands_processed: AtomicU64::default(),
            net_input_bytes: AtomicU64::default(),
            net_output_bytes: AtomicU64::default(),
            keyspace_hits: AtomicU64::default(),
            keyspace_misses: AtomicU64::default(),
            error_replies: AtomicU64::default(),
            errors_by_code: Mutex::default(),
            per_command,
            rates: Mutex::default(),
            commands: Default::default(),
        }
    }
}

/// One command's [`CommandStat`], as relaxed atomics.
#[derive(Default)]
struct CommandCounters {
    calls: AtomicU64,
    usec: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

impl CommandCounters {
    fn read(&self) -> CommandStat {
        CommandStat {
            calls: self.calls.load(Relaxed),
            usec: self.usec.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            failed: self.failed.load(Relaxed),
        }
    }
}

/// The last samples of each instantaneous rate.
#[derive(Default)]
struct Rates {
    last: Option<(Instant, [u64; 3])>,
    /// Per second: commands, input bytes, output bytes.
    samples: Vec<[f64; 3]>,
    next: usize,
}

/// One command's counters, as Redis's `cmdstat_<name>` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandStat {
    /// Executed calls, failed ones included.
    pub calls: u64,
    /// Microseconds spent executing them (from parse to reply, the
    /// replication round trip included).
    pub usec: u64,
    /// Refused before running (arity, authentication).
    pub rejected: u64,
    /// Executed, answered with an error.
    pub failed: u64,
}

/// The instantaneous rates, per second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Instantaneous {
    pub ops: f64,
    pub input_bytes: f64,
    pub output_bytes: f64,
}

impl Stats {
    /// Counts one executed command (which took `took`) and what its reply
    /// says about the keyspace.
    pub fn command_done(&self, name: Option<&'static str>, reply: &Frame, took: Duration) {
        self.commands_processed.fetch_add(1, Relaxed);
        let error = match reply {
            Frame::Error(e) => Some(e.as_str()),
            _ => None,
        };
        self.commands.done(name, error, took);
        if let Some(s) = name.and_then(|n| self.per_command.get(n)) {
            s.calls.fetch_add(1, Relaxed);
            s.usec.fetch_add(took.as_micros() as u64, Relaxed);
            if error.is_some() {
                s.failed.fetch_add(1, Relaxed);
            }
        }
        if let Frame::Error(e) = reply {
            self.count_error(e);
            return;
        }
        let (hits, misses) = keyspace_lookups(name, reply);
        if hits > 0 {
            self.keyspace_hits.fetch_add(hits, Relaxed);
        }
        if misses > 0 {
            self.keyspace_misses.fetch_add(misses, Relaxed);
        }
    }

    /// Counts an error reply to a request that did not become a command
    /// (unknown command, wrong arity, not authenticated): Redis counts those
    /// too, and as a rejected call of a command it knows.
    pub fn rejected_command(&self, name: Option<&'static str>, error: &str) {
        self.commands.refused(name, error);
        if let Some(s) = name.and_then(|n| self.per_command.get(n)) {
            s.rejected.fetch_add(1, Relaxed);
        }
        self.count_error(error);
    }

    /// Per-command counters of the commands called (or refused) since the
    /// start or the last reset, by name.
    pub fn per_command(&self) -> Vec<(&'static str, CommandStat)> {
        let mut called: Vec<_> = self
            .per_command
            .iter()
            .map(|(k, v)| (*k, v.read()))
            .filter(|(_, s)| s.calls > 0 || s.rejected > 0)
            .collect();
        called.sort_by_key(|(k, _)| *k);
        called
    }

    fn count_error(&self, error: &str) {
        self.error_replies.fetch_add(1, Relaxed);
        let code: String = error
            .split(' ')
            .next()
            .unwrap_or("ERR")
            .chars()
            .take(32)
            .collect();
        *self
            .errors_by_code
            .lock()
            .expect("errors lock")
            .entry(code)
            .or_default() += 1;
    }

    /// Error replies by code, in code order.
    pub fn errors_by_code(&self) -> Vec<(String, u64)> {
        let m = self.errors_by_code.lock().expect("errors lock");
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Takes one sample of the rates (call every [`SAMPLE_EVERY`]).
    pub fn sample(&self, now: Instant) {
        let totals = [
            self.commands_processed.load(Relaxed),
            self.net_input_bytes.load(Relaxed),
            self.net_output_bytes.load(Relaxed),
        ];
        let mut r = self.rates.lock().expect("rates lock");
        if let Some((then, before)) = r.last {
            let secs = now.duration_since(then).as_secs_f64();
            if secs > 0.0 {
                let rate = |i: usize| totals[i].saturating_sub(before[i]) as f64 / secs;
                let s = [rate(0), rate(1), rate(2)];
                if r.samples.len() < SAMPLES {
                    r.samples.push(s);
                } else {
                    let i = r.next;
                    r.samples[i] = s;
                }
                r.next = (r.next + 1) % SAMPLES;
            }
        }
        r.last = Some((now, totals));
    }

    pub fn instantaneous(&self) -> Instantaneous {
        let r = self.rates.lock().expect("rates lock");
        if r.samples.is_empty() {
            return Instantaneous::default();
        }
        let n = r.samples.len() as f64;
        let mean = |i: usize| r.samples.iter().map(|s| s[i]).sum::<f64>() / n;
        Instantaneous {
            ops: mean(0),
            input_bytes: mean(1),
            output_bytes: mean(2),
        }
    }

    /// `CONFIG RESETSTAT`.
    pub fn reset(&self) {
        for c in [
            &self.connections_received,
            &self.rejected_connections,
            &self.commands_processed,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.error_replies,
        ] {
            c.store(0, Relaxed);
        }
        *self.rates.lock().expect("rates lock") = Rates::default();
        self.errors_by_code.lock().expect("errors lock").clear();
        for s in self.per_command.values() {
            for c in [&s.calls, &s.usec, &s.rejected, &s.failed] {
                c.store(0, Relaxed);
            }
        }
    }
}

/// Keyspace hits and misses of a reply, for the string reads whose reply
/// tells (Redis counts every key lookup; raftkv counts these): `GET`,
/// `GETEX`, `GETDEL` (a null is a miss) and `MGET` (per key).
fn keyspace_lookups(name: Option<&str>, reply: &Frame) -> (u64, u64) {
    match (name, reply) {
        (Some("get" | "getex" | "getdel"), Frame::Null) => (0, 1),
        (Some("get" | "getex" | "getdel"), Frame::Bulk(_)) => (1, 0),
        (Some("mget"), Frame::Array(items)) => {
            let misses = items.iter().filter(|f| matches!(f, Frame::Null)).count() as u64;
            (items.len() as u64 - misses, misses)
        }
        _ => (0, 0),
    }
}

/// Microseconds since the Unix epoch (INFO's `server_time_usec`, `TIME`).
pub fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn counts_commands_errors_and_lookups() {
        let s = Stats::default();
        let us = Duration::from_micros(10);
        s.command_done(Some("get"), &Frame::Null, us);
        s.command_done(Some("get"), &Frame::Bulk(Bytes::from("v")), us);
        s.command_done(
            Some("mget"),
            &Frame::Array(vec![
                Frame::Null,
                Frame::Bulk(Bytes::from("v")),
                Frame::Null,
            ]),
            us,
        );
        s.command_done(Some("set"), &Frame::Error("ERR x".into()), us);
        s.command_done(Some("set"), &Frame::Simple("OK".into()), us);
        s.rejected_command(
            Some("set"),
            "ERR wrong number of arguments for 'set' command",
        );
        assert_eq!(s.commands_processed.load(Relaxed), 5);
        assert_eq!(s.keyspace_hits.load(Relaxed), 2);
        assert_eq!(s.keyspace_misses.load(Relaxed), 3);
        assert_eq!(s.error_replies.load(Relaxed), 2);
        let per: BTreeMap<_, _> = s.per_command().into_iter().collect();
        assert_eq!(
            per["set"],
            CommandStat {
                calls: 2,
                usec: 20,
                rejected: 1,
                failed: 1
            }
        );
        assert_eq!(per["get"].calls, 2);
        s.rejected_command(None, "MOVED 1 127.0.0.1:1");
        assert_eq!(
            s.errors_by_code(),
            vec![("ERR".to_string(), 2), ("MOVED".to_string(), 1)]
        );
        s.reset();
        assert_eq!(s.commands_processed.load(Relaxed), 0);
        assert!(s.per_command().is_empty());
    }

    #[test]
    fn rates_average_the_last_samples() {
        let s = Stats::default();
        let t0 = Instant::now();
        s.sample(t0);
        assert_eq!(s.instantaneous().ops, 0.0);
        s.commands_processed.store(100, Relaxed);
        s.sample(t0 + Duration::from_millis(100)); // 1000/s
        s.commands_processed.store(100, Relaxed);
        s.sample(t0 + Duration::from_millis(200)); // 0/s
        assert_eq!(s.instantaneous().ops, 500.0);
        for i in 3..40 {
            s.sample(t0 + Duration::from_millis(100 * i)); // idle
        }
        assert_eq!(s.instantaneous().ops, 0.0, "old samples age out");
    }
}
