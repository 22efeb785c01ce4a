//! Integration tests of the shard controller, linked into one test binary.
//! One module: `cargo test -p shardctrler --test it lab_4a::`.

mod lab_4a;
mod replicated;
