//! The segment removal thread: deletes the WAL segments a durable snapshot covers
//! (`storage::SegmentRemoval`, taken from the store after each drive with
//! `DiskStorage::take_segment_removal`), so the Raft thread never waits for the unlink
//! of a 64 MiB file (100-150 ms each on a shared disk). Jobs run one at a time, in the
//! order they were taken (oldest segments first). Success needs no answer (the store
//! stopped reading those files when it detached them); a failure is kept for the
//! driver, which checks after every drive ([`RemovalThread::failed`]) and stops the
//! node, as after any failed storage I/O. Kept beside the channel, not sent through
//! it, so the thread never blocks on a full input queue.
//!
//! Its own thread, not the WAL sync thread's: a leader's next fsync must not queue
//! behind an unlink.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

enum Job {
    /// A removal taken from the replica of this epoch.
    Remove(u64, storage::SegmentRemoval),
    /// Answered once every job queued before it has run.
    Drain(Sender<()>),
}

/// The first failure, with the epoch of the replica whose removal it was.
type Failure = Arc<Mutex<Option<(u64, raft::StorageError)>>>;

pub(super) struct RemovalThread {
    jobs: Sender<Job>,
    failed: Failure,
}

impl RemovalThread {
    pub(super) fn start() -> RemovalThread {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let failed = Failure::default();
        let failure = failed.clone();
        std::thread::Builder::new()
            .name("raft-remove".into())
            .spawn(move || {
                // Ends when the driver drops `jobs` (it has stopped).
                for job in rx {
                    match job {
                        Job::Remove(epoch, removal) => {
                            if let Err(e) = removal.run() {
                                let mut f = failure.lock().expect("removal failure lock");
                                f.get_or_insert((epoch, e));
                            }
                        }
                        Job::Drain(done) => drop(done.send(())),
                    }
                }
            })
            .expect("spawn segment removal thread");
        RemovalThread { jobs, failed }
    }

    /// Queues `removal` (taken from the replica of `epoch`); false if the thread is gone.
    pub(super) fn send(&self, epoch: u64, removal: storage::SegmentRemoval) -> bool {
        self.jobs.send(Job::Remove(epoch, removal)).is_ok()
    }

    /// A removal for the replica of `epoch` that failed, if any.
    pub(super) fn failed(&self, epoch: u64) -> Option<raft::StorageError> {
        let mut f = self.failed.lock().expect("removal failure lock");
        match f.take() {
            Some((e, error)) if e == epoch => Some(error),
            _ => None, // none, or one of a replica since dropped
        }
    }

    /// Blocks until every removal queued so far has run: before the driver reopens
    /// the data directory (recovery must not list a file this thread then deletes).
    pub(super) fn drain(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.jobs.send(Job::Drain(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}
