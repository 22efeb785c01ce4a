//! `INFO [section]` in Redis's format: `# Section` headers and `field:value`
//! lines joined by CRLF. Sections: `server`, `raft`, `persistence`
//! (`log_write_status:ok|no_space`, and why), `keyspace`; no section
//! (or `all`/`everything`/`default`) gives all; an unknown one gives nothing,
//! as in Redis.

use std::fmt::Write;

use crate::requests::Requests;

pub fn render(node: &Requests, section: Option<&str>) -> String {
    let st = node.driver.status();
    let want = |name: &str| {
        matches!(section, None | Some("all" | "everything" | "default")) || section == Some(name)
    };
    let mut out = String::new();
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nraftkv_version:{}\r\nprocess_id:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        );
    }
    if want("raft") {
        let role = match st.raft.role {
            raft::Role::Leader => "leader",
            raft::Role::Follower => "follower",
            raft::Role::Candidate => "candidate",
            raft::Role::PreCandidate => "precandidate",
        };
        let _ = write!(
            out,
            "# Raft\r\nid:{}\r\nrole:{role}\r\nterm:{}\r\nleader:{}\r\ncommit:{}\r\napplied:{}\r\nlast_index:{}\r\nsnapshot_index:{}\r\npending_proposals:{}\r\npending_reads:{}\r\nlog_bytes:{}\r\nsessions:{}\r\n\r\n",
            st.raft.id,
            st.raft.term,
            st.raft.leader.unwrap_or(0),
            st.raft.commit,
            st.raft.applied,
            st.raft.last_index,
            st.raft.snapshot_index,
            st.pending_proposals,
            st.pending_reads,
            st.log_bytes,
            st.sessions,
        );
    }
    if want("persistence") {
        let (status, error) = match node.driver.disk_full() {
            None => ("ok", String::new()),
            Some(why) => ("no_space", why.replace(['\r', '\n'], " ")),
        };
        let _ = write!(
            out,
            "# Persistence\r\nlog_write_status:{status}\r\nlog_write_error:{error}\r\n\r\n"
        );
    }
    if want("keyspace") {
        let _ = write!(out, "# Keyspace\r\nkeys:{}\r\n\r\n", st.keys);
    }
    out
}

/// Parses `field:value` lines (for clients of INFO: the CLI and tests).
pub fn parse(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}
