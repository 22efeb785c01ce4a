//! TLS for both ports (rustls, with the `ring` provider): loading the PEM
//! files named on the command line, the client port's acceptor, mutual TLS
//! on peer links, and the client side the CLI uses.
//!
//! Flags (Redis's `tls-*` names as raftkv flags, so a Redis operator finds
//! them; `raftkv server --help`):
//! - `--tls-cert-file` + `--tls-key-file`: this process's certificate chain
//!   and key. With them the client port (`--listen`) speaks TLS only. One
//!   address per process, always of the same kind: it is what `raftkv
//!   cluster` prints, what a sharded configuration stores for a member, and
//!   what `-MOVED` and `CLUSTER SLOTS` advertise, so a TLS client is always
//!   sent to a TLS port (Redis's separate `tls-port` would need a second
//!   address per member in the replicated configuration).
//! - `--tls-ca-cert-file`: the CA certificates that verify client
//!   certificates (`--tls-auth-clients`) and peers (`--tls-peers`).
//! - `--tls-auth-clients no|optional|yes` (Redis's setting; default `no`
//!   here, where Redis says `yes`: with `--requirepass-file` clients already
//!   authenticate, and `redis-cli --tls --cacert` then works as is).
//! - `--tls-peers` (Redis's `tls-cluster`): mutual TLS on every peer link.
//!
//! Peer identity: a member's certificate must carry the DNS subject
//! alternative name [`peer_name`] `node-<id>.<cluster-id>.raftkv` and be
//! signed by the CA. The dialer asks for that name of the node it dials
//! (rustls checks it as the server name); the acceptor checks the name of
//! the id the dialer claims in its `Hello` ([`PeerTls::check_identity`])
//! before it answers. So a certificate for node 2 can be node 2 only, in one
//! cluster only, and a process without a certificate signed by the CA does
//! not get past the TLS handshake. Certificates need both the serverAuth and
//! clientAuth extended key usages (every member dials and accepts).
//!
//! Invariant: every error from loading files is one line that names the
//! flag and the file; nothing here panics on bad input.

use std::path::Path;
use std::sync::Arc;

use raft::NodeId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Whether clients must present a certificate (Redis's `tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthClients {
    /// No client certificate is asked for.
    #[default]
    No,
    /// A client may present one; if it does, it must verify.
    Optional,
    /// A client without a certificate signed by the CA is refused.
    Yes,
}

/// The PEM files of one process.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    pub ca: Option<std::path::PathBuf>,
    pub auth_clients: AuthClients,
    pub peers: bool,
}

/// The TLS settings a node runs with, built once at startup: the CLI puts
/// `client` into `ClientPortConfig::tls` and `peers` into `PeerAuth::tls`.
#[derive(Clone, Debug)]
pub struct NodeTls {
    /// The client port's acceptor (`None`: plaintext).
    pub client: Option<Acceptor>,
    /// Mutual TLS on peer links (`None`: plain TCP).
    pub peers: Option<Arc<PeerTls>>,
}

/// The client port's TLS acceptor, and how this process reaches another's
/// client port (a sharded process PINGs a joining member's client address).
#[derive(Clone)]
pub struct Acceptor {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub probe: crate::client::ClientTls,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor(TLS)")
    }
}

/// Mutual TLS for one node's peer links.
pub struct PeerTls {
    cluster: String,
    /// Accepts members: a client certificate signed by the CA is required.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Dials members, presenting our certificate.
    pub connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerTls(cluster {})", self.cluster)
    }
}

/// The DNS name a member's certificate carries: `node-<id>.<cluster>.raftkv`.
pub fn peer_name(id: NodeId, cluster: &str) -> String {
    format!("node-{id}.{cluster}.raftkv")
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsFiles {
    /// Loads the files and builds the node's TLS settings; `Ok(None)` when
    /// no TLS flag is given. `id` and `cluster` name this node for
    /// `--tls-peers` (its certificate must carry [`peer_name`]).
    pub fn load(&self, id: NodeId, cluster: &str) -> Result<Option<NodeTls>, String> {
        let (cert, key) = match (&self.cert, &self.key) {
            (None, None) => {
                if self.ca.is_some() || self.peers || self.auth_clients != AuthClients::No {
                    return Err(
                        "--tls-ca-cert-file, --tls-auth-clients and --tls-peers need --tls-cert-file and --tls-key-file".into(),
                    );
                }
                return Ok(None);
            }
            (Some(c), Some(k)) => (c, k),
            (Some(_), None) => return Err("--tls-cert-file needs --tls-key-file".into()),
            (None, Some(_)) => return Err("--tls-key-file needs --tls-cert-file".into()),
        };
        let chain = load_certs(cert, "--tls-cert-file")?;
        let key = load_key(key)?;
        let roots = match &self.ca {
            Some(ca) => Some(load_roots(ca)?),
            None if self.peers => return Err("--tls-peers needs --tls-ca-cert-file".into()),
            None if self.auth_clients != AuthClients::No => {
                return Err("--tls-auth-clients needs --tls-ca-cert-file".into())
            }
            None => None,
        };
        let client = client_acceptor(&chain, &key, roots.clone(), self.auth_clients)?;
        let peers = match (self.peers, roots.clone()) {
            (true, Some(roots)) => Some(Arc::new(PeerTls::new(&chain, &key, roots, id, cluster)?)),
            _ => None,
        };
        let probe = crate::client::ClientTls {
            config: probe_config(&chain, &key, roots.clone())?,
            sni: None,
        };
        Ok(Some(NodeTls {
            client: Some(Acceptor {
                acceptor: client,
                probe,
            }),
            peers,
        }))
    }
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path, flag)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{flag} {}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{flag} {}: no certificate in it (expected PEM '-----BEGIN CERTIFICATE-----')",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(path, "--tls-key-file")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!(
            "--tls-key-file {}: no usable private key in it ({e})",
            path.display()
        )
    })
}

/// The CA certificates of a PEM file as a root store.
pub fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "--tls-ca-cert-file")? {
        roots.add(cert).map_err(|e| {
            format!(
                "--tls-ca-cert-file {}: not a usable CA certificate: {e}",
                path.display()
            )
        })?;
    }
    Ok(Arc::new(roots))
}

/// How this process connects to another's client port to PING it: with a
/// CA, verified against it (the address's host must be in the other's
/// certificate) and presenting our certificate (for `--tls-auth-clients`);
/// without one there is nothing to verify against, and the probe, which
/// sends nothing but `PING`, accepts any certificate.
fn probe_config(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    roots: Option<Arc<RootCertStore>>,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let cfg = match roots {
        Some(roots) => builder
            .with_root_certificates(roots)
            .with_client_auth_cert(chain.to_vec(), key.clone_key())
            .map_err(|e| format!("--tls-cert-file / --tls-key-file: {e}"))?,
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Accepts any server certificate (signatures still checked): the PING
/// probe without a CA only.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_acceptor(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    roots: Option<Arc<RootCertStore>>,
    auth: AuthClients,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match (roots, auth) {
        (Some(roots), AuthClients::Yes | AuthClients::Optional) => {
            let mut v =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider());
            if auth == AuthClients::Optional {
                v = v.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(
                v.build().map_err(|e| format!("--tls-ca-cert-file: {e}"))?,
            )
        }
        _ => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(chain.to_vec(), key.clone_key())
        .map_err(|e| format!("--tls-cert-file / --tls-key-file: {e}"))?;
    cfg.alpn_protocols.clear();
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

impl PeerTls {
    fn new(
        chain: &[CertificateDer<'static>],
        key: &PrivateKeyDer<'static>,
        roots: Arc<RootCertStore>,
        id: NodeId,
        cluster: &str,
    ) -> Result<PeerTls, String> {
        let me = dns_name(id, cluster)?;
        // Our own certificate must be what peers will ask for: say so now,
        // not as handshake failures on every other node.
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| format!("--tls-ca-cert-file: {e}"))?;
        use rustls::client::danger::ServerCertVerifier;
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &me, &[], UnixTime::now())
            .map_err(|e| {
                format!(
                    "--tls-peers: this node's --tls-cert-file does not pass as node {id} of cluster '{cluster}' \
                     (it must be signed by --tls-ca-cert-file and name DNS:{}): {e}",
                    peer_name(id, cluster)
                )
            })?;
        let verify_clients =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| format!("--tls-ca-cert-file: {e}"))?;
        let mut server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_client_cert_verifier(verify_clients)
            .with_single_cert(chain.to_vec(), key.clone_key())
            .map_err(|e| format!("--tls-cert-file / --tls-key-file: {e}"))?;
        // The acceptor never writes after the handshake (links are one-way).
        server.send_tls13_tickets = 0;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain.to_vec(), key.clone_key())
            .map_err(|e| format!("--tls-cert-file / --tls-key-file: {e}"))?;
        Ok(PeerTls {
            cluster: cluster.to_string(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
        })
    }

    /// The name the dialer asks of node `id` (rustls checks the acceptor's
    /// certificate against it).
    pub fn server_name(&self, id: NodeId) -> Result<ServerName<'static>, String> {
        dns_name(id, &self.cluster)
    }

    /// The acceptor's check: the dialer's certificate (already verified
    /// against the CA by rustls) must name the node its `Hello` claims.
    pub fn check_identity(
        &self,
        cert: Option<&CertificateDer<'_>>,
        claimed: NodeId,
    ) -> Result<(), String> {
        let Some(cert) = cert else {
            return Err(format!("node {claimed} presented no certificate"));
        };
        let name = dns_name(claimed, &self.cluster)?;
        webpki::EndEntityCert::try_from(cert)
            .and_then(|c| c.verify_is_valid_for_subject_name(&name))
            .map_err(|e| {
                format!(
                    "refused node {claimed}: its certificate does not name {} ({e})",
                    peer_name(claimed, &self.cluster)
                )
            })
    }
}

fn dns_name(id: NodeId, cluster: &str) -> Result<ServerName<'static>, String> {
    let name = peer_name(id, cluster);
    ServerName::try_from(name.clone()).map_err(|_| {
        format!(
            "--tls-peers: '{name}' is not a DNS name; use a --cluster-id made of letters, digits and inner '-' (dot-separated)"
        )
    })
}

/// The client side of TLS to a RESP port (the CLI, `raftkv cluster`,
/// tests): trust `ca` (PEM), present `cert`+`key` if given.
pub fn client_config(
    ca: &Path,
    cert_and_key: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, String> {
    let roots = load_certs(ca, "--cacert")?;
    let mut store = RootCertStore::empty();
    for c in roots {
        store.add(c).map_err(|e| {
            format!(
                "--cacert {}: not a usable CA certificate: {e}",
                ca.display()
            )
        })?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(store);
    let cfg = match cert_and_key {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = load_certs(cert, "--cert")?;
            let pem = read(key, "--key")?;
            let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                format!("--key {}: no usable private key in it ({e})", key.display())
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("--cert / --key: {e}"))?
        }
    };
    Ok(Arc::new(cfg))
}

/// The server name to verify for `addr` (`HOST:PORT`): `sni` if given,
/// else the host (an IP address or a DNS name).
pub fn server_name_for(addr: &str, sni: Option<&str>) -> Result<ServerName<'static>, String> {
    let host = match sni {
        Some(s) => s,
        None => addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(addr)
            .trim_start_matches('[')
            .trim_end_matches(']'),
    };
    ServerName::try_from(host.to_string())
        .map_err(|_| format!("'{host}' is not a host name or IP address to verify (--sni)"))
}
