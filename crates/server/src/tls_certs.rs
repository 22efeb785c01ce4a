//! Throwaway certificates for local clusters and tests (rcgen): a CA and,
//! per node, a certificate that works for both ports: DNS
//! `node-<id>.<cluster>.raftkv` (its peer identity, `crate::tls::peer_name`),
//! `localhost` and IP `127.0.0.1` (what local clients verify), with the
//! serverAuth and clientAuth usages.
//!
//! Not for production: keys are written unencrypted next to the data, and
//! nothing rotates or revokes them. The README shows the openssl commands
//! for a deployment over several machines.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA that signs node certificates, kept in memory.
pub struct ThrowawayCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The CA's private key, PEM.
    pub key_pem: String,
}

/// A certificate and its key, PEM.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

fn err(e: rcgen::Error) -> String {
    format!("cannot make a certificate: {e}")
}

impl ThrowawayCa {
    /// A new CA named `name` (its subject's common name).
    pub fn new(name: &str) -> Result<ThrowawayCa, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(ThrowawayCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A certificate for node `id` of `cluster`, signed by this CA.
    pub fn node(&self, id: u64, cluster: &str) -> Result<Pem, String> {
        self.leaf(
            &[crate::tls::peer_name(id, cluster)],
            &format!("raftkv node {id}"),
        )
    }

    /// A certificate with exactly these subject alternative names (an IP
    /// address string becomes an IP SAN), plus `localhost` and `127.0.0.1`.
    pub fn leaf(&self, names: &[String], common_name: &str) -> Result<Pem, String> {
        let mut sans = names.to_vec();
        sans.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
        let mut params = CertificateParams::new(sans).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// Where [`write_cluster`] puts the files of one directory.
pub struct ClusterFiles {
    pub dir: PathBuf,
}

impl ClusterFiles {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn cert(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}.crt"))
    }
    pub fn key(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}.key"))
    }
}

/// Writes a new CA (`ca.crt`, `ca.key`) and one certificate per id
/// (`node-<id>.crt`, `node-<id>.key`) into `dir`; keys are mode 0600.
pub fn write_cluster(dir: &Path, ids: &[u64], cluster: &str) -> Result<ClusterFiles, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = ClusterFiles {
        dir: dir.to_path_buf(),
    };
    // A name of its own: two throwaway CAs never look like one issuer.
    let tag = crate::peer::handshake::random_hex(4)?;
    let ca = ThrowawayCa::new(&format!("raftkv throwaway CA {tag} ({cluster})"))?;
    write(&files.ca(), &ca.cert_pem, false)?;
    write(&dir.join("ca.key"), &ca.key_pem, true)?;
    for &id in ids {
        let pem = ca.node(id, cluster)?;
        write(&files.cert(id), &pem.cert, false)?;
        write(&files.key(id), &pem.key, true)?;
    }
    Ok(files)
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
