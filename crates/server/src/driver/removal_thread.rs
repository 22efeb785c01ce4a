//! The segment removal thread: deletes the WAL segments a durable snapshot covers
//! (`storage::SegmentRemoval`, taken from a store after each drive with
//! `DiskStorage::take_segment_removal`), so the Raft thread never waits for the unlink
//! of a 64 MiB file (100-150 ms each on a shared disk). One per process, used by both
//! drivers: the single-group driver (its one store) and the sharded driver
//! (`crate::shard::driver`: every hosted group's store). Jobs run one at a time, in the
//! order they were taken (oldest segments of each store first). Each job carries its
//! store's tag (the single-group driver's replica epoch, the sharded driver's store
//! ticket), so a failure names its store. Success needs no answer (the store stopped
//! reading those files when it detached them); a failure is kept for the driver,
//! which checks after every drive ([`RemovalThread::failed`],
//! [`RemovalThread::take_failed`]) and stops the node, as after any failed storage
//! I/O. Kept beside the channel, not sent through it, so the thread never blocks on a
//! full input queue.
//!
//! Safety rule (no segment vanishes under a recovery): a driver that reopens a data
//! directory whose store handed jobs here first waits for them ([`RemovalThread::drain`]),
//! and so does a driver before it exits.
//!
//! Its own thread, not the WAL sync thread's: a leader's next fsync must not queue
//! behind an unlink.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

enum Job {
    /// A removal taken from the store with this tag.
    Remove(u64, storage::SegmentRemoval),
    /// Answered once every job queued before it has run.
    Drain(Sender<()>),
}

/// The first failure, with the tag of the store whose removal it was.
type Failure = Arc<Mutex<Option<(u64, raft::StorageError)>>>;

pub(crate) struct RemovalThread {
    jobs: Sender<Job>,
    failed: Failure,
}

impl RemovalThread {
    pub(crate) fn start() -> RemovalThread {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let failed = Failure::default();
        let failure = failed.clone();
        std::thread::Builder::new()
            .name("raft-remove".into())
            .spawn(move || {
                // Ends when the driver drops `jobs` (it has stopped).
                for job in rx {
                    match job {
                        Job::Remove(tag, removal) => {
                            if let Err(e) = removal.run() {
                                let mut f = failure.lock().expect("removal failure lock");
                                f.get_or_insert((tag, e));
                            }
                        }
                        Job::Drain(done) => drop(done.send(())),
                    }
                }
            })
            .expect("spawn segment removal thread");
        RemovalThread { jobs, failed }
    }

    /// Queues `removal` (taken from the store tagged `tag`: for the single-group
    /// driver, the replica's epoch); false if the thread is gone.
    pub(crate) fn send(&self, tag: u64, removal: storage::SegmentRemoval) -> bool {
        self.jobs.send(Job::Remove(tag, removal)).is_ok()
    }

    /// A removal for the replica of `epoch` that failed, if any (single-group driver:
    /// one store at a time, so a failure of another epoch's is of a store since dropped).
    pub(crate) fn failed(&self, epoch: u64) -> Option<raft::StorageError> {
        match self.take_failed() {
            Some((e, error)) if e == epoch => Some(error),
            _ => None, // none, or one of a replica since dropped
        }
    }

    /// The first removal that failed since the last call, with its store's tag: for a
    /// driver of many stores, which tells whether the store is still hosted.
    pub(crate) fn take_failed(&self) -> Option<(u64, raft::StorageError)> {
        self.failed.lock().expect("removal failure lock").take()
    }

    /// Blocks until every removal queued so far has run: before the driver reopens
    /// a data directory (recovery must not list a file this thread then deletes).
    pub(crate) fn drain(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.jobs.send(Job::Drain(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}
