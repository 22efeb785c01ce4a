//! `raftkv`: the one binary. Parses the command line (`cli`), runs the
//! command (one file each), and turns any failure into a one-line message on
//! stderr and a non-zero exit status (DESIGN.md's CLI contract).

mod backup;
mod bench;
mod bench_memory;
mod cli;
mod client_cmds;
mod cluster;
mod connect;
mod server_cmd;
mod status;

use std::io::Write;

use clap::Parser;

/// jemalloc, counted for INFO's `used_memory` (see `server::memory`). Its size
/// classes and per-thread caches keep a node's resident set closer to its live
/// heap than glibc's malloc did with a million small long-lived records mixed
/// with short-lived buffers, and it returns freed pages to the kernel at once
/// (`MALLOC_CONF` below; issue 14, figures in the README's Memory).
#[global_allocator]
static ALLOC: server::memory::CountingAlloc<tikv_jemallocator::Jemalloc> =
    server::memory::CountingAlloc::new(tikv_jemallocator::Jemalloc, "jemalloc");

/// jemalloc's options, read once at its first allocation (the crate prefixes
/// jemalloc's symbols, hence the name; `_RJEM_MALLOC_CONF` in the environment
/// overrides them). Freed pages go back to the kernel at once instead of ten
/// seconds later (`dirty_decay_ms:0`; `muzzy_decay_ms:0`, jemalloc's default,
/// kept explicit: no lazily-freed stage either). A burst (a load, a snapshot
/// install, a restart) then peaks lower and falls back at once; the settled RSS
/// and the load's throughput are the same (issue 14; figures in the README's
/// Memory). A thin pointer to a NUL-terminated string: jemalloc's `const char *`.
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &u8 = &b"dirty_decay_ms:0,muzzy_decay_ms:0\0"[0];

fn main() {
    let cli = cli::Cli::parse(); // bad flags: clap prints usage and exits 2
    if let Some(ep) = cli.command.endpoints() {
        match ep.tls.load() {
            Ok(tls) => connect::init(tls),
            Err(msg) => {
                let _ = writeln!(std::io::stderr(), "raftkv: {msg}");
                std::process::exit(1);
            }
        }
    }
    let result = match cli.command {
        cli::Cmd::Server(args) => server_cmd::run(*args),
        cli::Cmd::Cluster(args) => cluster::run(args),
        cli::Cmd::Bench(args) => {
            restore_sigpipe();
            runtime().block_on(bench::run(args))
        }
        cli::Cmd::Snapshot {
            op: cli::SnapshotOp::Restore(args),
        } => backup::restore(args),
        cli::Cmd::Snapshot {
            op: cli::SnapshotOp::Save { file, ep },
        } => {
            restore_sigpipe();
            runtime().block_on(backup::save(file, ep.endpoints))
        }
        other => {
            restore_sigpipe();
            runtime().block_on(client_cmds::run(other))
        }
    };
    if let Err(msg) = result {
        let _ = writeln!(std::io::stderr(), "raftkv: {msg}");
        std::process::exit(1);
    }
}

/// Client commands and `bench` print to stdout; piped into `head` or `grep -q`, a
/// closed pipe should end them quietly like any Unix tool, not panic in `println!`
/// (Rust ignores SIGPIPE by default). Servers keep ignoring it: a closed socket is an
/// error value; so does `cluster`, which stops its children on a closed stdout first.
fn restore_sigpipe() {
    // SAFETY: setting a signal disposition to its default, before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// One worker per core, and never fewer than two: a server's Raft driver is a
/// task on this runtime, and what blocks inside a drive (a follower's fsync,
/// every log sync of a sharded process's groups, a snapshot) blocks its worker,
/// so another must be left to run the node's connections and peer links
/// meanwhile (`server::driver`, `server::shard::driver`).
pub fn runtime() -> tokio::runtime::Runtime {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.max(2))
        .enable_all()
        .build()
        .expect("tokio runtime")
}
