//! What the I/O edge measures per hosted group, beside the replica's own
//! counts: proposal latency (handing a command to the driver → its
//! answer), fsync latency and bytes written to the group's data directory.
//!
//! Invariant: the set of groups is fixed when the node starts (a single
//! group is `0`; a sharded process's controller and data groups by id), so
//! [`Telemetry`] is immutable and its lookups take no lock; every value is
//! an atomic the hot paths bump.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::histogram::Histogram;

/// One group's measurements (see the module docs).
#[derive(Debug, Default)]
pub struct GroupMetrics {
    /// From handing a proposal to the driver to its answer (commit
    /// and apply, or a refusal), on the node that proposed it.
    pub proposal_latency: Histogram,
    /// Each `fdatasync` of the group's WAL and snapshot files.
    pub fsync_latency: Histogram,
    /// Bytes the group's storage wrote (records, snapshots, preallocation).
    pub disk_written_bytes: AtomicU64,
}

/// Every hosted group's [`GroupMetrics`], by group id.
#[derive(Debug, Default)]
pub struct Telemetry {
    groups: BTreeMap<u64, Arc<GroupMetrics>>,
}

impl Telemetry {
    pub fn new(groups: impl IntoIterator<Item = u64>) -> Arc<Telemetry> {
        Arc::new(Telemetry {
            groups: groups.into_iter().map(|g| (g, Arc::default())).collect(),
        })
    }

    /// The group's metrics; a group not hosted at start gets a detached
    /// set (measured, never exported) rather than a panic.
    pub fn group(&self, group: u64) -> Arc<GroupMetrics> {
        self.groups.get(&group).cloned().unwrap_or_default()
    }

    /// The group's metrics, if it was hosted at start (no lock, no clone).
    pub fn get(&self, group: u64) -> Option<&GroupMetrics> {
        self.groups.get(&group).map(|m| &**m)
    }

    pub fn groups(&self) -> impl Iterator<Item = (u64, &GroupMetrics)> {
        self.groups.iter().map(|(g, m)| (*g, &**m))
    }
}
