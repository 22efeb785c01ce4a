//! Issue 11, silent links in the simulator: a direction of a link that accepts
//! everything and delivers nothing (a half-open connection), until healed.
//!
//! - A partition that heals into silent links in both directions, then the links
//!   come back: a leader is elected within a few election timeouts of the heal.
//! - Only the direction *into* the leader silent (its heartbeats arrive, no reply
//!   does): check-quorum makes it step down and the others elect a leader; after
//!   the heal there is one leader. Without check-quorum the followers, still hearing
//!   heartbeats, never elect anyone (the counterfactual, STYLE habit 12).
//!
//! The virtual times measured are printed (`--nocapture`).

use crate::common;

use common::*;
use sim::{Cluster, ClusterConfig, SeedGuard, MS};

/// Steps 10 ms at a time until some node leads with every other live node
/// following it; returns the virtual time that took, or `None` within `limit`.
fn time_to_agreed_leader(c: &mut Cluster, limit: u64) -> Option<u64> {
    let mut waited = 0;
    while waited <= limit {
        if let Some(l) = c.leader() {
            let (term, _) = c.state(l).unwrap();
            let agreed = c
                .ids()
                .iter()
                .all(|&id| c.state(id).is_some_and(|(t, _)| t == term));
            if agreed {
                return Some(waited);
            }
        }
        c.run_for(10 * MS);
        waited += 10 * MS;
    }
    None
}

#[test]
fn a_partition_healing_through_silent_links_elects_a_leader_after_the_heal() {
    let (mut c, _g) = cluster(5, true, "silent_links_heal");
    let leader = c.check_one_leader();
    let minority = [leader, nth(leader, 1, 5)];
    let majority: Vec<u64> = c
        .ids()
        .into_iter()
        .filter(|i| !minority.contains(i))
        .collect();
    // Every link across the cut swallows both ways: the sides cannot tell this from
    // a partition, and nothing arrives.
    for &a in &minority {
        for &b in &majority {
            c.net.silence(a, b);
            c.net.silence(b, a);
        }
    }
    c.run_for(3 * RAFT_ELECTION_TIMEOUT);
    let during = c.leader().expect("the majority elects a leader");
    assert!(
        majority.contains(&during),
        "leader {during} is on the minority side"
    );
    c.net.unsilence_all();
    let took = time_to_agreed_leader(&mut c, 3 * RAFT_ELECTION_TIMEOUT)
        .expect("one agreed leader within three election timeouts of the heal");
    eprintln!(
        "silent links healed: one agreed leader after {} ms",
        took / MS
    );
    c.check_one_leader();
    c.end();
}

fn one_way_silent_into_the_leader(check_quorum: bool) -> (u64, Option<u64>) {
    let mut cfg = ClusterConfig::new(3, true);
    cfg.check_quorum = check_quorum;
    let _g = SeedGuard(cfg.seed, "silent_links_one_way");
    let mut c = Cluster::new(cfg);
    let leader = c.check_one_leader();
    for id in c.ids() {
        if id != leader {
            c.net.silence(id, leader);
        }
    }
    let mut new_leader = None;
    let mut waited = 0;
    while waited <= 5 * RAFT_ELECTION_TIMEOUT {
        c.run_for(10 * MS);
        waited += 10 * MS;
        if let Some(l) = c.leader().filter(|&l| l != leader) {
            new_leader = Some(l);
            eprintln!(
                "check_quorum={check_quorum}: node {l} leads {} ms after the links into {leader} went silent",
                waited / MS
            );
            break;
        }
    }
    c.net.unsilence_all();
    if check_quorum {
        c.check_one_leader();
    }
    c.end();
    (leader, new_leader)
}

#[test]
fn a_leader_whose_inbound_links_are_silent_is_replaced() {
    let (old, new) = one_way_silent_into_the_leader(true);
    let new = new.expect("another node leads within five election timeouts");
    assert_ne!(new, old);
}

#[test]
fn without_check_quorum_a_leader_hearing_nothing_is_never_replaced() {
    let (_, new) = one_way_silent_into_the_leader(false);
    assert_eq!(
        new, None,
        "the followers still receive heartbeats, so none of them campaigns"
    );
}
