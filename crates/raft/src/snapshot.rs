//! InstallSnapshot (§7), streamed in chunks of `snapshot_chunk_bytes`.
//!
//! Leader: a follower whose next entry was compacted moves to `Snapshot` state and is
//! sent the latest snapshot chunk by chunk, stop-and-wait: each chunk is acknowledged
//! with the byte count the follower holds, and an unacknowledged chunk is resent at the
//! next heartbeat. Follower: chunks are accepted only in order and handed to the driver
//! (`Ready::snapshot_chunks`), which writes them to storage; each is acknowledged once
//! written. The core holds none of the bytes, only their count. When the last one is
//! persisted (`RawNode::advance`), the snapshot is read back from storage
//! (`Storage::received_snapshot`, a view, not a copy, where the store can), checked by
//! the driver if it asked to (`Config::check_received_snapshots`), and then it
//! replaces the log (it is persisted and handed to the application through the next
//! `Ready`) and the follower answers like a successful Append.

use bytes::Bytes;

use crate::membership::Membership;
use crate::message::MessageBody;
use crate::progress::ProgressState;
use crate::raft::{IncomingSnapshot, Raft};
use crate::storage::Storage;
use crate::types::{Index, NodeId, Snapshot, SnapshotChunk, SnapshotMeta};

impl<S: Storage> Raft<S> {
    pub(crate) fn start_snapshot(&mut self, to: NodeId) {
        let Ok(snapshot) = self.log.snapshot() else {
            return;
        };
        if snapshot.is_empty() {
            return; // nothing compacted yet: cannot happen when entries are missing
        }
        let pr = self.progress.get_mut(&to).expect("progress");
        pr.become_snapshot(snapshot.meta, snapshot.conf, snapshot.data);
        self.send_snapshot_chunk(to);
    }

    fn send_snapshot_chunk(&mut self, to: NodeId) {
        let chunk_bytes = self.cfg.snapshot_chunk_bytes;
        let Some(send) = self.progress.get(&to).and_then(|p| p.snapshot.as_ref()) else {
            return;
        };
        let len = send.data.len() as u64;
        let offset = send.acked_bytes.min(len);
        let end = (offset + chunk_bytes).min(len);
        let data: Bytes = send.data.slice(offset as usize..end as usize);
        let body = MessageBody::Snapshot {
            meta: send.meta,
            conf: send.conf.clone().map(Box::new),
            offset,
            data,
            done: end == len,
        };
        self.send(to, self.term, body);
    }

    pub(crate) fn handle_snapshot_ack(&mut self, from: NodeId, index: Index, received: u64) {
        let pr = self.progress.get_mut(&from).expect("progress");
        let Some(send) = pr.snapshot.as_mut() else {
            return;
        };
        if pr.state != ProgressState::Snapshot || send.meta.index != index {
            return;
        }
        if received > send.acked_bytes && received <= send.data.len() as u64 {
            send.acked_bytes = received;
            send.acked_recently = true;
            if received < send.data.len() as u64 {
                self.send_snapshot_chunk(from);
            }
        } else if received < send.acked_bytes {
            // The follower lost its partial copy (restart): start over from its position.
            send.acked_bytes = received;
            send.acked_recently = true;
            self.send_snapshot_chunk(from);
        }
    }

    /// At each heartbeat, resend the current chunk to followers that acknowledged nothing
    /// since the previous one (the chunk or its acknowledgement was lost).
    pub(crate) fn resend_stalled_snapshots(&mut self) {
        let stalled: Vec<NodeId> = self
            .progress
            .iter_mut()
            .filter_map(|(&id, pr)| {
                let send = pr.snapshot.as_mut()?;
                let stalled = !send.acked_recently;
                send.acked_recently = false;
                stalled.then_some(id)
            })
            .collect();
        for id in stalled {
            self.send_snapshot_chunk(id);
        }
    }

    pub(crate) fn handle_snapshot_chunk(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        conf: Option<Box<Membership>>,
        offset: u64,
        data: Bytes,
        done: bool,
    ) {
        if meta.index <= self.log.committed() {
            // We already have everything it covers.
            self.incoming_snapshot = None;
            let index = self.log.committed();
            let body = MessageBody::AppendResponse {
                reject: false,
                index,
                hint: None,
            };
            return self.send(from, self.term, body);
        }
        if offset == 0 {
            self.incoming_snapshot = Some(IncomingSnapshot {
                meta,
                from,
                conf: None,
                received: 0,
                complete: false,
            });
        }
        let (received, completed_now) = match self.incoming_snapshot.as_mut() {
            Some(inc) if inc.meta == meta && inc.received == offset && !inc.complete => {
                inc.received += data.len() as u64;
                let received = inc.received;
                self.snapshot_chunks
                    .push(SnapshotChunk { meta, offset, data });
                if done {
                    inc.from = from;
                    inc.conf = conf.map(|c| *c);
                    inc.complete = true;
                }
                (received, done)
            }
            Some(inc) if inc.meta == meta => (inc.received, false),
            _ => (0, false),
        };
        if completed_now {
            // Answered once the last chunk is persisted and the snapshot checked
            // (`finish_incoming_snapshot`).
            return;
        }
        self.send(
            from,
            self.term,
            MessageBody::SnapshotResponse {
                index: meta.index,
                received,
            },
        );
    }

    /// Called once the last chunk of the incoming snapshot is persisted: installs it at
    /// once, unless the driver checks received snapshots (`Config::check_received_snapshots`:
    /// then it waits for `accept_received_snapshot` / `refuse_received_snapshot`).
    pub(crate) fn finish_incoming_snapshot(&mut self) {
        if self.cfg.check_received_snapshots {
            return;
        }
        if let Some((meta, data)) = self.read_received_snapshot() {
            self.accept_received_snapshot(meta, data);
        }
    }

    /// The incoming snapshot, complete and persisted, read back from storage (`None`
    /// if there is none; a failed read drops it as refused).
    pub(crate) fn read_received_snapshot(&mut self) -> Option<(SnapshotMeta, Bytes)> {
        let inc = self.incoming_snapshot.as_ref()?;
        if !inc.complete || !self.snapshot_chunks.is_empty() {
            return None;
        }
        let (meta, len) = (inc.meta, inc.received);
        match self.log.storage.received_snapshot(meta, len) {
            Ok(data) => Some((meta, data)),
            Err(e) => {
                self.refuse_received_snapshot(meta, format!("reading it back from storage: {e}"));
                None
            }
        }
    }

    /// Installs the complete incoming snapshot `meta` with `data` (its bytes, as read back
    /// from storage). Ignored if that is not the snapshot being received.
    pub(crate) fn accept_received_snapshot(&mut self, meta: SnapshotMeta, data: Bytes) {
        let Some(inc) = self
            .incoming_snapshot
            .take_if(|inc| inc.complete && inc.meta == meta)
        else {
            return;
        };
        let snapshot = Snapshot {
            meta,
            conf: inc.conf,
            data,
        };
        self.install_snapshot(inc.from, snapshot);
    }

    /// Drops the complete incoming snapshot `meta` whole: nothing adopted, nothing to
    /// persist, no ack (the leader resends once the transfer looks stalled).
    pub(crate) fn refuse_received_snapshot(&mut self, meta: SnapshotMeta, why: String) {
        let Some(inc) = self
            .incoming_snapshot
            .take_if(|inc| inc.complete && inc.meta == meta)
        else {
            return;
        };
        self.rejected_snapshots += 1;
        self.last_snapshot_rejection = Some(format!(
            "snapshot at index {} (term {}) from node {}: {why}",
            meta.index, meta.term, inc.from
        ));
    }

    fn install_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let meta = snapshot.meta;
        if self.log.match_term(meta.index, meta.term) {
            // Our log already has the snapshot's last entry: just commit up to it (§7).
            self.log.commit_to(meta.index);
        } else {
            // The snapshot replaces the log, and its membership every one the log held.
            // A snapshot without one (from before memberships were recorded) keeps ours.
            let conf = snapshot
                .conf
                .clone()
                .unwrap_or_else(|| self.conf.current().clone());
            self.conf.restore(meta.index, conf);
            self.log.restore(snapshot);
        }
        let body = MessageBody::AppendResponse {
            reject: false,
            index: meta.index,
            hint: None,
        };
        self.send(from, self.term, body);
    }
}
