//! The classic Raft lab catalogue, part 2C (persistence), over the in-memory store.
//! The scenarios live in `common/persistence.rs`; `catalogue_disk.rs` runs them over the
//! disk WAL.

use crate::common;

use common::persistence as p;
use common::*;

#[test]
fn persist1_2c() {
    let (c, _g) = cluster(3, true, "persist1_2c");
    p::persist1_2c(c);
}

#[test]
fn persist2_2c() {
    let (c, _g) = cluster(5, true, "persist2_2c");
    p::persist2_2c(c);
}

#[test]
fn persist3_2c() {
    let (c, _g) = cluster(3, true, "persist3_2c");
    p::persist3_2c(c);
}

#[test]
fn figure8_2c() {
    let (c, _g) = cluster(5, true, "figure8_2c");
    p::figure8_2c(c);
}

#[test]
fn unreliable_agree_2c() {
    let (c, _g) = cluster(5, false, "unreliable_agree_2c");
    p::unreliable_agree_2c(c);
}

#[test]
fn figure8_unreliable_2c() {
    let (c, _g) = cluster(5, false, "figure8_unreliable_2c");
    p::figure8_unreliable_2c(c);
}

#[test]
fn reliable_churn_2c() {
    let (c, _g) = cluster(5, true, "reliable_churn_2c");
    p::internal_churn(c);
}

#[test]
fn unreliable_churn_2c() {
    let (c, _g) = cluster(5, false, "unreliable_churn_2c");
    p::internal_churn(c);
}
