//! Scenarios of the classic Raft lab, part 2D (log compaction), generic over the store:
//! the applier snapshots its state every `SNAPSHOT_INTERVAL` entries and compacts the
//! log; lagging followers are caught up with chunked InstallSnapshot.

use super::*;
use rand::Rng;
use sim::store::SimStore;
use sim::Cluster;

/// Largest persisted Raft state allowed while snapshotting (the lab's MAXLOGSIZE).
const MAX_LOG_SIZE: u64 = 2000;

pub fn snapcommon<S: SimStore>(mut c: Cluster<S>, disconnect: bool, crash: bool) {
    let iters = 30;
    let servers = 3u64;
    let x = rand_cmd(&mut c);
    c.one(x, 3, true);
    let mut leader1 = c.check_one_leader();
    let installs_before = c.total_messages();
    for i in 0..iters {
        let (mut victim, mut sender) = (nth(leader1, 1, servers), leader1);
        if i % 3 == 1 {
            sender = nth(leader1, 1, servers);
            victim = leader1;
        }
        if disconnect {
            c.disconnect(victim);
            let x = rand_cmd(&mut c);
            c.one(x, 2, true);
        }
        if crash {
            c.crash(victim);
            let x = rand_cmd(&mut c);
            c.one(x, 2, true);
        }
        // Perhaps send enough to get a snapshot.
        let nn = SNAPSHOT_INTERVAL / 2 + c.rng.gen_range(0..SNAPSHOT_INTERVAL);
        for _ in 0..nn {
            let x = rand_cmd(&mut c);
            c.start_cmd(sender, x);
        }
        // Let the appliers catch up with the Starts.
        let x = rand_cmd(&mut c);
        if !disconnect && !crash {
            // All followers caught up, so no InstallSnapshot is needed for snapshot_basic.
            c.one(x, 3, true);
        } else {
            c.one(x, 2, true);
        }
        let size = c.max_raft_state_size();
        assert!(size < MAX_LOG_SIZE, "log size too large: {size} bytes");
        if disconnect {
            // The victim may need InstallSnapshot.
            c.connect(victim);
            let x = rand_cmd(&mut c);
            c.one(x, 3, true);
            leader1 = c.check_one_leader();
        }
        if crash {
            c.start(victim);
            c.connect(victim);
            let x = rand_cmd(&mut c);
            c.one(x, 3, true);
            leader1 = c.check_one_leader();
        }
    }
    for id in 1..=3 {
        assert!(c.snapshot_index(id) > 0, "server {id} never snapshotted");
    }
    let _ = installs_before;
    if disconnect || crash {
        let chunks = c.sent_by_kind.get("Snapshot").copied().unwrap_or(0);
        assert!(chunks > 0, "a lagging follower was never sent a snapshot");
    }
    c.end();
}

/// Do servers crash after a snapshot, and restart with an intact log and snapshot?
pub fn snapshot_all_crash_2d<S: SimStore>(mut c: Cluster<S>) {
    let x = rand_cmd(&mut c);
    c.one(x, 3, true);
    for _ in 0..5 {
        let nn = SNAPSHOT_INTERVAL / 2 + c.rng.gen_range(0..SNAPSHOT_INTERVAL);
        for _ in 0..nn {
            let x = rand_cmd(&mut c);
            c.one(x, 3, true);
        }
        let x = rand_cmd(&mut c);
        let index1 = c.one(x, 3, true);
        for i in 1..=3 {
            c.crash(i);
        }
        for i in 1..=3 {
            c.start(i);
            c.connect(i);
        }
        let x = rand_cmd(&mut c);
        let index2 = c.one(x, 3, true);
        assert!(index2 > index1, "index decreased from {index1} to {index2}");
    }
    c.end();
}

/// Do servers correctly initialize their in-memory state from a snapshot on restart?
pub fn snapshot_init_2d<S: SimStore>(mut c: Cluster<S>) {
    let x = rand_cmd(&mut c);
    c.one(x, 3, true);
    // Enough ops to make a snapshot.
    for _ in 0..SNAPSHOT_INTERVAL + 1 {
        let x = rand_cmd(&mut c);
        c.one(x, 3, true);
    }
    c.crash_and_restart_all();
    // A single op, to get something written back to persistent storage.
    let x = rand_cmd(&mut c);
    c.one(x, 3, true);
    c.crash_and_restart_all();
    // Another op to trigger a potential bug.
    let x = rand_cmd(&mut c);
    c.one(x, 3, true);
    c.end();
}
