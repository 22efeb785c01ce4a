//! The `sharding` section of a sharded process's INFO (the other sections
//! are Redis's, rendered by `crate::info`; `INFO raft` answers this one
//! too, so the single-group tools keep working): this process's id, the
//! routing configuration, and one `group_<gid>:` line per hosted group
//! (kind, role, term, leader, commit, applied, last index, snapshot index,
//! keys; data groups also their applied configuration and shards by status,
//! as ranges joined by `+`, e.g. `serving=0-5+9`), and `disk_full:` the
//! hosted groups that cannot write their log (comma-separated, empty when
//! none; such a group has no `group_<gid>:` line until it resumes).

use std::fmt::Write;

use super::admin::ranges_sep;

/// Shard lists inside a `group_<gid>:` value, whose fields are comma-separated.
fn ranges(shards: &[u32]) -> String {
    ranges_sep(shards, "+")
}
use super::router::Router;
use crate::info::role_name;

/// The keys and keys with a TTL of the data groups this process hosts
/// (INFO's keyspace), the keys their active expiry removed (`expired_keys`),
/// and the `sharding` section's body.
pub fn sharding(router: &Router) -> (usize, usize, u64, String) {
    let view = router.driver.view();
    let mut out = String::new();
    let _ = write!(
        out,
        "id:{}\r\nconfig:{}\r\nshards:{}\r\ngroups:{}\r\n",
        router.id,
        view.routing.num,
        router.keyspace.shards(),
        view.groups
            .keys()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let full: Vec<String> = view.disk_full.keys().map(|g| g.to_string()).collect();
    let _ = write!(out, "disk_full:{}\r\n", full.join(","));
    for (gid, g) in &view.groups {
        let st = &g.status;
        let kind = if *gid == shardmeta::CONTROLLER_GROUP {
            "controller"
        } else {
            "data"
        };
        let _ = write!(
            out,
            "group_{gid}:kind={kind},role={},term={},leader={},commit={},applied={},last_index={},snapshot_index={},keys={}",
            role_name(st.raft.role),
            st.raft.term,
            st.raft.leader.unwrap_or(0),
            st.raft.commit,
            st.raft.applied,
            st.raft.last_index,
            st.raft.snapshot_index,
            st.keys,
        );
        if kind == "data" {
            let _ = write!(
                out,
                ",config={},serving={},pulling={},handing_off={},gc={}",
                g.config_num,
                ranges(&g.serving),
                ranges(&g.pulling),
                ranges(&g.handing_off),
                ranges(&g.gc)
            );
        }
        out.push_str("\r\n");
    }
    let data = || {
        view.groups
            .iter()
            .filter(|(g, _)| **g != shardmeta::CONTROLLER_GROUP)
            .map(|(_, g)| g.status)
    };
    let keys = data().map(|s| s.keys).sum();
    let expires = data().map(|s| s.expires).sum();
    let expired = data().map(|s| s.expired).sum();
    (keys, expires, expired, out)
}

/// INFO persistence's `log_write_status` / `log_write_error` for a sharded
/// process: `no_space` while any hosted group cannot write its log, with
/// each such group and why; else `low_space` while the file system is below
/// `--min-free-bytes` (`crate::space`).
pub fn log_write(router: &Router) -> (&'static str, String) {
    let view = router.driver.view();
    if view.disk_full.is_empty() {
        return match router.reserve.low() {
            Some(why) => ("low_space", why.replace(['\r', '\n'], " ")),
            None => ("ok", String::new()),
        };
    }
    let why: Vec<String> = view
        .disk_full
        .iter()
        .map(|(g, why)| format!("group {g}: {}", why.replace(['\r', '\n'], " ")))
        .collect();
    ("no_space", why.join("; "))
}
