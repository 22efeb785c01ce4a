//! Integration tests of the kv crate, one module per subject, linked into one test
//! binary (one link instead of one per file). One module: `cargo test -p kv --test it strings::`.

mod common;

mod commands;
mod exactly_once;
mod expiry;
mod fuzz;
mod hashes;
mod keyspace;
mod model;
mod snapshot;
mod strings;
mod strings_model;
mod transactions;
