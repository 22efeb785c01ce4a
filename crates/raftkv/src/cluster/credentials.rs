//! The local cluster's peer credentials: a shared peer secret and a cluster
//! id, made in the data directory on first use (`peer-secret`, a 32-byte
//! random secret hex-encoded, mode 0600; `cluster-id`, `local-` and 8 random
//! hex digits) and read back when the cluster is resumed, so every child
//! gets the same `--peer-secret-file` and `--cluster-id`.
//!
//! With `--tls`, also a throwaway CA and a certificate per process in
//! `DIR/tls` (`server::tls_certs`), made once and reused on resume.
//!
//! Invariant: an existing secret, id or certificate is never replaced (a
//! resumed cluster keeps talking to itself).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use server::peer::handshake::{random_hex, validate_cluster_id};

pub struct Credentials {
    pub secret_file: PathBuf,
    pub cluster_id: String,
}

impl Credentials {
    /// Makes (first use) or reads the credentials under `dir`.
    pub fn ensure(dir: &Path) -> Result<Credentials, String> {
        let secret_file = dir.join("peer-secret");
        if !secret_file.exists() {
            let hex = random_hex(32)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&secret_file)
                .map_err(|e| format!("cannot create {}: {e}", secret_file.display()))?;
            writeln!(f, "{hex}")
                .map_err(|e| format!("cannot write {}: {e}", secret_file.display()))?;
        }
        let id_file = dir.join("cluster-id");
        let cluster_id = match std::fs::read_to_string(&id_file) {
            Ok(s) => s.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = format!("local-{}", random_hex(4)?);
                std::fs::write(&id_file, format!("{id}\n"))
                    .map_err(|e| format!("cannot write {}: {e}", id_file.display()))?;
                id
            }
            Err(e) => return Err(format!("cannot read {}: {e}", id_file.display())),
        };
        validate_cluster_id(&cluster_id).map_err(|e| format!("{}: {e}", id_file.display()))?;
        Ok(Credentials {
            secret_file,
            cluster_id,
        })
    }

    /// The `raftkv server` flags that carry them.
    pub fn flags(&self) -> [String; 4] {
        [
            "--peer-secret-file".into(),
            self.secret_file.to_string_lossy().into_owned(),
            "--cluster-id".into(),
            self.cluster_id.clone(),
        ]
    }
}

/// `DIR/tls`: made with a new CA on first use, else checked complete.
pub fn ensure_tls(
    dir: &Path,
    ids: &[u64],
    cluster_id: &str,
) -> Result<server::tls_certs::ClusterFiles, String> {
    let files = server::tls_certs::ClusterFiles {
        dir: dir.join("tls"),
    };
    if !files.ca().exists() {
        return server::tls_certs::write_cluster(&files.dir, ids, cluster_id);
    }
    for &id in ids {
        for f in [files.cert(id), files.key(id)] {
            if !f.exists() {
                return Err(format!(
                    "{} is missing (remove {} to make new certificates)",
                    f.display(),
                    files.dir.display()
                ));
            }
        }
    }
    Ok(files)
}

/// The `raftkv server` flags for process `id`'s certificates.
pub fn tls_flags(files: &server::tls_certs::ClusterFiles, id: u64) -> Vec<String> {
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    vec![
        "--tls-cert-file".into(),
        path(files.cert(id)),
        "--tls-key-file".into(),
        path(files.key(id)),
        "--tls-ca-cert-file".into(),
        path(files.ca()),
        "--tls-peers".into(),
    ]
}
