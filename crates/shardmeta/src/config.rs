//! A numbered configuration of the sharded cluster, as the shard controller
//! decides them: which group owns each shard, and which nodes make up each
//! group. Configurations are immutable once created; number `n + 1` is
//! derived from number `n` by one Join, Leave or Move.
//!
//! Invariant (checked by [`Config::check`]): `shards[i]` is [`NO_GROUP`] or a
//! key of `groups`; every group has at least one member; no group id is
//! [`NO_GROUP`] or [`CONTROLLER_GROUP`]'s id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A replica group. Data groups are `>= 1`.
pub type GroupId = u64;
/// A shard: an index into [`Config::shards`].
pub type ShardId = u32;
/// A raftkv process; a replica of any group hosted there uses it as its Raft id.
pub type NodeId = u64;

/// "Owned by no group" in [`Config::shards`] (configuration 0, or after the
/// last group left).
pub const NO_GROUP: GroupId = 0;
/// The group id under which a process hosts its shard-controller replica.
/// It never appears in a [`Config`].
pub const CONTROLLER_GROUP: GroupId = 0;

/// One member of a group: a process and its peer address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    pub addr: String,
}

/// Configuration `num`: shard -> group and group -> members.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Config {
    pub num: u64,
    /// `shards[i]` owns shard `i`; the length is the keyspace's shard count.
    pub shards: Vec<GroupId>,
    pub groups: BTreeMap<GroupId, Vec<Member>>,
}

impl Config {
    /// Configuration 0: no groups, every shard unassigned.
    pub fn initial(shards: u32) -> Self {
        Config {
            num: 0,
            shards: vec![NO_GROUP; shards as usize],
            groups: BTreeMap::new(),
        }
    }

    /// The group owning `shard` ([`NO_GROUP`] if none, or out of range).
    pub fn owner(&self, shard: ShardId) -> GroupId {
        self.shards.get(shard as usize).copied().unwrap_or(NO_GROUP)
    }

    /// The shards `gid` owns, ascending.
    pub fn shards_of(&self, gid: GroupId) -> Vec<ShardId> {
        (0..self.shards.len() as ShardId)
            .filter(|&s| self.shards[s as usize] == gid)
            .collect()
    }

    /// The members of `gid` (empty if it is not in this configuration).
    pub fn members(&self, gid: GroupId) -> &[Member] {
        self.groups.get(&gid).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Checks the invariant; `Err` says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        for (&gid, members) in &self.groups {
            if gid == NO_GROUP {
                return Err(format!("config {}: group id {gid} is reserved", self.num));
            }
            if members.is_empty() {
                return Err(format!("config {}: group {gid} has no members", self.num));
            }
        }
        for (shard, gid) in self.shards.iter().enumerate() {
            if *gid != NO_GROUP && !self.groups.contains_key(gid) {
                return Err(format!(
                    "config {}: shard {shard} is owned by group {gid}, which is not in it",
                    self.num
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: NodeId) -> Member {
        Member {
            id,
            addr: format!("127.0.0.1:{}", 7000 + id),
        }
    }

    #[test]
    fn initial_config_owns_nothing() {
        let c = Config::initial(10);
        assert_eq!(c.num, 0);
        assert_eq!(c.shards, vec![NO_GROUP; 10]);
        assert!(c.shards_of(1).is_empty());
        assert_eq!(c.owner(3), NO_GROUP);
        assert_eq!(c.owner(99), NO_GROUP);
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn check_finds_a_shard_owned_by_a_missing_group() {
        let mut c = Config::initial(4);
        c.num = 1;
        c.groups.insert(1, vec![member(1)]);
        c.shards = vec![1, 1, 2, 1];
        assert!(c.check().unwrap_err().contains("group 2"));
        c.shards[2] = 1;
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.shards_of(1), vec![0, 1, 2, 3]);
        assert_eq!(c.members(1), &[member(1)]);
        c.groups.insert(3, vec![]);
        assert!(c.check().unwrap_err().contains("no members"));
    }
}
