//! Scenarios of the classic Raft lab, part 2C (persistence), generic over the store so
//! they run on both the in-memory and the disk store. Same setup and checks as the lab,
//! in virtual time. "Crash" keeps exactly what the node fsync'd; everything volatile is
//! rebuilt on restart.

use std::collections::BTreeMap;

use super::*;
use bytes::Bytes;
use rand::Rng;
use sim::store::SimStore;
use sim::{cmd, Cluster, MS};

pub fn persist1_2c<S: SimStore>(mut c: Cluster<S>) {
    let n = 3;
    c.one(cmd(11), n, true);
    // Crash and restart all.
    for i in 1..=3 {
        c.restart(i);
    }
    for i in 1..=3 {
        c.disconnect(i);
        c.connect(i);
    }
    c.one(cmd(12), n, true);
    let leader1 = c.check_one_leader();
    c.disconnect(leader1);
    c.restart(leader1);
    c.connect(leader1);
    c.one(cmd(13), n, true);
    let leader2 = c.check_one_leader();
    c.disconnect(leader2);
    let index14 = c.one(cmd(14), n - 1, true);
    c.restart(leader2);
    c.connect(leader2);
    c.wait(index14, n, None); // wait for leader2 to join before killing i3
    let i3 = nth(c.check_one_leader(), 1, 3);
    c.disconnect(i3);
    c.one(cmd(15), n - 1, true);
    c.restart(i3);
    c.connect(i3);
    c.one(cmd(16), n, true);
    c.end();
}

pub fn persist2_2c<S: SimStore>(mut c: Cluster<S>) {
    let n = 5u64;
    let mut index = 1u64;
    for _ in 0..5 {
        c.one(cmd(10 + index), 5, true);
        index += 1;
        let leader1 = c.check_one_leader();
        c.disconnect(nth(leader1, 1, n));
        c.disconnect(nth(leader1, 2, n));
        c.one(cmd(10 + index), 3, true);
        index += 1;
        c.disconnect(nth(leader1, 0, n));
        c.disconnect(nth(leader1, 3, n));
        c.disconnect(nth(leader1, 4, n));
        c.restart(nth(leader1, 1, n));
        c.restart(nth(leader1, 2, n));
        c.connect(nth(leader1, 1, n));
        c.connect(nth(leader1, 2, n));
        c.run_for(RAFT_ELECTION_TIMEOUT);
        c.restart(nth(leader1, 3, n));
        c.connect(nth(leader1, 3, n));
        c.one(cmd(10 + index), 3, true);
        index += 1;
        c.connect(nth(leader1, 4, n));
        c.connect(nth(leader1, 0, n));
    }
    c.one(cmd(1000), 5, true);
    c.end();
}

pub fn persist3_2c<S: SimStore>(mut c: Cluster<S>) {
    c.one(cmd(101), 3, true);
    let leader = c.check_one_leader();
    c.disconnect(nth(leader, 2, 3));
    c.one(cmd(102), 2, true);
    c.crash(nth(leader, 0, 3));
    c.crash(nth(leader, 1, 3));
    c.connect(nth(leader, 2, 3));
    c.start(nth(leader, 0, 3));
    c.connect(nth(leader, 0, 3));
    c.one(cmd(103), 2, true);
    c.start(nth(leader, 1, 3));
    c.connect(nth(leader, 1, 3));
    c.one(cmd(104), 3, true);
    c.end();
}

/// The Figure 8 tests' pause after each round of Starts: usually under 13 ms, one time
/// in ten up to half an election timeout.
fn figure8_pause<S: SimStore>(c: &mut Cluster<S>) {
    let pause = if c.rng.gen_range(0..1000) < 100 {
        rand_ms(c, RAFT_ELECTION_TIMEOUT / MS / 2)
    } else {
        rand_ms(c, 13)
    };
    c.run_for(pause);
}

pub fn figure8_2c<S: SimStore>(mut c: Cluster<S>) {
    let x = rand_cmd(&mut c);
    c.one(x, 1, true);
    let mut nup = 5;
    for _ in 0..1000 {
        let mut leader = None;
        for i in 1..=5 {
            let x = rand_cmd(&mut c);
            if c.is_up(i) && c.start_cmd(i, x).is_some() {
                leader = Some(i);
            }
        }
        figure8_pause(&mut c);
        if let Some(l) = leader {
            c.crash(l);
            nup -= 1;
        }
        if nup < 3 {
            let s = c.rng.gen_range(1..=5);
            if !c.is_up(s) {
                c.start(s);
                c.connect(s);
                nup += 1;
            }
        }
    }
    for i in 1..=5 {
        if !c.is_up(i) {
            c.start(i);
            c.connect(i);
        }
    }
    let x = rand_cmd(&mut c);
    c.one(x, 5, true);
    c.end();
}

pub fn unreliable_agree_2c<S: SimStore>(mut c: Cluster<S>) {
    for iters in 1..50u64 {
        let cmds: Vec<Bytes> = (0..4)
            .map(|j| cmd(100 * iters + j))
            .chain([cmd(iters)])
            .collect();
        c.one_concurrent(&cmds, 1);
    }
    c.set_unreliable(false);
    c.one(cmd(100), 5, true);
    c.end();
}

pub fn figure8_unreliable_2c<S: SimStore>(mut c: Cluster<S>) {
    let x = cmd(c.rng.gen_range(0..10000));
    c.one(x, 1, true);
    let mut nup = 5;
    for iters in 0..1000 {
        if iters == 200 {
            c.set_long_reordering(true);
        }
        let mut leader = None;
        for i in 1..=5 {
            let x = cmd(c.rng.gen_range(0..10000));
            if c.start_cmd(i, x).is_some() && c.is_connected(i) {
                leader = Some(i);
            }
        }
        figure8_pause(&mut c);
        if let Some(l) = leader {
            if c.rng.gen_range(0..1000) < (RAFT_ELECTION_TIMEOUT / MS) / 2 {
                c.disconnect(l);
                nup -= 1;
            }
        }
        if nup < 3 {
            let s = c.rng.gen_range(1..=5);
            if !c.is_connected(s) {
                c.connect(s);
                nup += 1;
            }
        }
    }
    for i in 1..=5 {
        c.connect(i);
    }
    let x = cmd(c.rng.gen_range(0..10000));
    c.one(x, 5, true);
    c.end();
}

/// One churn client: submits a random command to every live server, then polls for its
/// commitment with backoff (10, 20, 50, 100, 200 ms), recording the ones that committed.
struct ChurnClient {
    me: u64,
    wait: Option<(u64, Bytes, usize)>, // (index, value, backoff step)
    next_at: u64,
    values: Vec<Bytes>,
}

impl ChurnClient {
    fn poll<S: SimStore>(&mut self, c: &mut Cluster<S>) {
        if c.now < self.next_at {
            return;
        }
        const BACKOFF_MS: [u64; 5] = [10, 20, 50, 100, 200];
        if let Some((index, x, step)) = self.wait.take() {
            let (nd, v) = c.n_committed(index);
            if nd > 0 {
                if v.as_ref() == Some(&x) {
                    self.values.push(x);
                }
            } else if step < BACKOFF_MS.len() {
                self.next_at = c.now + BACKOFF_MS[step] * MS;
                self.wait = Some((index, x, step + 1));
            }
            return;
        }
        let x = rand_cmd(c);
        let mut index = None;
        for i in 1..=5 {
            if let Some((idx, _)) = c.start_cmd(i, x.clone()) {
                index = Some(idx);
            }
        }
        match index {
            Some(idx) => self.wait = Some((idx, x, 0)),
            None => self.next_at = c.now + (79 + self.me * 17) * MS,
        }
    }
}

pub fn internal_churn<S: SimStore>(mut c: Cluster<S>) {
    let mut clients: Vec<ChurnClient> = (0..3)
        .map(|me| ChurnClient {
            me,
            wait: None,
            next_at: 0,
            values: Vec::new(),
        })
        .collect();
    let run_clients = |c: &mut Cluster<S>, clients: &mut Vec<ChurnClient>, dur: u64| {
        let until = c.now + dur;
        while c.now < until {
            for cl in clients.iter_mut() {
                cl.poll(c);
            }
            c.run_for(5 * MS);
        }
    };
    for _ in 0..20 {
        if c.rng.gen_range(0..1000) < 200 {
            let i = c.rng.gen_range(1..=5);
            c.disconnect(i);
        }
        if c.rng.gen_range(0..1000) < 500 {
            let i = c.rng.gen_range(1..=5);
            if !c.is_up(i) {
                c.start(i);
            }
            c.connect(i);
        }
        if c.rng.gen_range(0..1000) < 200 {
            let i = c.rng.gen_range(1..=5);
            c.crash(i);
        }
        // Roughly the lab's pacing: (RaftElectionTimeout * 7) / 10.
        run_clients(&mut c, &mut clients, RAFT_ELECTION_TIMEOUT * 7 / 10);
    }
    c.run_for(RAFT_ELECTION_TIMEOUT);
    c.set_unreliable(false);
    for i in 1..=5 {
        if !c.is_up(i) {
            c.start(i);
        }
        c.connect(i);
    }
    // Clients stop here.
    c.run_for(RAFT_ELECTION_TIMEOUT);
    let x = rand_cmd(&mut c);
    let last_index = c.one(x, 5, true);
    let mut really: BTreeMap<Bytes, ()> = BTreeMap::new();
    for index in 1..=last_index {
        if let Some(v) = c.wait(index, 5, None) {
            really.insert(v, ());
        }
    }
    let recorded: usize = clients.iter().map(|cl| cl.values.len()).sum();
    for cl in &clients {
        for v in &cl.values {
            assert!(
                really.contains_key(v),
                "didn't find a value the client saw committed"
            );
        }
    }
    assert!(recorded > 0, "churn clients saw nothing commit");
    c.end();
}
