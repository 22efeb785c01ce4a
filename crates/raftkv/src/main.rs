//! `raftkv`: the one binary. Parses the command line (`cli`), runs the
//! command (one file each), and turns any failure into a one-line message on
//! stderr and a non-zero exit status (DESIGN.md's CLI contract).

mod bench;
mod cli;
mod client_cmds;
mod cluster;
mod server_cmd;

use clap::Parser;

/// Counts allocated bytes for INFO's `used_memory` (see `server::memory`).
#[global_allocator]
static ALLOC: server::memory::CountingAlloc = server::memory::CountingAlloc;

fn main() {
    let cli = cli::Cli::parse(); // bad flags: clap prints usage and exits 2
    let result = match cli.command {
        cli::Cmd::Server(args) => server_cmd::run(*args),
        cli::Cmd::Cluster(args) => cluster::run(args),
        cli::Cmd::Bench(args) => runtime().block_on(bench::run(args)),
        other => {
            restore_sigpipe();
            runtime().block_on(client_cmds::run(other))
        }
    };
    if let Err(msg) = result {
        eprintln!("raftkv: {msg}");
        std::process::exit(1);
    }
}

/// Client commands print to stdout; piped into `head` or `grep -q`, a closed pipe
/// should end them quietly like any Unix tool, not panic in `println!` (Rust ignores
/// SIGPIPE by default). Servers keep ignoring it: a closed socket is an error value.
fn restore_sigpipe() {
    // SAFETY: setting a signal disposition to its default, before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
