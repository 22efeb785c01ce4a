//! The leader's WAL sync thread: runs each `storage::SyncJob` the driver
//! hands it, one at a time, and sends its result back to the driver as
//! [`Input::Synced`] (the driver's module docs say why the leader syncs here).

use std::sync::Arc;

use tokio::sync::mpsc::Sender;

use super::Input;

/// One job for the sync thread, with the sender its result goes back on (lent
/// for the job's duration only: see `DriverHandle::tx`).
struct Job {
    req: replica::SyncRequest,
    epoch: u64,
    job: storage::SyncJob,
    reply: Arc<Sender<Input>>,
}

/// The thread that runs the leader's WAL syncs (module docs). Jobs go in over
/// a channel; each result comes back to the driver as [`Input::Synced`].
pub(super) struct SyncThread {
    jobs: std::sync::mpsc::Sender<Job>,
    /// The handles' sender; upgraded per job.
    inputs: std::sync::Weak<Sender<Input>>,
}

impl SyncThread {
    pub(super) fn start(inputs: std::sync::Weak<Sender<Input>>) -> SyncThread {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("raft-sync".into())
            .spawn(move || {
                // Ends when the driver drops `jobs` (it has stopped).
                for Job {
                    req,
                    epoch,
                    job,
                    reply,
                } in rx
                {
                    let result = job.run();
                    // Blocking send: the driver must see every result (a lost one
                    // would leave the leader never counting itself again).
                    let _ = reply.blocking_send(Input::Synced { req, epoch, result });
                }
            })
            .expect("spawn sync thread");
        SyncThread { jobs, inputs }
    }

    /// Queues `job`; false if it cannot run (every handle is gone: the driver
    /// is stopping, or the thread died).
    pub(super) fn send(
        &self,
        req: replica::SyncRequest,
        epoch: u64,
        job: storage::SyncJob,
    ) -> bool {
        let Some(reply) = self.inputs.upgrade() else {
            return false;
        };
        self.jobs
            .send(Job {
                req,
                epoch,
                job,
                reply,
            })
            .is_ok()
    }
}
