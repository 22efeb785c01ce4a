//! Peer authentication: the three-frame handshake that opens every peer
//! connection, before any Raft message or forwarded request is read.
//!
//! ```text
//!  dialer D                                   acceptor A
//!    Hello { from, to, cluster, nonce: nD }  ─►
//!                                            ◄─ Challenge { cluster, nonce: nA, proof: mac("acceptor") }
//!    Proof { proof: mac("dialer") }          ─►
//!  mac(role) = HMAC-SHA256(secret, label(role) ‖ cluster ‖ from ‖ to ‖ nD ‖ nA)
//! ```
//!
//! Both sides prove they hold the cluster's shared secret
//! (`--peer-secret-file`) without sending it: each MAC covers a nonce the
//! *other* side just drew from the OS's CSPRNG, so an old proof is useless
//! on a new connection, and the role label keeps an acceptor's proof from
//! passing as a dialer's. Proofs are compared in constant time (`subtle`).
//! The MAC also binds the cluster id and both node ids, so a proof made for
//! one pair of nodes does not authenticate another.
//!
//! The cluster id (`--cluster-id`) travels in clear and is checked even
//! without a secret: a node of another cluster is refused, both sides
//! logging both ids. Without a secret on either side the handshake still
//! runs (ids and cluster checked, `proof: None`), and anyone who reaches the
//! peer port can claim to be a member; a node warns about that at startup.
//! A secret on one side only is refused by both, with a message that says so.
//!
//! Scope (what this does not do): the handshake authenticates who opened the
//! connection; without TLS, frames after it are neither encrypted nor MACed,
//! so an attacker *on the network path* can read them and could inject into
//! an established connection.
//!
//! With `--tls-peers` the same three frames run *inside* mutual TLS
//! (`crate::tls`), which complements rather than replaces them: TLS
//! encrypts and authenticates every byte and proves who holds which
//! certificate, and the `Hello` stays the one place a peer's id enters; the
//! acceptor refuses a `Hello` whose `from` is not the node the dialer's
//! certificate names (the `identity` check of [`accept`]) before it answers.
//! The cluster id is still checked, and a secret, if also given, still
//! proven (defence in depth; not needed with TLS). One protocol for both
//! settings: no second handshake to keep correct.
//!
//! Invariant: the acceptor reads nothing but the handshake until the
//! dialer's proof has been verified; handshake frames are capped at
//! [`wire::HANDSHAKE_MAX_FRAME_BYTES`], so an unauthenticated peer cannot
//! make the node allocate more than that.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use raft::NodeId;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;

use super::wire::{self, PeerFrame};

/// Bytes of a handshake nonce.
pub const NONCE_BYTES: usize = 32;
pub type Nonce = [u8; NONCE_BYTES];
/// An HMAC-SHA256 proof.
pub type Tag = [u8; 32];

/// The cluster id nodes use when `--cluster-id` is not given.
pub const DEFAULT_CLUSTER_ID: &str = "raftkv";
/// Longest cluster id.
pub const MAX_CLUSTER_ID_BYTES: usize = 64;

/// The cluster's shared peer secret. `Debug` never shows it.
#[derive(Clone)]
pub struct PeerSecret {
    key: Arc<[u8]>,
}

impl std::fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerSecret(<redacted>)")
    }
}

impl PeerSecret {
    /// Fewest bytes a secret may have: an observer of one handshake can
    /// guess a short secret offline against its MAC.
    pub const MIN_BYTES: usize = 16;

    pub fn new(key: &[u8]) -> Result<Self, String> {
        if key.len() < Self::MIN_BYTES {
            return Err(format!(
                "the peer secret has {} bytes; at least {} are needed (e.g. `openssl rand -hex 32 > FILE`)",
                key.len(),
                Self::MIN_BYTES
            ));
        }
        Ok(PeerSecret { key: key.into() })
    }

    /// Reads the secret from `path`: the file's bytes without one trailing
    /// newline (`\n` or `\r\n`).
    pub fn load(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read --peer-secret-file {}: {e}", path.display()))?;
        let key = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let key = key.strip_suffix(b"\r").unwrap_or(key);
        let secret =
            Self::new(key).map_err(|e| format!("--peer-secret-file {}: {e}", path.display()))?;
        crate::auth::warn_if_others_can_read(path, "--peer-secret-file");
        Ok(secret)
    }

    fn tag(&self, role: Role, t: &Transcript<'_>) -> Tag {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(role.label());
        mac.update(&(t.cluster.len() as u32).to_be_bytes());
        mac.update(t.cluster.as_bytes());
        mac.update(&t.from.to_be_bytes());
        mac.update(&t.to.to_be_bytes());
        mac.update(t.dialer_nonce);
        mac.update(t.acceptor_nonce);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is `role`'s proof of `t`, compared in constant time.
    fn verify(&self, role: Role, t: &Transcript<'_>, tag: &Tag) -> bool {
        self.tag(role, t).ct_eq(tag).into()
    }
}

/// `bytes` random bytes from the OS's CSPRNG, hex-encoded: a fresh secret
/// (32 bytes) or a throwaway cluster id for `raftkv cluster`.
pub fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| format!("no random bytes from the OS: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Who a node says it belongs to, and how it proves it.
#[derive(Clone, Debug)]
pub struct PeerAuth {
    /// `--cluster-id`: peers must name the same one.
    pub cluster: String,
    /// `--peer-secret-file`: `None` leaves the peer port unauthenticated
    /// unless `tls` is set.
    pub secret: Option<PeerSecret>,
    /// `--tls-peers`: links run inside mutual TLS, and a `Hello`'s `from`
    /// must be the node its certificate names (`crate::tls`).
    pub tls: Option<Arc<crate::tls::PeerTls>>,
}

impl Default for PeerAuth {
    fn default() -> Self {
        PeerAuth {
            cluster: DEFAULT_CLUSTER_ID.into(),
            secret: None,
            tls: None,
        }
    }
}

impl PeerAuth {
    pub fn validate(&self) -> Result<(), String> {
        validate_cluster_id(&self.cluster)
    }

    /// Says at startup when a node with peers keeps the default cluster id:
    /// two deployments that both keep it accept each other's nodes as far
    /// as the id goes (only a different secret still keeps them apart).
    pub fn warn_if_default_cluster(&self, members: usize) {
        if members > 1 && self.cluster == DEFAULT_CLUSTER_ID {
            tracing::warn!(
                cluster = %self.cluster,
                "--cluster-id is the default '{DEFAULT_CLUSTER_ID}', which every deployment that \
                 keeps it shares: a node of another such deployment (a copied --cluster list, a \
                 reused address) is not refused for its cluster id; give each deployment its own"
            );
        }
    }

    /// Says at startup, loudly, when the peer port takes anyone.
    pub fn warn_if_open(&self, peer_addr: &std::net::SocketAddr) {
        if self.secret.is_none() && self.tls.is_none() {
            tracing::warn!(
                peer = %peer_addr,
                cluster = %self.cluster,
                "the peer port is unauthenticated: anyone who can reach it can act as a member \
                 (send Raft messages, run forwarded requests); start every node with \
                 --tls-peers or --peer-secret-file (see the README, 'Securing a deployment')"
            );
        }
    }
}

/// `--cluster-id`: 1 to 64 characters from `[A-Za-z0-9._-]`.
pub fn validate_cluster_id(id: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > MAX_CLUSTER_ID_BYTES || !id.chars().all(ok_char) {
        return Err(format!(
            "--cluster-id '{id}' must be 1 to {MAX_CLUSTER_ID_BYTES} characters from A-Z a-z 0-9 . _ -"
        ));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Role {
    Dialer,
    Acceptor,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Dialer => b"raftkv peer handshake v1: dialer\0",
            Role::Acceptor => b"raftkv peer handshake v1: acceptor\0",
        }
    }
}

/// What both proofs cover.
struct Transcript<'a> {
    cluster: &'a str,
    from: NodeId,
    to: NodeId,
    dialer_nonce: &'a Nonce,
    acceptor_nonce: &'a Nonce,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The other side is not one of ours, or is configured differently:
    /// worth a warning (it will not get better by retrying).
    #[error("{0}")]
    Refused(String),
    /// The connection failed or closed during the handshake.
    #[error("{0}")]
    Io(String),
}

fn refused(s: impl Into<String>) -> HandshakeError {
    HandshakeError::Refused(s.into())
}

fn io_err(e: impl std::fmt::Display) -> HandshakeError {
    HandshakeError::Io(format!("handshake: {e}"))
}

/// A failed TLS handshake on a peer link: a certificate or protocol problem
/// (rustls reports `InvalidData`: not signed by the CA, not the node asked
/// for, plaintext on a TLS port) is a refusal; anything else is I/O.
pub fn tls_failure(e: std::io::Error) -> HandshakeError {
    let msg = format!("TLS handshake: {e}");
    if e.kind() == std::io::ErrorKind::InvalidData {
        HandshakeError::Refused(msg)
    } else {
        HandshakeError::Io(msg)
    }
}

fn fresh_nonce() -> Result<Nonce, HandshakeError> {
    let mut n = [0u8; NONCE_BYTES];
    getrandom::fill(&mut n).map_err(|e| io_err(format!("no random nonce: {e}")))?;
    Ok(n)
}

/// The dialer's side on a freshly connected `stream`: says `Hello`, checks
/// the acceptor's cluster and proof, sends its own proof. On `Ok` the
/// connection is authenticated and ready for frames.
pub async fn dial<S>(
    stream: &mut S,
    auth: &PeerAuth,
    from: NodeId,
    to: NodeId,
) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let dialer_nonce = fresh_nonce()?;
    let hello = PeerFrame::Hello {
        from,
        to,
        cluster: auth.cluster.clone(),
        nonce: dialer_nonce,
    };
    write_frame(stream, &hello).await?;
    let mut frames = FramedRead::new(&mut *stream, wire::handshake_codec());
    let (cluster, acceptor_nonce, proof) = match read_frame(&mut frames).await? {
        PeerFrame::Challenge {
            cluster,
            nonce,
            proof,
        } => (cluster, nonce, proof),
        _ => {
            return Err(refused(format!(
                "node {to} did not answer Hello with a Challenge"
            )))
        }
    };
    drop(frames); // the acceptor writes nothing after its Challenge
    if cluster != auth.cluster {
        return Err(refused(format!(
            "node {to} belongs to cluster '{cluster}', this node to cluster '{}' (--cluster-id); not connecting",
            auth.cluster
        )));
    }
    let t = Transcript {
        cluster: &auth.cluster,
        from,
        to,
        dialer_nonce: &dialer_nonce,
        acceptor_nonce: &acceptor_nonce,
    };
    let proof = match (&auth.secret, proof) {
        (None, None) => None,
        (Some(s), Some(tag)) if s.verify(Role::Acceptor, &t, &tag) => Some(s.tag(Role::Dialer, &t)),
        (Some(_), Some(_)) => {
            return Err(refused(format!(
                "node {to} failed to prove the peer secret (a different --peer-secret-file?); not connecting"
            )))
        }
        (Some(_), None) => {
            return Err(refused(format!(
                "node {to} has no peer secret (started without --peer-secret-file?); not connecting"
            )))
        }
        (None, Some(_)) => {
            // Say so (an empty proof) so that the acceptor logs why, too.
            write_frame(stream, &PeerFrame::Proof { proof: None }).await?;
            return Err(refused(format!(
                "node {to} requires a peer secret; start this node with --peer-secret-file"
            )));
        }
    };
    write_frame(stream, &PeerFrame::Proof { proof }).await
}

/// The acceptor's side, reading through `frames` (capped at the handshake
/// frame size) and answering on the same stream. `Ok(peer id)` once the
/// dialer's `Hello` names us and a member, `identity` accepts the id it
/// claims (with TLS: its certificate names that node; checked before we
/// answer), its cluster is ours, and its proof (if we have a secret) is
/// right.
pub async fn accept<S>(
    frames: &mut FramedRead<S, wire::FrameDecoder>,
    auth: &PeerAuth,
    self_id: NodeId,
    is_member: impl Fn(NodeId) -> bool,
    identity: impl Fn(NodeId) -> Result<(), String>,
) -> Result<NodeId, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (from, to, cluster, dialer_nonce) = match read_frame(frames).await? {
        PeerFrame::Hello {
            from,
            to,
            cluster,
            nonce,
        } => (from, to, cluster, nonce),
        _ => return Err(refused("first frame is not Hello")),
    };
    if to != self_id {
        return Err(refused(format!(
            "Hello for node {to}, but this is node {self_id}"
        )));
    }
    if from == self_id || !is_member(from) {
        return Err(refused(format!("Hello from unknown node {from}")));
    }
    identity(from).map_err(refused)?;
    let acceptor_nonce = fresh_nonce()?;
    let t = Transcript {
        cluster: &auth.cluster,
        from,
        to,
        dialer_nonce: &dialer_nonce,
        acceptor_nonce: &acceptor_nonce,
    };
    let same_cluster = cluster == auth.cluster;
    let challenge = PeerFrame::Challenge {
        cluster: auth.cluster.clone(),
        nonce: acceptor_nonce,
        proof: match &auth.secret {
            Some(s) if same_cluster => Some(s.tag(Role::Acceptor, &t)),
            _ => None,
        },
    };
    write_frame(frames.get_mut(), &challenge).await?;
    if !same_cluster {
        return Err(refused(format!(
            "refused node {from}: it belongs to cluster '{cluster}', this node to cluster '{}' (--cluster-id)",
            auth.cluster
        )));
    }
    let proof = match read_frame(frames).await? {
        PeerFrame::Proof { proof } => proof,
        _ => {
            return Err(refused(format!(
                "node {from} did not answer the Challenge with a Proof"
            )))
        }
    };
    match (&auth.secret, proof) {
        (None, None) => Ok(from),
        (Some(s), Some(tag)) if s.verify(Role::Dialer, &t, &tag) => Ok(from),
        (Some(_), Some(_)) => Err(refused(format!(
            "refused node {from}: wrong proof of the peer secret (a different --peer-secret-file, or not a member)"
        ))),
        (Some(_), None) => Err(refused(format!(
            "refused node {from}: it proves no peer secret (started without --peer-secret-file, or not a member)"
        ))),
        (None, Some(_)) => Err(refused(format!(
            "refused node {from}: it has a peer secret and this node has none; start every node with --peer-secret-file"
        ))),
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &PeerFrame,
) -> Result<(), HandshakeError> {
    let mut buf = bytes::BytesMut::new();
    wire::encode_into(frame, 64, &mut buf)
        .ok_or_else(|| io_err("frame over the peer frame size limit"))?;
    w.write_all(&buf).await.map_err(io_err)?;
    w.flush().await.map_err(io_err)
}

async fn read_frame<S: AsyncRead + Unpin>(
    frames: &mut FramedRead<S, wire::FrameDecoder>,
) -> Result<PeerFrame, HandshakeError> {
    match frames.next().await {
        None => Err(io_err(
            "the connection closed (refused by the other side? see its log)",
        )),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(refused(format!("bad handshake frame: {e}")))
        }
        Some(Err(e)) => Err(io_err(e)),
        Some(Ok(body)) => {
            wire::decode(&body).map_err(|e| refused(format!("undecodable handshake frame: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(cluster: &str, secret: Option<&[u8]>) -> PeerAuth {
        PeerAuth {
            cluster: cluster.into(),
            secret: secret.map(|s| PeerSecret::new(s).unwrap()),
            tls: None,
        }
    }

    /// Runs a dialer (node 2) against an acceptor (node 1) over an
    /// in-memory pipe; returns both outcomes.
    async fn run(
        dialer: PeerAuth,
        acceptor: PeerAuth,
    ) -> (Result<(), HandshakeError>, Result<NodeId, HandshakeError>) {
        let (mut a, b) = tokio::io::duplex(4096);
        let acc = tokio::spawn(async move {
            let mut frames = FramedRead::new(b, wire::handshake_codec());
            accept(&mut frames, &acceptor, 1, |id| id == 2, |_| Ok(())).await
        });
        let d = dial(&mut a, &dialer, 2, 1).await;
        drop(a);
        (d, acc.await.unwrap())
    }

    const S1: &[u8] = b"0123456789abcdef-one";
    const S2: &[u8] = b"0123456789abcdef-two";

    #[tokio::test]
    async fn the_same_secret_and_cluster_authenticate_both_sides() {
        let (d, a) = run(auth("c", Some(S1)), auth("c", Some(S1))).await;
        assert_eq!(d, Ok(()));
        assert_eq!(a, Ok(2));
        let (d, a) = run(auth("c", None), auth("c", None)).await;
        assert_eq!(
            (d, a),
            (Ok(()), Ok(2)),
            "no secret anywhere: open, as before"
        );
    }

    #[tokio::test]
    async fn a_different_secret_is_refused_by_the_dialer_before_it_proves_anything() {
        let (d, a) = run(auth("c", Some(S2)), auth("c", Some(S1))).await;
        assert!(
            matches!(d, Err(HandshakeError::Refused(ref m)) if m.contains("failed to prove")),
            "{d:?}"
        );
        assert!(a.is_err());
    }

    #[tokio::test]
    async fn a_secret_on_one_side_only_is_refused_by_both() {
        let (d, a) = run(auth("c", None), auth("c", Some(S1))).await;
        assert!(
            matches!(d, Err(HandshakeError::Refused(ref m)) if m.contains("requires a peer secret")),
            "{d:?}"
        );
        assert!(
            matches!(a, Err(HandshakeError::Refused(ref m)) if m.contains("proves no peer secret")),
            "{a:?}"
        );
        let (d, _) = run(auth("c", Some(S1)), auth("c", None)).await;
        assert!(
            matches!(d, Err(HandshakeError::Refused(ref m)) if m.contains("has no peer secret")),
            "{d:?}"
        );
    }

    #[tokio::test]
    async fn another_cluster_is_refused_naming_both_ids() {
        let (d, a) = run(auth("blue", None), auth("green", None)).await;
        let d = d.unwrap_err().to_string();
        let a = a.unwrap_err().to_string();
        for m in [&d, &a] {
            assert!(m.contains("'blue'") && m.contains("'green'"), "{m}");
        }
    }

    #[test]
    fn proofs_depend_on_role_nonces_ids_and_cluster() {
        let s = PeerSecret::new(S1).unwrap();
        let (n1, n2) = ([1u8; 32], [2u8; 32]);
        let t = |cluster, from, to, nd, na| Transcript {
            cluster,
            from,
            to,
            dialer_nonce: nd,
            acceptor_nonce: na,
        };
        let base = s.tag(Role::Dialer, &t("c", 2, 1, &n1, &n2));
        assert!(s.verify(Role::Dialer, &t("c", 2, 1, &n1, &n2), &base));
        assert!(!s.verify(Role::Acceptor, &t("c", 2, 1, &n1, &n2), &base));
        assert!(!s.verify(Role::Dialer, &t("c", 2, 1, &n2, &n1), &base));
        assert!(!s.verify(Role::Dialer, &t("c", 3, 1, &n1, &n2), &base));
        assert!(!s.verify(Role::Dialer, &t("d", 2, 1, &n1, &n2), &base));
        let other = PeerSecret::new(S2).unwrap();
        assert!(!other.verify(Role::Dialer, &t("c", 2, 1, &n1, &n2), &base));
    }

    #[test]
    fn secrets_and_cluster_ids_are_checked() {
        assert!(PeerSecret::new(b"short").is_err());
        assert_eq!(
            format!("{:?}", PeerSecret::new(S1).unwrap()),
            "PeerSecret(<redacted>)"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "0123456789abcdef\n").unwrap();
        assert!(PeerSecret::load(&f).is_ok());
        std::fs::write(&f, "\n").unwrap();
        assert!(PeerSecret::load(&f).is_err());
        assert!(validate_cluster_id("prod-eu.1_a").is_ok());
        assert!(validate_cluster_id("").is_err());
        assert!(validate_cluster_id("has space").is_err());
        assert!(validate_cluster_id(&"x".repeat(65)).is_err());
    }
}
