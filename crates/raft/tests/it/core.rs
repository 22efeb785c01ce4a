//! Unit tests of what the core emits for one input (STYLE habit 7), named after the
//! rule they check.

use crate::harness;

use bytes::Bytes;
use harness::*;
use raft::{MessageBody, RaftError, Role, Storage};

#[test]
fn single_node_elects_itself_and_commits_after_its_own_fsync() {
    let mut net = Net::new(1);
    net.node(1).campaign();
    net.drive(1);
    assert_eq!(net.node(1).status().role, Role::Leader);
    let idx = net.node(1).propose(Bytes::from_static(b"x")).unwrap();
    let rd = net.node(1).ready();
    assert!(
        rd.committed_entries.iter().all(|e| e.index < idx),
        "committed before persisted"
    );
    net.node(1).persist(&rd).unwrap();
    net.node(1).advance(rd);
    assert_eq!(net.node(1).status().commit, idx);
}

#[test]
fn three_nodes_elect_and_replicate() {
    let mut net = Net::new(3);
    net.elect(1);
    assert_eq!(net.node(1).status().role, Role::Leader);
    let idx = net.node(1).propose(Bytes::from_static(b"x")).unwrap();
    net.deliver_all();
    assert_eq!(net.node(1).status().commit, idx);
    // Followers learn the commit index with the next heartbeat.
    net.node(1).tick();
    net.deliver_all();
    for id in 2..=3 {
        assert_eq!(net.node(id).status().commit, idx, "node {id}");
    }
}

/// Figure 8: a leader must not commit an entry of an earlier term by counting replicas,
/// even when a majority holds it.
#[test]
fn figure8_old_term_entry_is_not_committed_by_counting() {
    // Node 1 holds 2@t2 (never committed); node 2 only 1@t1; node 3 has 2@t3.
    let mut net = Net::with(3, |id| {
        let mut cfg = config(id, 3);
        cfg.max_append_bytes = 1; // one entry per Append, so we can stop between them
        let log: &[(u64, u64)] = match id {
            1 => &[(1, 1), (2, 2)],
            2 => &[(1, 1)],
            _ => &[(1, 1), (2, 3)],
        };
        (cfg, store_with(log, 3, 1))
    });
    net.node(1).campaign();
    // Node 3 is cut off. Node 2 first rejects the leader's probe, then accepts 2@t2;
    // every Append carrying the new leader's no-op (term 4) after that is lost.
    let mut node2_has_2 = false;
    let keep = |m: &raft::Message| {
        if m.to == 3 || m.from == 3 {
            return false;
        }
        match &m.body {
            MessageBody::AppendResponse {
                reject: false,
                index,
                ..
            } if m.from == 2 && *index >= 2 => {
                node2_has_2 = true;
                true
            }
            MessageBody::Append { entries, .. } => {
                !node2_has_2 || entries.iter().all(|e| e.term < 4)
            }
            _ => true,
        }
    };
    net.deliver(keep);
    let leader = net.node(1).status();
    assert_eq!((leader.role, leader.term), (Role::Leader, 4));
    // A majority (nodes 1 and 2) holds 2@t2, but it is from an older term.
    assert_eq!(
        net.node(2).status().last_index,
        2,
        "setup: node 2 holds 2@t2 only"
    );
    assert_eq!(
        leader.commit, 1,
        "Figure 8: committed an old-term entry by counting replicas"
    );
    // Once the no-op of term 4 reaches node 2, both commit.
    net.deliver_all();
    net.node(1).tick();
    net.deliver(|m| m.to != 3 && m.from != 3);
    assert_eq!(net.node(1).status().commit, 3);
}

/// §5.4.1: a node refuses its vote to a candidate whose log is behind its own.
#[test]
fn vote_denied_to_candidate_with_stale_log() {
    let mut net = Net::with(3, |id| {
        let log: &[(u64, u64)] = if id == 1 {
            &[(1, 1)]
        } else {
            &[(1, 1), (2, 2)]
        };
        (config(id, 3), store_with(log, 2, 1))
    });
    net.elect(1);
    assert_ne!(net.node(1).status().role, Role::Leader);
    assert_eq!(net.sent_count("PreVote"), 2);
    assert_eq!(
        net.sent_count("Vote"),
        0,
        "a losing pre-vote must not start a real election"
    );
    assert_eq!(
        net.node(2).status().term,
        2,
        "pre-vote must not bump anyone's term"
    );
}

#[test]
fn fast_backtracking_skips_a_whole_conflicting_term_in_one_round_trip() {
    // Node 2 has 100 entries of term 2 that the leader never had.
    let mut long: Vec<(u64, u64)> = vec![(1, 1)];
    long.extend((2..=101).map(|i| (i, 2)));
    let mut net = Net::with(3, |id| {
        let log: &[(u64, u64)] = if id == 2 { &long } else { &[(1, 1), (2, 3)] };
        (config(id, 3), store_with(log, 3, 1))
    });
    net.elect(1);
    assert_eq!(net.node(1).status().role, Role::Leader);
    net.deliver_all();
    let rejections = net
        .sent
        .iter()
        .filter(|m| {
            m.from == 2 && matches!(m.body, MessageBody::AppendResponse { reject: true, .. })
        })
        .count();
    assert!(
        rejections <= 2,
        "{rejections} rejections to back up over one term"
    );
    assert_eq!(
        net.node(2).status().last_index,
        net.node(1).status().last_index
    );
}

#[test]
fn pipelining_bounds_appends_in_flight() {
    let mut net = Net::with(3, |id| {
        let mut cfg = config(id, 3);
        cfg.max_inflight_appends = 3;
        (cfg, Default::default())
    });
    net.elect(1);
    net.deliver_all();
    let before = net.sent.len();
    // Node 2 goes silent; proposals in separate Readys each make one Append.
    for i in 0..10 {
        net.node(1).propose(Bytes::from(vec![i])).unwrap();
        net.deliver(|m| m.from != 2);
    }
    let appends_to_2 = net.sent[before..]
        .iter()
        .filter(|m| {
            m.to == 2
                && matches!(&m.body, MessageBody::Append { entries, .. } if !entries.is_empty())
        })
        .count();
    assert_eq!(appends_to_2, 3, "window of 3 in-flight Appends");
    // Node 3 acknowledges every one: it is pipelined, not paused.
    assert_eq!(net.node(1).status().commit, net.node(1).status().last_index);
}

#[test]
fn proposals_between_readys_share_one_append() {
    let mut net = Net::new(3);
    net.elect(1);
    net.deliver_all();
    let before = net.sent.len();
    for i in 0..50u8 {
        net.node(1).propose(Bytes::from(vec![i])).unwrap();
    }
    net.drive(1);
    let appends: Vec<usize> = net.sent[before..]
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::Append { entries, .. } => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        appends,
        vec![50, 50],
        "one Append of 50 entries per follower"
    );
}

#[test]
fn read_index_waits_for_a_heartbeat_quorum_and_batches_reads() {
    let mut net = Net::new(3);
    net.elect(1);
    net.deliver_all();
    let hb_before = net.sent_count("Heartbeat");
    for ctx in 0..10 {
        net.node(1).read_index(ctx).unwrap();
    }
    // Not answered before a majority confirms leadership.
    net.drive(1);
    assert!(net.read_states.get(&1).is_none_or(|r| r.is_empty()));
    net.deliver_all();
    let commit = net.node(1).status().commit;
    let answered = &net.read_states[&1];
    assert_eq!(answered.len(), 10);
    assert!(answered.iter().all(|r| r.index == commit));
    assert_eq!(
        net.sent_count("Heartbeat") - hb_before,
        1,
        "ten reads, one heartbeat round, asked of one follower (it and the leader are a majority)"
    );
}

#[test]
fn a_read_round_asks_a_majority_and_falls_back_to_everyone_a_tick_later() {
    // Periodic heartbeats far apart, so only the fallback can reach the others.
    let mut net = Net::with(5, |id| {
        let mut cfg = config(id, 5);
        cfg.heartbeat_ticks = 5;
        (cfg, raft::MemStorage::new())
    });
    net.elect(1);
    net.deliver_all();
    let hb_before = net.sent_count("Heartbeat");
    net.node(1).read_index(1).unwrap();
    net.drive(1);
    let asked: Vec<u64> = net.sent[net.sent.len() - 2..]
        .iter()
        .map(|m| m.to)
        .collect();
    assert_eq!(
        net.sent_count("Heartbeat") - hb_before,
        2,
        "five nodes: two followers make a majority with the leader"
    );
    // Both asked followers are cut off: no majority answers, so no read state.
    net.deliver(|m| !asked.contains(&m.to) && !asked.contains(&m.from));
    assert!(net.read_states.get(&1).is_none_or(|r| r.is_empty()));
    // The first tick only notes the round; the next asks every follower, and the
    // two that were not asked confirm it.
    net.node(1).tick();
    net.deliver(|m| !asked.contains(&m.to) && !asked.contains(&m.from));
    assert!(net.read_states.get(&1).is_none_or(|r| r.is_empty()));
    net.node(1).tick();
    net.deliver(|m| !asked.contains(&m.to) && !asked.contains(&m.from));
    let rs = &net.read_states[&1];
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].ctx, 1);
}

#[test]
fn isolated_leader_answers_no_read() {
    let mut net = Net::new(3);
    net.elect(1);
    net.deliver_all();
    net.node(1).read_index(7).unwrap();
    net.deliver(|m| m.from != 1 && m.to != 1);
    assert!(net.read_states.get(&1).is_none_or(|r| r.is_empty()));
}

#[test]
fn follower_read_is_forwarded_to_the_leader() {
    let mut net = Net::new(3);
    net.elect(1);
    net.deliver_all();
    net.node(2).read_index(42).unwrap();
    net.deliver_all();
    let rs = &net.read_states[&2];
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].ctx, 42);
}

#[test]
fn check_quorum_leader_steps_down_without_a_majority() {
    let mut net = Net::new(3);
    net.elect(1);
    net.deliver_all();
    for _ in 0..25 {
        net.node(1).tick();
        net.drive(1);
        net.queue.clear(); // everything the leader sends is lost
    }
    assert_eq!(net.node(1).status().role, Role::Follower);
}

#[test]
fn api_misuse_is_a_typed_error() {
    let mut net = Net::new(3);
    net.elect(1);
    net.deliver_all();
    assert_eq!(
        net.node(2).propose(Bytes::new()),
        Err(RaftError::NotLeader { hint: Some(1) })
    );
    let applied = net.node(1).status().applied;
    assert!(matches!(
        net.node(1).compact(applied + 5, Bytes::new()),
        Err(RaftError::CompactBeyondApplied { .. })
    ));
    let mut bad = config(1, 3);
    bad.peers = vec![2, 3];
    assert!(matches!(
        raft::RawNode::new(bad, raft::MemStorage::new()),
        Err(RaftError::InvalidConfig(_))
    ));
}

/// Senders outside the membership are heard (a lagging member must follow a leader its
/// log does not know yet), but a stranger's vote request inside the check-quorum lease
/// changes nothing and gets no answer: it cannot depose a live leader.
#[test]
fn a_strangers_vote_request_cannot_depose_a_live_leader() {
    let mut net = Net::new(3);
    net.elect(1);
    net.deliver_all();
    let before = net.sent.len();
    let status = net.node(2).status();
    net.node(2).step(raft::Message {
        from: 9,
        to: 2,
        term: 100,
        body: MessageBody::Vote {
            last_index: 100,
            last_term: 100,
            transfer: false,
        },
    });
    net.drive(2);
    assert_eq!(net.sent.len(), before);
    assert_eq!(net.node(2).status(), status);
}

#[test]
fn snapshot_is_streamed_in_chunks_to_a_lagging_follower() {
    let mut net = Net::with(3, |id| {
        let mut cfg = config(id, 3);
        cfg.snapshot_chunk_bytes = 10;
        (cfg, Default::default())
    });
    net.elect(1);
    net.deliver_all();
    for i in 0..5u8 {
        net.node(1).propose(Bytes::from(vec![i])).unwrap();
        net.deliver(|m| m.to != 3);
    }
    let applied = net.node(1).status().applied;
    net.node(1)
        .compact(applied, Bytes::from(vec![7u8; 95]))
        .unwrap();
    net.node(1).tick();
    net.deliver_all();
    let chunks = net
        .sent
        .iter()
        .filter(|m| m.to == 3 && m.body.kind() == "Snapshot")
        .count();
    assert_eq!(chunks, 10, "95 bytes in 10-byte chunks");
    assert_eq!(net.node(3).status().snapshot_index, applied);
    assert_eq!(
        net.node(3)
            .storage()
            .snapshot()
            .map(|s| s.data.len())
            .unwrap(),
        95
    );
    net.node(1).tick();
    net.deliver_all();
    assert_eq!(net.node(3).status().commit, net.node(1).status().commit);
}

/// Dissertation §6.4: a new leader answers ReadIndex only once an entry of its own term
/// (the no-op) has committed; until then it does not know the true commit index.
#[test]
fn new_leader_answers_reads_only_after_its_noop_commits() {
    let mut net = Net::new(3);
    net.node(1).campaign();
    // Votes flow, but every Append response is lost: the no-op cannot commit.
    net.deliver(|m| !matches!(m.body, MessageBody::AppendResponse { .. }));
    assert_eq!(net.node(1).status().role, Role::Leader);
    net.node(1).read_index(5).unwrap();
    net.node(1).tick();
    net.deliver(|m| !matches!(m.body, MessageBody::AppendResponse { .. }));
    assert!(
        net.read_states.get(&1).is_none_or(|r| r.is_empty()),
        "answered before the no-op committed"
    );
    // Heartbeat responses make the leader retry the Appends; now let them through.
    net.node(1).tick();
    net.deliver_all();
    net.node(1).tick();
    net.deliver_all();
    let noop_index = 1;
    let rs = &net.read_states[&1];
    assert_eq!(rs.len(), 1);
    assert!(rs[0].index >= noop_index);
}

/// A follower receiving a snapshot hands every chunk to the driver to write
/// (`Ready::snapshot_chunks`) and acknowledges it only after that Ready is
/// persisted; once the last one is, the driver checks the snapshot as read
/// back from storage: refused, nothing is installed or acknowledged; accepted
/// (after the leader resends), it is installed from those bytes.
#[test]
fn a_received_snapshot_goes_through_storage_and_waits_for_the_drivers_verdict() {
    let mut cfg = config(2, 3);
    cfg.check_received_snapshots = true;
    let mut node = raft::RawNode::new(cfg, raft::MemStorage::new()).unwrap();
    let meta = raft::SnapshotMeta { index: 7, term: 1 };
    let data: Vec<u8> = (0..25u8).collect();
    let chunk = |offset: usize, end: usize| raft::Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Snapshot {
            meta,
            conf: Some(Box::new(raft::Membership::with_voters([1, 2, 3]))),
            offset: offset as u64,
            data: Bytes::copy_from_slice(&data[offset..end]),
            done: end == data.len(),
        },
    };
    let send_all = |node: &mut raft::RawNode<raft::MemStorage>| {
        let mut acks = Vec::new();
        for (offset, end) in [(0, 10), (10, 20), (20, 25)] {
            node.step(chunk(offset, end));
            let rd = node.ready();
            assert!(rd.messages.is_empty(), "an ack waits for the write");
            assert_eq!(rd.snapshot_chunks.len(), 1);
            assert_eq!(&rd.snapshot_chunks[0].data[..], &data[offset..end]);
            node.persist(&rd).unwrap();
            acks.extend(rd.persisted_messages.iter().map(|m| m.body.clone()));
            node.advance(rd);
        }
        acks
    };
    let acks = send_all(&mut node);
    assert_eq!(
        acks,
        [10, 20].map(|received| MessageBody::SnapshotResponse { index: 7, received }),
        "each chunk but the last is acknowledged once written"
    );
    let (m, received) = node.received_snapshot().expect("complete");
    assert_eq!((m, &received[..]), (meta, &data[..]));
    node.refuse_received_snapshot(meta, "no".into());
    assert!(!node.has_ready(), "refused: nothing to persist or send");
    assert_eq!(
        node.raft().rejected_snapshots(),
        (1, Some("snapshot at index 7 (term 1) from node 1: no"))
    );
    assert!(node.received_snapshot().is_none());

    send_all(&mut node);
    let (m, received) = node.received_snapshot().expect("complete again");
    node.accept_received_snapshot(m, received);
    let rd = node.ready();
    let installed = rd
        .snapshot
        .clone()
        .expect("installed through the next Ready");
    assert_eq!((installed.meta, &installed.data[..]), (meta, &data[..]));
    node.persist(&rd).unwrap();
    assert!(matches!(
        rd.persisted_messages[..],
        [raft::Message {
            body: MessageBody::AppendResponse {
                reject: false,
                index: 7,
                ..
            },
            ..
        }]
    ));
    node.advance(rd);
    assert_eq!(node.status().snapshot_index, 7);
    assert_eq!(node.storage().snapshot().unwrap().data, Bytes::from(data));
}

/// A store whose writes become durable only at `sync`: a crash keeps `durable`.
#[derive(Default)]
struct SyncedMem {
    durable: raft::MemStorage,
    pending: raft::MemStorage,
}

impl raft::Storage for SyncedMem {
    fn hard_state(&self) -> raft::HardState {
        self.pending.hard_state()
    }
    fn first_index(&self) -> u64 {
        self.pending.first_index()
    }
    fn last_index(&self) -> u64 {
        self.pending.last_index()
    }
    fn term(&self, index: u64) -> raft::StorageResult<u64> {
        self.pending.term(index)
    }
    fn entries(&self, lo: u64, hi: u64, max: u64) -> raft::StorageResult<Vec<raft::Entry>> {
        self.pending.entries(lo, hi, max)
    }
    fn snapshot(&self) -> raft::StorageResult<raft::Snapshot> {
        self.pending.snapshot()
    }
    fn entry_bytes(&self) -> u64 {
        self.pending.entry_bytes()
    }
    fn append(&mut self, e: &[raft::Entry]) -> raft::StorageResult<()> {
        self.pending.append(e)
    }
    fn set_hard_state(&mut self, hs: raft::HardState) -> raft::StorageResult<()> {
        self.pending.set_hard_state(hs)
    }
    fn install_snapshot(&mut self, s: raft::Snapshot) -> raft::StorageResult<()> {
        self.pending.install_snapshot(s)
    }
    fn compact(&mut self, s: raft::Snapshot) -> raft::StorageResult<()> {
        self.pending.compact(s)
    }
    fn write_snapshot_chunk(
        &mut self,
        meta: raft::SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> raft::StorageResult<()> {
        self.pending.write_snapshot_chunk(meta, offset, data)
    }
    fn received_snapshot(
        &mut self,
        meta: raft::SnapshotMeta,
        len: u64,
    ) -> raft::StorageResult<bytes::Bytes> {
        self.pending.received_snapshot(meta, len)
    }
    fn sync(&mut self) -> raft::StorageResult<()> {
        self.durable = self.pending.clone();
        Ok(())
    }
}

/// Figure 2: `votedFor` is persistent state — a node that granted its vote, crashed
/// and restarted must not grant a second vote in the same term. `persist` skips the
/// sync only for a commit-index-only hard state; this fails if it skipped it for a vote.
#[test]
fn a_granted_vote_survives_a_crash() {
    let vote_from = |from: u64| raft::Message {
        from,
        to: 2,
        term: 1,
        body: MessageBody::Vote {
            last_index: 0,
            last_term: 0,
            transfer: false,
        },
    };
    let drive = |node: &mut raft::RawNode<SyncedMem>| {
        let mut replies = Vec::new();
        while node.has_ready() {
            let rd = node.ready();
            node.persist(&rd).unwrap();
            replies.extend(rd.persisted_messages.iter().cloned());
            node.advance(rd);
        }
        replies
    };
    let mut node = raft::RawNode::new(config(2, 3), SyncedMem::default()).unwrap();
    node.step(vote_from(1));
    let replies = drive(&mut node);
    assert!(matches!(
        replies[..],
        [raft::Message {
            body: MessageBody::VoteResponse { reject: false },
            ..
        }]
    ));
    // Crash: only what was synced survives.
    let durable = node.into_storage().durable;
    let store = SyncedMem {
        durable: durable.clone(),
        pending: durable,
    };
    let mut node = raft::RawNode::new(config(2, 3), store).unwrap();
    node.step(vote_from(3));
    let replies = drive(&mut node);
    assert!(
        matches!(
            replies[..],
            [raft::Message {
                body: MessageBody::VoteResponse { reject: true },
                ..
            }]
        ),
        "voted twice in term 1 after a crash: {replies:?}"
    );
}

/// Issue 10's term bomb: one heartbeat with term 2^64-1 (and other messages
/// with impossible terms or indexes) sent to every node. Adopting the term
/// would have made the pre-vote term `term + 1` wrap to 0 and stopped every
/// election for good. They are dropped before the term is looked at: no node
/// changes or persists its term, and the leader keeps leading and committing.
#[test]
fn impossible_terms_and_indexes_are_dropped_and_the_leader_keeps_leading() {
    use raft::{Message, MAX_INDEX, MAX_TERM};
    let mut net = Net::new(3);
    net.elect(1);
    let term = net.node(1).status().term;
    let bombs = |from, to| {
        let m = |term, body| Message {
            from,
            to,
            term,
            body,
        };
        vec![
            m(
                u64::MAX,
                MessageBody::Heartbeat {
                    commit: 0,
                    read_round: 0,
                },
            ),
            m(
                MAX_TERM + 1,
                MessageBody::Heartbeat {
                    commit: 0,
                    read_round: 0,
                },
            ),
            m(
                u64::MAX,
                MessageBody::Vote {
                    last_index: u64::MAX,
                    last_term: u64::MAX,
                    transfer: false,
                },
            ),
            m(
                term,
                MessageBody::Append {
                    prev_index: u64::MAX,
                    prev_term: term,
                    entries: vec![raft::Entry::normal(term, u64::MAX, Bytes::new())],
                    commit: u64::MAX,
                },
            ),
            m(
                term,
                MessageBody::Append {
                    prev_index: MAX_INDEX,
                    prev_term: term,
                    entries: vec![raft::Entry::normal(term, MAX_INDEX + 1, Bytes::new())],
                    commit: 0,
                },
            ),
            m(
                term,
                MessageBody::Heartbeat {
                    commit: u64::MAX,
                    read_round: 0,
                },
            ),
            m(
                term,
                MessageBody::AppendResponse {
                    reject: false,
                    index: u64::MAX,
                    hint: None,
                },
            ),
        ]
    };
    for (from, to) in [(2, 1), (3, 1), (1, 2), (3, 2), (1, 3), (2, 3)] {
        for bomb in bombs(from, to) {
            assert!(bomb.check_bounds().is_err(), "{}", bomb.describe());
            net.node(to).step(bomb);
        }
        net.drive(to);
    }
    for id in 1..=3 {
        let st = net.node(id).status();
        assert_eq!(st.term, term, "node {id} adopted an impossible term");
        assert_eq!(
            net.node(id).storage().hard_state().term,
            term,
            "node {id} persisted it"
        );
    }
    net.deliver_all();
    assert_eq!(net.node(1).status().role, Role::Leader);
    let idx = net.node(1).propose(Bytes::from_static(b"after")).unwrap();
    net.deliver_all();
    assert_eq!(net.node(1).status().commit, idx);
    // And a later election still works (the pre-vote term does not wrap):
    // node 1 falls silent, nodes 2 and 3 time out and elect one of them.
    for _ in 0..40 {
        for id in 2..=3 {
            net.node(id).tick();
        }
        net.deliver(|m| m.from != 1 && m.to != 1);
    }
    let (s2, s3) = (net.node(2).status(), net.node(3).status());
    assert!(s2.term > term && s2.leader == s3.leader && s2.leader.is_some_and(|l| l != 1));
}

/// The largest term a message may carry is still usable: the group adopts
/// it and elects a leader in the next term, `MAX_TERM`.
#[test]
fn the_largest_allowed_term_still_elects_a_leader() {
    use raft::{Message, MAX_TERM};
    let mut net = Net::new(3);
    net.elect(1);
    let near = Message {
        from: 2,
        to: 1,
        term: MAX_TERM - 1,
        body: MessageBody::HeartbeatResponse { read_round: 0 },
    };
    assert!(near.check_bounds().is_ok());
    for (from, to) in [(2, 1), (1, 2), (1, 3)] {
        let m = Message {
            from,
            to,
            ..near.clone()
        };
        net.node(to).step(m);
        net.drive(to);
        assert_eq!(net.node(to).status().term, MAX_TERM - 1);
    }
    net.queue.clear();
    net.node(2).campaign();
    net.deliver_all();
    let st = net.node(2).status();
    assert_eq!((st.role, st.term), (Role::Leader, MAX_TERM));
}

/// A data dir whose hard state already holds an impossible term (written by
/// a build without the bound) is refused at boot with a typed error.
#[test]
fn an_impossible_stored_term_is_refused_at_boot() {
    let store = store_with(&[], raft::MAX_TERM + 1, 0);
    let err = raft::RawNode::new(config(1, 3), store).err();
    assert_eq!(
        err,
        Some(RaftError::ImpossibleTerm {
            term: raft::MAX_TERM + 1
        })
    );
}

/// Dissertation §10.2.1: a leader that `write`s its entries (no sync yet) replicates
/// them at once, but counts itself toward the commit quorum only once `synced`
/// reports them durable; two followers commit without it.
#[test]
fn leader_counts_itself_only_after_its_write_is_synced() {
    let ack = |from: u64, index: u64| raft::Message {
        from,
        to: 1,
        term: 1,
        body: MessageBody::AppendResponse {
            reject: false,
            index,
            hint: None,
        },
    };
    // Returns the leader with its no-op committed and index of a written, unsynced entry.
    let setup = || {
        let mut cfg = config(1, 3);
        cfg.pre_vote = false;
        let mut node = raft::RawNode::new(cfg, SyncedMem::default()).unwrap();
        node.campaign();
        let rd = node.ready();
        node.persist(&rd).unwrap();
        node.advance(rd);
        for from in [2, 3] {
            node.step(raft::Message {
                from,
                to: 1,
                term: 1,
                body: MessageBody::VoteResponse { reject: false },
            });
        }
        assert_eq!(node.status().role, Role::Leader);
        let rd = node.ready();
        node.persist(&rd).unwrap();
        node.advance(rd);
        node.step(ack(2, 1));
        assert_eq!(node.status().commit, 1, "the no-op commits (leader synced)");
        while node.has_ready() {
            let rd = node.ready();
            node.persist(&rd).unwrap();
            node.advance(rd);
        }
        let idx = node.propose(Bytes::from_static(b"x")).unwrap();
        let rd = node.ready();
        assert!(node.can_write(&rd));
        assert!(
            rd.messages
                .iter()
                .any(|m| matches!(m.body, MessageBody::Append { .. })),
            "the Appends leave before the leader's write is durable"
        );
        node.write(&rd).unwrap();
        node.advance(rd);
        assert_eq!(node.unsynced(), Some((idx, 1)));
        assert!(
            node.storage().durable.last_index() < idx,
            "write must not sync"
        );
        (node, idx)
    };

    // One follower's ack: with the leader's own write unsynced that is 1 of 3.
    let (mut node, idx) = setup();
    node.step(ack(2, idx));
    assert_eq!(
        node.status().commit,
        idx - 1,
        "committed on an unsynced self-vote"
    );
    node.synced(idx, 1);
    assert_eq!(node.status().commit, idx, "leader synced + one follower");
    assert_eq!(node.unsynced(), None);

    // Both followers: a majority without the leader.
    let (mut node, idx) = setup();
    node.step(ack(2, idx));
    node.step(ack(3, idx));
    assert_eq!(node.status().commit, idx);

    // A later `persist` (any Ready that must be durable) syncs the write in flight too.
    let (mut node, idx) = setup();
    node.step(ack(3, idx));
    node.tick();
    let rd = node.ready();
    node.persist(&rd).unwrap();
    node.advance(rd);
    assert_eq!(node.storage().durable.last_index(), idx);
    assert_eq!(node.status().commit, idx);
    assert_eq!(node.unsynced(), None);
}
