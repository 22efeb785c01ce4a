//! Real-process attack tests (issue 10): `raftkv server` children on
//! 127.0.0.1, attacked over their client and peer ports the way a hostile
//! client or a bogus peer would. Each asserts that the cluster keeps
//! serving other clients and that the attacked node's memory (VmRSS, and
//! VmData where the attack is about reservations, from /proc/PID/status,
//! the maximum sampled every 10 ms during the attack) stays under a
//! generous bound derived from the documented limits (README "Limits on
//! the client port", "Securing a deployment"). The bounds are resource
//! limits, not benchmarks: they are far above what a correct node uses and
//! far below what the unbounded behaviour used.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bulk, call, call_ok, serial, wait_converged, Cluster};
use server::peer::{handshake, wire, PeerAuth, PeerFrame, PeerSecret};
use server::resp::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ELECTION: Duration = Duration::from_secs(10);
/// A restarted node catching up, on a loaded 2-core machine.
const RECOVER: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;
/// Room for what a node legitimately allocates during a test (allocator
/// arenas, socket buffers, the log): far below the attacks' unbounded use.
const SLACK: u64 = 96 * MIB;

/// One field of /proc/PID/status, in bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Samples a process's VmRSS and VmData every 10 ms, keeping the maxima.
struct MemWatch {
    pid: u32,
    stop: Arc<AtomicBool>,
    max_rss: Arc<AtomicU64>,
    max_data: Arc<AtomicU64>,
    base_rss: u64,
    base_data: u64,
}

impl MemWatch {
    fn start(pid: u32) -> MemWatch {
        let (stop, max_rss, max_data) = Default::default();
        let w = MemWatch {
            pid,
            stop,
            max_rss,
            max_data,
            base_rss: proc_status(pid, "VmRSS"),
            base_data: proc_status(pid, "VmData"),
        };
        let (stop, rss, data) = (w.stop.clone(), w.max_rss.clone(), w.max_data.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                rss.fetch_max(proc_status(pid, "VmRSS"), Ordering::Relaxed);
                data.fetch_max(proc_status(pid, "VmData"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        w
    }

    /// Stops sampling; asserts the RSS grew by less than `bound` (and
    /// VmData too, with `data_bound`), printing the figures.
    fn check(self, what: &str, bound: u64, data_bound: Option<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        let rss = self.max_rss.load(Ordering::Relaxed).max(self.base_rss);
        let data = self.max_data.load(Ordering::Relaxed).max(self.base_data);
        eprintln!(
            "{what}: pid {} VmRSS {} -> max {} MiB (bound +{} MiB), VmData {} -> max {} MiB",
            self.pid,
            self.base_rss / MIB,
            rss / MIB,
            bound / MIB,
            self.base_data / MIB,
            data / MIB
        );
        assert!(
            rss - self.base_rss < bound,
            "{what}: RSS grew by {} MiB, over the {} MiB bound",
            (rss - self.base_rss) / MIB,
            bound / MIB
        );
        if let Some(b) = data_bound {
            assert!(
                data - self.base_data < b,
                "{what}: VmData grew by {} MiB, over the {} MiB bound",
                (data - self.base_data) / MIB,
                b / MIB
            );
        }
    }
}

/// A 3-node cluster with `flags`; returns it with its leader.
async fn cluster(flags: &[&str]) -> (Cluster, u64) {
    let c = Cluster::start(3, flags);
    let leader = c.wait_leader(&[1, 2, 3], ELECTION).await;
    (c, leader)
}

/// The other clients: a write and a read through every node succeed.
async fn others_are_served(c: &Cluster, tag: &str) {
    for id in 1..=3 {
        let (k, v) = (format!("{tag}-{id}"), format!("v{id}"));
        let set = call_ok(
            &c.endpoint(id),
            &[b"SET", k.as_bytes(), v.as_bytes()],
            RECOVER,
        )
        .await;
        assert_eq!(set, Frame::Simple("OK".into()), "{tag}: SET via {id}");
        assert_eq!(
            call(&c.endpoint(id), &[b"GET", k.as_bytes()]).await,
            Some(bulk(&v)),
            "{tag}: GET via {id}"
        );
    }
}

/// Writes `req` (as much of it as the node takes) while reading; returns
/// what was read once the node closed the connection (bounded wait).
async fn attack(endpoint: String, req: Vec<u8>, keep_open: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(&endpoint).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let mut out = Vec::new();
    let read = async {
        let mut buf = vec![0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    let write = async {
        for chunk in req.chunks(64 << 10) {
            if wr.write_all(chunk).await.is_err() {
                return;
            }
        }
        if keep_open {
            std::future::pending::<()>().await; // the request is never finished
        }
    };
    let both = async {
        tokio::select! {
            _ = read => {}
            _ = async { write.await; std::future::pending::<()>().await } => {}
        }
    };
    let done = tokio::time::timeout(Duration::from_secs(30), both).await;
    assert!(
        done.is_ok(),
        "{endpoint}: not closed; read {:?}",
        String::from_utf8_lossy(&out)
    );
    out
}

/// Issue 10's oversized and never-finished requests, many at once against
/// the leader: a SET announcing 50 MB (over `--proto-max-bulk-len`) reads
/// `-ERR Protocol error: invalid bulk length` before any of it is kept; an
/// array of 64 x 1 MiB bulks that is never finished reads the query-buffer
/// error at `--client-query-buffer-limit` (4 MiB) and is closed. The node's
/// RSS stays within connections x (query limit + a reply) + slack, and
/// every node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_never_finished_requests_are_cut_and_memory_stays_bounded() {
    let _g = serial();
    let flags = [
        "--proto-max-bulk-len",
        "1mb",
        "--client-query-buffer-limit",
        "4mb",
    ];
    let (c, leader) = cluster(&flags).await;
    others_are_served(&c, "before").await;
    let watch = MemWatch::start(c.pid(leader).unwrap());
    let ep = c.endpoint(leader);
    let mut oversized = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$52428800\r\n".to_vec();
    oversized.extend(std::iter::repeat_n(b'x', 1 << 20));
    let mut unfinished = b"*199\r\n".to_vec();
    for _ in 0..64 {
        unfinished.extend_from_slice(b"$1048576\r\n");
        unfinished.extend(std::iter::repeat_n(b'x', 1 << 20));
        unfinished.extend_from_slice(b"\r\n");
    }
    let (n_over, n_unfinished) = (8, 16);
    let mut tasks = Vec::new();
    for i in 0..n_over + n_unfinished {
        let (req, keep) = if i < n_over {
            (oversized.clone(), false)
        } else {
            (unfinished.clone(), true)
        };
        tasks.push(tokio::spawn(attack(ep.clone(), req, keep)));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let out = String::from_utf8_lossy(&t.await.unwrap()).into_owned();
        let want = if i < n_over {
            "-ERR Protocol error: invalid bulk length\r\n".to_string()
        } else {
            format!(
                "-ERR Protocol error: too big request (over client-query-buffer-limit, {} bytes)\r\n",
                4 * MIB
            )
        };
        assert_eq!(out, want, "attacker {i}");
    }
    others_are_served(&c, "after").await;
    let conns = (n_over + n_unfinished) as u64;
    watch.check("oversized + unfinished", conns * 5 * MIB + SLACK, None);
}

/// Issue 10's unread replies: clients pipeline 400 GETs of a 512 KiB value
/// (200 MiB of replies each) and never read. Each is disconnected once more
/// than `--client-output-buffer-limit` (2 MiB) is left unread, receiving far
/// less than it asked for; meanwhile every node serves others, and the
/// node's RSS stays within connections x (output limit + a reply) + slack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_are_disconnected_and_memory_stays_bounded() {
    let _g = serial();
    let (c, leader) = cluster(&["--client-output-buffer-limit", "2mb"]).await;
    let ep = c.endpoint(leader);
    let value = vec![b'v'; 512 << 10];
    assert_eq!(
        call(&ep, &[b"SET", b"big", &value]).await,
        Some(Frame::Simple("OK".into()))
    );
    let watch = MemWatch::start(c.pid(leader).unwrap());
    let gets = 400;
    let mut greedy = Vec::new();
    for _ in 0..6 {
        let mut s = TcpStream::connect(&ep).await.unwrap();
        s.write_all(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(gets))
            .await
            .unwrap();
        greedy.push(s);
    }
    others_are_served(&c, "during").await;
    // Read nothing until the node has closed them all (INFO counts only the
    // asking connection): a reader that keeps up is never over the limit.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let clients = c.info_section(leader, "clients").await;
        if clients.is_some_and(|i| common::num(&i, "connected_clients") <= 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "greedy clients never disconnected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = gets * (value.len() + 12);
    for (i, mut s) in greedy.into_iter().enumerate() {
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "greedy client {i} was never disconnected");
        assert!(
            got.len() < all / 2,
            "greedy client {i} received {} of {all} reply bytes: not disconnected at the limit",
            got.len()
        );
    }
    others_are_served(&c, "after").await;
    watch.check("unread replies", 6 * 3 * MIB + SLACK, None);
}

/// Issue 10's connection lockout: at `--max-connections` a new client reads
/// `-ERR max number of clients reached` and is closed (it used to hang with
/// no error); the clients holding the slots and the other nodes are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_answers_max_number_of_clients() {
    let _g = serial();
    let cap = 40;
    let (c, leader) = cluster(&["--max-connections", "40"]).await;
    let ep = c.endpoint(leader);
    let mut held = Vec::new();
    let deadline = Instant::now() + ELECTION;
    while held.len() < cap {
        let mut cl = server::client::Client::connect(&ep).await.unwrap();
        match cl.call(&["PING"]).await {
            Ok(Frame::Simple(p)) if p == "PONG" => held.push(cl),
            _ => {
                // A slot of an earlier client (the harness's) not yet freed.
                assert!(Instant::now() < deadline, "only {} slots", held.len());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    for _ in 0..20 {
        let mut s = TcpStream::connect(&ep).await.unwrap();
        s.write_all(b"PING\r\n").await.unwrap();
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "a client over the cap hangs");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "-ERR max number of clients reached\r\n"
        );
    }
    for cl in held.iter_mut().step_by(7) {
        assert_eq!(
            cl.call(&["SET", "held", "ok"]).await.unwrap(),
            Frame::Simple("OK".into())
        );
    }
    for id in (1..=3).filter(|&i| i != leader) {
        let set = call_ok(&c.endpoint(id), &[b"SET", b"other", b"ok"], ELECTION).await;
        assert_eq!(set, Frame::Simple("OK".into()));
    }
}

/// Issue 10's peer lockout: 200 sockets that never say Hello are held open
/// on the leader's peer port (more than its 64 connection slots) while a
/// follower is killed and restarted. The restarted follower reconnects and
/// catches up (unauthenticated sockets are closed at the handshake caps and
/// deadline), every node serves, and the leader's RSS barely moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_on_a_peer_port_do_not_isolate_the_node() {
    let _g = serial();
    let (mut c, leader) = cluster(&[]).await;
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let watch = MemWatch::start(c.pid(leader).unwrap());
    let peer = c.nodes[leader as usize - 1].peer.clone();
    let mut idle = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(&peer).await {
            idle.push(s);
        }
    }
    c.kill(follower);
    c.spawn(follower);
    let set = call_ok(&c.endpoint(follower), &[b"SET", b"back", b"1"], RECOVER).await;
    assert_eq!(set, Frame::Simple("OK".into()));
    wait_converged(&c, &[1, 2, 3], RECOVER).await;
    others_are_served(&c, "idle-peer").await;
    drop(idle);
    watch.check("idle peer sockets", SLACK, None);
}

/// The secret and cluster id the harness gives every node (`peer_auth_flags`).
fn member_auth() -> PeerAuth {
    PeerAuth {
        cluster: "test".into(),
        secret: Some(PeerSecret::new(b"a test secret, not a good one").unwrap()),
        tls: None,
    }
}

/// Issue 10's huge announced frames on a peer port: 24 connections that
/// send a `Hello` and announce a 64 MiB frame are closed at the 4 KiB
/// handshake cap; 32 connections of an authenticated but bogus member
/// (it holds the secret) each announce a 64 MiB frame and trickle 1 KiB of
/// it every 100 ms. Nothing is reserved for the announced length (it used
/// to be, 64 MiB per connection): the leader's VmData and RSS stay within
/// slack, and the cluster serves throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_announcing_huge_frames_get_nothing_reserved() {
    let _g = serial();
    let (c, leader) = cluster(&[]).await;
    let from = (1..=3).find(|&i| i != leader).unwrap();
    let peer = c.nodes[leader as usize - 1].peer.clone();
    let watch = MemWatch::start(c.pid(leader).unwrap());
    let huge = (wire::MAX_FRAME_BYTES as u32).to_be_bytes();

    for _ in 0..24 {
        let mut s = TcpStream::connect(&peer).await.unwrap();
        let hello = wire::encode(&PeerFrame::Hello {
            from,
            to: leader,
            cluster: "test".into(),
            nonce: [3; 32],
        });
        s.write_all(&(hello.len() as u32).to_be_bytes())
            .await
            .unwrap();
        s.write_all(&hello).await.unwrap();
        s.write_all(&huge).await.unwrap();
        let _ = s.write_all(&[0; 1024]).await;
        let mut out = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        assert!(
            closed.is_ok(),
            "an unauthenticated 64 MiB announcement was kept"
        );
    }

    let mut bogus = Vec::new();
    for _ in 0..32 {
        let mut s = TcpStream::connect(&peer).await.unwrap();
        handshake::dial(&mut s, &member_auth(), from, leader)
            .await
            .unwrap();
        s.write_all(&huge).await.unwrap();
        bogus.push(s);
    }
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        for s in &mut bogus {
            s.write_all(&[0; 1024]).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    others_are_served(&c, "huge-frames").await;
    drop(bogus);
    watch.check("64 MiB announcements", SLACK, Some(4 * SLACK));
}

fn heartbeat(from: u64, to: u64, term: u64) -> raft::Message {
    raft::Message {
        from,
        to,
        term,
        body: raft::MessageBody::Heartbeat {
            commit: 0,
            read_round: 0,
        },
    }
}

async fn write_frame(s: &mut TcpStream, f: &PeerFrame) -> std::io::Result<()> {
    let body = wire::encode(f);
    s.write_all(&(body.len() as u32).to_be_bytes()).await?;
    s.write_all(&body).await
}

async fn terms(c: &Cluster) -> Vec<u64> {
    let mut out = Vec::new();
    for id in 1..=3 {
        let info = c.info(id).await.expect("INFO raft");
        out.push(common::num(&info, "term"));
    }
    out
}

/// Issue 10's term bomb and impersonation against every node's peer port:
/// an impostor's `Hello` claiming to be a member, with no proof, followed by
/// a heartbeat of term 2^64-1, is closed before the heartbeat is read; a
/// member holding the secret sending heartbeats of term 2^64-1 and
/// `raft::MAX_TERM + 1` has them dropped. No node's term or leader changes,
/// and after a kill -9 and restart of every node the cluster elects a
/// leader and takes writes (the bomb used to be persisted: no election
/// could ever succeed again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_term_bomb_and_an_impostor_leave_every_term_alone() {
    let _g = serial();
    let (mut c, leader) = cluster(&[]).await;
    others_are_served(&c, "before").await;
    let before = terms(&c).await;
    for id in 1..=3u64 {
        let peer = c.nodes[id as usize - 1].peer.clone();
        let from = id % 3 + 1;
        let mut s = TcpStream::connect(&peer).await.unwrap();
        let hello = PeerFrame::Hello {
            from,
            to: id,
            cluster: "test".into(),
            nonce: [5; 32],
        };
        write_frame(&mut s, &hello).await.unwrap();
        let _ = write_frame(&mut s, &PeerFrame::Proof { proof: None }).await;
        let bomb = PeerFrame::Raft(vec![heartbeat(from, id, u64::MAX)]);
        let _ = write_frame(&mut s, &bomb).await;
        let mut out = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        assert!(closed.is_ok(), "node {id} kept an impostor's connection");

        let mut s = TcpStream::connect(&peer).await.unwrap();
        handshake::dial(&mut s, &member_auth(), from, id)
            .await
            .unwrap();
        for term in [u64::MAX, raft::MAX_TERM + 1] {
            let bomb = PeerFrame::Raft(vec![heartbeat(from, id, term)]);
            write_frame(&mut s, &bomb).await.unwrap();
        }
    }
    others_are_served(&c, "bombed").await;
    assert_eq!(terms(&c).await, before, "a term changed");
    assert_eq!(c.wait_leader(&[1, 2, 3], ELECTION).await, leader);

    for id in 1..=3 {
        c.kill(id);
    }
    for id in 1..=3 {
        c.spawn(id);
    }
    c.wait_leader(&[1, 2, 3], RECOVER).await;
    others_are_served(&c, "restarted").await;
    assert!(
        terms(&c).await.iter().all(|&t| t < before[0] + 100),
        "terms after restart: {:?}",
        terms(&c).await
    );
}
