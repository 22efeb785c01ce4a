//! `INFO [section]` of a sharded process, in Redis's `field:value` format.
//! Sections: `server`, `sharding` (also answered for `raft`, so the
//! single-group tools keep working): this process's id, the routing
//! configuration, and one `group_<gid>:` line per hosted group (kind, role,
//! term, leader, commit, applied, last index, snapshot index; data groups
//! also their applied configuration and shards by status, as ranges joined
//! by `+`, e.g. `serving=0-5+9`); `keyspace`.

use std::fmt::Write;

use super::admin::ranges_sep;

/// Shard lists inside a `group_<gid>:` value, whose fields are comma-separated.
fn ranges(shards: &[u32]) -> String {
    ranges_sep(shards, "+")
}
use super::router::Router;

pub fn render(router: &Router, section: Option<&str>) -> String {
    let view = router.driver.view();
    let all = matches!(section, None | Some("all" | "everything" | "default"));
    let want = |name: &str| all || section == Some(name);
    let mut out = String::new();
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nraftkv_version:{}\r\nprocess_id:{}\r\nmode:sharded\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        );
    }
    if want("sharding") || want("raft") {
        let _ = write!(
            out,
            "# Sharding\r\nid:{}\r\nconfig:{}\r\nshards:{}\r\ngroups:{}\r\n",
            router.id,
            view.routing.num,
            router.keyspace.shards(),
            view.groups
                .keys()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
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
                role(st.raft.role),
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
        out.push_str("\r\n");
    }
    if want("keyspace") {
        let keys: usize = view
            .groups
            .iter()
            .filter(|(g, _)| **g != shardmeta::CONTROLLER_GROUP)
            .map(|(_, g)| g.status.keys)
            .sum();
        let _ = write!(out, "# Keyspace\r\nkeys:{keys}\r\n\r\n");
    }
    out
}

fn role(r: raft::Role) -> &'static str {
    match r {
        raft::Role::Leader => "leader",
        raft::Role::Follower => "follower",
        raft::Role::Candidate => "candidate",
        raft::Role::PreCandidate => "precandidate",
    }
}
