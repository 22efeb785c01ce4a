//! WAL micro-benchmark: group-commit throughput, the disk's raw fdatasync rate, and
//! recovery time. Run in release mode on the disk you care about:
//!
//! ```text
//! cargo run --release -p storage --example wal_bench -- [--dir DIR] [--seconds S] [--recovery-mib MIB] [--drop-caches]
//! ```
//!
//! `--dir` defaults to `./wal_bench_data` (not /tmp, which may be tmpfs); it is removed at
//! the end. `--recovery-mib` sizes the log written for the recovery test (default 1024).
//! `--drop-caches` asks the kernel to drop the page cache before recovery (needs root),
//! so recovery reads the disk rather than memory.

use bytes::Bytes;
use raft::{Entry, Storage};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use storage::{DiskOptions, DiskStorage};

const ENTRY_BYTES: usize = 256;
const MIB: f64 = 1024.0 * 1024.0;

struct Args {
    dir: PathBuf,
    seconds: f64,
    recovery_mib: u64,
    drop_caches: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        dir: PathBuf::from("wal_bench_data"),
        seconds: 3.0,
        recovery_mib: 1024,
        drop_caches: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => a.dir = PathBuf::from(val()),
            "--seconds" => a.seconds = val().parse().expect("--seconds S"),
            "--recovery-mib" => a.recovery_mib = val().parse().expect("--recovery-mib MIB"),
            "--drop-caches" => a.drop_caches = true,
            other => panic!("unknown flag {other}; see the example's doc comment"),
        }
    }
    a
}

fn payload() -> Bytes {
    Bytes::from(
        (0..ENTRY_BYTES)
            .map(|i| (i * 7 + 1) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn raw_fdatasync(dir: &Path, seconds: f64) -> f64 {
    let path = dir.join("raw_fdatasync");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let buf = vec![0x5a; ENTRY_BYTES];
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(path).unwrap();
    rate
}

fn group_commit(dir: &Path, batch: usize, seconds: f64) {
    let _ = std::fs::remove_dir_all(dir);
    let mut s = DiskStorage::open(dir, DiskOptions::default()).unwrap();
    let data = payload();
    let (start, mut next) = (Instant::now(), 1u64);
    let mut syncs = 0u64;
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        let es: Vec<Entry> = (next..next + batch as u64)
            .map(|i| Entry::normal(1, i, data.clone()))
            .collect();
        s.append(&es).unwrap();
        s.sync().unwrap();
        next += batch as u64;
        syncs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let appends = (next - 1) as f64 / secs;
    println!(
        "batch {batch:>4}: {appends:>10.0} appends/s  {:>7.2} MiB/s payload  {:>7.0} syncs/s",
        appends * ENTRY_BYTES as f64 / MIB,
        syncs as f64 / secs
    );
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}

fn recovery(dir: &Path, mib: u64, drop_caches: bool) {
    let _ = std::fs::remove_dir_all(dir);
    let mut s = DiskStorage::open(dir, DiskOptions::default()).unwrap();
    let data = payload();
    let entries = mib * 1024 * 1024 / ENTRY_BYTES as u64;
    let start = Instant::now();
    let mut next = 1u64;
    while next <= entries {
        let hi = (next + 4096).min(entries + 1);
        let es: Vec<Entry> = (next..hi)
            .map(|i| Entry::normal(1, i, data.clone()))
            .collect();
        s.append(&es).unwrap();
        s.sync().unwrap();
        next = hi;
    }
    let write_secs = start.elapsed().as_secs_f64();
    let segments = s.segment_count();
    drop(s);
    let on_disk: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!("recovery log: {entries} entries, {:.0} MiB on disk in {segments} segments (written in {write_secs:.1} s)", on_disk as f64 / MIB);
    if drop_caches {
        let ok = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
        println!("page cache dropped: {ok}");
    }
    let start = Instant::now();
    let s = DiskStorage::open(dir, DiskOptions::default()).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(s.last_index(), entries);
    println!(
        "recovery: open took {secs:.2} s ({:.0} MiB/s, {:.0} entries/s)",
        on_disk as f64 / MIB / secs,
        entries as f64 / secs
    );
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}

fn main() {
    let a = parse_args();
    std::fs::create_dir_all(&a.dir).unwrap();
    println!(
        "dir {} ; {ENTRY_BYTES}-byte entries, one sync per batch, {} s per run",
        a.dir.display(),
        a.seconds
    );
    println!(
        "raw fdatasync ({ENTRY_BYTES}-byte append + fdatasync): {:.0} syncs/s",
        raw_fdatasync(&a.dir, a.seconds)
    );
    for batch in [1, 16, 256] {
        group_commit(&a.dir.join(format!("batch{batch}")), batch, a.seconds);
    }
    recovery(&a.dir.join("recovery"), a.recovery_mib, a.drop_caches);
    let _ = std::fs::remove_dir(&a.dir);
}
