//! `SHARDCTL`: the controller's operations through any process's client
//! port (`raftkv shard ...` sends these). The process forwards them to the
//! controller group's leader inside its controller session
//! (`Router::ctrl_change`), after checks that turn operator mistakes into a
//! clear error with no change: a join naming a process this deployment's
//! `--peers` does not list or whose client address does not answer `PING`,
//! a leave of every remaining group (their data would be dropped), a query
//! of a configuration that does not exist yet. The controller itself refuses
//! joins of existing groups, moves to unknown groups and bad shards.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use shardmeta::{Config, Member};

use super::router::Router;
use crate::client::Client;
use crate::resp::{Frame, ShardCtl};

/// How long a joining member's client port gets to answer `PING`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn execute(router: &Router, cmd: ShardCtl) -> Frame {
    match run(router, cmd).await {
        Ok(text) => Frame::Bulk(Bytes::from(text)),
        Err(e) => Frame::Error(e),
    }
}

async fn run(router: &Router, cmd: ShardCtl) -> Result<String, String> {
    let op = match cmd {
        ShardCtl::Query(num) => {
            let c = router.ctrl_query(num).await.map_err(|e| e.to_string())?;
            return match num {
                Some(n) if n != c.num => Err(format!(
                    "ERR configuration {n} does not exist (the latest is {})",
                    c.num
                )),
                _ => Ok(render(&c)),
            };
        }
        ShardCtl::Join(groups) => {
            let mut out = BTreeMap::new();
            for (gid, members) in groups {
                for (id, addr) in &members {
                    probe(router, *id, addr).await?;
                }
                let members = members
                    .into_iter()
                    .map(|(id, addr)| Member { id, addr })
                    .collect();
                out.insert(gid, members);
            }
            shardctrler::Op::Join { groups: out }
        }
        ShardCtl::Leave(gids) => {
            let c = router.ctrl_query(None).await.map_err(|e| e.to_string())?;
            if !c.groups.is_empty() && c.groups.keys().all(|g| gids.contains(g)) {
                return Err("ERR refusing to remove every group: their shards' data would be dropped; nothing changed".into());
            }
            shardctrler::Op::Leave {
                gids: gids.into_iter().collect(),
            }
        }
        ShardCtl::Move { shard, gid } => shardctrler::Op::Move { shard, gid },
    };
    match router.ctrl_change(op).await.map_err(|e| e.to_string())? {
        Ok(shardctrler::Reply::NewConfig { num }) => Ok(format!("config {num}")),
        Ok(other) => Err(format!("ERR unexpected controller reply {other:?}")),
        Err(e) => Err(format!("ERR {e}; nothing changed")),
    }
}

/// A joining member must be a process of this deployment (`--peers`) whose
/// client address answers `PING` (over TLS when our client port speaks it).
pub(super) async fn probe(router: &Router, id: u64, addr: &str) -> Result<(), String> {
    if id != router.id && router.peers.get(id).is_none() {
        return Err(format!(
            "ERR process {id} is not in this deployment's --peers; nothing changed"
        ));
    }
    let ping = async {
        let mut c = Client::connect_with(addr, router.probe_tls.as_ref()).await?;
        c.call(&["PING"]).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, ping).await {
        Ok(Ok(Frame::Simple(s))) if s == "PONG" => Ok(()),
        Ok(Ok(other)) => Err(format!(
            "ERR process {id} at {addr} answered PING with {other:?}; nothing changed"
        )),
        Ok(Err(e)) => Err(format!(
            "ERR cannot reach process {id} at {addr} (its client address): {e}; nothing changed"
        )),
        Err(_) => Err(format!(
            "ERR process {id} at {addr} did not answer PING within {} s; nothing changed",
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

/// A configuration as `raftkv shard query` prints it.
pub fn render(c: &Config) -> String {
    let mut out = format!("config {} ({} shards)\n", c.num, c.shards.len());
    for (gid, members) in &c.groups {
        let members: Vec<String> = members
            .iter()
            .map(|m| format!("{}@{}", m.id, m.addr))
            .collect();
        out.push_str(&format!(
            "group {gid}: shards {} members {}\n",
            ranges(&c.shards_of(*gid)),
            members.join(",")
        ));
    }
    let unassigned = c.shards_of(shardmeta::NO_GROUP);
    if !unassigned.is_empty() {
        out.push_str(&format!("unassigned: shards {}\n", ranges(&unassigned)));
    }
    out
}

/// `[0,1,2,5]` -> `0-2,5`; empty -> `-`.
pub fn ranges(shards: &[u32]) -> String {
    ranges_sep(shards, ",")
}

/// [`ranges`] joined by `sep`.
pub fn ranges_sep(shards: &[u32], sep: &str) -> String {
    if shards.is_empty() {
        return "-".into();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut start = shards[0];
    let mut prev = shards[0];
    for &s in &shards[1..] {
        if s != prev + 1 {
            parts.push(range(start, prev));
            start = s;
        }
        prev = s;
    }
    parts.push(range(start, prev));
    parts.join(sep)
}

fn range(a: u32, b: u32) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compress() {
        assert_eq!(ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(ranges(&[]), "-");
    }
}
