//! The messages Raft nodes exchange: a typed enum, one variant per RPC and reply.
//!
//! Every message carries the sender's term. The receiver first reconciles terms
//! (Figure 2, "Rules for all servers") and only then looks at the body, so a stale
//! or malformed message is dropped or rejected, never trusted.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::membership::Membership;
use crate::types::{Entry, Index, NodeId, SnapshotMeta, Term, MAX_INDEX, MAX_TERM};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    /// Sender's term. For `PreVote` it is the term the sender *would* campaign in.
    pub term: Term,
    pub body: MessageBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Pre-vote (dissertation §9.6): "would you vote for me?" without bumping anyone's term.
    PreVote {
        last_index: Index,
        last_term: Term,
    },
    PreVoteResponse {
        reject: bool,
    },
    /// RequestVote RPC (Figure 2). `transfer`: the candidate campaigns because the
    /// leader handed over (TimeoutNow), so voters grant it even while they hear from that
    /// leader (dissertation §3.10: the check-quorum lease must not block a hand-off).
    Vote {
        last_index: Index,
        last_term: Term,
        transfer: bool,
    },
    VoteResponse {
        reject: bool,
    },
    /// AppendEntries RPC (Figure 2).
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    },
    /// Reply to `Append`. On success `index` is the follower's new match index.
    /// On rejection `index` is the rejected `prev_index` and `hint` tells the leader where
    /// to retry so it backs up one term per round trip, not one entry.
    AppendResponse {
        reject: bool,
        index: Index,
        hint: Option<RejectHint>,
    },
    /// Heartbeat: asserts leadership, carries the commit index (capped at the follower's
    /// match) and the ReadIndex round being confirmed (0 = none).
    Heartbeat {
        commit: Index,
        read_round: u64,
    },
    HeartbeatResponse {
        read_round: u64,
    },
    /// InstallSnapshot RPC, one chunk of it. `offset` is the byte offset of `data` in
    /// the snapshot; `done` marks the last chunk.
    Snapshot {
        meta: SnapshotMeta,
        /// The membership in force at `meta.index` (installed with the snapshot). Boxed:
        /// it is rare and would otherwise make every message larger.
        conf: Option<Box<Membership>>,
        offset: u64,
        data: Bytes,
        done: bool,
    },
    /// Acknowledges snapshot chunks: the follower holds `received` bytes of snapshot `index`.
    SnapshotResponse {
        index: Index,
        received: u64,
    },
    /// A follower forwards a linearizable read to the leader.
    ReadIndex {
        ctx: u64,
    },
    /// Leadership transfer (dissertation §3.10): the leader tells an up-to-date voter to
    /// campaign now, without waiting for its election timeout or a pre-vote round.
    TimeoutNow,
    /// The leader's answer: the read may be served once `index` is applied.
    /// `index == None` means the leader could not serve it (not leader any more).
    ReadIndexResponse {
        ctx: u64,
        index: Option<Index>,
    },
}

/// Fast-backtracking hint (the "accelerated log backtracking" of §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectHint {
    /// Term of the follower's entry at the rejected `prev_index`, if it has one.
    pub conflict_term: Option<Term>,
    /// First index of `conflict_term` in the follower's log, or the follower's
    /// `last_index + 1` when its log is too short.
    pub conflict_index: Index,
}

impl MessageBody {
    /// Short name for traces and per-kind counters.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
            MessageBody::Vote { .. } => "Vote",
            MessageBody::VoteResponse { .. } => "VoteResponse",
            MessageBody::Append { .. } => "Append",
            MessageBody::AppendResponse { .. } => "AppendResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::Snapshot { .. } => "Snapshot",
            MessageBody::SnapshotResponse { .. } => "SnapshotResponse",
            MessageBody::ReadIndex { .. } => "ReadIndex",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResponse",
            MessageBody::TimeoutNow => "TimeoutNow",
        }
    }
}

impl Message {
    /// Checks that no term, index or offset in the message is impossible
    /// (beyond [`MAX_TERM`] / [`MAX_INDEX`]); `Err` names the field.
    /// `Raft::step` drops a message that fails, before its term is looked at.
    pub fn check_bounds(&self) -> std::result::Result<(), &'static str> {
        let term_ok = |t: Term| t <= MAX_TERM;
        let index_ok = |i: Index| i <= MAX_INDEX;
        if !term_ok(self.term) {
            return Err("term");
        }
        let ok = match &self.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            }
            | MessageBody::Vote {
                last_index,
                last_term,
                ..
            } => index_ok(*last_index) && term_ok(*last_term),
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                index_ok(*prev_index)
                    && term_ok(*prev_term)
                    && index_ok(*commit)
                    && index_ok(prev_index.saturating_add(entries.len() as u64))
                    && entries.iter().all(|e| index_ok(e.index) && term_ok(e.term))
            }
            MessageBody::AppendResponse { index, hint, .. } => {
                index_ok(*index)
                    && hint.is_none_or(|h| {
                        index_ok(h.conflict_index) && h.conflict_term.is_none_or(term_ok)
                    })
            }
            MessageBody::Heartbeat { commit, .. } => index_ok(*commit),
            MessageBody::Snapshot {
                meta, offset, data, ..
            } => {
                index_ok(meta.index)
                    && term_ok(meta.term)
                    && index_ok(offset.saturating_add(data.len() as u64))
            }
            MessageBody::SnapshotResponse { index, received } => {
                index_ok(*index) && index_ok(*received)
            }
            MessageBody::ReadIndexResponse { index, .. } => index.is_none_or(index_ok),
            MessageBody::PreVoteResponse { .. }
            | MessageBody::VoteResponse { .. }
            | MessageBody::HeartbeatResponse { .. }
            | MessageBody::ReadIndex { .. }
            | MessageBody::TimeoutNow => true,
        };
        if ok {
            Ok(())
        } else {
            Err(self.body.kind())
        }
    }

    /// Approximate wire size in bytes (used by the simulator's byte counters).
    pub fn size_bytes(&self) -> u64 {
        const HEADER: u64 = 32;
        HEADER
            + match &self.body {
                MessageBody::Append { entries, .. } => {
                    24 + entries.iter().map(Entry::size_bytes).sum::<u64>()
                }
                MessageBody::Snapshot { data, .. } => 32 + data.len() as u64,
                _ => 16,
            }
    }

    /// A one-line, stable description for traces and golden tests.
    pub fn describe(&self) -> String {
        let body = match &self.body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => format!(
                "Append prev={prev_index}/{prev_term} entries={} commit={commit}",
                entries.len()
            ),
            MessageBody::AppendResponse {
                reject,
                index,
                hint,
            } => {
                format!("AppendResponse reject={reject} index={index} hint={hint:?}")
            }
            // Written out so transcripts of ordinary elections read as before.
            MessageBody::Vote {
                last_index,
                last_term,
                transfer,
            } => format!(
                "Vote {{ last_index: {last_index}, last_term: {last_term} }}{}",
                if *transfer { " (transfer)" } else { "" }
            ),
            MessageBody::Snapshot {
                meta,
                conf,
                offset,
                data,
                done,
            } => format!(
                "Snapshot at={}/{} voters={:?} learners={:?} offset={offset} len={} done={done}",
                meta.index,
                meta.term,
                conf.as_ref().map(|c| &c.voters),
                conf.as_ref().map(|c| &c.learners),
                data.len()
            ),
            other => format!("{other:?}"),
        };
        format!("{}->{} t{} {}", self.from, self.to, self.term, body)
    }
}
