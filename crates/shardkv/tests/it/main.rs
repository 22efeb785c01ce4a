//! Integration tests of the sharded KV state machine, linked into one test binary.
//! One module: `cargo test -p shardkv --test it migration::`.

mod agent;
mod migration;
mod model;
mod replica;
