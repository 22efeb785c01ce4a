//! The classic Raft lab catalogue, part 2D (log compaction), over the in-memory store.
//! The scenarios live in `common/snapshots.rs`; `catalogue_disk.rs` runs the crash ones
//! over the disk WAL.

use crate::common;

use common::snapshots as s;
use common::*;

#[test]
fn snapshot_basic_2d() {
    let (c, _g) = snapshot_cluster(3, true, "snapshot_basic_2d");
    s::snapcommon(c, false, false);
}

#[test]
fn snapshot_install_2d() {
    let (c, _g) = snapshot_cluster(3, true, "snapshot_install_2d");
    s::snapcommon(c, true, false);
}

#[test]
fn snapshot_install_unreliable_2d() {
    let (c, _g) = snapshot_cluster(3, false, "snapshot_install_unreliable_2d");
    s::snapcommon(c, true, false);
}

#[test]
fn snapshot_install_crash_2d() {
    let (c, _g) = snapshot_cluster(3, true, "snapshot_install_crash_2d");
    s::snapcommon(c, false, true);
}

#[test]
fn snapshot_install_unreliable_crash_2d() {
    let (c, _g) = snapshot_cluster(3, false, "snapshot_install_unreliable_crash_2d");
    s::snapcommon(c, false, true);
}

#[test]
fn snapshot_all_crash_2d() {
    let (c, _g) = snapshot_cluster(3, true, "snapshot_all_crash_2d");
    s::snapshot_all_crash_2d(c);
}

#[test]
fn snapshot_init_2d() {
    let (c, _g) = snapshot_cluster(3, true, "snapshot_init_2d");
    s::snapshot_init_2d(c);
}
