//! Integration tests of the linearizability checker, linked into one test binary.
//! One module: `cargo test -p lincheck --test it oracle::`.

mod generated;
mod known_histories;
mod large_history;
mod oracle;
