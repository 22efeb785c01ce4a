//! Integration tests of the Raft core, linked into one test binary.
//! One module: `cargo test -p raft --test it scenarios::`.

mod harness;

mod core;
mod fuzz_messages;
mod membership;
mod scenarios;
