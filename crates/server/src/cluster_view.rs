//! Redis Cluster's view of raftkv: the `CLUSTER` replies (`KEYSLOT`,
//! `INFO`, `SLOTS`, `SHARDS`, `NODES`, `MYID`), `-MOVED`, and the
//! `-CROSSSLOT` check, rendered from one shard configuration in Redis 7's
//! formats.
//!
//! How raftkv maps onto Redis Cluster's vocabulary:
//! - a Redis Cluster *node* is a raftkv process; its 40-character node id is
//!   the process id in hex, zero-padded ([`node_name`]); its address is the
//!   process's **client** (RESP) address, which is what a configuration's
//!   `Member::addr` holds in a sharded raftkv deployment;
//! - a Redis Cluster *shard* (a master and its replicas) is a raftkv data
//!   group: its presumed Raft leader is listed as the master, the other
//!   members as replicas; its slots are the slot ranges of the shards the
//!   group owns (adjacent ranges merged);
//! - slots owned by no group are left out, as Redis leaves out unassigned
//!   slots.
//!
//! Invariant: everything here is a pure function of its arguments (the
//! caller passes the configuration it routes by), so the replies are
//! unit-tested against Redis's formats without a cluster.

use std::collections::BTreeMap;
use std::fmt::Write;

use bytes::Bytes;
use shardmeta::{Config, GroupId, Keyspace, Member, NodeId, NO_GROUP, SLOTS};

use crate::resp::Frame;

/// Redis's reply to a multi-key command whose keys are in different slots.
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
/// Redis's reply to the cluster-only subcommands when cluster mode is off.
pub const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";

/// The 40-character Redis Cluster node id of raftkv process `id`.
pub fn node_name(id: NodeId) -> String {
    format!("{id:040x}")
}

/// `Err(CROSSSLOT)` unless every key hashes to the same slot.
pub fn same_slot(keys: &[Bytes]) -> Result<(), &'static str> {
    let mut slots = keys.iter().map(|k| shardmeta::key_slot(k));
    let first = slots.next();
    if slots.all(|s| Some(s) == first) {
        Ok(())
    } else {
        Err(CROSSSLOT)
    }
}

/// `-MOVED <slot> <host:port>`.
pub fn moved(slot: u16, addr: &str) -> String {
    format!("MOVED {slot} {addr}")
}

/// One configuration, as a cluster-aware client should see it.
pub struct Layout<'a> {
    pub config: &'a Config,
    pub keyspace: Keyspace,
    /// This process.
    pub me: NodeId,
    /// The presumed leader of each group (absent: its first member).
    pub leaders: &'a BTreeMap<GroupId, NodeId>,
}

impl Layout<'_> {
    /// The group's members, presumed leader first.
    pub fn members(&self, gid: GroupId) -> Vec<&Member> {
        let mut members: Vec<&Member> = self.config.members(gid).iter().collect();
        if let Some(&l) = self.leaders.get(&gid) {
            if let Some(i) = members.iter().position(|m| m.id == l) {
                members[..=i].rotate_right(1);
            }
        }
        members
    }

    /// The address a client should use for `slot`, if a group owns it.
    pub fn owner_addr(&self, slot: u16) -> Option<&str> {
        let gid = self.config.owner(self.keyspace.shard_of_slot(slot));
        self.members(gid).first().map(|m| m.addr.as_str())
    }

    /// Each owning group's slot ranges (inclusive), adjacent ones merged.
    pub fn ranges(&self) -> BTreeMap<GroupId, Vec<(u16, u16)>> {
        let mut out: BTreeMap<GroupId, Vec<(u16, u16)>> = BTreeMap::new();
        for shard in 0..self.keyspace.shards() {
            let gid = self.config.owner(shard);
            if gid == NO_GROUP || self.config.members(gid).is_empty() {
                continue;
            }
            let r = self.keyspace.slot_range(shard);
            let (start, end) = (r.start, r.end - 1);
            let ranges = out.entry(gid).or_default();
            match ranges.last_mut() {
                Some(last) if last.1 + 1 == start => last.1 = end,
                _ => ranges.push((start, end)),
            }
        }
        out
    }

    fn assigned_slots(&self) -> u32 {
        self.ranges()
            .values()
            .flatten()
            .map(|(s, e)| u32::from(e - s) + 1)
            .sum()
    }

    /// `CLUSTER SLOTS`: `[start, end, [ip, port, id], ...]` per range, ranges by start.
    pub fn slots(&self) -> Frame {
        let mut rows: Vec<(u16, Frame)> = Vec::new();
        for (gid, ranges) in self.ranges() {
            for (start, end) in ranges {
                let mut row = vec![Frame::Integer(start.into()), Frame::Integer(end.into())];
                row.extend(self.members(gid).into_iter().map(|m| {
                    let (ip, port) = split_addr(&m.addr);
                    Frame::Array(vec![bulk(ip), Frame::Integer(port), bulk(&node_name(m.id))])
                }));
                rows.push((start, Frame::Array(row)));
            }
        }
        rows.sort_by_key(|(start, _)| *start);
        Frame::Array(rows.into_iter().map(|(_, f)| f).collect())
    }

    /// `CLUSTER SHARDS`: per group, its `slots` and its `nodes`.
    pub fn shards(&self) -> Frame {
        let ranges = self.ranges();
        let shards = self
            .config
            .groups
            .keys()
            .map(|&gid| {
                let slots = ranges
                    .get(&gid)
                    .into_iter()
                    .flatten()
                    .flat_map(|&(s, e)| [Frame::Integer(s.into()), Frame::Integer(e.into())])
                    .collect();
                let nodes = self
                    .members(gid)
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| self.shard_node(m, i == 0))
                    .collect();
                Frame::Map(vec![
                    (bulk("slots"), Frame::Array(slots)),
                    (bulk("nodes"), Frame::Array(nodes)),
                ])
            })
            .collect();
        Frame::Array(shards)
    }

    fn shard_node(&self, m: &Member, master: bool) -> Frame {
        let (ip, port) = split_addr(&m.addr);
        let role = if master { "master" } else { "replica" };
        Frame::Map(vec![
            (bulk("id"), bulk(&node_name(m.id))),
            (bulk("port"), Frame::Integer(port)),
            (bulk("ip"), bulk(ip)),
            (bulk("endpoint"), bulk(ip)),
            (bulk("role"), bulk(role)),
            (bulk("replication-offset"), Frame::Integer(0)),
            (bulk("health"), bulk("online")),
        ])
    }

    /// `CLUSTER NODES`: one line per process, Redis's format
    /// (`id ip:port@cport flags master ping pong epoch link slots...`).
    /// A process in several groups is listed once, under its first group.
    pub fn nodes(&self) -> String {
        let ranges = self.ranges();
        let mut out = String::new();
        let mut listed = std::collections::BTreeSet::new();
        for &gid in self.config.groups.keys() {
            let members = self.members(gid);
            let master = members.first().map(|m| node_name(m.id)).unwrap_or_default();
            for (i, m) in members.iter().enumerate() {
                if !listed.insert(m.id) {
                    continue;
                }
                let mut flags = if i == 0 { "master" } else { "slave" }.to_string();
                if m.id == self.me {
                    flags.insert_str(0, "myself,");
                }
                let of = if i == 0 {
                    "-".to_string()
                } else {
                    master.clone()
                };
                let _ = write!(
                    out,
                    "{} {}@0 {flags} {of} 0 0 {} connected",
                    node_name(m.id),
                    m.addr,
                    self.config.num
                );
                if i == 0 {
                    for (s, e) in ranges.get(&gid).into_iter().flatten() {
                        let _ = if s == e {
                            write!(out, " {s}")
                        } else {
                            write!(out, " {s}-{e}")
                        };
                    }
                }
                out.push('\n');
            }
        }
        out
    }

    /// `CLUSTER INFO` in Redis's `field:value` format.
    pub fn info(&self) -> String {
        let assigned = self.assigned_slots();
        let known: std::collections::BTreeSet<NodeId> = self
            .config
            .groups
            .values()
            .flatten()
            .map(|m| m.id)
            .collect();
        info_text(
            assigned,
            known.len(),
            self.config.groups.len(),
            self.config.num,
        )
    }
}

/// `CLUSTER INFO`'s text. `cluster_state` is `ok` when every slot is owned.
pub fn info_text(assigned: u32, known_nodes: usize, size: usize, epoch: u64) -> String {
    let state = if assigned == u32::from(SLOTS) {
        "ok"
    } else {
        "fail"
    };
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{known_nodes}\r\n\
         cluster_size:{size}\r\ncluster_current_epoch:{epoch}\r\ncluster_my_epoch:{epoch}\r\n\
         cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n"
    )
}

/// `host:port` → (host, port); a malformed address gives port 0.
fn split_addr(addr: &str) -> (&str, i64) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or(0)),
        None => (addr, 0),
    }
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let member = |id: NodeId| Member {
            id,
            addr: format!("127.0.0.1:{}", 7000 + id),
        };
        let mut c = Config::initial(4);
        c.num = 3;
        c.shards = vec![1, 1, 2, 1];
        c.groups.insert(1, vec![member(1), member(2)]);
        c.groups.insert(2, vec![member(3), member(4)]);
        c
    }

    #[test]
    fn slots_cover_every_owned_slot_with_the_leader_first() {
        let c = config();
        let leaders = BTreeMap::from([(2, 4)]);
        let l = Layout {
            config: &c,
            keyspace: Keyspace::new(4).unwrap(),
            me: 1,
            leaders: &leaders,
        };
        assert_eq!(
            l.ranges(),
            BTreeMap::from([
                (1, vec![(0, 8191), (12288, 16383)]),
                (2, vec![(8192, 12287)])
            ])
        );
        let Frame::Array(rows) = l.slots() else {
            panic!()
        };
        assert_eq!(rows.len(), 3);
        let Frame::Array(mid) = &rows[1] else {
            panic!()
        };
        assert_eq!(mid[0], Frame::Integer(8192));
        assert_eq!(
            mid[2],
            Frame::Array(vec![
                bulk("127.0.0.1"),
                Frame::Integer(7004),
                bulk(&node_name(4))
            ])
        );
        assert_eq!(l.owner_addr(9000), Some("127.0.0.1:7004"));
        assert!(l
            .info()
            .starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"));
        let nodes = l.nodes();
        assert_eq!(nodes.lines().count(), 4);
        assert!(nodes.starts_with(&format!(
            "{} 127.0.0.1:7001@0 myself,master - 0 0 3 connected 0-8191 12288-16383\n",
            node_name(1)
        )));
    }

    #[test]
    fn crossslot_unless_one_slot() {
        let k = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        assert_eq!(same_slot(&[k("{u}a"), k("{u}b")]), Ok(()));
        assert_eq!(same_slot(&[k("a"), k("b")]), Err(CROSSSLOT));
        assert_eq!(same_slot(&[]), Ok(()));
    }
}
