//! A sharded process's settings and the parsing of its flags.
//!
//! A sharded deployment is described the same way to every process:
//! `--peers` (every process's peer address), `--controllers` (the processes
//! hosting the controller group), `--group GID=ID,...` (repeated: the data
//! groups and their processes when they were first started) and `--shards`
//! (the keyspace's fixed shard count). A process hosts the controller if its
//! id is in `--controllers`, every data group whose list names it, every
//! group it is told to join (`--join-group GID`: a replica that starts with
//! no membership and waits until the group's leader adds it), and every
//! group whose directory its data dir already holds (so a restart needs no
//! flag for a group it joined or was moved to; `shard::node`).
//!
//! Invariants (checked by [`ShardedConfig::validate`]): the id and every id
//! named anywhere are in `peers`; the process hosts at least one group;
//! group ids are >= 1 and distinct; a joined group is not one whose
//! `--group` list names this process; `1 <= shards <= 16384`; the request
//! deadline keeps `shardkv::session`'s retry rule (at most half the data
//! groups' session timeout).

use std::collections::BTreeMap;
use std::path::PathBuf;

use shardmeta::{GroupId, NodeId, MAX_SHARDS};

use crate::config::NodeConfig;

/// Default number of shards: enough to spread over many groups, few enough
/// that `CLUSTER SLOTS` stays a short list.
pub const DEFAULT_SHARDS: u32 = 16;

/// Everything one sharded `raftkv server` needs.
#[derive(Clone, Debug)]
pub struct ShardedConfig {
    /// Identity, addresses, timing and limits, as for a single-group node;
    /// `base.members` is `--peers` (every process of the deployment).
    pub base: NodeConfig,
    /// The processes hosting the controller group.
    pub controllers: Vec<NodeId>,
    /// Every data group's processes (those named here form the group's Raft
    /// membership; the controller's configurations name its members too).
    pub groups: BTreeMap<GroupId, Vec<NodeId>>,
    /// Data groups this process joins as a new member (`--join-group`), and
    /// those found in its data dir: their replicas bootstrap no membership
    /// (the stored one, or the leader's, decides).
    pub joins: std::collections::BTreeSet<GroupId>,
    pub shards: u32,
    /// How often a data group's agent re-sends an unanswered request.
    pub agent_resend_ms: u64,
    /// How often the router asks a controller for a newer configuration.
    pub config_poll_ms: u64,
}

impl ShardedConfig {
    pub fn new(
        base: NodeConfig,
        controllers: Vec<NodeId>,
        groups: BTreeMap<GroupId, Vec<NodeId>>,
    ) -> Self {
        ShardedConfig {
            base,
            controllers,
            groups,
            joins: Default::default(),
            shards: DEFAULT_SHARDS,
            agent_resend_ms: 100,
            config_poll_ms: 100,
        }
    }

    /// The data groups this process hosts, in order.
    pub fn hosted_groups(&self) -> Vec<GroupId> {
        let id = self.base.id;
        let named = self
            .groups
            .iter()
            .filter(|(_, ids)| ids.contains(&id))
            .map(|(&g, _)| g);
        let all: std::collections::BTreeSet<GroupId> =
            named.chain(self.joins.iter().copied()).collect();
        all.into_iter().collect()
    }

    pub fn hosts_controller(&self) -> bool {
        self.controllers.contains(&self.base.id)
    }

    /// The data groups' settings (identical on every process).
    pub fn group_settings(&self, gid: GroupId) -> shardkv::Settings {
        shardkv::Settings::new(gid, self.shards)
    }

    pub fn controller_settings(&self) -> shardctrler::Settings {
        shardctrler::Settings::with_shards(self.shards)
    }

    pub fn validate(&self) -> Result<(), String> {
        let base = &self.base;
        if base.id == 0 {
            return Err("--id must be a positive integer".into());
        }
        let known = |id: &NodeId| base.members.contains_key(id);
        if !known(&base.id) {
            return Err(format!(
                "--peers does not list this process (--id {})",
                base.id
            ));
        }
        if self.controllers.is_empty() {
            return Err("--controllers is empty".into());
        }
        if let Some(id) = self.controllers.iter().find(|id| !known(id)) {
            return Err(format!(
                "--controllers names process {id}, which --peers does not list"
            ));
        }
        for (gid, ids) in &self.groups {
            if let Some(id) = ids.iter().find(|id| !known(id)) {
                return Err(format!(
                    "--group {gid} names process {id}, which --peers does not list"
                ));
            }
        }
        if let Some(g) = self
            .joins
            .iter()
            .find(|&&g| g == shardmeta::CONTROLLER_GROUP)
        {
            return Err(format!(
                "--join-group {g}: data group ids start at 1 (the controller's members are --controllers)"
            ));
        }
        if let Some(g) = self
            .joins
            .iter()
            .find(|g| self.groups.get(g).is_some_and(|ids| ids.contains(&base.id)))
        {
            return Err(format!(
                "--join-group {g}: process {} is already one of the group's first members in --group {g}; give one or the other",
                base.id
            ));
        }
        if !self.hosts_controller() && self.hosted_groups().is_empty() {
            return Err(format!(
                "process {} hosts no group: name it in --controllers or in a --group, or give --join-group",
                base.id
            ));
        }
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(format!("--shards must be in 1..={MAX_SHARDS}"));
        }
        let session_timeout_ms = shardkv::Settings::new(1, self.shards).session_timeout_ms;
        if base.request_timeout_ms.saturating_mul(2) > session_timeout_ms {
            return Err(format!(
                "--request-timeout-ms must be at most {} (half the groups' session timeout: a retry must never outlive its session)",
                session_timeout_ms / 2
            ));
        }
        if self.agent_resend_ms == 0 || self.config_poll_ms == 0 {
            return Err("agent resend and config poll intervals must be positive".into());
        }
        let mut probe = base.clone();
        probe.members = [(base.id, String::new())].into();
        probe.validate()
    }

    /// The replica configuration of group `gid` (the controller: 0).
    pub fn replica_config(&self, gid: GroupId) -> replica::Config {
        let joining = self.joins.contains(&gid);
        let ids = if gid == shardmeta::CONTROLLER_GROUP {
            self.controllers.clone()
        } else if joining {
            Vec::new()
        } else {
            self.groups.get(&gid).cloned().unwrap_or_default()
        };
        let mut base = self.base.clone();
        base.members = ids.into_iter().map(|id| (id, String::new())).collect();
        base.join = joining;
        let mut cfg = base.replica_config();
        // Distinct election randomness per group of one process.
        cfg.raft.seed ^= gid.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        cfg
    }

    /// Adds to [`Self::joins`] every data group whose directory the data dir
    /// holds and that the flags do not already make this process host: a
    /// restart resumes every replica it has, whichever flags first made it.
    /// Returns those groups.
    pub fn adopt_group_dirs(&mut self) -> std::io::Result<Vec<GroupId>> {
        let hosted = self.hosted_groups();
        let mut found = Vec::new();
        let entries = match std::fs::read_dir(&self.base.data_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(gid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("group-"))
                .and_then(|g| g.parse::<GroupId>().ok())
                .filter(|&g| g != shardmeta::CONTROLLER_GROUP)
            else {
                continue;
            };
            if entry.file_type()?.is_dir() && !hosted.contains(&gid) {
                self.joins.insert(gid);
                found.push(gid);
            }
        }
        found.sort_unstable();
        Ok(found)
    }

    /// Where group `gid`'s replica keeps its log: one subdirectory each.
    pub fn group_dir(&self, gid: GroupId) -> PathBuf {
        if gid == shardmeta::CONTROLLER_GROUP {
            self.base.data_dir.join("controller")
        } else {
            self.base.data_dir.join(format!("group-{gid}"))
        }
    }
}

/// Parses `ID,ID,...`.
pub fn parse_ids(flag: &str, s: &str) -> Result<Vec<NodeId>, String> {
    let mut ids = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let id: NodeId = item
            .parse()
            .map_err(|_| format!("{flag}: '{item}' is not a process id"))?;
        if id == 0 {
            return Err(format!("{flag}: process ids start at 1"));
        }
        if ids.contains(&id) {
            return Err(format!("{flag} lists process {id} twice"));
        }
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(format!("{flag} is empty"));
    }
    Ok(ids)
}

/// Parses repeated `--group GID=ID,ID,...` values.
pub fn parse_groups(values: &[String]) -> Result<BTreeMap<GroupId, Vec<NodeId>>, String> {
    let mut groups = BTreeMap::new();
    for v in values {
        let (gid, ids) = v
            .split_once('=')
            .ok_or_else(|| format!("--group '{v}' is not GID=ID,ID,..."))?;
        let gid: GroupId = gid
            .trim()
            .parse()
            .map_err(|_| format!("--group '{v}': '{gid}' is not a group id"))?;
        if gid == 0 {
            return Err(format!(
                "--group '{v}': data group ids start at 1 (0 is the controller)"
            ));
        }
        let ids = parse_ids(&format!("--group {gid}"), ids)?;
        if groups.insert(gid, ids).is_some() {
            return Err(format!("--group {gid} is given twice"));
        }
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(id: NodeId) -> ShardedConfig {
        let peers = crate::config::parse_cluster("1=a:1,2=a:2,3=a:3,4=a:4").unwrap();
        let base = NodeConfig::new(id, peers, "a:0".into(), "/tmp/x".into());
        let groups = parse_groups(&["1=1,2,3".into(), "2=2,3,4".into()]).unwrap();
        ShardedConfig::new(base, vec![1, 2, 3], groups)
    }

    #[test]
    fn hosting_follows_the_lists() {
        assert_eq!(cfg(1).hosted_groups(), vec![1]);
        assert!(cfg(1).hosts_controller());
        assert_eq!(cfg(3).hosted_groups(), vec![1, 2]);
        assert!(!cfg(4).hosts_controller());
        for id in 1..=4 {
            assert_eq!(cfg(id).validate(), Ok(()));
        }
        let mut bad = cfg(1);
        bad.groups.insert(3, vec![9]);
        assert!(bad.validate().unwrap_err().contains("process 9"));
        assert!(parse_groups(&["0=1".into()]).is_err());
        assert!(parse_groups(&["1=1".into(), "1=2".into()]).is_err());
        assert!(parse_ids("--controllers", "1,1").is_err());
    }

    #[test]
    fn a_joining_process_hosts_the_group_with_no_bootstrap_voters() {
        let mut c = cfg(4);
        c.joins.insert(1);
        assert_eq!(c.hosted_groups(), vec![1, 2]);
        assert_eq!(c.validate(), Ok(()));
        assert!(c.replica_config(1).raft.peers.is_empty());
        assert_eq!(c.replica_config(2).raft.peers, vec![2, 3, 4]);
        let mut twice = cfg(4);
        twice.joins.insert(2); // already named in --group 2
        assert!(twice.validate().unwrap_err().contains("--join-group 2"));
        let mut ctrl = cfg(4);
        ctrl.joins.insert(0);
        assert!(ctrl.validate().unwrap_err().contains("--join-group 0"));
    }

    #[test]
    fn group_directories_in_the_data_dir_are_hosted_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(4);
        c.base.data_dir = dir.path().to_path_buf();
        for d in ["group-2", "group-5", "group-x", "controller", "group-0"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("group-6"), b"a file, not a group").unwrap();
        assert_eq!(c.adopt_group_dirs().unwrap(), vec![5]);
        assert_eq!(c.hosted_groups(), vec![2, 5]);
        assert!(c.replica_config(5).raft.peers.is_empty());
        assert_eq!(
            c.adopt_group_dirs().unwrap(),
            Vec::<u64>::new(),
            "idempotent"
        );
    }
}
