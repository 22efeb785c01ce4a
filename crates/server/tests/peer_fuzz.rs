//! Peer-protocol fuzzing through the real inbound path (issue 10).
//!
//! A three-node cluster (in-process, real sockets, peer secret on) serves a
//! background client through a follower `F`, so `F` has forwarded requests
//! in flight to the leader. The fuzzer then opens *authenticated* peer
//! connections to `F` — claiming to be the leader (whose replies `F`
//! awaits) or the other follower (a reply from the wrong peer) — and feeds
//! each a short seeded-random sequence of frames: random bytes, random
//! lengths, mutated valid frames, Raft batches with absurd or stale terms
//! and indexes, undecodable leader snapshots, forwarded-request replies of
//! every kind to ids issued, never issued and from the wrong peer, forwarded
//! requests, keepalives, handshake frames after the handshake, sharded frames
//! on a single-group node. After every batch of inputs it checks that no
//! thread panicked, that `F` still serves a write and that no node's term
//! jumped within the batch (the fuzzer never sends an in-range term beyond
//! the current one, so a big jump means an impossible term was adopted).
//!
//! A second test does the same through a sharded process's inbound path
//! (three processes hosting the controller and one data group): group-tagged
//! Raft messages for hosted, unknown and absurd groups, configuration
//! queries and replies, undecodable migration traffic, forwarded reads and
//! replies.
//!
//! One input is one frame written. CI runs a few thousand per test
//! (seconds); run them by hand for more (`PEER_FUZZ_INPUTS`, `PEER_FUZZ_SEED`):
//!
//! ```text
//! PEER_FUZZ_INPUTS=1000000 PEER_FUZZ_SEED=7 cargo test --release -p server --test peer_fuzz -- --nocapture
//! ```
//!
//! Out of scope on purpose: in-range terms far ahead (a member holding the
//! secret is trusted and may raise the term; `raft::MAX_TERM` is the only
//! bound) and well-formed appends that rewrite the log at the current term
//! (a byzantine leader, which Raft does not defend against).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft::{Entry, EntryKind, Membership, Message, MessageBody, SnapshotMeta};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use server::client::Client;
use server::peer::{
    handshake, wire, ForwardReply, ForwardRequest, PeerAuth, PeerFrame, PeerSecret, ShardFrame,
};
use server::resp::Frame;
use server::{NodeConfig, RunningNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Inputs per batch: the node's health is checked between batches.
const BATCH: u64 = 500;
/// Most a term may rise in one batch: the elections the fuzzer's votes and
/// `TimeoutNow`s cause are far fewer; an impossible or far-ahead term
/// adopted is far more.
const MAX_TERM_RISE: u64 = 1000;

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Threads running a test body: their panics are test failures, not a
/// node's (so one failing test does not fail the others).
static TEST_THREADS: std::sync::Mutex<Vec<std::thread::ThreadId>> =
    std::sync::Mutex::new(Vec::new());

/// Counts every panic of a node in this process (its tasks, its driver
/// thread); the hook is installed once for all tests.
fn count_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let me = std::thread::current().id();
    TEST_THREADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(me);
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let me = std::thread::current().id();
            let tests = TEST_THREADS.lock().unwrap_or_else(|e| e.into_inner());
            if !tests.contains(&me) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            drop(tests);
            previous(info);
        }));
    });
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every node's (and the fuzzer's) cluster id and secret.
fn fuzz_auth() -> PeerAuth {
    PeerAuth {
        cluster: "fuzz".into(),
        secret: Some(PeerSecret::new(b"peer fuzzing secret, 16+ bytes").unwrap()),
        tls: None,
    }
}

struct Nodes {
    nodes: Vec<RunningNode>,
    auth: PeerAuth,
    _dir: tempfile::TempDir,
}

async fn start_cluster() -> Nodes {
    let auth = fuzz_auth();
    let dir = tempfile::tempdir().unwrap();
    let mut peers = Vec::new();
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.insert(id, l.local_addr().unwrap().to_string());
        peers.push(l);
    }
    let mut nodes = Vec::new();
    for (i, peer) in peers.into_iter().enumerate() {
        let id = i as u64 + 1;
        let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut cfg = NodeConfig::new(
            id,
            members.clone(),
            String::new(),
            dir.path().join(format!("n{id}")),
        );
        cfg.request_timeout_ms = 2000;
        cfg.peer_auth = auth.clone();
        nodes.push(server::start_with(cfg, client, peer).await.unwrap());
    }
    Nodes {
        nodes,
        auth,
        _dir: dir,
    }
}

impl Nodes {
    /// (leader id, a follower id, the other follower id) once all agree.
    async fn roles(&self) -> (u64, u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let st: Vec<_> = self.nodes.iter().map(|n| n.status().raft).collect();
            if let Some(l) = st.iter().find(|s| s.role == raft::Role::Leader) {
                if st.iter().all(|s| s.leader == Some(l.id)) {
                    let mut others = st.iter().map(|s| s.id).filter(|&i| i != l.id);
                    return (l.id, others.next().unwrap(), others.next().unwrap());
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {st:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn node(&self, id: u64) -> &RunningNode {
        &self.nodes[id as usize - 1]
    }

    fn max_term(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.status().raft.term)
            .max()
            .unwrap()
    }
}

/// What the generator knows about the target when a session starts.
#[derive(Clone, Copy)]
struct Target {
    /// The node fed (a follower).
    me: u64,
    /// Who the connection claims to be (the handshake proved it).
    claimed: u64,
    term: u64,
    commit: u64,
    /// The last id the target issued to a forwarded request (the latest
    /// few are awaited right now, under the background load).
    forwarded: u64,
}

fn frame_bytes(body: &[u8]) -> Vec<u8> {
    [(body.len() as u32).to_be_bytes().as_slice(), body].concat()
}

fn random_bytes(rng: &mut ChaCha8Rng, max: usize) -> Vec<u8> {
    let n = rng.gen_range(0..=max);
    (0..n).map(|_| rng.gen()).collect()
}

fn term(rng: &mut ChaCha8Rng, t: &Target) -> u64 {
    match rng.gen_range(0..10) {
        0 => 0,
        1..=3 => t.term.saturating_sub(rng.gen_range(1..3)),
        4..=6 => t.term,
        7 => raft::MAX_TERM + 1,
        8 => u64::MAX,
        // Impossible: beyond MAX_TERM (top bit set).
        _ => rng.gen::<u64>() | (1 << 63),
    }
}

fn index(rng: &mut ChaCha8Rng, t: &Target) -> u64 {
    match rng.gen_range(0..8) {
        0 => 0,
        1 | 2 => t.commit.saturating_sub(rng.gen_range(0..5)),
        3 => t.commit + rng.gen_range(1..1000),
        4 => raft::MAX_INDEX + 1,
        5 => u64::MAX,
        6 => rng.gen(),
        _ => rng.gen_range(0..50),
    }
}

fn membership(rng: &mut ChaCha8Rng) -> Membership {
    let mut m = Membership::default();
    for _ in 0..rng.gen_range(0..4) {
        m.voters.insert(rng.gen_range(0..6));
    }
    if rng.gen_bool(0.3) {
        m.learners.insert(rng.gen_range(0..6));
    }
    if rng.gen_bool(0.2) {
        m.removed.insert(rng.gen_range(0..6));
    }
    m
}

fn body(rng: &mut ChaCha8Rng, t: &Target) -> MessageBody {
    match rng.gen_range(0..13) {
        0 => MessageBody::PreVote {
            last_index: index(rng, t),
            last_term: term(rng, t),
        },
        1 => MessageBody::PreVoteResponse { reject: rng.gen() },
        2 => MessageBody::Vote {
            last_index: index(rng, t),
            last_term: term(rng, t),
            transfer: rng.gen(),
        },
        3 => MessageBody::VoteResponse { reject: rng.gen() },
        4 => {
            let prev_index = index(rng, t);
            let entries = (0..rng.gen_range(0..4))
                .map(|i| Entry {
                    term: term(rng, t),
                    index: prev_index.wrapping_add(1 + i),
                    kind: [EntryKind::Normal, EntryKind::Noop, EntryKind::ConfChange]
                        [rng.gen_range(0..3)],
                    data: Bytes::from(random_bytes(rng, 64)),
                })
                .collect();
            MessageBody::Append {
                prev_index,
                prev_term: term(rng, t),
                entries,
                commit: index(rng, t),
            }
        }
        5 => MessageBody::AppendResponse {
            reject: rng.gen(),
            index: index(rng, t),
            hint: rng.gen_bool(0.5).then(|| raft::RejectHint {
                conflict_term: rng.gen_bool(0.5).then(|| term(rng, t)),
                conflict_index: index(rng, t),
            }),
        },
        6 => MessageBody::Heartbeat {
            commit: index(rng, t),
            read_round: rng.gen_range(0..100),
        },
        7 => MessageBody::HeartbeatResponse {
            read_round: rng.gen_range(0..100),
        },
        8 => MessageBody::Snapshot {
            meta: SnapshotMeta {
                index: index(rng, t),
                term: term(rng, t),
            },
            conf: rng.gen_bool(0.5).then(|| Box::new(membership(rng))),
            offset: if rng.gen_bool(0.7) { 0 } else { rng.gen() },
            data: Bytes::from(random_bytes(rng, 256)),
            done: rng.gen(),
        },
        9 => MessageBody::SnapshotResponse {
            index: index(rng, t),
            received: rng.gen(),
        },
        10 => MessageBody::ReadIndex { ctx: rng.gen() },
        11 => MessageBody::ReadIndexResponse {
            ctx: rng.gen(),
            index: rng.gen_bool(0.5).then(|| index(rng, t)),
        },
        _ => MessageBody::TimeoutNow,
    }
}

/// An undecodable snapshot exactly as the leader would send it: the
/// current term, beyond the follower's commit, one chunk, done.
fn bad_leader_snapshot(rng: &mut ChaCha8Rng, t: &Target) -> Message {
    Message {
        from: t.claimed,
        to: t.me,
        term: t.term,
        body: MessageBody::Snapshot {
            meta: SnapshotMeta {
                index: t.commit + rng.gen_range(1..100),
                term: t.term,
            },
            conf: None,
            offset: 0,
            data: Bytes::from(random_bytes(rng, 512)),
            done: true,
        },
    }
}

fn raft_message(rng: &mut ChaCha8Rng, t: &Target) -> Message {
    Message {
        // Mostly the proven sender and us; now and then a lie (closes the link).
        from: if rng.gen_bool(0.97) {
            t.claimed
        } else {
            rng.gen_range(0..5)
        },
        to: if rng.gen_bool(0.97) {
            t.me
        } else {
            rng.gen_range(0..5)
        },
        term: term(rng, t),
        body: body(rng, t),
    }
}

fn forward_id(rng: &mut ChaCha8Rng, t: &Target) -> u64 {
    match rng.gen_range(0..6) {
        0 => 0,
        1 => u64::MAX,
        2 => rng.gen(),
        // The ids issued last: some are awaited right now.
        _ => (t.forwarded + 1).saturating_sub(rng.gen_range(0..6)),
    }
}

fn forward_reply(rng: &mut ChaCha8Rng) -> ForwardReply {
    match rng.gen_range(0..6) {
        0 => ForwardReply::Applied(Bytes::from(random_bytes(rng, 32))),
        1 => ForwardReply::Value(kv::Reply::Value(
            rng.gen_bool(0.5)
                .then(|| Bytes::from(random_bytes(rng, 32))),
        )),
        2 => ForwardReply::NotLeader {
            hint: rng.gen_bool(0.5).then(|| rng.gen_range(0..5)),
        },
        3 => ForwardReply::Busy,
        4 => ForwardReply::Unknown,
        _ => ForwardReply::ReadAborted,
    }
}

fn peer_frame(rng: &mut ChaCha8Rng, t: &Target) -> PeerFrame {
    match rng.gen_range(0..20) {
        0..=6 => PeerFrame::Raft(
            (0..rng.gen_range(1..6))
                .map(|_| raft_message(rng, t))
                .collect(),
        ),
        7 => PeerFrame::Raft(vec![bad_leader_snapshot(rng, t)]),
        8..=11 => PeerFrame::ForwardReply {
            id: forward_id(rng, t),
            reply: forward_reply(rng),
        },
        12 | 13 => PeerFrame::Forward {
            id: rng.gen(),
            req: match rng.gen_range(0..3) {
                0 => ForwardRequest::Register,
                1 => ForwardRequest::Write(Bytes::from(random_bytes(rng, 64))),
                _ => ForwardRequest::Read(kv::Op::Get {
                    key: Bytes::from(random_bytes(rng, 16)),
                }),
            },
        },
        14 | 15 => PeerFrame::Keepalive {
            conn: rng.gen_range(0..4),
            heard_conn: rng.gen_range(0..4),
            read: rng.gen(),
        },
        16 => PeerFrame::Hello {
            from: t.claimed,
            to: t.me,
            cluster: "fuzz".into(),
            nonce: rng.gen(),
        },
        17 => PeerFrame::Proof {
            proof: Some(rng.gen()),
        },
        18 => PeerFrame::Challenge {
            cluster: "fuzz".into(),
            nonce: rng.gen(),
            proof: None,
        },
        _ => PeerFrame::Shard(ShardFrame::ConfigQuery {
            for_group: rng.gen(),
            num: rng.gen(),
        }),
    }
}

/// One input: the bytes of one frame (or of something that is not one).
fn input(rng: &mut ChaCha8Rng, t: &Target) -> Vec<u8> {
    match rng.gen_range(0..20) {
        // Random bytes, length prefix included (often absurd).
        0 => random_bytes(rng, 64),
        // A sane length over a random body.
        1 => frame_bytes(&random_bytes(rng, 128)),
        // A valid frame, mutated: bytes flipped or cut short.
        2 | 3 => loop {
            let valid = wire::encode(&peer_frame(rng, t)).to_vec();
            let body = mutated(rng, valid);
            if !raises_term(&body, t) {
                break frame_bytes(&body);
            }
        },
        _ => frame_bytes(&wire::encode(&peer_frame(rng, t))),
    }
}

fn mutated(rng: &mut ChaCha8Rng, mut body: Vec<u8>) -> Vec<u8> {
    if rng.gen_bool(0.5) && !body.is_empty() {
        body.truncate(rng.gen_range(0..body.len()));
    } else {
        for _ in 0..rng.gen_range(1..4) {
            let at = rng.gen_range(0..body.len().max(1));
            if let Some(b) = body.get_mut(at) {
                *b ^= 1 << rng.gen_range(0..8);
            }
        }
    }
    body
}

/// Whether `body` decodes to Raft messages with a possible term beyond the
/// current one: a flipped bit in a varint can make one, and a member holding
/// the secret may raise the term (out of scope, see the module docs).
fn raises_term(body: &[u8], t: &Target) -> bool {
    let raises = |m: &Message| m.term > t.term && m.term <= raft::MAX_TERM;
    match wire::decode(body) {
        Ok(PeerFrame::Raft(msgs)) => msgs.iter().any(raises),
        Ok(PeerFrame::Shard(ShardFrame::Raft(msgs))) => msgs.iter().any(|(_, m)| raises(m)),
        _ => false,
    }
}

/// Opens one authenticated connection to `t.me` as `t.claimed`, writes up
/// to `n` inputs, half-closes and waits until the node has hung up (so it
/// has read, or refused, everything). Returns how many inputs were written.
async fn session(
    node: &RunningNode,
    auth: &PeerAuth,
    mut t: Target,
    n: u64,
    rng: &mut ChaCha8Rng,
) -> u64 {
    let mut s = TcpStream::connect(node.peer_addr).await.unwrap();
    let dial = handshake::dial(&mut s, auth, t.claimed, t.me);
    match tokio::time::timeout(Duration::from_secs(10), dial).await {
        Ok(Ok(())) => {}
        other => panic!("a member's handshake failed: {other:?}"),
    }
    let mut written = 0;
    for _ in 0..n {
        t.forwarded = node.forwards_issued().expect("a single-group node");
        let bytes = input(rng, &t);
        written += 1;
        if s.write_all(&bytes).await.is_err() {
            break; // the node closed the connection on an earlier input
        }
    }
    let _ = s.shutdown().await;
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "the node kept a half-closed link open");
    assert!(sink.is_empty(), "inbound links are read-only: {sink:?}");
    written
}

/// SETs and GETs through `endpoint` until `stop`; counts the requests.
fn background_load(endpoint: String, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let Ok(mut c) = Client::connect(&endpoint).await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let k = format!("bg{}", i % 50);
                let args: Vec<&[u8]> = if i.is_multiple_of(2) {
                    vec![b"SET", k.as_bytes(), b"v"]
                } else {
                    vec![b"GET", k.as_bytes()]
                };
                sent.fetch_add(1, Ordering::Relaxed);
                if c.call(&args).await.is_err() {
                    break;
                }
            }
        }
    });
}

/// A write through `endpoint` succeeds within a bounded wait.
async fn still_serves(endpoint: &str, k: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(mut c) = Client::connect(endpoint).await {
            match c.call(&["SET", k, "ok"]).await {
                Ok(Frame::Simple(s)) if s == "OK" => return,
                other => last = Some(format!("{other:?}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{endpoint} stopped serving writes after fuzzing: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_peer_frames_never_panic_or_stop_a_node() {
    count_panics();
    let inputs = env_u64("PEER_FUZZ_INPUTS", 4000);
    let seed = env_u64("PEER_FUZZ_SEED", 10);
    let c = start_cluster().await;
    let (_, f, _) = c.roles().await;
    let target = c.node(f);
    let endpoint = target.client_addr.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    for _ in 0..8 {
        background_load(endpoint.clone(), stop.clone(), sent.clone());
    }
    still_serves(&endpoint, "warmup").await;
    let start_term = c.max_term();
    let mut batch_term = start_term;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    let (mut done, mut sessions, mut batch) = (0u64, 0u64, 0u64);
    while done < inputs {
        // TimeoutNow or a vote can make `f` the leader: keep fuzzing it,
        // as the other nodes.
        let (leader, a, b) = c.roles().await;
        let others: Vec<u64> = [leader, a, b].into_iter().filter(|&i| i != f).collect();
        let st = target.status().raft;
        let batch_end = (done + BATCH).min(inputs);
        while done < batch_end {
            let t = Target {
                me: f,
                claimed: if leader != f && rng.gen_bool(0.7) {
                    leader
                } else {
                    others[rng.gen_range(0..others.len())]
                },
                term: st.term,
                commit: st.commit,
                forwarded: 0, // read before each input
            };
            let n = rng.gen_range(1..=24).min(batch_end - done);
            done += session(target, &c.auth, t, n, &mut rng).await;
            sessions += 1;
        }
        batch += 1;
        if batch.is_multiple_of(200) {
            eprintln!(
                "peer fuzz: {done} inputs, {sessions} sessions, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            0,
            "a thread panicked (seed {seed}, batch {batch})"
        );
        still_serves(&endpoint, &format!("after{batch}")).await;
        let term = c.max_term();
        assert!(
            term < batch_term + MAX_TERM_RISE,
            "a term jumped from {batch_term} to {term} (seed {seed}, batch {batch})"
        );
        batch_term = term;
    }
    stop.store(true, Ordering::Relaxed);
    let rejected: u64 = c.nodes.iter().map(|n| n.status().snapshots_rejected).sum();
    eprintln!(
        "peer fuzz: seed {seed}: {done} inputs in {sessions} sessions, {batch} batches, {:.1} s; \
         term {start_term} -> {}; {rejected} undecodable snapshots rejected; {} background requests, {} forwarded",
        started.elapsed().as_secs_f64(),
        c.max_term(),
        sent.load(Ordering::Relaxed),
        target.forwards_issued().unwrap_or(0)
    );
}

/// A sharded deployment's frames (`ShardFrame`), for a process hosting the
/// controller (group 0) and data group 1.
fn shard_frame(rng: &mut ChaCha8Rng, t: &Target) -> PeerFrame {
    use server::peer::{GroupAnswer, GroupForward};
    let group = |rng: &mut ChaCha8Rng| [0, 1, 1, 2, u64::MAX][rng.gen_range(0..5)];
    let frame = match rng.gen_range(0..12) {
        0..=4 => ShardFrame::Raft(
            (0..rng.gen_range(1..6))
                .map(|_| (group(rng), raft_message(rng, t)))
                .collect(),
        ),
        5 => ShardFrame::ConfigQuery {
            for_group: group(rng),
            num: rng.gen_range(0..5),
        },
        6 => ShardFrame::ConfigReply {
            for_group: group(rng),
            config: None,
        },
        7 => ShardFrame::GroupRequest {
            from_group: group(rng),
            to_group: group(rng),
            request: Bytes::from(random_bytes(rng, 64)),
        },
        8 => ShardFrame::GroupReply {
            to_group: group(rng),
            reply: Bytes::from(random_bytes(rng, 64)),
        },
        9 => ShardFrame::Forward {
            id: rng.gen(),
            group: group(rng),
            req: if rng.gen_bool(0.5) {
                GroupForward::Read(shardkv::Query::Op(kv::Op::Get {
                    key: Bytes::from(random_bytes(rng, 16)),
                }))
            } else {
                GroupForward::CtrlRead(rng.gen_bool(0.5).then(|| rng.gen_range(0..5)))
            },
        },
        _ => ShardFrame::ForwardReply {
            id: if rng.gen_bool(0.5) {
                rng.gen_range(0..200)
            } else {
                rng.gen()
            },
            answer: match rng.gen_range(0..6) {
                0 => GroupAnswer::Value(Ok(kv::Reply::Value(None))),
                1 => GroupAnswer::NotLeader {
                    hint: Some(rng.gen_range(0..5)),
                },
                2 => GroupAnswer::Busy,
                3 => GroupAnswer::Unknown,
                4 => GroupAnswer::ReadAborted,
                _ => GroupAnswer::NotSent,
            },
        },
    };
    PeerFrame::Shard(frame)
}

/// One input for a sharded process: mostly sharded frames (some mutated),
/// now and then any frame (single-group ones close the link).
fn sharded_input(rng: &mut ChaCha8Rng, t: &Target) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0 => input(rng, t),
        1 | 2 => loop {
            let valid = wire::encode(&shard_frame(rng, t)).to_vec();
            let body = mutated(rng, valid);
            if !raises_term(&body, t) {
                break frame_bytes(&body);
            }
        },
        _ => frame_bytes(&wire::encode(&shard_frame(rng, t))),
    }
}

async fn start_sharded() -> (Vec<RunningNode>, PeerAuth, tempfile::TempDir) {
    let auth = fuzz_auth();
    let dir = tempfile::tempdir().unwrap();
    let mut listeners = Vec::new();
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.insert(id, peer.local_addr().unwrap().to_string());
        listeners.push((peer, TcpListener::bind("127.0.0.1:0").await.unwrap()));
    }
    let mut nodes = Vec::new();
    for (i, (peer, client)) in listeners.into_iter().enumerate() {
        let id = i as u64 + 1;
        let mut base = NodeConfig::new(
            id,
            members.clone(),
            String::new(),
            dir.path().join(format!("p{id}")),
        );
        base.request_timeout_ms = 2000;
        base.peer_auth = auth.clone();
        let cfg = server::shard::ShardedConfig::new(
            base,
            vec![1, 2, 3],
            BTreeMap::from([(1, vec![1, 2, 3])]),
        );
        let node = server::shard::start_sharded_with(cfg, client, peer)
            .await
            .unwrap();
        nodes.push(node);
    }
    (nodes, auth, dir)
}

fn sharded_max_term(nodes: &[RunningNode]) -> u64 {
    nodes
        .iter()
        .flat_map(|n| n.shard_view().unwrap().groups.into_values())
        .map(|g| g.status.raft.term)
        .max()
        .unwrap()
}

/// The same through a sharded process's inbound path (`shard::forward::Sink`):
/// group-tagged Raft messages for hosted, unknown and absurd groups,
/// configuration queries and replies, undecodable migration requests and
/// replies, forwarded reads, replies to forwarded requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_sharded_peer_frames_never_panic_or_stop_a_process() {
    count_panics();
    let inputs = env_u64("PEER_FUZZ_INPUTS", 4000);
    let seed = env_u64("PEER_FUZZ_SEED", 10);
    let (nodes, auth, _dir) = start_sharded().await;
    let addrs: Vec<String> = nodes.iter().map(|n| n.client_addr.to_string()).collect();
    let join = format!("1=1@{},2@{},3@{}", addrs[0], addrs[1], addrs[2]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = Client::connect(&addrs[0]).await {
            if let Ok(Frame::Bulk(_)) = c.call(&["SHARDCTL", "JOIN", &join]).await {
                break;
            }
        }
        assert!(Instant::now() < deadline, "group 1 never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let target = &nodes[0];
    still_serves(&addrs[0], "warmup").await;
    let start_term = sharded_max_term(&nodes);
    let mut batch_term = start_term;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    let (mut done, mut sessions, mut batch) = (0u64, 0u64, 0u64);
    while done < inputs {
        let st = target.status().raft;
        let batch_end = (done + BATCH).min(inputs);
        while done < batch_end {
            let t = Target {
                me: 1,
                claimed: rng.gen_range(2..=3),
                term: st.term,
                commit: st.commit,
                forwarded: 0,
            };
            let n = rng.gen_range(1..=24).min(batch_end - done);
            let mut s = TcpStream::connect(target.peer_addr).await.unwrap();
            let dial = handshake::dial(&mut s, &auth, t.claimed, t.me);
            let ok = tokio::time::timeout(Duration::from_secs(10), dial).await;
            assert!(matches!(ok, Ok(Ok(()))), "handshake: {ok:?}");
            for _ in 0..n {
                done += 1;
                if s.write_all(&sharded_input(&mut rng, &t)).await.is_err() {
                    break;
                }
            }
            let _ = s.shutdown().await;
            let mut sink = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
            assert!(closed.is_ok(), "the process kept a half-closed link open");
            sessions += 1;
        }
        batch += 1;
        assert_eq!(
            PANICS.load(Ordering::SeqCst),
            0,
            "a thread panicked (seed {seed}, batch {batch})"
        );
        still_serves(&addrs[0], &format!("after{batch}")).await;
        let term = sharded_max_term(&nodes);
        assert!(
            term < batch_term + MAX_TERM_RISE,
            "a term jumped from {batch_term} to {term} (seed {seed}, batch {batch})"
        );
        batch_term = term;
    }
    eprintln!(
        "sharded peer fuzz: seed {seed}: {done} inputs in {sessions} sessions, {batch} batches, {:.1} s; term {start_term} -> {}",
        started.elapsed().as_secs_f64(),
        sharded_max_term(&nodes)
    );
}

/// Found by the sharded fuzzer: a sharded process stepped Raft messages
/// addressed to *another* process into its own groups (votes and
/// `TimeoutNow`s meant for others started elections: 12,426 terms in
/// 167,000 inputs, against 913 in 200,000 once refused). Now the link is
/// closed on such a message, as a single-group node's is: a heartbeat a
/// term ahead sent right behind it is never read, while the same heartbeat
/// on a fresh link is (so the closing, not a broken path, kept it out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_process_refuses_raft_messages_addressed_to_another() {
    count_panics();
    let (nodes, auth, _dir) = start_sharded().await;
    let target = &nodes[0];
    let deadline = Instant::now() + Duration::from_secs(20);
    while target.status().raft.leader.is_none() {
        assert!(Instant::now() < deadline, "no controller leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let term = target.status().raft.term;
    let msg = |to, body| Message {
        from: 2,
        to,
        term: term + 1,
        body,
    };
    let heartbeat = PeerFrame::Shard(ShardFrame::Raft(vec![(
        0,
        msg(
            1,
            MessageBody::Heartbeat {
                commit: 0,
                read_round: 0,
            },
        ),
    )]));
    let elsewhere = PeerFrame::Shard(ShardFrame::Raft(vec![(
        0,
        msg(3, MessageBody::HeartbeatResponse { read_round: 0 }),
    )]));
    let mut s = TcpStream::connect(target.peer_addr).await.unwrap();
    handshake::dial(&mut s, &auth, 2, 1).await.unwrap();
    for f in [&elsewhere, &heartbeat] {
        s.write_all(&frame_bytes(&wire::encode(f))).await.unwrap();
    }
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the link stayed open");
    assert_eq!(
        target.status().raft.term,
        term,
        "process 1 read on after a message addressed to process 3"
    );

    let mut s = TcpStream::connect(target.peer_addr).await.unwrap();
    handshake::dial(&mut s, &auth, 2, 1).await.unwrap();
    s.write_all(&frame_bytes(&wire::encode(&heartbeat)))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while target.status().raft.term <= term {
        assert!(
            Instant::now() < deadline,
            "a well-addressed heartbeat was not read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
