//! Group membership: who votes, who only learns, and how it changes through the log.
//!
//! # The rule: single-server changes, effective on append (dissertation §4.1)
//!
//! A [`Membership`] is carried by `EntryKind::ConfChange` entries (and by snapshots, for
//! the prefix they cover). Every node uses the **latest** membership in its log, whether
//! or not that entry is committed, and reverts to the previous one if a new leader
//! overwrites the entry. Each change adds or removes at most one voter (add a voter,
//! promote a learner, remove a member; learners do not count), and a leader proposes a
//! change only when
//!
//! 1. an entry of its own term has committed (the no-op it appends on election), and
//! 2. no earlier change is uncommitted (at most one in flight).
//!
//! # Why this is safe
//!
//! *Overlap.* Two voter sets that differ by one member have overlapping majorities. Say
//! the old set has `n` voters and the new one `n + 1` (removal is the same read
//! backwards): a majority of the old set has `⌊n/2⌋ + 1` members, a majority of the new
//! one `⌊(n+1)/2⌋ + 1`; together that is `n + 2 > n + 1 = |old ∪ new|`, so any two such
//! majorities share a voter. Hence no two leaders win one term, and an entry committed
//! under one set is held by a voter of every majority of the next: Election Safety and
//! Leader Completeness carry over from the fixed-set proofs, as long as consecutive
//! configurations in any log differ by one voter.
//!
//! *One at a time.* Rule 2 makes every log hold a chain of configurations where each
//! differs from the previous one by at most one voter, and a change is only appended
//! once the previous one is committed — i.e. once a majority of the configuration that
//! previous change produced holds it, so any future leader has it too.
//!
//! *Own-term commit first* (the bug Diego Ongaro reported on raft-dev in 2015). Without
//! rule 1, a new leader may still hold an *uncommitted* change `C1` from an earlier term
//! in its log while another node holds a different uncommitted change `C1'` from yet
//! another leader. Rule 2 alone (judged on the new leader's log) lets it append `C2`
//! after `C1`; `C2` and `C1'` can then both differ from the committed `C0` by one voter
//! but from each other by two, so their majorities need not overlap and two leaders can
//! be elected in one term, each committing different entries. Committing an entry of
//! its own term first makes sure every earlier change in the leader's log is committed
//! (Log Matching), and that any competing uncommitted change `C1'` can never win
//! (§5.4.2): the chain property holds again. `sim/tests/it/membership.rs` replays that
//! scenario and fails when rule 1 is removed.
//!
//! # Learners and removed nodes
//!
//! Learners receive the log and snapshots but never campaign and are never counted in a
//! commit, vote or check-quorum majority. A removed voter that is still running stops
//! campaigning once it appends its own removal (the leader keeps replicating to it until
//! the removal commits, so it usually does); one that never learned of it is kept out by
//! pre-vote and the check-quorum lease: its peers hear from a live leader and ignore its
//! pre-votes, so its term never rises and no member's does. A removed id stays in
//! `removed` for good: it is never admitted again (its old data directory still claims it).
//!
//! Invariant: `voters`, `learners` and `removed` are pairwise disjoint; `addrs` only has
//! keys of members.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::types::{Index, NodeId};

/// A group's membership at one log position.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    /// Ids removed from the group; never admitted again.
    pub removed: BTreeSet<NodeId>,
    /// Each member's address as the application gave it (the server's peer address).
    /// Opaque to the core, which only carries it through the log and snapshots.
    pub addrs: BTreeMap<NodeId, String>,
}

/// One membership change, as proposed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChange {
    AddVoter { id: NodeId, addr: String },
    AddLearner { id: NodeId, addr: String },
    Promote { id: NodeId },
    Remove { id: NodeId },
}

impl ConfChange {
    pub fn id(&self) -> NodeId {
        match self {
            ConfChange::AddVoter { id, .. }
            | ConfChange::AddLearner { id, .. }
            | ConfChange::Promote { id }
            | ConfChange::Remove { id } => *id,
        }
    }
}

/// What a `ConfChange` entry carries: the change and the membership it produces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfChangeEntry {
    pub change: ConfChange,
    pub membership: Membership,
}

/// Format version of an encoded [`ConfChangeEntry`] or [`Membership`] (first byte).
const ENCODING_VERSION: u8 = 1;

impl ConfChangeEntry {
    pub fn encode(&self) -> Bytes {
        encode(self)
    }
    pub fn decode(b: &[u8]) -> Option<ConfChangeEntry> {
        decode(b)
    }
}

fn encode<T: Serialize>(v: &T) -> Bytes {
    let mut out = vec![ENCODING_VERSION];
    out.extend(postcard::to_stdvec(v).expect("membership values always encode"));
    Bytes::from(out)
}

fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Option<T> {
    match b.split_first() {
        Some((&ENCODING_VERSION, rest)) => postcard::from_bytes(rest).ok(),
        _ => None,
    }
}

impl Membership {
    /// A group whose members are all voters (bootstrap from a static member list).
    pub fn with_voters(ids: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: ids.into_iter().collect(),
            ..Membership::default()
        }
    }

    pub fn encode(&self) -> Bytes {
        encode(self)
    }
    pub fn decode(b: &[u8]) -> Option<Membership> {
        decode(b)
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }
    /// Voter or learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }
    /// Voters and learners, in id order.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.learners).copied().collect()
    }

    /// The membership `change` produces, or why it is refused.
    pub fn apply(&self, change: &ConfChange) -> Result<Membership, &'static str> {
        let mut next = self.clone();
        let id = change.id();
        if id == 0 {
            return Err("node id 0 is reserved");
        }
        if self.removed.contains(&id) {
            return Err("that id was removed from the group and cannot be reused");
        }
        match change {
            ConfChange::AddVoter { addr, .. } | ConfChange::AddLearner { addr, .. } => {
                if self.contains(id) {
                    return Err("already a member");
                }
                if matches!(change, ConfChange::AddVoter { .. }) {
                    next.voters.insert(id);
                } else {
                    next.learners.insert(id);
                }
                if !addr.is_empty() {
                    next.addrs.insert(id, addr.clone());
                }
            }
            ConfChange::Promote { .. } => {
                if !self.is_learner(id) {
                    return Err("not a learner");
                }
                next.learners.remove(&id);
                next.voters.insert(id);
            }
            ConfChange::Remove { .. } => {
                if !self.contains(id) {
                    return Err("not a member");
                }
                if self.voters.len() == 1 && self.is_voter(id) {
                    return Err("cannot remove the last voter");
                }
                next.voters.remove(&id);
                next.learners.remove(&id);
                next.addrs.remove(&id);
                next.removed.insert(id);
            }
        }
        Ok(next)
    }
}

/// The memberships a node's log holds, by the index of the entry (or snapshot) that set
/// each: the one in force at any position is the latest at or before it.
///
/// Invariant: non-empty; indexes strictly increase; `items[0]` is the base (the
/// snapshot's membership, or the bootstrap one at index 0 or at the snapshot index).
#[derive(Clone, Debug)]
pub(crate) struct ConfLog {
    items: Vec<(Index, Membership)>,
}

impl ConfLog {
    pub fn new(base_index: Index, base: Membership) -> ConfLog {
        ConfLog {
            items: vec![(base_index, base)],
        }
    }

    /// The membership in force (the latest in the log, committed or not).
    pub fn current(&self) -> &Membership {
        &self.items.last().expect("non-empty").1
    }

    /// Index of the entry that set the current membership.
    pub fn current_index(&self) -> Index {
        self.items.last().expect("non-empty").0
    }

    /// The membership in force at log position `index`.
    pub fn at(&self, index: Index) -> &Membership {
        let pos = self.items.partition_point(|(i, _)| *i <= index);
        &self.items[pos.saturating_sub(1)].1
    }

    /// A change appended at `index` (past everything held).
    pub fn push(&mut self, index: Index, m: Membership) {
        assert!(
            index > self.current_index(),
            "conf entry at {index} not after {}",
            self.current_index()
        );
        self.items.push((index, m));
    }

    /// A follower appended `entries` and its log now ends at `last_index`: memberships
    /// the append overwrote or truncated go, those it carries come in.
    pub fn on_append(
        &mut self,
        lo: Index,
        hi: Index,
        last_index: Index,
        added: Vec<(Index, Membership)>,
    ) {
        let base = self.items[0].0;
        self.items
            .retain(|(i, _)| *i == base || ((*i < lo || *i > hi) && *i <= last_index));
        for (i, m) in added {
            let pos = self.items.partition_point(|(j, _)| *j < i);
            self.items.insert(pos, (i, m));
        }
    }

    /// A snapshot at `index` replaced the log.
    pub fn restore(&mut self, index: Index, m: Membership) {
        self.items = vec![(index, m)];
    }

    /// The log before `index` is compacted: only the membership in force at `index` and
    /// later ones are needed.
    pub fn compact_to(&mut self, index: Index) {
        let pos = self.items.partition_point(|(i, _)| *i <= index);
        if pos > 1 {
            self.items.drain(..pos - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_refusals() {
        let m = Membership::with_voters([1, 2, 3]);
        let m = m
            .apply(&ConfChange::AddLearner {
                id: 4,
                addr: "h:4".into(),
            })
            .unwrap();
        assert!(m.is_learner(4) && !m.is_voter(4));
        assert_eq!(m.addrs[&4], "h:4");
        assert_eq!(
            m.apply(&ConfChange::AddVoter {
                id: 4,
                addr: String::new()
            }),
            Err("already a member")
        );
        let m = m.apply(&ConfChange::Promote { id: 4 }).unwrap();
        assert!(m.is_voter(4) && !m.is_learner(4));
        assert_eq!(
            m.apply(&ConfChange::Promote { id: 4 }),
            Err("not a learner")
        );
        let m = m.apply(&ConfChange::Remove { id: 4 }).unwrap();
        assert!(!m.contains(4) && m.removed.contains(&4) && !m.addrs.contains_key(&4));
        assert!(m
            .apply(&ConfChange::AddLearner {
                id: 4,
                addr: String::new()
            })
            .unwrap_err()
            .contains("cannot be reused"));
        let one = Membership::with_voters([1]);
        assert_eq!(
            one.apply(&ConfChange::Remove { id: 1 }),
            Err("cannot remove the last voter")
        );
    }

    #[test]
    fn encoding_round_trips_and_rejects_unknown_versions() {
        let e = ConfChangeEntry {
            change: ConfChange::AddVoter {
                id: 9,
                addr: "127.0.0.1:9".into(),
            },
            membership: Membership::with_voters([1, 9]),
        };
        let b = e.encode();
        assert_eq!(ConfChangeEntry::decode(&b), Some(e));
        let mut bad = b.to_vec();
        bad[0] = 99;
        assert_eq!(ConfChangeEntry::decode(&bad), None);
        assert_eq!(ConfChangeEntry::decode(&[]), None);
    }

    #[test]
    fn conf_log_tracks_appends_truncations_and_compaction() {
        let v = |ids: &[u64]| Membership::with_voters(ids.iter().copied());
        let mut log = ConfLog::new(0, v(&[1, 2, 3]));
        log.push(5, v(&[1, 2, 3, 4]));
        assert_eq!(log.at(4), &v(&[1, 2, 3]));
        assert_eq!(log.at(5), &v(&[1, 2, 3, 4]));
        // A new leader overwrote from 4 on with entries up to 6, one of them a change at 6.
        log.on_append(4, 6, 6, vec![(6, v(&[1, 2]))]);
        assert_eq!(log.current(), &v(&[1, 2]));
        assert_eq!(log.at(5), &v(&[1, 2, 3]));
        // A matching re-append of 2..=3 leaves the later change alone.
        log.on_append(2, 3, 6, vec![]);
        assert_eq!(log.current_index(), 6);
        log.compact_to(7);
        assert_eq!(log.at(0), &v(&[1, 2]));
        log.restore(10, v(&[7]));
        assert_eq!(log.current(), &v(&[7]));
    }
}
