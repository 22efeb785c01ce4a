//! TLS against real `raftkv server` processes on 127.0.0.1, with throwaway
//! certificates (`server::tls_certs`, what `raftkv cluster --tls` makes):
//! - the client port answers TLS clients (our client, the raftkv CLI,
//!   redis-cli `--tls --cacert`, redis-py `ssl=True`, with and without
//!   `--requirepass-file`) and refuses plaintext and untrusted clients;
//! - peer links use mutual TLS: a dialer with a certificate from another
//!   CA, or with node 2's certificate claiming to be node 3, or without TLS,
//!   is refused, while the right certificate gets through; the cluster
//!   elects and serves writes with TLS on;
//! - with `--tls-auth-clients yes` only clients with a certificate from the
//!   CA are served;
//! - bad certificate flags stop a server with a one-line message.
//!
//! redis-cli and redis-py are skipped, with a printed reason, when missing.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{serial, Cluster};
use server::client::{Client, ClientTls};
use server::peer::handshake::{self, PeerAuth, PeerSecret};
use server::resp::Frame;
use server::tls_certs::{write_cluster, ClusterFiles};

const ELECTION: Duration = Duration::from_secs(15);
const CLUSTER_ID: &str = "test"; // the harness's --cluster-id

fn client_tls(ca: &Path) -> ClientTls {
    ClientTls {
        config: server::tls::client_config(ca, None).unwrap(),
        sni: None,
    }
}

/// A cluster of `n` with TLS on both ports, elected.
fn tls_cluster(n: u64, extra: &[&str], root: &Path) -> (Cluster, ClusterFiles) {
    let ids: Vec<u64> = (1..=n).collect();
    let files = write_cluster(&root.join("tls"), &ids, CLUSTER_ID).unwrap();
    let mut c = Cluster::new(n, extra);
    c.use_tls(&files);
    (c, files)
}

/// One command over TLS, retried until it is not an error (bounded).
async fn tls_call_ok(ep: &str, tls: &ClientTls, auth: Option<&str>, args: &[&str]) -> Frame {
    let deadline = std::time::Instant::now() + ELECTION;
    loop {
        let attempt = async {
            let mut c = Client::connect_with(ep, Some(tls)).await.ok()?;
            if let Some(pw) = auth {
                c.call(&["AUTH", pw]).await.ok()?;
            }
            c.call(args).await.ok()
        };
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Some(Frame::Error(_))) | Ok(None) | Err(_) => {}
            Ok(Some(f)) => return f,
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{ep}: no answer to {args:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(bytes::Bytes::copy_from_slice(s.as_bytes()))
}

fn raftkv(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(args)
        .output()
        .expect("run raftkv")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_port_serves_tls_clients_and_refuses_plaintext() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut c, files) = tls_cluster(3, &[], dir.path());
    for id in 1..=3 {
        c.spawn(id);
    }
    let leader = c.wait_leader(&[1, 2, 3], ELECTION).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let tls = client_tls(&files.ca());
    let (lead_ep, follow_ep) = (c.endpoint(leader), c.endpoint(follower));

    // Our own client, through the leader and through a follower (forwarded).
    let set = tls_call_ok(&lead_ep, &tls, None, &["SET", "k", "v1"]).await;
    assert_eq!(set, Frame::Simple("OK".into()));
    let got = tls_call_ok(&follow_ep, &tls, None, &["GET", "k"]).await;
    assert_eq!(got, bulk("v1"));

    // Plaintext RESP on the TLS port: no reply, the connection ends.
    let plain = async {
        let mut p = Client::connect(&lead_ep).await?;
        p.call(&["PING"]).await
    };
    let plain = tokio::time::timeout(Duration::from_secs(10), plain)
        .await
        .expect("a plaintext client is answered or closed at once");
    assert!(plain.is_err(), "plaintext PING on the TLS port: {plain:?}");

    // A client that trusts another CA does not accept the server.
    let other = tempfile::tempdir().unwrap();
    let foreign = write_cluster(other.path(), &[1], CLUSTER_ID).unwrap();
    let res = Client::connect_with(&lead_ep, Some(&client_tls(&foreign.ca()))).await;
    let err = res
        .err()
        .expect("a server certificate from another CA is refused");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );

    // The raftkv CLI with redis-cli's flags; without --tls it fails.
    let ca = files.ca().display().to_string();
    let out = raftkv(&[
        "put",
        "cli",
        "x",
        "--endpoints",
        &follow_ep,
        "--tls",
        "--cacert",
        &ca,
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = raftkv(&[
        "get",
        "cli",
        "--endpoints",
        &lead_ep,
        "--tls",
        "--cacert",
        &ca,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "x");
    let out = raftkv(&["get", "cli", "--endpoints", &lead_ep]);
    assert!(
        !out.status.success(),
        "plaintext CLI on a TLS port: {out:?}"
    );

    redis_cli(&lead_ep, &ca);
    redis_py(&follow_ep, &ca, None);
}

/// redis-cli `--tls --cacert`: SET then GET, and a plaintext redis-cli fails.
fn redis_cli(ep: &str, ca: &str) {
    let help = Command::new("redis-cli").arg("--help").output();
    let Ok(help) = help else {
        eprintln!("SKIPPED redis-cli --tls: redis-cli is not installed");
        return;
    };
    let help = String::from_utf8_lossy(&help.stdout) + String::from_utf8_lossy(&help.stderr);
    if !help.contains("--tls") || !help.contains("--cacert") {
        eprintln!("SKIPPED redis-cli --tls: this redis-cli was built without TLS");
        return;
    }
    let (host, port) = ep.rsplit_once(':').unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-h", host, "-p", port])
            .args(args)
            .output()
            .unwrap();
        (String::from_utf8_lossy(&out.stdout).trim().to_string(), out)
    };
    let (set, out) = cli(&["--tls", "--cacert", ca, "SET", "rc", "tls"]);
    assert_eq!(set, "OK", "{out:?}");
    let (get, out) = cli(&["--tls", "--cacert", ca, "GET", "rc"]);
    assert_eq!(get, "tls", "{out:?}");
    let (plain, out) = cli(&["GET", "rc"]);
    assert_ne!(plain, "tls", "plaintext redis-cli got an answer: {out:?}");
    eprintln!("redis-cli --tls --cacert: SET/GET answered; plaintext redis-cli refused");
}

/// redis-py with `ssl=True` (and `password` when the server requires one).
fn redis_py(ep: &str, ca: &str, password: Option<&str>) {
    let probe = Command::new("python3")
        .args(["-c", "import redis"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED redis-py ssl=True: python3 or redis-py is missing; `.ci/run` installs it"
        );
        return;
    }
    let (host, port) = ep.rsplit_once(':').unwrap();
    let script = r#"
import sys, redis
host, port, ca, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] or None
r = redis.Redis(host=host, port=port, ssl=True, ssl_ca_certs=ca, password=pw, socket_timeout=20)
assert r.set("py", "tls") is True
assert r.get("py") == b"tls", r.get("py")
assert r.ping() is True
if pw:
    try:
        redis.Redis(host=host, port=port, ssl=True, ssl_ca_certs=ca, password="wrong", socket_timeout=20).get("py")
        raise SystemExit("a wrong password was accepted")
    except redis.exceptions.AuthenticationError as e:
        assert "WRONGPASS" in str(e) or "invalid username-password" in str(e), e
    try:
        redis.Redis(host=host, port=port, ssl=True, ssl_ca_certs=ca, socket_timeout=20).get("py")
        raise SystemExit("no password was accepted")
    except redis.exceptions.AuthenticationError as e:
        # redis-py opens with HELLO 3: Redis (and raftkv) refuse it before AUTH
        assert "Authentication required" in str(e) or "HELLO must be called with the client already authenticated" in str(e), e
try:
    redis.Redis(host=host, port=port, socket_timeout=5).ping()
    raise SystemExit("plaintext redis-py got an answer")
except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
    pass
print("redis-py", redis.__version__, "ssl=True: SET/GET/PING answered; plaintext refused" + ("; AUTH: right password in, wrong and none refused" if pw else ""))
"#;
    let out = Command::new("python3")
        .args(["-c", script, host, port, ca, password.unwrap_or("")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_over_tls_with_redis_py() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "tls and a password\n").unwrap();
    let pass_arg = pass.display().to_string();
    let (mut c, files) = tls_cluster(1, &["--requirepass-file", &pass_arg], dir.path());
    c.password = Some("tls and a password".into());
    c.spawn(1);
    c.wait_leader(&[1], ELECTION).await;
    let tls = client_tls(&files.ca());
    let ep = c.endpoint(1);
    let pw = Some("tls and a password");
    let set = tls_call_ok(&ep, &tls, pw, &["SET", "a", "1"]).await;
    assert_eq!(set, Frame::Simple("OK".into()));
    let mut unauth = Client::connect_with(&ep, Some(&tls)).await.unwrap();
    match unauth.call(&["GET", "a"]).await.unwrap() {
        Frame::Error(e) => assert!(e.starts_with("NOAUTH"), "{e}"),
        other => panic!("GET without AUTH over TLS: {other:?}"),
    }
    redis_py(
        &ep,
        &files.ca().display().to_string(),
        Some("tls and a password"),
    );
}

/// Dials node `to`'s peer port as node `claim`, presenting `cert`/`key`
/// (and trusting `ca`), and runs the handshake with the harness's secret.
async fn dial_peer(
    peer_addr: &str,
    to: u64,
    claim: u64,
    ca: &Path,
    cert: &Path,
    key: &Path,
    secret: &Path,
) -> Result<(), String> {
    let config = server::tls::client_config(ca, Some((cert, key)))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name =
        server::tls::server_name_for(peer_addr, Some(&server::tls::peer_name(to, CLUSTER_ID)))?;
    let auth = PeerAuth {
        cluster: CLUSTER_ID.into(),
        secret: Some(PeerSecret::load(secret)?),
        tls: None,
    };
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(peer_addr)
            .await
            .map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        handshake::dial(&mut tls, &auth, claim, to)
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_links_need_a_member_certificate_naming_the_claimed_id() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut c, files) = tls_cluster(3, &[], dir.path());
    for id in 1..=3 {
        c.spawn(id);
    }
    // The cluster elects and serves writes with TLS on both ports.
    let leader = c.wait_leader(&[1, 2, 3], ELECTION).await;
    let tls = client_tls(&files.ca());
    let set = tls_call_ok(&c.endpoint(leader), &tls, None, &["SET", "m", "1"]).await;
    assert_eq!(set, Frame::Simple("OK".into()));
    for id in 1..=3 {
        assert_eq!(
            tls_call_ok(&c.endpoint(id), &tls, None, &["GET", "m"]).await,
            bulk("1")
        );
    }

    // The harness's secret, beside the data dirs.
    let secret = c.nodes[0].data.parent().unwrap().join("peer-secret");
    let peer = c.nodes[0].peer.clone(); // node 1's peer port
    let other = tempfile::tempdir().unwrap();
    let foreign = write_cluster(other.path(), &[3], CLUSTER_ID).unwrap();

    // Node 3's name, but signed by another CA: refused in the TLS handshake.
    let res = dial_peer(
        &peer,
        1,
        3,
        &files.ca(),
        &foreign.cert(3),
        &foreign.key(3),
        &secret,
    )
    .await;
    assert!(res.is_err(), "a certificate from another CA got in");
    // Node 2's real certificate, claiming to be node 3: refused at Hello.
    let res = dial_peer(
        &peer,
        1,
        3,
        &files.ca(),
        &files.cert(2),
        &files.key(2),
        &secret,
    )
    .await;
    assert!(res.is_err(), "node 2's certificate passed as node 3");
    // No TLS at all on the TLS peer port.
    let auth = PeerAuth {
        cluster: CLUSTER_ID.into(),
        secret: Some(PeerSecret::load(&secret).unwrap()),
        tls: None,
    };
    let plain = async {
        let mut s = tokio::net::TcpStream::connect(&peer).await.unwrap();
        handshake::dial(&mut s, &auth, 3, 1).await
    };
    let plain = tokio::time::timeout(Duration::from_secs(10), plain).await;
    assert!(!matches!(plain, Ok(Ok(()))), "a plaintext dialer got in");
    // The control: node 3's own certificate claiming node 3 gets through,
    // so the refusals above are the checks, not a broken path.
    let res = dial_peer(
        &peer,
        1,
        3,
        &files.ca(),
        &files.cert(3),
        &files.key(3),
        &secret,
    )
    .await;
    assert_eq!(res, Ok(()), "node 3's own certificate was refused");

    // And the cluster still serves.
    let set = tls_call_ok(&c.endpoint(leader), &tls, None, &["SET", "m", "2"]).await;
    assert_eq!(set, Frame::Simple("OK".into()));
}

#[test]
fn bad_tls_flags_stop_the_server_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_cluster(&dir.path().join("tls"), &[2], CLUSTER_ID).unwrap();
    let (cert, key, ca) = (
        files.cert(2).display().to_string(),
        files.key(2).display().to_string(),
        files.ca().display().to_string(),
    );
    let data = dir.path().join("data").display().to_string();
    let base = |id: &str| {
        vec![
            "server".to_string(),
            "--id".into(),
            id.into(),
            "--cluster".into(),
            format!("{id}=127.0.0.1:1"),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data.clone(),
            "--cluster-id".into(),
            CLUSTER_ID.into(),
        ]
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            [
                base("2"),
                vec![
                    "--tls-cert-file".into(),
                    "/nonexistent.crt".into(),
                    "--tls-key-file".into(),
                    key.clone(),
                ],
            ]
            .concat(),
            "cannot read --tls-cert-file /nonexistent.crt",
        ),
        (
            [
                base("2"),
                vec![
                    "--tls-cert-file".into(),
                    cert.clone(),
                    "--tls-key-file".into(),
                    cert.clone(),
                ],
            ]
            .concat(),
            "--tls-key-file",
        ),
        (
            [
                base("2"),
                vec![
                    "--tls-cert-file".into(),
                    key.clone(),
                    "--tls-key-file".into(),
                    key.clone(),
                ],
            ]
            .concat(),
            "no certificate in it",
        ),
        (
            [
                base("2"),
                vec![
                    "--tls-cert-file".into(),
                    cert.clone(),
                    "--tls-key-file".into(),
                    key.clone(),
                    "--tls-peers".into(),
                ],
            ]
            .concat(),
            "--tls-peers needs --tls-ca-cert-file",
        ),
        (
            // Node 2's certificate on a process started as node 3.
            [
                base("3"),
                vec![
                    "--tls-cert-file".into(),
                    cert.clone(),
                    "--tls-key-file".into(),
                    key.clone(),
                    "--tls-ca-cert-file".into(),
                    ca.clone(),
                    "--tls-peers".into(),
                ],
            ]
            .concat(),
            "does not pass as node 3",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_auth_clients_yes_needs_a_client_certificate_from_the_ca() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut c, files) = tls_cluster(1, &["--tls-auth-clients", "yes"], dir.path());
    // The harness presents node 1's certificate (it has the clientAuth usage).
    let with_cert = ClientTls {
        config: server::tls::client_config(&files.ca(), Some((&files.cert(1), &files.key(1))))
            .unwrap(),
        sni: None,
    };
    c.client_tls = Some(with_cert.clone());
    c.spawn(1);
    c.wait_leader(&[1], ELECTION).await;
    let ep = c.endpoint(1);
    let set = tls_call_ok(&ep, &with_cert, None, &["SET", "a", "1"]).await;
    assert_eq!(set, Frame::Simple("OK".into()));
    // Without a certificate: the server ends the handshake (TLS 1.3 tells
    // the client when it first reads).
    let without = async {
        let mut c = Client::connect_with(&ep, Some(&client_tls(&files.ca()))).await?;
        c.call(&["GET", "a"]).await
    };
    let res = tokio::time::timeout(Duration::from_secs(10), without)
        .await
        .expect("answered or closed at once");
    assert!(res.is_err(), "a client without a certificate got {res:?}");
    // With a certificate from another CA: refused as well.
    let other = tempfile::tempdir().unwrap();
    let foreign = write_cluster(other.path(), &[1], CLUSTER_ID).unwrap();
    let stranger = ClientTls {
        config: server::tls::client_config(&files.ca(), Some((&foreign.cert(1), &foreign.key(1))))
            .unwrap(),
        sni: None,
    };
    let res = async {
        let mut c = Client::connect_with(&ep, Some(&stranger)).await?;
        c.call(&["GET", "a"]).await
    };
    let res = tokio::time::timeout(Duration::from_secs(10), res)
        .await
        .unwrap();
    assert!(
        res.is_err(),
        "a client certificate from another CA got {res:?}"
    );
}
