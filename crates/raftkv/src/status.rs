//! `raftkv status`: every endpoint's Raft state as a table (one row per node,
//! or per hosted group of a sharded process), `--json` for scripts,
//! `--watch [SECS]` to refresh.
//!
//! Invariant: one endpoint never holds up the others or the command: all are
//! asked at once (`INFO server` and `INFO raft` on one connection), each
//! bounded by `--timeout` for connect and replies together; a node that
//! accepts but does not answer (stopped with SIGSTOP) shows as `timeout`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use serde::Serialize;
use server::client::Client;
use server::resp::Frame;

use crate::cli::StatusArgs;

/// One row: a node, or one group of a sharded process.
#[derive(Serialize, Default, Clone)]
struct Row {
    endpoint: String,
    id: String,
    /// `-` single group, `ctrl` the shard controller, `gN` data group N.
    group: String,
    role: String,
    term: String,
    leader: String,
    commit: String,
    applied: String,
    last_index: String,
    snapshot_index: String,
    log_bytes: String,
    version: String,
    /// Sharded data groups: configuration and shard states.
    shards: String,
    /// Empty when the endpoint answered; `timeout` or why it did not.
    error: String,
}

const HEADER: [&str; 13] = [
    "ENDPOINT", "ID", "GROUP", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "LAST", "SNAPSHOT",
    "LOG SIZE", "VERSION", "ERRORS",
];

pub async fn run(a: StatusArgs) -> Result<(), String> {
    let Some(every) = a.watch else {
        let rows = collect(&a.ep.endpoints, a.timeout).await;
        print(&rows, a.json);
        return if rows.iter().any(|r| r.error.is_empty()) {
            Ok(())
        } else {
            Err("no endpoint answered".into())
        };
    };
    let clear = std::io::stdout().is_terminal() && !a.json;
    loop {
        let rows = collect(&a.ep.endpoints, a.timeout).await;
        if clear {
            print!("\x1b[2J\x1b[H");
        }
        if !a.json {
            println!(
                "every {:.1} s (Ctrl-C stops), {}",
                every.as_secs_f64(),
                unix_time()
            );
        }
        print(&rows, a.json);
        tokio::time::sleep(every).await;
    }
}

fn unix_time() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02} UTC")
}

/// Asks every endpoint at once; rows in endpoint order.
async fn collect(endpoints: &[String], timeout: Duration) -> Vec<Row> {
    let tasks: Vec<_> = endpoints
        .iter()
        .map(|ep| tokio::spawn(ask(ep.clone(), timeout)))
        .collect();
    let mut rows = Vec::new();
    for (ep, t) in endpoints.iter().zip(tasks) {
        rows.extend(t.await.unwrap_or_else(|e| vec![failed(ep, e.to_string())]));
    }
    rows
}

async fn ask(ep: String, timeout: Duration) -> Vec<Row> {
    let fut = async {
        let mut c = crate::connect::connect(&ep)
            .await
            .map_err(|e| e.to_string())?;
        let server = info(&mut c, "server").await?;
        let raft = info(&mut c, "raft").await?;
        Ok::<_, String>((server, raft))
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => vec![failed(&ep, "timeout".into())],
        Ok(Err(e)) => vec![failed(&ep, e)],
        Ok(Ok((server, raft))) => rows(&ep, &server, &raft),
    }
}

async fn info(c: &mut Client, section: &str) -> Result<String, String> {
    match c
        .call(&["INFO", section])
        .await
        .map_err(|e| e.to_string())?
    {
        Frame::Bulk(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Frame::Error(e) => Err(e),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

fn failed(ep: &str, error: String) -> Row {
    Row {
        endpoint: ep.to_string(),
        error,
        ..Row::default()
    }
}

/// One row per node, or per group of a sharded process (`group_N:` lines).
fn rows(ep: &str, server: &str, raft: &str) -> Vec<Row> {
    let s = server::info::parse(server);
    let f = server::info::parse(raft);
    let version = s
        .get("raftkv_version")
        .or_else(|| s.get("redis_version"))
        .cloned()
        .unwrap_or_default();
    let base = Row {
        endpoint: ep.to_string(),
        id: get(&f, "id"),
        version,
        ..Row::default()
    };
    if !raft.contains("# Sharding") {
        return vec![fill(base, "-".into(), &f)];
    }
    let mut out = Vec::new();
    for (key, value) in &f {
        let Some(gid) = key.strip_prefix("group_") else {
            continue;
        };
        let g: BTreeMap<String, String> = value
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let kind = get(&g, "kind");
        let name = if kind == "controller" {
            "ctrl".to_string()
        } else {
            format!("g{gid}")
        };
        let mut row = fill(base.clone(), name, &g);
        if kind == "data" {
            row.shards = format!(
                "config {} serving {} pulling {} handing-off {} gc {}",
                get(&g, "config"),
                get(&g, "serving"),
                get(&g, "pulling"),
                get(&g, "handing_off"),
                get(&g, "gc")
            );
        }
        out.push(row);
    }
    out
}

fn fill(mut r: Row, group: String, f: &BTreeMap<String, String>) -> Row {
    r.group = group;
    r.role = get(f, "role");
    r.term = get(f, "term");
    r.leader = get(f, "leader");
    r.commit = get(f, "commit");
    r.applied = get(f, "applied");
    r.last_index = get(f, "last_index");
    r.snapshot_index = get(f, "snapshot_index");
    r.log_bytes = get(f, "log_bytes");
    r
}

fn get(f: &BTreeMap<String, String>, k: &str) -> String {
    f.get(k).cloned().unwrap_or_default()
}

fn print(rows: &[Row], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(rows).expect("rows serialize to JSON")
        );
        return;
    }
    let sharded = rows.iter().any(|r| !r.shards.is_empty());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                r.endpoint.clone(),
                r.id.clone(),
                r.group.clone(),
                r.role.clone(),
                r.term.clone(),
                r.leader.clone(),
                r.commit.clone(),
                r.applied.clone(),
                r.last_index.clone(),
                r.snapshot_index.clone(),
                human_bytes(&r.log_bytes),
                r.version.clone(),
                r.error.clone(),
            ];
            if sharded {
                c.push(r.shards.clone());
            }
            c
        })
        .collect();
    let mut header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    if sharded {
        header.push("SHARDS".into());
    }
    print_table(&header, &cells);
}

/// etcdctl's `-w table` look: a bordered, aligned table.
fn print_table(header: &[String], cells: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+";
    let line = |r: &[String]| {
        r.iter()
            .zip(&widths)
            .map(|(c, w)| format!("| {c:<w$} "))
            .collect::<String>()
            + "|"
    };
    println!("{rule}");
    println!("{}", line(header));
    println!("{rule}");
    for r in cells {
        println!("{}", line(r));
    }
    println!("{rule}");
}

/// `1234567` -> `1.2 MB`; empty stays empty.
fn human_bytes(s: &str) -> String {
    let Ok(n) = s.parse::<u64>() else {
        return s.to_string();
    };
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1000.0 && u + 1 < UNITS.len() {
        x /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_scales() {
        assert_eq!(human_bytes("999"), "999 B");
        assert_eq!(human_bytes("1234567"), "1.2 MB");
        assert_eq!(human_bytes(""), "");
    }

    #[test]
    fn sharded_info_gives_a_row_per_group() {
        let raft = "# Raft\r\nid:4\r\n# Sharding\r\ngroup_0:kind=controller,role=leader,term=3\r\n\
                    group_2:kind=data,role=follower,term=5,config=7,serving=4\r\n";
        let rows = rows("h:1", "raftkv_version:0.1.0\r\n", raft);
        let groups: Vec<&str> = rows.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(groups, ["ctrl", "g2"]);
        assert_eq!(rows[1].term, "5");
        assert!(rows[1].shards.starts_with("config 7 serving 4"));
        assert_eq!(rows[0].version, "0.1.0");
    }
}
