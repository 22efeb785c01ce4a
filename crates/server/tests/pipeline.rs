//! Pipelined commands on one connection (`server::pipeline`): three
//! in-process nodes; every pipeline must be executed and answered in its
//! order — each reply is the one its command got at its place in the
//! pipeline, and a later command sees an earlier one's effect — on the
//! leader (units), through a follower (forwarded one by one), and while
//! leadership moves under pipelined writers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use server::client::Client;
use server::resp::Frame;
use server::RunningNode;
use tokio::net::TcpListener;

struct Nodes {
    nodes: Vec<RunningNode>,
    _dir: tempfile::TempDir,
}

async fn start_cluster(n: u64) -> Nodes {
    let dir = tempfile::tempdir().unwrap();
    let mut peers = Vec::new();
    let mut members = BTreeMap::new();
    for id in 1..=n {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.insert(id, l.local_addr().unwrap().to_string());
        peers.push(l);
    }
    let mut nodes = Vec::new();
    for (i, peer) in peers.into_iter().enumerate() {
        let id = i as u64 + 1;
        let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut cfg = server::NodeConfig::new(
            id,
            members.clone(),
            String::new(),
            dir.path().join(format!("n{id}")),
        );
        cfg.request_timeout_ms = 3000;
        nodes.push(server::start_with(cfg, client, peer).await.unwrap());
    }
    Nodes { nodes, _dir: dir }
}

impl Nodes {
    fn addr(&self, i: usize) -> String {
        self.nodes[i].client_addr.to_string()
    }

    /// The index of the node all nodes agree leads.
    async fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let leaders: Vec<Option<u64>> =
                self.nodes.iter().map(|n| n.status().raft.leader).collect();
            if let Some(Some(l)) = leaders.first() {
                if leaders.iter().all(|x| *x == Some(*l)) {
                    let i = (*l - 1) as usize;
                    if self.nodes[i].status().raft.role == raft::Role::Leader {
                        return i;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::from(s.to_string()))
}

fn ok() -> Frame {
    Frame::Simple("OK".into())
}

/// Sends `cmds` as one pipeline (one write) and reads one reply per command.
async fn pipeline(c: &mut Client, cmds: &[Vec<String>]) -> Vec<Frame> {
    for cmd in cmds {
        c.queue(cmd);
    }
    c.flush().await.unwrap();
    let mut replies = Vec::with_capacity(cmds.len());
    for _ in cmds {
        replies.push(c.read_reply().await.unwrap());
    }
    replies
}

fn cmd(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// 150 `INCR`s then a `GET` (more than one unit: a unit holds at most a
/// window's worth), then 100 `SET`s of one key and a `GET`: each reply is
/// its command's, in order, and each `GET` sees every write before it.
async fn writes_then_reads(addr: &str, tag: &str) {
    let mut c = Client::connect(addr).await.unwrap();
    let (counter, key) = (format!("{tag}:c"), format!("{tag}:k"));
    let mut cmds: Vec<Vec<String>> = (0..150).map(|_| cmd(&["INCR", &counter])).collect();
    cmds.push(cmd(&["GET", &counter]));
    for i in 0..100 {
        cmds.push(cmd(&["SET", &key, &format!("v{i}")]));
    }
    cmds.push(cmd(&["GET", &key]));
    cmds.push(cmd(&["GET", &counter]));
    let replies = pipeline(&mut c, &cmds).await;
    for (i, r) in replies[..150].iter().enumerate() {
        assert_eq!(r, &Frame::Integer(i as i64 + 1), "INCR #{i} via {tag}");
    }
    assert_eq!(replies[150], bulk("150"), "GET after the INCRs via {tag}");
    assert!(replies[151..251].iter().all(|r| r == &ok()), "{replies:?}");
    assert_eq!(replies[251], bulk("v99"), "GET after the SETs via {tag}");
    assert_eq!(replies[252], bulk("150"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_and_reads_are_answered_in_order() {
    let nodes = start_cluster(3).await;
    let leader = nodes.wait_leader().await;
    writes_then_reads(&nodes.addr(leader), "leader").await;
    let follower = (leader + 1) % 3;
    writes_then_reads(&nodes.addr(follower), "follower").await;
}

/// What one command of the mixed pipeline does to the model (one string
/// `s`, one counter `n`), and the reply it must get.
fn mixed_step(i: usize, s: &mut String, n: &mut i64) -> (Vec<String>, Frame) {
    match i % 11 {
        0 | 1 | 4 | 7 => {
            s.push_str(&format!("{i},"));
            (
                cmd(&["APPEND", "s", &format!("{i},")]),
                Frame::Integer(s.len() as i64),
            )
        }
        2 | 8 => (cmd(&["GET", "s"]), bulk(s)),
        3 => {
            *n += 1;
            (cmd(&["INCR", "n"]), Frame::Integer(*n))
        }
        5 => (cmd(&["STRLEN", "s"]), Frame::Integer(s.len() as i64)),
        6 => (cmd(&["PING"]), Frame::Simple("PONG".into())),
        9 if i.is_multiple_of(3) => {
            s.clear();
            (cmd(&["DEL", "s"]), Frame::Integer(1))
        }
        9 => (cmd(&["EXISTS", "s", "n"]), Frame::Integer(2)),
        _ => (cmd(&["GET", "n"]), bulk(&n.to_string())),
    }
}

/// Writes, reads, a `DEL`, `PING`s, refused `INCR`s and a `MULTI` block
/// interleaved in one pipeline: every reply is what the command gets at its
/// place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_mixing_reads_writes_and_barriers_keeps_its_order() {
    let nodes = start_cluster(3).await;
    let leader = nodes.wait_leader().await;
    let mut c = Client::connect(&nodes.addr(leader)).await.unwrap();
    let (mut s, mut n) = (String::new(), 0i64);
    let mut cmds = Vec::new();
    let mut want = Vec::new();
    for i in 1..400 {
        if i == 200 {
            // A block mid-pipeline: queued, then run atomically at EXEC.
            n += 10;
            s.push_str("block,");
            for (c, r) in [
                (cmd(&["MULTI"]), ok()),
                (cmd(&["INCRBY", "n", "10"]), Frame::Simple("QUEUED".into())),
                (
                    cmd(&["APPEND", "s", "block,"]),
                    Frame::Simple("QUEUED".into()),
                ),
                (
                    cmd(&["EXEC"]),
                    Frame::Array(vec![Frame::Integer(n), Frame::Integer(s.len() as i64)]),
                ),
            ] {
                cmds.push(c);
                want.push(r);
            }
        }
        if i % 50 == 0 && !s.is_empty() {
            // A command the state machine refuses, mid-unit: answered with
            // its error at its place, the unit goes on.
            cmds.push(cmd(&["INCR", "s"]));
            want.push(Frame::Error(
                "ERR value is not an integer or out of range".into(),
            ));
        }
        let (c, r) = mixed_step(i, &mut s, &mut n);
        cmds.push(c);
        want.push(r);
    }
    let replies = pipeline(&mut c, &cmds).await;
    for (i, (got, want)) in replies.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "reply #{i} to {:?}", cmds[i]);
    }
}

/// Checks one writer's key after the run: the tokens it appended (`p.i,`)
/// appear in the order they were sent, each at most once; every `APPEND`
/// answered with a length sits exactly there; every `GET` of a pipeline
/// saw exactly what was appended before it.
fn check_writer(final_value: &str, appended: &[(u64, i64)], reads: &[(usize, String)]) {
    let tokens: Vec<u64> = final_value
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect();
    if let Some(i) = tokens.windows(2).position(|w| w[0] >= w[1]) {
        let around = &tokens[i.saturating_sub(3)..(i + 5).min(tokens.len())];
        panic!(
            "token {} after {}: out of pipeline order, or applied twice (around: {around:?})",
            tokens[i + 1],
            tokens[i]
        );
    }
    for &(token, len) in appended {
        let at = &final_value[..len as usize];
        assert!(
            at.ends_with(&format!(",{token},")) || at == format!("{token},"),
            "APPEND of {token} answered length {len}, but the value there is {at:?}"
        );
    }
    for (len, value) in reads {
        assert_eq!(value.len(), *len, "a GET did not see the APPEND before it");
        assert!(final_value.starts_with(value.as_str()));
    }
}

/// Writers pipeline batches of `APPEND`s (and `GET`s after them) to the
/// leader while leadership is handed from node to node: a unit cut by a
/// leadership change is retried in order (through the new leader), never
/// reordered or applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_stay_in_order_across_leadership_changes() {
    let nodes = start_cluster(3).await;
    let leader = nodes.wait_leader().await;
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = (0..3).map(|i| nodes.addr(i)).collect();
    let mut writers = Vec::new();
    for w in 0..3usize {
        let (stop, addrs) = (stop.clone(), addrs.clone());
        // Two writers start on the leader, one on a follower; each moves on
        // to the next node when its connection breaks.
        let mut at = if w == 2 { (leader + 1) % 3 } else { leader };
        writers.push(tokio::spawn(async move {
            let key = format!("w{w}");
            let (mut appended, mut reads) = (Vec::new(), Vec::new());
            let mut next = 1u64;
            let mut c = Client::connect(&addrs[at]).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let first = next;
                let mut cmds: Vec<Vec<String>> = (0..40)
                    .map(|j| cmd(&["APPEND", &key, &format!("{},", first + j)]))
                    .collect();
                next += 40;
                // Three reads after the writes: one read unit.
                for _ in 0..3 {
                    cmds.push(cmd(&["GET", &key]));
                }
                let replies = pipeline(&mut c, &cmds).await;
                let mut last_len = None;
                for (j, r) in replies[..40].iter().enumerate() {
                    match r {
                        Frame::Integer(len) => {
                            appended.push((first + j as u64, *len));
                            last_len = Some(*len as usize);
                        }
                        Frame::Error(e)
                            if e.starts_with("TIMEOUT") || e.starts_with("CLUSTERDOWN") =>
                        {
                            last_len = None;
                        }
                        other => panic!("APPEND answered {other:?}"),
                    }
                }
                for r in &replies[40..] {
                    match (r, last_len) {
                        (Frame::Bulk(v), Some(len)) => {
                            reads.push((len, String::from_utf8(v.to_vec()).unwrap()))
                        }
                        (Frame::Bulk(_) | Frame::Error(_), _) => {}
                        (other, _) => panic!("GET answered {other:?}"),
                    }
                }
                if replies.iter().any(|r| matches!(r, Frame::Error(_))) {
                    at = (at + 1) % 3;
                    c = Client::connect(&addrs[at]).await.unwrap();
                }
            }
            (key, appended, reads)
        }));
    }
    let mut admin = Client::connect(&nodes.addr(leader)).await.unwrap();
    let mut transfers = 0;
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let l = nodes.wait_leader().await;
        admin = Client::connect(&nodes.addr(l)).await.unwrap_or(admin);
        let to = ((l + 1 + round % 2) % 3 + 1).to_string();
        if admin.call(&["RAFT", "TRANSFER", &to]).await.unwrap() == ok() {
            transfers += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    assert!(
        transfers >= 3,
        "only {transfers} leadership transfers happened"
    );
    let l = nodes.wait_leader().await;
    let mut c = Client::connect(&nodes.addr(l)).await.unwrap();
    let mut total = 0;
    for w in writers {
        let (key, appended, reads) = w.await.unwrap();
        let Frame::Bulk(v) = c.call(&["GET", &key]).await.unwrap() else {
            panic!("no value for {key}")
        };
        check_writer(std::str::from_utf8(&v).unwrap(), &appended, &reads);
        total += appended.len();
    }
    assert!(total > 1000, "too few APPENDs answered: {total}");
}
