//! `raftkv snapshot save | restore`: back up a live single group and
//! bootstrap a new group from the backup.
//!
//! Backup file (little endian): magic `RKVBKUP1` (8) ‖ applied index u64 ‖
//! state length u64 ‖ CRC32C u32 of everything before it and the state ‖
//! state (the kv state machine's snapshot, itself a checksummed `rsm` frame).
//! `save` writes `FILE.tmp`, fsyncs it and renames it into place, so FILE is
//! either complete or absent.
//!
//! `restore` writes one new node's data directory: the state as a Raft
//! snapshot at its applied index (term 1), with the new group's voters as
//! its membership, a hard state committing it, and the directory's identity
//! (`server::identity`) under a new cluster id. Started with the same
//! `--cluster` and that `--cluster-id`, the nodes elect a leader and serve
//! the restored keys; the new group shares nothing with the old one but the
//! data, and no node or data directory of the old group can talk to it.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use raft::{HardState, Membership, Snapshot, SnapshotMeta, Storage};
use server::resp::Frame;

use crate::cli::RestoreArgs;

const MAGIC: &[u8; 8] = b"RKVBKUP1";
const HEADER_BYTES: usize = 28;

pub async fn save(file: PathBuf, endpoints: Vec<String>) -> Result<(), String> {
    let (index, state) = fetch(&endpoints).await?;
    write_file(&file, index, &state)
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    println!(
        "snapshot at index {index}, {} bytes of state, saved to {}",
        state.len(),
        file.display()
    );
    Ok(())
}

/// `RAFT SNAPSHOT` on each endpoint in turn until one answers (any node
/// forwards it to the leader).
async fn fetch(endpoints: &[String]) -> Result<(u64, Bytes), String> {
    let mut last = String::from("no endpoints");
    for ep in endpoints {
        let reply = match crate::connect::connect(ep).await {
            Ok(mut c) => c.call(&["RAFT", "SNAPSHOT"]).await,
            Err(e) => {
                last = format!("cannot connect to {ep}: {e}");
                continue;
            }
        };
        match reply {
            Ok(Frame::Array(parts)) => match parts.as_slice() {
                [Frame::Integer(i), Frame::Bulk(b)] if *i >= 0 => {
                    return Ok((*i as u64, b.clone()))
                }
                other => last = format!("{ep}: unexpected reply {other:?}"),
            },
            Ok(Frame::Error(e)) => last = format!("{ep}: {e}"),
            Ok(other) => last = format!("{ep}: unexpected reply {other:?}"),
            Err(e) => last = format!("{ep}: {e}"),
        }
    }
    Err(format!(
        "no endpoint could reach the leader ({last}); is a quorum of the group up?"
    ))
}

fn encode(index: u64, state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + state.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), state);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(state);
    out
}

/// The applied index and state of a backup file's bytes, or what is wrong.
fn decode(b: &[u8]) -> Result<(u64, Bytes), String> {
    if b.len() < HEADER_BYTES || &b[..8] != MAGIC {
        return Err("not a raftkv snapshot file (bad magic or too short)".into());
    }
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let (index, len) = (u64_at(8), u64_at(16));
    if len != (b.len() - HEADER_BYTES) as u64 {
        return Err(format!(
            "state length {len} but the file holds {} bytes of state (truncated?)",
            b.len() - HEADER_BYTES
        ));
    }
    let stored = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..24]), &b[HEADER_BYTES..]);
    if stored != crc {
        return Err("checksum mismatch: the file is corrupt".into());
    }
    if index == 0 {
        return Err("snapshot at index 0 holds nothing to restore".into());
    }
    Ok((index, Bytes::copy_from_slice(&b[HEADER_BYTES..])))
}

fn write_file(file: &Path, index: u64, state: &[u8]) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&encode(index, state))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, file)
}

pub fn restore(a: RestoreArgs) -> Result<(), String> {
    let bytes =
        std::fs::read(&a.file).map_err(|e| format!("cannot read {}: {e}", a.file.display()))?;
    let (index, state) = decode(&bytes).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let members = server::parse_cluster(&a.cluster)?;
    if !members.contains_key(&a.id) {
        return Err(format!("--cluster does not contain --id {}", a.id));
    }
    let not_empty = std::fs::read_dir(&a.data_dir).is_ok_and(|mut d| d.next().is_some());
    if not_empty {
        return Err(format!(
            "{} is not empty: restore creates a new node's data directory",
            a.data_dir.display()
        ));
    }
    std::fs::create_dir_all(&a.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", a.data_dir.display()))?;
    let cluster_id = match &a.cluster_id {
        Some(c) => c.clone(),
        None => derived_cluster_id(&bytes, &members),
    };
    server::peer::handshake::validate_cluster_id(&cluster_id)?;
    server::identity::check(&a.data_dir, a.id, &cluster_id)?;
    let mut s = storage::DiskStorage::open(&a.data_dir, storage::DiskOptions::default())
        .map_err(|e| e.to_string())?;
    let snapshot = Snapshot {
        meta: SnapshotMeta { index, term: 1 },
        conf: Some(Membership::with_voters(members.keys().copied())),
        data: state,
    };
    let hs = HardState {
        term: 1,
        vote: None,
        commit: index,
    };
    s.install_snapshot(snapshot)
        .and_then(|_| s.set_hard_state(hs))
        .and_then(|_| s.sync())
        .map_err(|e| format!("cannot write {}: {e}", a.data_dir.display()))?;
    println!(
        "node {} of a new group restored at index {index} into {}; start it with --cluster-id {cluster_id}",
        a.id,
        a.data_dir.display()
    );
    Ok(())
}

/// The restored group's cluster id when none is given: the same for every node
/// restored from the same file into the same `--cluster` (the restores of one
/// new group agree without talking), and, being `restored-...`, never the old
/// group's (unless it was itself restored from the same file into the same
/// addresses, which then replaces it).
fn derived_cluster_id(file: &[u8], members: &std::collections::BTreeMap<u64, String>) -> String {
    let cluster: String = members.iter().map(|(id, a)| format!("{id}={a},")).collect();
    let hi = crc32c::crc32c_append(crc32c::crc32c(b"raftkv restore hi"), file);
    let hi = crc32c::crc32c_append(hi, cluster.as_bytes());
    let lo = crc32c::crc32c_append(crc32c::crc32c(b"raftkv restore lo"), cluster.as_bytes());
    let lo = crc32c::crc32c_append(lo, file);
    format!("restored-{hi:08x}{lo:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_round_trips_and_damage_is_caught() {
        let b = encode(42, b"state");
        assert_eq!(decode(&b).unwrap(), (42, Bytes::from_static(b"state")));
        let mut bad = b.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(decode(&bad).unwrap_err().contains("checksum"));
        assert!(decode(&b[..b.len() - 1]).unwrap_err().contains("truncated"));
        assert!(decode(b"nope").unwrap_err().contains("magic"));
    }

    #[test]
    fn a_restored_group_gets_one_new_cluster_id_per_file_and_cluster() {
        let members = server::parse_cluster("1=a:1,2=b:2,3=c:3").unwrap();
        let other = server::parse_cluster("1=a:1,2=b:2,3=d:3").unwrap();
        let (f, g) = (encode(7, b"state"), encode(8, b"state"));
        let id = derived_cluster_id(&f, &members);
        assert_eq!(id, derived_cluster_id(&f, &members), "every node agrees");
        assert_ne!(id, derived_cluster_id(&g, &members));
        assert_ne!(id, derived_cluster_id(&f, &other));
        server::peer::handshake::validate_cluster_id(&id).unwrap();
    }
}
