//! Merging a message into the one queued before it for the same peer, so a Ready
//! carries one Append per follower and one acknowledgement per leader where it
//! would otherwise carry several (each is a frame, a send and a wake-up on both
//! sides). A leader that steps a follower's ack among new proposals sends that
//! follower an Append at once and another at the Ready; a follower that steps
//! several Appends in one batch answers each.
//!
//! Only two kinds merge, and only when the second directly follows the first among
//! the queued messages to that peer (the transport keeps each peer's messages in
//! order, so nothing the peer sees moves past anything else):
//! - an Append whose `prev` is the previous Append's last entry, same term, both
//!   within `max_append_bytes` together: one Append with both runs of entries and
//!   the later commit index, exactly what one `send_append` would have sent (the
//!   follower answers it once, and that ack covers both inflight slots);
//! - two successful AppendResponses of the same term: one with the larger index.
//!   Safety: a success at `index` attests that this node's log matches the
//!   leader's through `index`, durably (it is sent after the persist), so the
//!   larger one attests everything the smaller did (Log Matching, §5.3); the
//!   leader's handling of acks is cumulative (`Progress::maybe_update`).
//!
//! Rejections, heartbeats and everything else are never merged.

use crate::message::{Message, MessageBody};
use crate::types::Entry;

/// Pushes `m` onto `queue`, merged into the last message there for the same peer
/// when the rules above allow; `max_append_bytes` bounds a merged Append.
pub(crate) fn push(queue: &mut Vec<Message>, m: Message, max_append_bytes: u64) {
    if let Some(last) = queue.iter_mut().rev().find(|q| q.to == m.to) {
        if last.term == m.term && merge(&mut last.body, &m.body, max_append_bytes) {
            if let (
                MessageBody::Append { entries, .. },
                MessageBody::Append { entries: more, .. },
            ) = (&mut last.body, m.body)
            {
                entries.extend(more);
            }
            return;
        }
    }
    queue.push(m);
}

/// Merges `next` into `prev` if allowed; for Appends only the commit is taken here,
/// the caller moves the entries (so they are not cloned).
fn merge(prev: &mut MessageBody, next: &MessageBody, max_append_bytes: u64) -> bool {
    match (prev, next) {
        (
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
            MessageBody::Append {
                prev_index: next_prev,
                prev_term: next_prev_term,
                entries: more,
                commit: next_commit,
            },
        ) => {
            let (last_index, last_term) = entries
                .last()
                .map_or((*prev_index, *prev_term), |e| (e.index, e.term));
            if more.is_empty()
                || *next_prev != last_index
                || *next_prev_term != last_term
                || bytes(entries) + bytes(more) > max_append_bytes
            {
                return false;
            }
            *commit = (*commit).max(*next_commit);
            true
        }
        (
            MessageBody::AppendResponse {
                reject: false,
                index,
                ..
            },
            MessageBody::AppendResponse {
                reject: false,
                index: next_index,
                ..
            },
        ) => {
            *index = (*index).max(*next_index);
            true
        }
        _ => false,
    }
}

fn bytes(entries: &[Entry]) -> u64 {
    entries.iter().map(Entry::size_bytes).sum()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::message::RejectHint;

    fn msg(to: u64, term: u64, body: MessageBody) -> Message {
        Message {
            from: 1,
            to,
            term,
            body,
        }
    }

    fn append(prev: u64, last: u64, commit: u64) -> MessageBody {
        MessageBody::Append {
            prev_index: prev,
            prev_term: 1,
            entries: (prev + 1..=last)
                .map(|i| Entry::normal(1, i, Bytes::from_static(b"0123456789")))
                .collect(),
            commit,
        }
    }

    fn ack(index: u64) -> MessageBody {
        MessageBody::AppendResponse {
            reject: false,
            index,
            hint: None,
        }
    }

    #[test]
    fn contiguous_appends_to_one_peer_merge() {
        let mut q = Vec::new();
        push(&mut q, msg(2, 1, append(3, 5, 3)), 1 << 20);
        push(&mut q, msg(3, 1, append(3, 5, 3)), 1 << 20);
        push(&mut q, msg(2, 1, append(5, 7, 4)), 1 << 20);
        assert_eq!(q.len(), 2);
        assert_eq!(q[0], msg(2, 1, append(3, 7, 4)));
        assert_eq!(q[1], msg(3, 1, append(3, 5, 3)));
    }

    #[test]
    fn appends_that_do_not_continue_or_are_too_large_stay_apart() {
        let mut q = Vec::new();
        push(&mut q, msg(2, 1, append(3, 5, 3)), 1 << 20);
        push(&mut q, msg(2, 1, append(6, 7, 3)), 1 << 20); // a gap
        push(&mut q, msg(2, 2, append(7, 8, 3)), 1 << 20); // another term
        assert_eq!(q.len(), 3);
        let mut q = Vec::new();
        push(&mut q, msg(2, 1, append(3, 5, 3)), 100);
        push(&mut q, msg(2, 1, append(5, 7, 3)), 100); // 4 x 34 bytes > 100
        assert_eq!(q.len(), 2);
        // A heartbeat in between keeps its place: nothing merges across it.
        let mut q = Vec::new();
        push(&mut q, msg(2, 1, append(3, 5, 3)), 1 << 20);
        let hb = MessageBody::Heartbeat {
            commit: 3,
            read_round: 0,
        };
        push(&mut q, msg(2, 1, hb), 1 << 20);
        push(&mut q, msg(2, 1, append(5, 7, 3)), 1 << 20);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn successful_acks_merge_to_the_largest_rejections_never() {
        let mut q = Vec::new();
        push(&mut q, msg(1, 1, ack(5)), 0);
        push(&mut q, msg(1, 1, ack(9)), 0);
        push(&mut q, msg(1, 1, ack(7)), 0); // a stale retransmission's ack
        assert_eq!(q, vec![msg(1, 1, ack(9))]);
        let reject = MessageBody::AppendResponse {
            reject: true,
            index: 9,
            hint: Some(RejectHint {
                conflict_term: None,
                conflict_index: 8,
            }),
        };
        push(&mut q, msg(1, 1, reject.clone()), 0);
        push(&mut q, msg(1, 1, ack(10)), 0);
        push(&mut q, msg(1, 2, ack(11)), 0); // a new term
        assert_eq!(
            q,
            vec![
                msg(1, 1, ack(9)),
                msg(1, 1, reject),
                msg(1, 1, ack(10)),
                msg(1, 2, ack(11))
            ]
        );
    }
}
