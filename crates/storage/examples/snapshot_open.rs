//! Cost of opening a store that holds a large snapshot and handing the snapshot out:
//! wall time and memory (peak and current resident set, split into anonymous memory and
//! file pages, from /proc/self/status). Two runs, so the write's own buffer does not
//! count against the open:
//!
//! ```text
//! cargo run --release -p storage --example snapshot_open -- --write [--dir DIR] [--mib 512]
//! cargo run --release -p storage --example snapshot_open -- [--dir DIR] [--stream]
//! ```
//!
//! `--write` builds DIR (default `./snapshot_open_data`) holding a snapshot of MIB MiB.
//! Without it, the store in DIR is opened, `snapshot()` called twice, and with `--stream`
//! the data read through in 1 MiB slices, as a leader sending InstallSnapshot chunks
//! does. Remove DIR by hand afterwards.

use bytes::Bytes;
use raft::{Entry, Snapshot, SnapshotMeta, Storage};
use std::path::PathBuf;
use std::time::Instant;
use storage::{DiskOptions, DiskStorage};

fn status(keys: &[&str]) -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    keys.iter()
        .map(|k| {
            let v = s
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}:")))
                .map(|v| v.trim().to_string());
            format!("{k} {}", v.unwrap_or_else(|| "?".into()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn mem() -> String {
    status(&["VmHWM", "VmRSS", "RssAnon", "RssFile"])
}

fn main() {
    let (mut dir, mut mib, mut write, mut stream) =
        (PathBuf::from("snapshot_open_data"), 512usize, false, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--dir" => dir = PathBuf::from(it.next().expect("--dir DIR")),
            "--mib" => mib = it.next().expect("--mib MIB").parse().expect("--mib MIB"),
            "--write" => write = true,
            "--stream" => stream = true,
            other => panic!("unknown flag {other}; see the example's doc comment"),
        }
    }
    if write {
        let mut s = DiskStorage::open(&dir, DiskOptions::default()).unwrap();
        s.append(&[
            Entry::normal(1, 1, Bytes::from_static(b"x")),
            Entry::normal(1, 2, Bytes::from_static(b"y")),
        ])
        .unwrap();
        s.sync().unwrap();
        let data: Bytes = (0..mib << 20)
            .map(|i| (i as u32).wrapping_mul(2654435761) as u8)
            .collect::<Vec<u8>>()
            .into();
        let t = Instant::now();
        s.compact(Snapshot {
            meta: SnapshotMeta { index: 1, term: 1 },
            conf: None,
            data,
        })
        .unwrap();
        s.sync().unwrap();
        println!(
            "wrote a {mib} MiB snapshot to {} in {:.3}s",
            dir.display(),
            t.elapsed().as_secs_f64()
        );
        return;
    }
    println!("before open:     {}", mem());
    let t = Instant::now();
    let s = DiskStorage::open(&dir, DiskOptions::default()).unwrap();
    let open = t.elapsed();
    println!("open:            {:.3}s; {}", open.as_secs_f64(), mem());
    let t = Instant::now();
    let a = s.snapshot().unwrap();
    let first = t.elapsed();
    let t = Instant::now();
    let b = s.snapshot().unwrap();
    let second = t.elapsed();
    assert_eq!(a.data.len(), b.data.len());
    println!(
        "snapshot() x2:   {:.1}us, {:.1}us ({} MiB, same buffer: {}); {}",
        first.as_secs_f64() * 1e6,
        second.as_secs_f64() * 1e6,
        a.data.len() >> 20,
        a.data.as_ptr() == b.data.as_ptr(),
        mem()
    );
    if stream {
        let t = Instant::now();
        let (mut at, mut sum) = (0usize, 0u64);
        while at < a.data.len() {
            let chunk = a.data.slice(at..a.data.len().min(at + (1 << 20)));
            sum = chunk
                .iter()
                .step_by(4093)
                .fold(sum, |s, &x| s.wrapping_add(x as u64));
            at += chunk.len();
        }
        println!(
            "streamed chunks: {:.3}s (checksum {sum}); {}",
            t.elapsed().as_secs_f64(),
            mem()
        );
    }
}
