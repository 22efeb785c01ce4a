//! A data directory's identity: the node id and the cluster id (`--cluster-id`,
//! the same name the peer handshake checks) it belongs to, in the file
//! [`IDENTITY_FILE`], written and synced on the directory's first start.
//!
//! ```text
//! raftkv node 3
//! cluster prod-eu
//! ```
//!
//! Invariant: a node only runs on a data directory whose identity file names
//! its `--id` and its `--cluster-id`. A directory copied from another node, or
//! from another cluster (a restored backup, an old deployment), is refused
//! with both ids named, never silently joined. A file written before cluster
//! ids were recorded (`raftkv node 3` alone) is adopted into the cluster of
//! the node that opens it and rewritten.
//!
//! The default cluster id (`raftkv`) is recorded like any other, so the
//! directories of deployments that all kept it cannot be told apart (a node
//! with peers warns about the default at startup: `PeerAuth`; `raftkv
//! cluster` generates an id).

use std::io::Write;
use std::path::Path;

use raft::NodeId;

/// The file in a data directory that names the node and cluster it belongs to.
pub const IDENTITY_FILE: &str = "NODE-ID";

/// What [`check`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// The directory had no identity: it now has this one.
    Created,
    /// The directory names this node and cluster.
    Same,
    /// The directory named this node but no cluster (an older release); it now
    /// names this cluster too.
    Adopted,
}

fn render(id: NodeId, cluster: &str) -> String {
    format!("raftkv node {id}\ncluster {cluster}\n")
}

/// `(node id, cluster id if recorded)` of an identity file's text.
fn parse(text: &str) -> Option<(NodeId, Option<&str>)> {
    let mut lines = text.lines();
    let id = lines.next()?.strip_prefix("raftkv node ")?.parse().ok()?;
    let cluster = match lines.next() {
        None => None,
        Some(l) => Some(l.strip_prefix("cluster ")?),
    };
    lines.next().is_none().then_some((id, cluster))
}

/// Checks that `dir` belongs to node `id` of cluster `cluster`, recording that
/// identity if the directory has none yet. `Err` is the message to print.
pub fn check(dir: &Path, id: NodeId, cluster: &str) -> Result<Checked, String> {
    let path = dir.join(IDENTITY_FILE);
    let found = match std::fs::read_to_string(&path) {
        Ok(found) => found,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write(dir, &render(id, cluster))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            return Ok(Checked::Created);
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let Some((node, recorded)) = parse(&found) else {
        return Err(format!(
            "{} is not a raftkv identity file ({:?}); this is not a raftkv data directory, or it is damaged",
            path.display(),
            found.lines().next().unwrap_or("")
        ));
    };
    if node != id {
        return Err(format!(
            "data directory {} belongs to node {node}{}; this is --id {id}: use that node's id or another directory",
            dir.display(),
            recorded.map_or(String::new(), |c| format!(" of cluster '{c}'"))
        ));
    }
    match recorded {
        Some(c) if c == cluster => Ok(Checked::Same),
        Some(c) => Err(format!(
            "data directory {} belongs to node {id} of cluster '{c}'; this is node {id} of cluster '{cluster}' (--cluster-id): a data directory never moves between clusters. Start with --cluster-id {c} if this node is in that cluster, or use an empty data directory",
            dir.display()
        )),
        None => {
            write(dir, &render(id, cluster))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(Checked::Adopted)
        }
    }
}

/// Writes the identity file atomically (a temporary file, synced, renamed, and
/// the directory synced), so a crash leaves the old file or the new one.
fn write(dir: &Path, text: &str) -> std::io::Result<()> {
    let tmp = dir.join("NODE-ID.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(IDENTITY_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Logs what [`check`] did at a node's start.
pub fn log(checked: &Checked, dir: &Path, id: NodeId, cluster: &str) {
    match checked {
        Checked::Same => {}
        Checked::Created => tracing::info!(
            data_dir = %dir.display(),
            "data directory now belongs to node {id} of cluster '{cluster}'"
        ),
        Checked::Adopted => tracing::info!(
            data_dir = %dir.display(),
            "data directory named node {id} but no cluster (written by an older release): it now belongs to cluster '{cluster}'"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_remembers_its_node_and_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(check(d, 3, "a"), Ok(Checked::Created));
        assert_eq!(check(d, 3, "a"), Ok(Checked::Same));
        let err = check(d, 4, "a").unwrap_err();
        assert!(err.contains("belongs to node 3 of cluster 'a'"), "{err}");
        assert!(err.contains("this is --id 4"), "{err}");
        let err = check(d, 3, "b").unwrap_err();
        assert!(
            err.contains("node 3 of cluster 'a'") && err.contains("node 3 of cluster 'b'"),
            "both ids named: {err}"
        );
        assert_eq!(
            check(d, 3, "a"),
            Ok(Checked::Same),
            "refusals change nothing"
        );
    }

    #[test]
    fn an_identity_without_a_cluster_is_adopted_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join(IDENTITY_FILE), "raftkv node 2\n").unwrap();
        assert!(check(d, 1, "a").unwrap_err().contains("belongs to node 2;"));
        assert_eq!(check(d, 2, "a"), Ok(Checked::Adopted));
        assert_eq!(check(d, 2, "a"), Ok(Checked::Same));
        assert!(check(d, 2, "b").is_err(), "adopted for good");
    }

    #[test]
    fn a_damaged_identity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for bad in ["", "hello\n", "raftkv node x\n", "raftkv node 1\nfoo\n"] {
            std::fs::write(d.join(IDENTITY_FILE), bad).unwrap();
            let err = check(d, 1, "a").unwrap_err();
            assert!(err.contains("not a raftkv identity file"), "{bad:?}: {err}");
        }
    }
}
