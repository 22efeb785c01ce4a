//! Membership changes and leadership transfer in the core: what a leader accepts and
//! refuses, what each input makes nodes send, and what survives a restart.

use crate::harness;

use bytes::Bytes;
use harness::Net;
use raft::{ConfChange, Membership, MessageBody, NodeId, RaftError, Role, Storage};

fn add_voter(id: NodeId) -> ConfChange {
    ConfChange::AddVoter {
        id,
        addr: format!("127.0.0.1:{}", 7000 + id),
    }
}

fn add_learner(id: NodeId) -> ConfChange {
    ConfChange::AddLearner {
        id,
        addr: format!("127.0.0.1:{}", 7000 + id),
    }
}

/// Proposes `cc` on `leader` and delivers everything; panics if refused.
fn change(net: &mut Net, leader: NodeId, cc: ConfChange) -> u64 {
    let index = net.node(leader).propose_conf_change(cc).unwrap();
    net.deliver_all();
    index
}

fn voters(net: &mut Net, id: NodeId) -> Vec<NodeId> {
    net.node(id)
        .raft()
        .membership()
        .voters
        .iter()
        .copied()
        .collect()
}

#[test]
fn a_new_leader_refuses_changes_until_an_entry_of_its_term_commits() {
    let mut net = Net::new(3);
    net.node(1).campaign();
    // Win the election but let nothing else through: the no-op is appended, not committed.
    net.deliver(|m| {
        matches!(
            m.body,
            MessageBody::PreVote { .. }
                | MessageBody::PreVoteResponse { .. }
                | MessageBody::Vote { .. }
                | MessageBody::VoteResponse { .. }
        )
    });
    assert_eq!(net.node(1).raft().role(), Role::Leader);
    assert_eq!(
        net.node(1).propose_conf_change(add_learner(4)),
        Err(RaftError::ConfChangeTooEarly { term: 1 })
    );
    // Once the no-op commits, the same change is accepted.
    net.node(1).tick();
    net.deliver_all();
    assert!(net.node(1).propose_conf_change(add_learner(4)).is_ok());
}

#[test]
fn one_change_at_a_time() {
    let mut net = Net::new(3);
    net.elect(1);
    let first = net.node(1).propose_conf_change(add_learner(4)).unwrap();
    assert_eq!(
        net.node(1).propose_conf_change(add_learner(5)),
        Err(RaftError::ConfChangePending {
            index: first,
            committed: first - 1
        })
    );
    net.deliver_all();
    assert!(net.node(1).propose_conf_change(add_learner(5)).is_ok());
}

#[test]
fn nonsensical_changes_are_refused_with_the_reason() {
    let mut net = Net::new(3);
    net.elect(1);
    let refused = |r: Result<u64, RaftError>| match r {
        Err(RaftError::InvalidConfChange { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused(net.node(1).propose_conf_change(add_voter(2))),
        "already a member"
    );
    assert_eq!(
        refused(
            net.node(1)
                .propose_conf_change(ConfChange::Promote { id: 2 })
        ),
        "not a learner"
    );
    assert_eq!(
        refused(
            net.node(1)
                .propose_conf_change(ConfChange::Remove { id: 9 })
        ),
        "not a member"
    );
    change(&mut net, 1, ConfChange::Remove { id: 3 });
    let reason = refused(net.node(1).propose_conf_change(add_voter(3)));
    assert!(reason.contains("cannot be reused"), "{reason}");
    // A follower refuses as not the leader.
    assert!(matches!(
        net.node(2).propose_conf_change(add_learner(5)),
        Err(RaftError::NotLeader { hint: Some(1) })
    ));
}

#[test]
fn a_learner_gets_the_log_but_never_votes_campaigns_or_counts() {
    let mut net = Net::new(3);
    net.elect(1);
    net.add_joining(4);
    let at = change(&mut net, 1, add_learner(4));
    net.node(1).propose(Bytes::from_static(b"x")).unwrap();
    net.deliver_all();
    net.tick_all(1);
    net.deliver_all();
    let s4 = net.node(4).status();
    assert_eq!(s4.last_index, at + 1, "the learner holds the whole log");
    assert_eq!(s4.commit, at + 1);
    assert!(net.node(4).raft().membership().is_learner(4));
    // Alone for many election timeouts, it never asks for a vote.
    net.sent.clear();
    for _ in 0..100 {
        net.node(4).tick();
    }
    net.drive(4);
    assert!(net.sent.is_empty(), "learner sent {:?}", net.sent);
    assert_eq!(net.node(4).raft().role(), Role::Follower);
    // With two of three voters gone, the learner's acknowledgement commits nothing.
    let index = net.node(1).propose(Bytes::from_static(b"y")).unwrap();
    net.deliver(|m| m.to != 2 && m.to != 3);
    assert_eq!(net.node(4).status().last_index, index);
    assert!(net.node(1).status().commit < index);
}

#[test]
fn an_added_voter_counts_from_the_moment_its_entry_is_appended() {
    let mut net = Net::new(3);
    net.elect(1);
    net.add_joining(4);
    let at = net.node(1).propose_conf_change(add_voter(4)).unwrap();
    // Effective on append: the leader already needs 3 of 4.
    assert_eq!(voters(&mut net, 1), vec![1, 2, 3, 4]);
    // Only node 2 answers: 2 of 4 is no majority.
    net.deliver(|m| m.to != 3 && m.to != 4 && m.from != 3 && m.from != 4);
    assert!(net.node(1).status().commit < at);
    // Node 4 catches up and answers: 3 of 4.
    net.node(1).tick();
    net.deliver(|m| m.to != 3 && m.from != 3);
    assert!(net.node(1).status().commit >= at);
    assert_eq!(voters(&mut net, 4), vec![1, 2, 3, 4]);
}

#[test]
fn a_promoted_learner_can_win_an_election() {
    let mut net = Net::new(3);
    net.elect(1);
    net.add_joining(4);
    change(&mut net, 1, add_learner(4));
    change(&mut net, 1, ConfChange::Promote { id: 4 });
    net.tick_all(1);
    net.deliver_all();
    assert!(net.node(4).raft().membership().is_voter(4));
    net.node(1).transfer_leader(4).unwrap();
    net.deliver_all();
    assert_eq!(net.node(4).raft().role(), Role::Leader);
}

#[test]
fn a_removed_leader_steps_down_when_the_removal_commits_and_hands_over() {
    let mut net = Net::new(3);
    net.elect(1);
    let at = net
        .node(1)
        .propose_conf_change(ConfChange::Remove { id: 1 })
        .unwrap();
    // Appended but not committed: it still leads (and replicates) without counting itself.
    assert_eq!(net.node(1).raft().role(), Role::Leader);
    assert_eq!(voters(&mut net, 1), vec![2, 3]);
    net.deliver_all();
    assert_ne!(net.node(1).raft().role(), Role::Leader);
    assert!(net
        .sent
        .iter()
        .any(|m| m.from == 1 && m.body == MessageBody::TimeoutNow));
    // The hand-off elected one of the others at once, with no election timeout.
    let leader = [2, 3]
        .into_iter()
        .find(|&id| net.node(id).raft().role() == Role::Leader)
        .expect("a new leader without any tick");
    assert!(net.node(leader).status().commit >= at);
    // The removed node no longer campaigns.
    net.sent.clear();
    for _ in 0..100 {
        net.node(1).tick();
    }
    net.drive(1);
    assert!(
        net.sent
            .iter()
            .all(|m| !matches!(m.body, MessageBody::PreVote { .. })),
        "removed node campaigned"
    );
}

/// A removed node that never learned of its removal keeps its old membership and keeps
/// campaigning; pre-vote, check-quorum and the members' membership keep it harmless.
#[test]
fn a_removed_node_that_never_heard_cannot_disrupt_the_group() {
    let mut net = Net::new(3);
    net.elect(1);
    // Node 3 is cut off; the others remove it.
    let at = net
        .node(1)
        .propose_conf_change(ConfChange::Remove { id: 3 })
        .unwrap();
    net.deliver(|m| m.to != 3 && m.from != 3);
    assert!(net.node(1).status().commit >= at);
    assert!(net.node(3).raft().membership().is_voter(3), "3 never heard");
    let term = net.node(1).raft().term();
    // It campaigns for a long time, and everything it sends is delivered.
    for _ in 0..50 {
        for _ in 0..30 {
            net.node(3).tick();
        }
        net.tick_all(1);
        net.deliver_all();
    }
    assert!(net.sent_count("PreVote") > 0, "node 3 did campaign");
    assert_eq!(net.node(1).raft().role(), Role::Leader);
    assert_eq!(
        net.node(1).raft().term(),
        term,
        "the group's term never moved"
    );
    assert_eq!(net.node(2).raft().term(), term);
    net.node(1).propose(Bytes::from_static(b"z")).unwrap();
    net.deliver_all();
    assert_eq!(net.node(1).status().commit, net.node(1).status().last_index);
}

#[test]
fn transfer_to_an_up_to_date_voter_sends_timeout_now_at_once() {
    let mut net = Net::new(3);
    net.elect(1);
    net.sent.clear();
    net.node(1).transfer_leader(2).unwrap();
    net.drive(1);
    assert_eq!(
        net.sent.iter().map(|m| m.describe()).collect::<Vec<_>>(),
        vec!["1->2 t1 TimeoutNow"]
    );
    assert!(matches!(
        net.node(1).propose(Bytes::from_static(b"x")),
        Err(RaftError::TransferInProgress { to: 2 })
    ));
    net.deliver_all();
    assert_eq!(net.node(2).raft().role(), Role::Leader);
    assert_eq!(net.node(1).raft().leader(), Some(2));
    assert!(
        net.sent
            .iter()
            .any(|m| m.describe() == "2->3 t2 Vote { last_index: 1, last_term: 1 } (transfer)"),
        "the hand-off skips pre-vote and marks its votes"
    );
}

#[test]
fn transfer_to_a_lagging_voter_catches_it_up_first() {
    let mut net = Net::new(3);
    net.elect(1);
    for _ in 0..3 {
        net.node(1).propose(Bytes::from_static(b"x")).unwrap();
    }
    net.deliver(|m| m.to != 3);
    let last = net.node(1).status().last_index;
    assert!(net.node(3).status().last_index < last);
    net.sent.clear();
    net.node(1).transfer_leader(3).unwrap();
    net.deliver_all();
    let kinds: Vec<&str> = net
        .sent
        .iter()
        .filter(|m| m.from == 1 && m.to == 3)
        .map(|m| m.body.kind())
        .collect();
    assert_eq!(kinds.first(), Some(&"Append"), "{kinds:?}");
    assert!(kinds.contains(&"TimeoutNow"), "{kinds:?}");
    assert_eq!(net.node(3).raft().role(), Role::Leader);
    assert!(net.node(3).status().last_index > last, "new leader's no-op");
}

#[test]
fn transfer_to_a_dead_voter_is_abandoned_after_an_election_timeout() {
    let mut net = Net::new(3);
    net.elect(1);
    net.node(1).transfer_leader(3).unwrap();
    net.deliver(|m| m.to != 3);
    assert_eq!(net.node(1).raft().lead_transferee(), Some(3));
    for _ in 0..9 {
        net.node(1).tick();
    }
    assert!(net.node(1).propose(Bytes::from_static(b"x")).is_err());
    net.node(1).tick();
    assert_eq!(net.node(1).raft().lead_transferee(), None);
    assert!(net.node(1).propose(Bytes::from_static(b"x")).is_ok());
    assert_eq!(net.node(1).raft().role(), Role::Leader);
}

#[test]
fn transfer_refuses_non_voters_and_followers() {
    let mut net = Net::new(3);
    net.elect(1);
    net.add_joining(4);
    change(&mut net, 1, add_learner(4));
    assert!(matches!(
        net.node(1).transfer_leader(4),
        Err(RaftError::InvalidTransfer { id: 4, .. })
    ));
    assert!(matches!(
        net.node(1).transfer_leader(1),
        Err(RaftError::InvalidTransfer { id: 1, .. })
    ));
    assert!(matches!(
        net.node(2).transfer_leader(3),
        Err(RaftError::NotLeader { .. })
    ));
}

#[test]
fn membership_survives_a_restart_from_the_log_and_from_a_snapshot() {
    let mut net = Net::new(3);
    net.elect(1);
    net.add_joining(4);
    change(&mut net, 1, add_learner(4));
    net.tick_all(1);
    net.deliver_all();
    let expect = net.node(2).raft().membership().clone();
    assert!(expect.is_learner(4));
    // From the log: node 2 restarts with its old static peer list; the log wins.
    net.restart(2, vec![1, 2, 3]);
    assert_eq!(net.node(2).raft().membership(), &expect);
    // From a snapshot: compact node 2 past the change, restart; the snapshot carries it.
    let applied = net.node(2).status().applied;
    net.node(2).compact(applied, Bytes::new()).unwrap();
    assert_eq!(
        net.node(2).storage().snapshot().unwrap().conf.as_ref(),
        Some(&expect)
    );
    net.restart(2, vec![1, 2, 3]);
    assert_eq!(net.node(2).raft().membership(), &expect);
    // The joiner, restarted with no peers at all, remembers it is a learner.
    net.restart(4, Vec::new());
    assert!(net.node(4).raft().membership().is_learner(4));
}

#[test]
fn a_joining_node_learns_the_membership_from_a_snapshot() {
    let mut net = Net::new(3);
    net.elect(1);
    for _ in 0..5 {
        net.node(1).propose(Bytes::from_static(b"x")).unwrap();
    }
    net.deliver_all();
    let applied = net.node(1).status().applied;
    net.node(1)
        .compact(applied, Bytes::from_static(b"state"))
        .unwrap();
    net.add_joining(4);
    change(&mut net, 1, add_learner(4));
    net.tick_all(1);
    net.deliver_all();
    assert!(
        net.sent_count("Snapshot") > 0,
        "the learner needed the snapshot"
    );
    let m4 = net.node(4).raft().membership().clone();
    let mut want = Membership::with_voters([1, 2, 3]);
    want.learners.insert(4);
    want.addrs.insert(4, "127.0.0.1:7004".into());
    assert_eq!(m4, want);
    assert_eq!(net.node(4).status().commit, net.node(1).status().commit);
}

#[test]
fn a_follower_reverts_a_membership_change_a_new_leader_overwrites() {
    let mut net = Net::new(5);
    net.elect(1);
    // Leader 1 appends a change that only node 2 receives... and then nobody commits it.
    net.node(1).propose_conf_change(add_learner(6)).unwrap();
    net.deliver(|m| m.to == 2 && matches!(m.body, MessageBody::Append { .. }));
    assert!(net.node(2).raft().membership().is_learner(6));
    // One of 3, 4, 5 is elected by them without the change (1 and 2 are cut off), and
    // overwrites node 2's tail once 2 is back.
    net.deliver(|_| false);
    let apart = |m: &raft::Message| ![1, 2].contains(&m.from) && ![1, 2].contains(&m.to);
    let mut leader = None;
    for _ in 0..100 {
        for id in 3..=5 {
            net.node(id).tick();
        }
        net.deliver(apart);
        leader = (3..=5).find(|&id| net.node(id).raft().role() == Role::Leader);
        if leader.is_some() {
            break;
        }
    }
    let leader = leader.expect("3, 4 or 5 wins");
    net.node(leader).propose(Bytes::from_static(b"x")).unwrap();
    net.node(leader).tick(); // a heartbeat: node 2 answers and gets probed
    net.deliver(|m| m.from != 1 && m.to != 1);
    assert!(!net.node(2).raft().membership().contains(6), "2 reverted");
    assert_eq!(voters(&mut net, 2), vec![1, 2, 3, 4, 5]);
}

/// Ticks the leader `ticks` times, delivering everything but what `drop` matches.
fn tick_leader_dropping(
    net: &mut Net,
    leader: NodeId,
    ticks: u32,
    drop: impl Fn(&raft::Message) -> bool,
) {
    for _ in 0..ticks {
        net.node(leader).tick();
        net.deliver(|m| !drop(m));
    }
}

#[test]
fn adding_a_voter_directly_is_a_hazard_a_learner_is_not() {
    let mut net = Net::new(3);
    net.elect(1);
    let hazard = net.node(1).raft().conf_change_hazard(&add_voter(4));
    assert!(
        hazard
            .as_deref()
            .is_some_and(|h| h.contains("add it as a learner first")),
        "{hazard:?}"
    );
    assert_eq!(net.node(1).raft().conf_change_hazard(&add_learner(4)), None);
    // A change the membership refuses anyway is left to `propose_conf_change`.
    assert_eq!(net.node(1).raft().conf_change_hazard(&add_voter(2)), None);
    // Followers judge nothing.
    assert_eq!(net.node(2).raft().conf_change_hazard(&add_voter(4)), None);
}

#[test]
fn promoting_a_silent_or_lagging_learner_is_a_hazard() {
    let mut net = Net::new(3);
    net.elect(1);
    net.add_joining(4);
    net.add_joining(5);
    change(&mut net, 1, add_learner(4));
    let promote = |id| ConfChange::Promote { id };
    assert_eq!(
        net.node(1).raft().conf_change_hazard(&promote(4)),
        None,
        "caught up"
    );
    // Node 4 goes silent for an election timeout.
    tick_leader_dropping(&mut net, 1, 10, |m| m.to == 4 || m.from == 4);
    let hazard = net.node(1).raft().conf_change_hazard(&promote(4));
    assert!(
        hazard
            .as_deref()
            .is_some_and(|h| h.contains("has not answered")),
        "{hazard:?}"
    );
    // Node 5 answers heartbeats but never gets the log.
    let is_append_to_5 = |m: &raft::Message| m.to == 5 && m.body.kind() == "Append";
    net.node(1).propose_conf_change(add_learner(5)).unwrap();
    net.deliver(|m| !is_append_to_5(m));
    for i in 0..20u8 {
        net.node(1).propose(Bytes::from(vec![i])).unwrap();
    }
    tick_leader_dropping(&mut net, 1, 3, is_append_to_5);
    let hazard = net.node(1).raft().conf_change_hazard(&promote(5));
    assert!(
        hazard
            .as_deref()
            .is_some_and(|h| h.contains("has not caught up")),
        "{hazard:?}"
    );
    // Once the log flows, it is caught up.
    tick_leader_dropping(&mut net, 1, 2, |_| false);
    assert_eq!(net.node(1).raft().conf_change_hazard(&promote(5)), None);
}

#[test]
fn a_removal_that_leaves_too_few_heard_voters_is_a_hazard() {
    let mut net = Net::new(3);
    net.elect(1);
    let remove = |id| ConfChange::Remove { id };
    assert_eq!(net.node(1).raft().conf_change_hazard(&remove(2)), None);
    // Node 3 goes silent for an election timeout (1 and 2 keep the quorum).
    tick_leader_dropping(&mut net, 1, 10, |m| m.to == 3 || m.from == 3);
    assert_eq!(net.node(1).raft().role(), Role::Leader);
    let hazard = net.node(1).raft().conf_change_hazard(&remove(2));
    assert!(
        hazard
            .as_deref()
            .is_some_and(|h| h.contains("hears from 1 of the 2 remaining voters (not from node 3)")),
        "{hazard:?}"
    );
    // Removing the silent node itself leaves two voters that answer.
    assert_eq!(net.node(1).raft().conf_change_hazard(&remove(3)), None);
    // Once node 3 answers again, removing 2 is fine.
    tick_leader_dropping(&mut net, 1, 1, |_| false);
    assert_eq!(net.node(1).raft().conf_change_hazard(&remove(2)), None);
}

/// A follower whose data dir was wiped comes back under its old id with an
/// empty log. The leader knows it acknowledged more, so its rejections look
/// stale and nothing repairs it (rightly: a voter that forgot entries it
/// acknowledged may have been part of a commit quorum). The leader reports
/// the loss for the operator instead of stalling silently, and the report
/// clears once the member acknowledges again.
#[test]
fn a_follower_that_lost_its_acknowledged_log_is_reported() {
    let mut net = Net::new(3);
    net.elect(1);
    for _ in 0..3 {
        net.node(1).propose(Bytes::from_static(b"x")).unwrap();
    }
    net.deliver_all();
    let acked = net.node(1).raft().matched(3);
    assert!(acked >= 4, "node 3 acknowledged the entries: {acked}");
    assert_eq!(net.node(1).raft().lost_log(3), None);

    // Node 3's storage is gone; it restarts empty under the same id.
    let cfg = harness::config(3, 3);
    net.nodes
        .insert(3, raft::RawNode::new(cfg, raft::MemStorage::new()).unwrap());
    net.node(1).propose(Bytes::from_static(b"y")).unwrap();
    net.deliver_all();
    assert_eq!(net.node(1).raft().lost_log(3), Some(0));
    assert_eq!(net.node(3).raft().log().last_index(), 0, "not repaired");

    // An acknowledgement (here: node 3's old log put back) clears the report.
    let mut restored = raft::MemStorage::new();
    let mut entries = net.node(1).raft().log().entries_from(1, u64::MAX).unwrap();
    entries.truncate(acked as usize);
    restored.append(&entries).unwrap();
    net.nodes.insert(
        3,
        raft::RawNode::new(harness::config(3, 3), restored).unwrap(),
    );
    net.node(1).propose(Bytes::from_static(b"z")).unwrap();
    net.deliver_all();
    assert_eq!(net.node(1).raft().lost_log(3), None);
}
