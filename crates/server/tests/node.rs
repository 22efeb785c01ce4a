//! In-process server tests: three nodes (each with its DiskStorage in a
//! temp dir) on 127.0.0.1 ephemeral ports; hostile clients and hostile
//! peers must get an error or a closed connection and leave the node serving.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use server::client::Client;
use server::peer::handshake::{self, HandshakeError};
use server::peer::{wire, PeerAuth, PeerFrame, PeerSecret};
use server::resp::Frame;
use server::{NodeConfig, RunningNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Nodes {
    nodes: Vec<RunningNode>,
    _dir: tempfile::TempDir,
}

async fn start_cluster(n: u64) -> Nodes {
    start_cluster_with(n, PeerAuth::default()).await
}

async fn start_cluster_with(n: u64, auth: PeerAuth) -> Nodes {
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
    Nodes { nodes, _dir: dir }
}

impl Nodes {
    fn addr(&self, i: usize) -> String {
        self.nodes[i].client_addr.to_string()
    }

    async fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = self
                .nodes
                .iter()
                .position(|n| n.status().raft.role == raft::Role::Leader)
            {
                return i;
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn write_frame(s: &mut TcpStream, f: &PeerFrame) {
    write_frame_to(s, f).await
}

async fn write_frame_to(s: &mut (impl tokio::io::AsyncWrite + Unpin), f: &PeerFrame) {
    let body = wire::encode(f);
    s.write_all(&(body.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&body).await.unwrap();
}

async fn raw_exchange(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let _ = s.shutdown().await; // EOF after the bytes: a peer that hangs up mid-frame
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_get_errors_and_the_node_keeps_serving() {
    let c = start_cluster(3).await;
    let leader = c.wait_leader().await;
    let f = c.addr((leader + 1) % 3);

    // Pipelined requests on one connection, answered in order; a command
    // error keeps the connection open.
    let mut cl = Client::connect(&f).await.unwrap();
    cl.queue(&["SET", "p", "1"]);
    cl.queue(&["APPEND", "p", "2"]);
    cl.queue(&["NOPE"]);
    cl.queue(&["GET", "p"]);
    cl.queue(&["GET"]);
    cl.queue(&["PING", "hi"]);
    cl.flush().await.unwrap();
    assert_eq!(cl.read_reply().await.unwrap(), Frame::Simple("OK".into()));
    assert_eq!(cl.read_reply().await.unwrap(), Frame::Integer(2));
    assert!(
        matches!(cl.read_reply().await.unwrap(), Frame::Error(e) if e.starts_with("ERR unknown command 'NOPE'"))
    );
    assert_eq!(
        cl.read_reply().await.unwrap(),
        Frame::Bulk(Bytes::from("12"))
    );
    assert!(
        matches!(cl.read_reply().await.unwrap(), Frame::Error(e) if e.contains("wrong number of arguments"))
    );
    assert_eq!(
        cl.read_reply().await.unwrap(),
        Frame::Bulk(Bytes::from("hi"))
    );

    // A 512 MiB bulk length: protocol error, connection closed.
    let out = raw_exchange(&f, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nabc").await;
    assert!(
        out.starts_with(b"-ERR Protocol error"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Garbage framing: protocol error, closed.
    let out = raw_exchange(&f, b"*x\r\n").await;
    assert!(
        out.starts_with(b"-ERR Protocol error"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Disconnect mid-request: nothing to answer, nothing breaks.
    {
        let mut s = TcpStream::connect(&f).await.unwrap();
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc")
            .await
            .unwrap();
    }
    // Many connections at once.
    let mut conns = Vec::new();
    for _ in 0..300 {
        conns.push(Client::connect(&f).await.unwrap());
    }
    for (i, c) in conns.iter_mut().enumerate().step_by(30) {
        assert_eq!(
            c.call(&["SET", &format!("c{i}"), "v"]).await.unwrap(),
            Frame::Simple("OK".into())
        );
    }
    // Still serving, and INFO raft names the leader.
    let mut cl = Client::connect(&c.addr(leader)).await.unwrap();
    assert_eq!(
        cl.call(&["GET", "p"]).await.unwrap(),
        Frame::Bulk(Bytes::from("12"))
    );
    let Frame::Bulk(info) = cl.call(&["INFO", "raft"]).await.unwrap() else {
        panic!()
    };
    let info = server::info::parse(&String::from_utf8_lossy(&info));
    assert_eq!(info["role"], "leader");
    assert_eq!(info["id"], (leader + 1).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_disconnected_and_the_node_keeps_serving() {
    let c = start_cluster(3).await;
    let leader = c.wait_leader().await;
    let peer = c.nodes[leader].peer_addr.to_string();
    let frame = |body: &[u8]| [(body.len() as u32).to_be_bytes().as_slice(), body].concat();
    let hello = |from, to| {
        wire::encode(&PeerFrame::Hello {
            from,
            to,
            cluster: "raftkv".into(),
            nonce: [0; 32],
        })
    };
    let me = leader as u64 + 1;
    let cases: Vec<Vec<u8>> = vec![
        b"garbage bytes that are not a frame at all".to_vec(),
        frame(b"\xff\xff\xff\xff"),      // undecodable body
        u32::MAX.to_be_bytes().to_vec(), // oversized length
        frame(&hello(99, me)),           // unknown node id
        frame(&hello(me, me)),           // claims to be us
        [frame(&hello((me % 3) + 1, me)), frame(b"\x01\x02")].concat(), // good hello, then garbage
        [
            frame(&hello((me % 3) + 1, me)),
            1000u32.to_be_bytes().to_vec(),
            b"partial".to_vec(),
        ]
        .concat(), // dropped mid-frame
    ];
    for bytes in cases {
        let out = raw_exchange(&peer, &bytes).await;
        // At most the handshake's Challenge comes back, then the node hangs up.
        if !out.is_empty() {
            let body = out.get(4..).unwrap_or_default();
            assert!(
                out.len() >= 4
                    && u32::from_be_bytes(out[..4].try_into().unwrap()) as usize == body.len(),
                "one frame at most: {out:?}"
            );
            let reply = wire::decode(body).unwrap();
            assert!(matches!(reply, PeerFrame::Challenge { .. }), "{reply:?}");
        }
    }
    let mut cl = Client::connect(&c.addr(leader)).await.unwrap();
    assert_eq!(
        cl.call(&["SET", "after", "ok"]).await.unwrap(),
        Frame::Simple("OK".into())
    );
    assert_eq!(c.nodes[leader].status().raft.role, raft::Role::Leader);
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

/// Issue 10's impersonation, on nodes started with a peer secret: a `Hello`
/// claiming to be a member, followed by a heartbeat 1000 terms ahead (which
/// deposes a leader that reads it), sent to the leader's peer port. Without
/// a proof, or with a wrong one, the leader closes the connection before
/// reading the heartbeat: no node's term changes. A node of another cluster
/// is refused naming both cluster ids. With the right secret the same
/// heartbeat gets through (the leader adopts its term): the check, not a
/// broken path, is what refused the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_cannot_prove_the_secret_is_refused() {
    let secret = PeerSecret::new(b"correct horse battery staple").unwrap();
    let auth = PeerAuth {
        cluster: "blue".into(),
        secret: Some(secret),
        tls: None,
    };
    let c = start_cluster_with(3, auth.clone()).await;
    let leader = c.wait_leader().await;
    let (me, from) = (leader as u64 + 1, (leader as u64 + 1) % 3 + 1);
    let peer = c.nodes[leader].peer_addr;
    let term = c.nodes[leader].status().raft.term;
    let bomb = PeerFrame::Raft(vec![heartbeat(from, me, term + 1000)]);

    for proof in [None, Some([7u8; 32])] {
        let mut s = TcpStream::connect(peer).await.unwrap();
        let hello = PeerFrame::Hello {
            from,
            to: me,
            cluster: "blue".into(),
            nonce: [1; 32],
        };
        write_frame(&mut s, &hello).await;
        let mut frames = tokio_util::codec::FramedRead::new(&mut s, wire::handshake_codec());
        let challenge = futures::StreamExt::next(&mut frames)
            .await
            .unwrap()
            .unwrap();
        drop(frames);
        let challenge = wire::decode(&challenge).unwrap();
        assert!(
            matches!(challenge, PeerFrame::Challenge { proof: Some(_), .. }),
            "{challenge:?}"
        );
        write_frame(&mut s, &PeerFrame::Proof { proof }).await;
        write_frame(&mut s, &bomb).await;
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the node kept a connection with proof {proof:?} open: {closed:?}"
        );
    }
    // Proper dialers with the wrong secret, no secret, another cluster.
    let wrong = PeerAuth {
        secret: Some(PeerSecret::new(b"the wrong secret, 16+ bytes").unwrap()),
        ..auth.clone()
    };
    let open = PeerAuth {
        secret: None,
        ..auth.clone()
    };
    let green = PeerAuth {
        cluster: "green".into(),
        ..auth.clone()
    };
    for (who, a) in [
        ("wrong secret", &wrong),
        ("no secret", &open),
        ("other cluster", &green),
    ] {
        let mut s = TcpStream::connect(peer).await.unwrap();
        let res = handshake::dial(&mut s, a, from, me).await;
        assert!(
            matches!(res, Err(HandshakeError::Refused(_))),
            "{who}: {res:?}"
        );
        if who == "other cluster" {
            let msg = res.unwrap_err().to_string();
            assert!(msg.contains("'blue'") && msg.contains("'green'"), "{msg}");
        }
    }
    // The cluster still has its leader, at its term: nothing got through.
    let mut cl = Client::connect(&c.addr(leader)).await.unwrap();
    assert_eq!(
        cl.call(&["SET", "after", "ok"]).await.unwrap(),
        Frame::Simple("OK".into())
    );
    for (i, node) in c.nodes.iter().enumerate() {
        assert_eq!(
            node.status().raft.term,
            term,
            "node {} changed its term",
            i + 1
        );
    }

    // The right secret: accepted, and the heartbeat is read.
    let mut s = TcpStream::connect(peer).await.unwrap();
    handshake::dial(&mut s, &auth, from, me).await.unwrap();
    write_frame(&mut s, &bomb).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.nodes[leader].status().raft.term < term + 1000 {
        assert!(
            Instant::now() < deadline,
            "an authenticated member's heartbeat was not read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Issue 10's term bomb: a `Hello` and one heartbeat with term 2^64-1 (and
/// one just past `raft::MAX_TERM`) sent to every node's peer port. The
/// messages are dropped with a warning: no node changes its term, the leader
/// keeps leading and writes keep succeeding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_term_bomb_on_every_peer_port_changes_no_term() {
    let c = start_cluster(3).await;
    let leader = c.wait_leader().await;
    let term = c.nodes[leader].status().raft.term;
    let mut bombs = Vec::new();
    for (i, node) in c.nodes.iter().enumerate() {
        let me = i as u64 + 1;
        let from = me % 3 + 1;
        let frames = [
            PeerFrame::Raft(vec![heartbeat(from, me, u64::MAX)]),
            PeerFrame::Raft(vec![heartbeat(from, me, raft::MAX_TERM + 1)]),
        ];
        let mut s = TcpStream::connect(node.peer_addr).await.unwrap();
        handshake::dial(&mut s, &PeerAuth::default(), from, me)
            .await
            .unwrap();
        for f in &frames {
            write_frame(&mut s, f).await;
        }
        bombs.push(s); // kept open: the connection itself is well-formed
    }
    // Writes through the leader for a while after the bombs landed.
    let mut cl = Client::connect(&c.addr(leader)).await.unwrap();
    for i in 0..20 {
        let k = format!("k{i}");
        assert_eq!(
            cl.call(&["SET", &k, "v"]).await.unwrap(),
            Frame::Simple("OK".into())
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for (i, node) in c.nodes.iter().enumerate() {
        let st = node.status().raft;
        assert_eq!(st.term, term, "node {} adopted a bomb term", i + 1);
        assert_eq!(st.leader, Some(leader as u64 + 1), "node {}", i + 1);
    }
    drop(bombs);
}

/// Issue 10's lockout: 100 idle sockets on a node's peer port (more than
/// its 64 connection slots), none saying anything. A member dialling right
/// after still completes its handshake at once: a connection beyond the
/// 16 allowed in their handshake closes the oldest unauthenticated one,
/// instead of the idle sockets holding every slot until their deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_unauthenticated_sockets_do_not_lock_members_out() {
    let c = start_cluster(3).await;
    let leader = c.wait_leader().await;
    let (me, from) = (leader as u64 + 1, (leader as u64 + 1) % 3 + 1);
    let peer = c.nodes[leader].peer_addr;
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(peer).await.unwrap());
    }
    // Well inside the handshake deadline (2.4 s) that would free the slots.
    let mut s = TcpStream::connect(peer).await.unwrap();
    let auth = PeerAuth::default();
    let dial = handshake::dial(&mut s, &auth, from, me);
    let res = tokio::time::timeout(Duration::from_millis(1500), dial).await;
    assert!(
        matches!(res, Ok(Ok(()))),
        "a member could not get in: {res:?}"
    );
    drop(idle);
}

/// A connection to `peer` whose bytes towards the node each wait `delay`
/// (a member far away): its handshake spans many flood connections.
async fn slow_link(peer: std::net::SocketAddr, delay: Duration) -> tokio::io::DuplexStream {
    let (mine, theirs) = tokio::io::duplex(64 << 10);
    let (mut sr, mut sw) = TcpStream::connect(peer).await.unwrap().into_split();
    let (mut tr, mut tw) = tokio::io::split(theirs);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n @ 1..) = tr.read(&mut buf).await {
            tokio::time::sleep(delay).await;
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut sr, &mut tw).await;
        let _ = tw.shutdown().await;
    });
    mine
}

/// Issue 10's per-source cap: one address (127.0.0.2) floods the leader's
/// peer port with connections that never say anything, as fast as it can.
/// A member dialling from another address (127.0.0.1), over a link that
/// delays each of its writes by 100 ms, still gets in: its heartbeat (a
/// term ahead) is read. A connection beyond the handshake caps closes one of
/// the flooding address's own, never the member's; with a global
/// oldest-first eviction the flood evicts the member mid-handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_flooding_the_peer_port_cannot_evict_a_members_handshake() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let c = start_cluster(3).await;
    let leader = c.wait_leader().await;
    let (me, from) = (leader as u64 + 1, (leader as u64 + 1) % 3 + 1);
    let node = &c.nodes[leader];
    let peer = node.peer_addr;
    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for _ in 0..4 {
        let (stop, flooded) = (stop.clone(), flooded.clone());
        flood.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let s = tokio::net::TcpSocket::new_v4().unwrap();
                if s.bind("127.0.0.2:0".parse().unwrap()).is_err() {
                    return false; // no 127.0.0.2 here
                }
                if let Ok(conn) = s.connect(peer).await {
                    held.push(conn);
                    flooded.fetch_add(1, Ordering::Relaxed);
                }
                if held.len() >= 100 {
                    held.clear();
                }
            }
            true
        }));
    }
    while flooded.load(Ordering::Relaxed) < 100 {
        assert!(
            !flood.iter().all(|t| t.is_finished()),
            "cannot bind 127.0.0.2"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let auth = PeerAuth::default();
    for attempt in 0..3 {
        let term = node.status().raft.term;
        let mut s = slow_link(peer, Duration::from_millis(100)).await;
        let dial = handshake::dial(&mut s, &auth, from, me);
        let res = tokio::time::timeout(Duration::from_secs(5), dial).await;
        assert!(matches!(res, Ok(Ok(()))), "attempt {attempt}: {res:?}");
        write_frame_to(
            &mut s,
            &PeerFrame::Raft(vec![heartbeat(from, me, term + 1)]),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut byte = [0u8; 1];
        while node.status().raft.term <= term {
            let closed = tokio::time::timeout(Duration::from_millis(20), s.read(&mut byte)).await;
            assert!(
                closed.is_err(),
                "attempt {attempt}: the member's connection was closed during the flood \
                 ({} flood connections so far): {closed:?}",
                flooded.load(Ordering::Relaxed)
            );
            assert!(
                Instant::now() < deadline,
                "attempt {attempt}: heartbeat not read"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        assert!(t.await.unwrap());
    }
    eprintln!(
        "flood: {} connections from 127.0.0.2",
        flooded.load(Ordering::Relaxed)
    );
}
