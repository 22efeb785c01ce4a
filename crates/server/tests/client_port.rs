//! The client port's limits and authentication against a real one-node
//! server on 127.0.0.1 (issue 10): oversized bulks get a readable error,
//! a never-finished request is cut at the query buffer limit, a client that
//! never reads its replies is disconnected while others are served, the
//! connection cap answers with Redis's error, idle clients are closed, and
//! `--requirepass-file` gates every command behind AUTH.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use server::client::Client;
use server::config::ClientPortConfig;
use server::resp::Frame;
use server::{NodeConfig, RunningNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct One {
    node: RunningNode,
    _dir: tempfile::TempDir,
}

impl One {
    fn addr(&self) -> String {
        self.node.client_addr.to_string()
    }
}

/// A one-node group (it elects itself) with `tune` applied to its config.
async fn start_one(tune: impl FnOnce(&mut NodeConfig)) -> One {
    let dir = tempfile::tempdir().unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let members = BTreeMap::from([(1, peer.local_addr().unwrap().to_string())]);
    let mut cfg = NodeConfig::new(1, members, String::new(), dir.path().join("n1"));
    tune(&mut cfg);
    let node = server::start_with(cfg, client, peer).await.unwrap();
    let one = One { node, _dir: dir };
    // Bounded wait until it serves writes.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut cl = Client::connect(&one.addr()).await.unwrap();
    loop {
        if let Ok(Frame::Simple(_)) = cl.call(&["SET", "ready", "1"]).await {
            break;
        }
        assert!(Instant::now() < deadline, "the node never served a write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    one
}

/// Everything the server sends until it closes (bounded wait); a reset
/// ends the read like EOF does.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let r = tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "the server did not close the connection within {within:?} (got {} bytes: {:?})",
        out.len(),
        String::from_utf8_lossy(&out[..out.len().min(200)])
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A 50 MB SET, as a client library sends it (header, then every byte):
/// refused when the header arrives, and the client reads why instead of a
/// bare reset (the server shuts its side and drains before closing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_bulk_gets_a_readable_error() {
    let one = start_one(|_| {}).await;
    // Like redis-cli: write the whole command, then read the reply.
    let mut s = TcpStream::connect(one.addr()).await.unwrap();
    let len = 50_000_000usize;
    let header = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${len}\r\n");
    let sent = tokio::time::timeout(Duration::from_secs(30), async {
        s.write_all(header.as_bytes()).await?;
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..len / chunk.len() {
            s.write_all(&chunk).await?;
        }
        s.write_all(&chunk[..len % chunk.len()]).await?;
        s.write_all(b"\r\n").await
    })
    .await
    .expect("the server keeps reading (and dropping) until the command is sent");
    assert!(sent.is_ok(), "writing was cut by a reset: {sent:?}");
    let out = read_until_closed(&mut s, Duration::from_secs(30)).await;
    assert_eq!(text(&out), "-ERR Protocol error: invalid bulk length\r\n");
    // The node keeps serving, and values up to the limit still work.
    let mut cl = Client::connect(&one.addr()).await.unwrap();
    let max = vec![b'v'; kv::MAX_VALUE_BYTES];
    assert_eq!(
        cl.call(&[b"SET".as_slice(), b"max", &max]).await.unwrap(),
        Frame::Simple("OK".into())
    );
    assert_eq!(
        cl.call(&["GET", "max"]).await.unwrap(),
        Frame::Bulk(Bytes::from(max))
    );
}

/// Issue 10's never-finished array (199 bulks announced, their bytes sent,
/// the request never completed): cut at the query buffer limit with a
/// readable error, rather than buffered without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_finished_request_is_cut_at_the_query_buffer_limit() {
    let bulk = 1 << 20;
    let limit = 4 << 20;
    let one = start_one(|cfg| {
        cfg.client.proto_max_bulk_len = bulk;
        cfg.client.query_buffer_limit_bytes = limit;
    })
    .await;
    let mut s = TcpStream::connect(one.addr()).await.unwrap();
    let mut req = b"*199\r\n".to_vec();
    for _ in 0..8 {
        // 8 MiB in all, twice the limit; the other 191 bulks never come.
        req.extend_from_slice(format!("${bulk}\r\n").as_bytes());
        req.extend(std::iter::repeat_n(b'x', bulk));
        req.extend_from_slice(b"\r\n");
    }
    let (mut rd, mut wr) = s.split();
    let (_, out) = tokio::join!(
        async {
            let _ = wr.write_all(&req).await; // kept open: the request is never finished
        },
        read_until_closed_half(&mut rd, Duration::from_secs(30))
    );
    assert_eq!(
        text(&out),
        format!("-ERR Protocol error: too big request (over client-query-buffer-limit, {limit} bytes)\r\n")
    );
    let mut cl = Client::connect(&one.addr()).await.unwrap();
    assert_eq!(
        cl.call(&["GET", "ready"]).await.unwrap(),
        Frame::Bulk(Bytes::from("1"))
    );
}

async fn read_until_closed_half(
    rd: &mut tokio::net::tcp::ReadHalf<'_>,
    within: Duration,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    let r = tokio::time::timeout(within, async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "not closed within {within:?}; got {:?}",
        text(&out)
    );
    out
}

/// Issue 10's unread replies: a client pipelines GETs of a large value and
/// never reads. It is disconnected once its pending replies pass the output
/// buffer limit (it receives far fewer than it asked for, then EOF), and
/// another client is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected() {
    let one = start_one(|cfg| cfg.client.output_buffer_limit_bytes = 1 << 20).await;
    let value = vec![b'v'; 512 << 10];
    let mut cl = Client::connect(&one.addr()).await.unwrap();
    assert_eq!(
        cl.call(&[b"SET".as_slice(), b"big", &value]).await.unwrap(),
        Frame::Simple("OK".into())
    );
    let gets = 400;
    let mut greedy = TcpStream::connect(one.addr()).await.unwrap();
    greedy
        .write_all(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(gets))
        .await
        .unwrap();
    // Others keep being served while it does not read.
    for i in 0..20 {
        let k = format!("other{i}");
        assert_eq!(
            cl.call(&["SET", &k, "x"]).await.unwrap(),
            Frame::Simple("OK".into())
        );
    }
    let got = read_until_closed(&mut greedy, Duration::from_secs(60)).await;
    let all = gets * (value.len() + 12);
    assert!(
        got.len() < all / 2,
        "received {} of {} reply bytes: not disconnected at the limit",
        got.len(),
        all
    );
    assert_eq!(
        cl.call(&["GET", "other0"]).await.unwrap(),
        Frame::Bulk(Bytes::from("x"))
    );
}

/// At the connection cap a new client reads Redis's error and is closed
/// (it used to hang in the backlog); once a slot frees up, clients are
/// served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_answers_max_number_of_clients() {
    let one = start_one(|cfg| cfg.max_connections = 2).await;
    // start_one's own client has gone; wait until both slots are ours.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.len() < 2 {
        let mut c = Client::connect(&one.addr()).await.unwrap();
        match c.call(&["PING"]).await {
            Ok(Frame::Simple(p)) if p == "PONG" => held.push(c),
            _ => {
                assert!(Instant::now() < deadline, "slots never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let mut extra = TcpStream::connect(one.addr()).await.unwrap();
    extra.write_all(b"PING\r\n").await.unwrap();
    let out = read_until_closed(&mut extra, Duration::from_secs(10)).await;
    assert_eq!(text(&out), "-ERR max number of clients reached\r\n");
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::connect(&one.addr()).await.unwrap();
        if let Ok(Frame::Simple(p)) = c.call(&["PING"]).await {
            assert_eq!(p, "PONG");
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `--timeout`: an idle client is closed; without it (the default) a
/// connection may stay idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_closed_after_the_timeout() {
    let one = start_one(|cfg| cfg.client.idle_timeout = Some(Duration::from_millis(300))).await;
    let mut idle = TcpStream::connect(one.addr()).await.unwrap();
    let out = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(out.is_empty(), "{}", text(&out));
    // An active client is not idle.
    let mut cl = Client::connect(&one.addr()).await.unwrap();
    for _ in 0..5 {
        assert_eq!(
            cl.call(&["PING"]).await.unwrap(),
            Frame::Simple("PONG".into())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn err(f: Frame) -> String {
    match f {
        Frame::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// `--requirepass-file`: NOAUTH for everything but AUTH, HELLO and QUIT
/// until AUTH succeeds; Redis's WRONGPASS for a wrong user or password; both
/// AUTH forms and HELLO ... AUTH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_gates_every_command_behind_auth() {
    let pwdir = tempfile::tempdir().unwrap();
    let pwfile = pwdir.path().join("pw");
    std::fs::write(&pwfile, "s3cret\n").unwrap();
    let password = server::auth::Password::load(&pwfile).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let members = BTreeMap::from([(1, peer.local_addr().unwrap().to_string())]);
    let mut cfg = NodeConfig::new(1, members, String::new(), dir.path().join("n1"));
    cfg.client = ClientPortConfig {
        requirepass: Some(password),
        ..ClientPortConfig::default()
    };
    let node = server::start_with(cfg, client, peer).await.unwrap();
    let addr = node.client_addr.to_string();

    let mut c = Client::connect(&addr).await.unwrap();
    for cmd in [
        &["PING"][..],
        &["GET", "k"],
        &["SET", "k", "v"],
        &["INFO"],
        &["COMMAND", "DOCS"],
        &["NOPE"],
        &["GET"],
    ] {
        assert_eq!(err(c.call(cmd).await.unwrap()), NOAUTH, "{cmd:?}");
    }
    assert_eq!(err(c.call(&["AUTH", "wrong"]).await.unwrap()), WRONGPASS);
    assert_eq!(
        err(c.call(&["AUTH", "default", "wrong"]).await.unwrap()),
        WRONGPASS
    );
    assert_eq!(
        err(c.call(&["AUTH", "bob", "s3cret"]).await.unwrap()),
        WRONGPASS
    );
    assert_eq!(err(c.call(&["AUTH", "s3cret\n"]).await.unwrap()), WRONGPASS);
    assert!(err(c.call(&["HELLO", "2"]).await.unwrap()).starts_with("NOAUTH HELLO must be called"));
    assert_eq!(
        err(c
            .call(&["HELLO", "2", "AUTH", "default", "wrong"])
            .await
            .unwrap()),
        WRONGPASS
    );
    assert_eq!(err(c.call(&["PING"]).await.unwrap()), NOAUTH);
    assert_eq!(
        c.call(&["AUTH", "s3cret"]).await.unwrap(),
        Frame::Simple("OK".into())
    );
    // A failed AUTH later does not undo the success (as in Redis).
    assert_eq!(err(c.call(&["AUTH", "nope"]).await.unwrap()), WRONGPASS);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.call(&["SET", "k", "v"]).await.unwrap() != Frame::Simple("OK".into()) {
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // AUTH default <pw>.
    let mut c = Client::connect(&addr).await.unwrap();
    assert_eq!(
        c.call(&["AUTH", "default", "s3cret"]).await.unwrap(),
        Frame::Simple("OK".into())
    );
    assert_eq!(
        c.call(&["GET", "k"]).await.unwrap(),
        Frame::Bulk(Bytes::from("v"))
    );

    // HELLO 3 AUTH default <pw>: authenticated and switched to RESP3 at once.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$6\r\ns3cret\r\n*2\r\n$3\r\nGET\r\n$4\r\nnone\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got.ends_with(b"_\r\n") {
        assert!(Instant::now() < deadline, "got {:?}", text(&got));
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed; got {:?}", text(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"%7\r\n"), "{:?}", text(&got));

    // QUIT works before AUTH.
    let mut c = Client::connect(&addr).await.unwrap();
    assert_eq!(c.call(&["QUIT"]).await.unwrap(), Frame::Simple("OK".into()));
}

/// Without a password nothing changes, and AUTH answers as Redis does for a
/// default user without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_requirepass_auth_is_not_needed() {
    let one = start_one(|_| {}).await;
    let mut c = Client::connect(&one.addr()).await.unwrap();
    assert_eq!(
        c.call(&["GET", "ready"]).await.unwrap(),
        Frame::Bulk(Bytes::from("1"))
    );
    assert!(err(c.call(&["AUTH", "x"]).await.unwrap())
        .starts_with("ERR AUTH <password> called without any password configured"));
    assert_eq!(
        c.call(&["AUTH", "default", "x"]).await.unwrap(),
        Frame::Simple("OK".into())
    );
    assert_eq!(err(c.call(&["AUTH", "bob", "x"]).await.unwrap()), WRONGPASS);
    assert!(matches!(
        c.call(&["HELLO", "2", "AUTH", "default", "anything"])
            .await
            .unwrap(),
        Frame::Array(_)
    ));
}
