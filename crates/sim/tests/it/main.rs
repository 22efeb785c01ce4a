//! Integration tests of the simulator: the lab catalogues, the random-schedule sweeps and
//! the property tests, one module per former test file, linked into one test binary (one
//! link instead of fifteen). One module: `cargo test -p sim --test it kv_catalogue::`.

mod common;

mod catalogue_2a_2b;
mod catalogue_2c;
mod catalogue_2d;
mod catalogue_disk;
mod ctrler_catalogue;
mod election_properties;
mod kv_catalogue;
mod kv_stale_read;
mod kv_sweep;
mod membership;
mod shard_catalogue;
mod shard_sweep;
mod silent_links;
mod sweep;
