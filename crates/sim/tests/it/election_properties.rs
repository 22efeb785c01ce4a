//! Election properties beyond the lab catalogue: pre-vote and check-quorum, each with a
//! counterfactual run that shows the test fails without the feature (STYLE habit 12).

use crate::common;

use common::*;
use sim::{Cluster, ClusterConfig, SeedGuard, SEC};

fn rejoin_after_isolation(pre_vote: bool, check_quorum: bool) -> (u64, u64, bool) {
    let mut cfg = ClusterConfig::new(3, true);
    cfg.pre_vote = pre_vote;
    cfg.check_quorum = check_quorum;
    let _g = SeedGuard(cfg.seed, "election_properties");
    let mut c = Cluster::new(cfg);
    let leader = c.check_one_leader();
    let term_before = c.state(leader).unwrap().0;
    let follower = nth(leader, 1, 3);
    c.disconnect(follower);
    c.run_for(5 * SEC);
    let isolated_term = c.state(follower).unwrap().0;
    c.connect(follower);
    c.run_for(2 * SEC);
    let still_leads = c.state(leader).unwrap() == (term_before, true);
    c.end();
    (term_before, isolated_term, still_leads)
}

#[test]
fn prevote_isolated_follower_does_not_inflate_its_term_or_depose_the_leader() {
    let (term, isolated_term, still_leads) = rejoin_after_isolation(true, true);
    assert_eq!(
        isolated_term, term,
        "pre-vote: an isolated node must not bump its term"
    );
    assert!(
        still_leads,
        "the healthy leader was deposed by a rejoining node"
    );
}

#[test]
fn without_prevote_the_same_schedule_deposes_the_leader() {
    let (term, isolated_term, still_leads) = rejoin_after_isolation(false, false);
    assert!(
        isolated_term > term + 3,
        "expected term inflation without pre-vote"
    );
    assert!(
        !still_leads,
        "expected the rejoining node's high term to depose the leader"
    );
}

#[test]
fn check_quorum_isolated_leader_steps_down_and_majority_elects_another() {
    let (mut c, _g) = cluster(5, true, "check_quorum");
    let leader = c.check_one_leader();
    c.disconnect(leader);
    c.run_for(2 * RAFT_ELECTION_TIMEOUT);
    let (_, is_leader) = c.state(leader).unwrap();
    assert!(
        !is_leader,
        "a leader cut off from its majority must step down (check-quorum)"
    );
    c.connect(leader);
    c.check_one_leader();
    c.end();
}

#[test]
fn without_check_quorum_an_isolated_leader_keeps_believing() {
    let mut cfg = ClusterConfig::new(5, true);
    cfg.check_quorum = false;
    let _g = SeedGuard(cfg.seed, "without_check_quorum");
    let mut c = Cluster::new(cfg);
    let leader = c.check_one_leader();
    c.disconnect(leader);
    c.run_for(2 * RAFT_ELECTION_TIMEOUT);
    assert!(
        c.state(leader).unwrap().1,
        "expected the stale leader to stay leader without check-quorum"
    );
    c.end();
}
