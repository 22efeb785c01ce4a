//! Real-process tests: `raftkv` child processes on 127.0.0.1, killed, paused, cut off by
//! proxies, attacked, with client histories checked for linearizability; one module per
//! subject, linked into one test binary (one link instead of sixteen). Tests that run a
//! cluster take `common::serial()`, so they still run one at a time. One module:
//! `cargo test -p raftkv --test it partition::`.

mod common;

mod cli;
mod clients;
mod cluster_cmd;
mod commands;
mod disk_space;
mod hostile;
mod membership;
mod metrics;
mod nemesis;
mod partition;
mod pipeline;
mod process;
mod redis_history;
mod sharded;
mod status_cmd;
mod tls;
