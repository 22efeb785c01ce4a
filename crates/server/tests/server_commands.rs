//! Connection and server commands against a real one-node server on
//! 127.0.0.1: `CLIENT` describes the connections really open, `HELLO`'s id
//! is the connection's, `INFO` carries the fields `redis-cli --stat` and
//! monitoring tools read, `CONFIG GET` answers the way `redis-cli` asserts,
//! and `COMMAND` follows the one command table.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use server::client::Client;
use server::resp::table::COMMANDS;
use server::resp::Frame;
use server::{NodeConfig, RunningNode};
use tokio::net::TcpListener;

struct One {
    node: RunningNode,
    _dir: tempfile::TempDir,
}

impl One {
    fn addr(&self) -> String {
        self.node.client_addr.to_string()
    }

    async fn client(&self) -> Client {
        Client::connect(&self.addr()).await.unwrap()
    }
}

/// A one-node group (it elects itself), serving writes.
async fn start_one() -> One {
    let dir = tempfile::tempdir().unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let members = BTreeMap::from([(1, peer.local_addr().unwrap().to_string())]);
    let cfg = NodeConfig::new(1, members, String::new(), dir.path().join("n1"));
    let node = server::start_with(cfg, client, peer).await.unwrap();
    let one = One { node, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut cl = one.client().await;
    loop {
        if let Ok(Frame::Simple(_)) = cl.call(&["SET", "ready", "1"]).await {
            break;
        }
        assert!(Instant::now() < deadline, "the node never served a write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    one
}

fn text(f: Frame) -> String {
    match f {
        Frame::Bulk(b) | Frame::Verbatim(b) => String::from_utf8_lossy(&b).into_owned(),
        Frame::Simple(s) => s,
        other => panic!("expected text, got {other:?}"),
    }
}

fn int(f: Frame) -> i64 {
    match f {
        Frame::Integer(n) => n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn bulks(f: Frame) -> Vec<String> {
    match f {
        Frame::Array(items) => items.into_iter().map(text).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// The ids in a `CLIENT LIST` reply.
fn listed_ids(list: &str) -> Vec<u64> {
    list.lines()
        .map(|l| {
            l.strip_prefix("id=")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad CLIENT LIST line {l:?}"))
        })
        .collect()
}

#[tokio::test]
async fn client_commands_describe_the_open_connections() {
    let one = start_one().await;
    let mut a = one.client().await;
    let mut b = one.client().await;
    let id_a = int(a.call(&["CLIENT", "ID"]).await.unwrap());
    let id_b = int(b.call(&["client", "id"]).await.unwrap());
    assert!(id_b > id_a, "ids increase: {id_a} then {id_b}");

    assert_eq!(a.call(&["CLIENT", "GETNAME"]).await.unwrap(), Frame::Null);
    assert_eq!(
        text(a.call(&["CLIENT", "SETNAME", "worker-1"]).await.unwrap()),
        "OK"
    );
    assert_eq!(
        text(a.call(&["CLIENT", "GETNAME"]).await.unwrap()),
        "worker-1"
    );
    assert_eq!(
        a.call(&["CLIENT", "SETNAME", "two words"]).await.unwrap(),
        Frame::Error(
            "ERR Client names cannot contain spaces, newlines or special characters.".into()
        )
    );
    assert_eq!(
        text(
            a.call(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"])
                .await
                .unwrap()
        ),
        "OK"
    );

    let list = text(b.call(&["CLIENT", "LIST"]).await.unwrap());
    let ids = listed_ids(&list);
    assert!(
        ids.contains(&(id_a as u64)) && ids.contains(&(id_b as u64)),
        "{list}"
    );
    let line_a = list
        .lines()
        .find(|l| l.starts_with(&format!("id={id_a} ")))
        .unwrap();
    assert!(line_a.contains(" name=worker-1 "), "{line_a}");
    assert!(line_a.contains(" lib-name=redis-py "), "{line_a}");
    assert!(line_a.contains(" cmd=client|setinfo "), "{line_a}");
    let info_b = text(b.call(&["CLIENT", "INFO"]).await.unwrap());
    assert!(info_b.starts_with(&format!("id={id_b} ")), "{info_b}");
    assert!(info_b.contains(" cmd=client|info "), "{info_b}");
    assert_eq!(
        listed_ids(&text(
            b.call(&["CLIENT", "LIST", "ID", &id_a.to_string(), "999999"])
                .await
                .unwrap()
        )),
        vec![id_a as u64]
    );

    // HELLO's id is the connection's client id; SETNAME names it.
    let hello = bulks_or_ints(b.call(&["HELLO", "2", "SETNAME", "b"]).await.unwrap());
    let pos = hello.iter().position(|k| k == "id").unwrap();
    assert_eq!(hello[pos + 1], id_b.to_string());
    assert_eq!(text(b.call(&["CLIENT", "GETNAME"]).await.unwrap()), "b");

    // A closed connection leaves the list (the server notices the close
    // asynchronously: bounded poll).
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ids = listed_ids(&text(b.call(&["CLIENT", "LIST"]).await.unwrap()));
        if !ids.contains(&(id_a as u64)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "closed client {id_a} still listed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A flat RESP2 map with text and integer values, as strings.
fn bulks_or_ints(f: Frame) -> Vec<String> {
    match f {
        Frame::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Frame::Integer(n) => n.to_string(),
                Frame::Array(_) => "[]".into(),
                other => text(other),
            })
            .collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

#[tokio::test]
async fn info_has_the_fields_redis_tools_read() {
    let one = start_one().await;
    let mut c = one.client().await;
    // The node's status (keys) is published after the write's reply: poll.
    let deadline = Instant::now() + Duration::from_secs(5);
    let f = loop {
        let f = server::info::parse(&text(c.call(&["INFO"]).await.unwrap()));
        if f.contains_key("db0") || Instant::now() > deadline {
            break f;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // What `redis-cli --stat` reads (it prints LONG_MIN for a missing field).
    for field in [
        "used_memory",
        "connected_clients",
        "blocked_clients",
        "total_commands_processed",
        "total_connections_received",
        "rdb_bgsave_in_progress",
        "aof_rewrite_in_progress",
        "loading",
        "instantaneous_ops_per_sec",
        "maxclients",
        "used_memory_rss",
        "uptime_in_seconds",
        "tcp_port",
        "keyspace_hits",
        "rejected_connections",
    ] {
        let v = f.get(field).unwrap_or_else(|| panic!("INFO lacks {field}"));
        assert!(v.parse::<u64>().is_ok(), "{field}:{v} is not a number");
    }
    assert!(f["used_memory"].parse::<u64>().unwrap() > 0);
    assert!(f["connected_clients"].parse::<u64>().unwrap() >= 1);
    assert!(f["redis_version"].starts_with("7."));
    assert_eq!(f["tcp_port"], one.node.client_addr.port().to_string());
    assert_eq!(f["db0"], "keys=1,expires=0,avg_ttl=0", "the 'ready' key");
    // The raft section is still there, and its `role` wins over Redis's.
    assert_eq!(f["role"], "leader");
    assert_eq!(f["keys"], "1");

    // A key with a TTL counts in `expires` (published after the reply: poll).
    assert_eq!(
        text(c.call(&["SET", "ttl", "v", "EX", "1000"]).await.unwrap()),
        "OK"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ks = server::info::parse(&text(c.call(&["INFO", "keyspace"]).await.unwrap()));
        if ks.get("db0").map(String::as_str) == Some("keys=2,expires=1,avg_ttl=0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keyspace never counted the TTL: {ks:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Sections on request, several at once, case-insensitive; unknown: empty.
    let two = text(c.call(&["INFO", "Server", "clients"]).await.unwrap());
    let headers: Vec<&str> = two.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(headers, ["# Server", "# Clients"]);
    assert_eq!(text(c.call(&["INFO", "nosuchsection"]).await.unwrap()), "");

    // Counters move with real work.
    let before = server::info::parse(&text(c.call(&["INFO", "stats"]).await.unwrap()));
    c.call(&["GET", "ready"]).await.unwrap();
    c.call(&["GET", "missing"]).await.unwrap();
    let after = server::info::parse(&text(c.call(&["INFO", "stats"]).await.unwrap()));
    let n = |m: &BTreeMap<String, String>, k: &str| m[k].parse::<u64>().unwrap();
    assert_eq!(
        n(&after, "total_commands_processed"),
        n(&before, "total_commands_processed") + 3
    );
    assert_eq!(n(&after, "keyspace_hits"), n(&before, "keyspace_hits") + 1);
    assert_eq!(
        n(&after, "keyspace_misses"),
        n(&before, "keyspace_misses") + 1
    );

    // commandstats: on request or with `all`, not by default (as Redis).
    c.call(&["GET"]).await.unwrap(); // rejected: wrong arity
    let stats = server::info::parse(&text(c.call(&["INFO", "commandstats"]).await.unwrap()));
    let get = &stats["cmdstat_get"];
    assert!(
        get.starts_with("calls=") && get.contains(",rejected_calls=1,failed_calls=0"),
        "{get}"
    );
    assert!(stats.contains_key("cmdstat_info"));
    assert!(!text(c.call(&["INFO"]).await.unwrap()).contains("# Commandstats"));
    assert!(text(c.call(&["INFO", "all"]).await.unwrap()).contains("# Commandstats\r\ncmdstat_"));

    // expired_keys: a key that dies is removed by active expiry (a leader
    // proposes a tick when one is due) and counted, with no client touching it.
    let expired = |m: &BTreeMap<String, String>| m["expired_keys"].parse::<u64>().unwrap();
    assert_eq!(expired(&after), 0);
    assert_eq!(
        text(c.call(&["SET", "short", "v", "PX", "20"]).await.unwrap()),
        "OK"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = server::info::parse(&text(c.call(&["INFO", "stats"]).await.unwrap()));
        if expired(&s) == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired_keys never counted: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn config_and_command_answer_like_redis() {
    let one = start_one().await;
    let mut c = one.client().await;
    // redis-cli asserts exactly two elements for `CONFIG GET databases`.
    assert_eq!(
        bulks(c.call(&["CONFIG", "GET", "databases"]).await.unwrap()),
        ["databases", "1"]
    );
    assert_eq!(
        bulks(
            c.call(&["CONFIG", "GET", "maxclients", "time*"])
                .await
                .unwrap()
        ),
        ["maxclients", "10000", "timeout", "0"]
    );
    assert_eq!(
        text(c.call(&["CONFIG", "SET", "save", ""]).await.unwrap()),
        "OK"
    );
    assert!(matches!(
        c.call(&["CONFIG", "SET", "maxclients", "1"]).await.unwrap(),
        Frame::Error(e) if e.contains("--max-connections")
    ));
    assert_eq!(
        int(c.call(&["COMMAND", "COUNT"]).await.unwrap()),
        COMMANDS.len() as i64
    );
    let Frame::Array(rows) = c.call(&["COMMAND"]).await.unwrap() else {
        panic!("COMMAND is not an array")
    };
    assert_eq!(rows.len(), COMMANDS.len());
    assert_eq!(
        bulks(
            c.call(&["COMMAND", "GETKEYS", "DEL", "a", "b"])
                .await
                .unwrap()
        ),
        ["a", "b"]
    );
    assert_eq!(text(c.call(&["ECHO", "hello"]).await.unwrap()), "hello");
    let time = bulks(c.call(&["TIME"]).await.unwrap());
    assert_eq!(time.len(), 2);
    assert_eq!(text(c.call(&["SELECT", "0"]).await.unwrap()), "OK");
    assert_eq!(
        c.call(&["SELECT", "3"]).await.unwrap(),
        Frame::Error("ERR DB index is out of range".into())
    );
    assert_eq!(
        c.call(&["CLIENT", "NOSUCH"]).await.unwrap(),
        Frame::Error("ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP.".into())
    );
}

/// Whether the server closed `c`'s connection (bounded wait).
async fn closed(c: &mut Client) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), c.call(&["PING"])).await {
            Ok(Err(_)) => return true,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    false
}

#[tokio::test]
async fn client_kill_closes_the_named_connections() {
    let one = start_one().await;
    let mut a = one.client().await;
    let mut b = one.client().await;
    let mut d = one.client().await;
    let id_b = int(b.call(&["CLIENT", "ID"]).await.unwrap());
    let id_a = int(a.call(&["CLIENT", "ID"]).await.unwrap());
    // New form: the count; the caller is skipped by default.
    assert_eq!(
        int(a
            .call(&["CLIENT", "KILL", "ID", &id_b.to_string()])
            .await
            .unwrap()),
        1
    );
    assert!(closed(&mut b).await, "killed client still served");
    assert_eq!(
        int(a
            .call(&["CLIENT", "KILL", "ID", &id_a.to_string()])
            .await
            .unwrap()),
        0,
        "SKIPME yes by default"
    );
    // Old form by address: OK, or Redis's error when nobody matches.
    let info_d = text(d.call(&["CLIENT", "INFO"]).await.unwrap());
    let addr_d = info_d
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .unwrap()
        .to_string();
    assert_eq!(
        text(a.call(&["CLIENT", "KILL", &addr_d]).await.unwrap()),
        "OK"
    );
    assert!(closed(&mut d).await);
    assert_eq!(
        a.call(&["CLIENT", "KILL", "127.0.0.1:1"]).await.unwrap(),
        Frame::Error("ERR No such client".into())
    );
    // Killing yourself: the reply arrives, then the connection closes.
    assert_eq!(
        int(a
            .call(&["CLIENT", "KILL", "ID", &id_a.to_string(), "SKIPME", "no"])
            .await
            .unwrap()),
        1
    );
    assert!(closed(&mut a).await);
}
