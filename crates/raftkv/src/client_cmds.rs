//! `get`, `put`, `append`, `del`, `shard ...`, `member ...`, `leader ...`: one RESP command
//! per endpoint, trying the endpoints in order until one answers (any node
//! forwards to the leader — `shard` commands to the controller's — so the
//! first reachable one is enough). `status` is in `status`.

use server::resp::Frame;

use crate::cli::{Cmd, LeaderOp, MemberOp, ShardOp};

pub async fn run(cmd: Cmd) -> Result<(), String> {
    let (args, endpoints): (Vec<String>, _) = match cmd {
        Cmd::Get { key, ep } => (vec!["GET".into(), key], ep.endpoints),
        Cmd::Put { key, value, ep } => (vec!["SET".into(), key, value], ep.endpoints),
        Cmd::Append { key, value, ep } => (vec!["APPEND".into(), key, value], ep.endpoints),
        Cmd::Del { key, ep } => (vec!["DEL".into(), key], ep.endpoints),
        Cmd::Status(a) => return crate::status::run(a).await,
        Cmd::Shard { op, ep } => (shard_args(op), ep.endpoints),
        Cmd::Member { op, group, ep } => {
            let args = with_group(group, member_args(op)?);
            return match call_leader(&ep.endpoints, &args).await? {
                Frame::Array(lines) => {
                    for line in lines {
                        if let Frame::Bulk(b) = line {
                            println!("{}", String::from_utf8_lossy(&b));
                        }
                    }
                    Ok(())
                }
                other => print_reply(other),
            };
        }
        Cmd::Leader {
            op: LeaderOp::Transfer { to },
            group,
            ep,
        } => {
            let mut args = vec!["RAFT".to_string(), "TRANSFER".into()];
            args.extend(to.map(|t| t.to_string()));
            let args = with_group(group, args);
            return print_reply(call_leader(&ep.endpoints, &args).await?);
        }
        _ => unreachable!("handled in main"),
    };
    let reply = call_any(&endpoints, &args).await?;
    print_reply(reply)
}

/// `raftkv shard ...` as the `SHARDCTL` command a process answers.
fn shard_args(op: ShardOp) -> Vec<String> {
    let mut args = vec!["SHARDCTL".to_string()];
    match op {
        ShardOp::Query { num } => {
            args.push("QUERY".into());
            args.extend(num.map(|n| n.to_string()));
        }
        ShardOp::Join { groups } => {
            args.push("JOIN".into());
            args.extend(groups);
        }
        ShardOp::Leave { gids } => {
            args.push("LEAVE".into());
            args.extend(gids.iter().map(|g| g.to_string()));
        }
        ShardOp::Move { shard, gid } => {
            args.extend(["MOVE".into(), shard.to_string(), gid.to_string()]);
        }
    }
    args
}

/// `raftkv member ...` as the `RAFT MEMBER` command the leader answers.
fn member_args(op: MemberOp) -> Result<Vec<String>, String> {
    let mut args = vec!["RAFT".to_string(), "MEMBER".into()];
    match op {
        MemberOp::List => args.push("LIST".into()),
        MemberOp::Add {
            member,
            learner,
            force,
        } => {
            let (id, addr) = member
                .split_once('=')
                .ok_or_else(|| format!("'{member}' is not ID=HOST:PORT"))?;
            args.extend(["ADD".into(), id.trim().into(), addr.trim().into()]);
            if learner {
                args.push("LEARNER".into());
            }
            push_force(&mut args, force);
        }
        MemberOp::Promote { id, force } => {
            args.extend(["PROMOTE".into(), id.to_string()]);
            push_force(&mut args, force);
        }
        MemberOp::Remove { id, force } => {
            args.extend(["REMOVE".into(), id.to_string()]);
            push_force(&mut args, force);
        }
    }
    Ok(args)
}

/// `RAFT ...` as `RAFT GROUP GID ...` when a group is named (sharded mode).
fn with_group(group: Option<u64>, args: Vec<String>) -> Vec<String> {
    match group {
        None => args,
        Some(g) => {
            let mut out = vec![args[0].clone(), "GROUP".into(), g.to_string()];
            out.extend(args.into_iter().skip(1));
            out
        }
    }
}

fn push_force(args: &mut Vec<String>, force: bool) {
    if force {
        args.push("FORCE".into());
    }
}

/// Like `call_any`, but a `-NOTLEADER` reply (the node knows no leader, or
/// cannot reach it) moves on to the next endpoint.
async fn call_leader(endpoints: &[String], args: &[String]) -> Result<Frame, String> {
    let mut last = String::from("no endpoints");
    for ep in endpoints {
        match call_any(std::slice::from_ref(ep), args).await {
            Ok(Frame::Error(e)) if e.starts_with("NOTLEADER") => last = format!("{ep}: {e}"),
            Ok(reply) => return Ok(reply),
            Err(e) => last = e,
        }
    }
    Err(format!(
        "no endpoint could reach the leader ({last}); is a quorum of the group up?"
    ))
}

async fn call_any(endpoints: &[String], args: &[String]) -> Result<Frame, String> {
    let mut last = String::from("no endpoints");
    for ep in endpoints {
        match crate::connect::connect(ep).await {
            Ok(mut c) => match c.call(args).await {
                Ok(reply) => return Ok(reply),
                Err(e) => last = format!("{ep}: {e}"),
            },
            Err(e) => last = format!("cannot connect to {ep}: {e}"),
        }
    }
    Err(last)
}

fn print_reply(reply: Frame) -> Result<(), String> {
    match reply {
        Frame::Simple(s) => println!("{s}"),
        Frame::Integer(n) => println!("{n}"),
        Frame::Bulk(b) | Frame::Verbatim(b) => {
            println!("{}", String::from_utf8_lossy(&b).trim_end())
        }
        Frame::Null | Frame::NullArray => println!("(nil)"),
        Frame::Error(e) => return Err(e),
        Frame::Array(a) | Frame::Set(a) => println!("{a:?}"),
        Frame::Map(m) => println!("{m:?}"),
    }
    Ok(())
}
