//! The persistence scenarios of the lab catalogue (2C and the crash cases of 2D) over
//! the real disk WAL (`storage::DiskStorage` in a temporary directory), so the in-memory
//! and the disk store meet the same catalogue. Every simulated crash drops the store and
//! reopens it from its files.

use crate::common;

use common::persistence as p;
use common::snapshots as s;
use common::*;

#[test]
fn disk_persist1_2c() {
    let (c, _g, _dir) = disk_cluster(3, true, None, "disk_persist1_2c");
    p::persist1_2c(c);
}

#[test]
fn disk_persist2_2c() {
    let (c, _g, _dir) = disk_cluster(5, true, None, "disk_persist2_2c");
    p::persist2_2c(c);
}

#[test]
fn disk_persist3_2c() {
    let (c, _g, _dir) = disk_cluster(3, true, None, "disk_persist3_2c");
    p::persist3_2c(c);
}

#[test]
fn disk_figure8_2c() {
    let (c, _g, _dir) = disk_cluster(5, true, None, "disk_figure8_2c");
    p::figure8_2c(c);
}

#[test]
fn disk_unreliable_churn_2c() {
    let (c, _g, _dir) = disk_cluster(5, false, None, "disk_unreliable_churn_2c");
    p::internal_churn(c);
}

#[test]
fn disk_snapshot_install_crash_2d() {
    let (c, _g, _dir) = disk_cluster(
        3,
        true,
        Some(SNAPSHOT_INTERVAL),
        "disk_snapshot_install_crash_2d",
    );
    s::snapcommon(c, false, true);
}

#[test]
fn disk_snapshot_install_unreliable_crash_2d() {
    let (c, _g, _dir) = disk_cluster(
        3,
        false,
        Some(SNAPSHOT_INTERVAL),
        "disk_snapshot_install_unreliable_crash_2d",
    );
    s::snapcommon(c, false, true);
}

#[test]
fn disk_snapshot_all_crash_2d() {
    let (c, _g, _dir) = disk_cluster(
        3,
        true,
        Some(SNAPSHOT_INTERVAL),
        "disk_snapshot_all_crash_2d",
    );
    s::snapshot_all_crash_2d(c);
}

#[test]
fn disk_snapshot_init_2d() {
    let (c, _g, _dir) = disk_cluster(3, true, Some(SNAPSHOT_INTERVAL), "disk_snapshot_init_2d");
    s::snapshot_init_2d(c);
}
