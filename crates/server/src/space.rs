//! The free-space reserve (`--min-free-bytes`): while the file system holding
//! the data directory has less free space than that, this node refuses new
//! client writes with `-MISCONF` — a leader refuses them from every node that
//! forwards one — and keeps serving reads; Raft goes on (heartbeats, votes,
//! entries already proposed, snapshots and compaction still have the reserve
//! to write into). Writes resume by themselves once space is freed.
//!
//! Why a free-space floor rather than a quota on our own bytes (etcd's
//! `--quota-backend-bytes`) or a reserve file released on ENOSPC: the
//! failure in issue 11 was every member of a group filling the same-sized
//! disk with the same log at once and all hitting ENOSPC within milliseconds.
//! A floor measured on the file system stops the group's writes *before*
//! any member hits the wall, whatever else shares the disk (a quota on our
//! own bytes cannot see other files; a released reserve file only moves the
//! wall 64 MiB further and then every member hits it again together). The
//! leader's floor decides for the group, since every member holds about the
//! same log; a member whose disk is smaller than the leader's can still run
//! out first, and is then handled by the disk-full path (`replica::space`:
//! refuse, reopen, resume), as is a disk that fills faster than the floor is
//! checked.
//!
//! Invariant: a refused write was never proposed (certainly no effect). The
//! free space is read at most every [`RECHECK`] (one `statvfs`, about a
//! microsecond): short, because a fast writer can fill megabytes between two
//! reads (a real 3-node run wrote 64 KiB values at ~400/s, 5 MiB per 200 ms),
//! and the floor must be met before the disk is full, not after.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default `--min-free-bytes`: room for a WAL segment's worth of in-flight
/// entries, hard states and a small snapshot after writes stop.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 << 20;
/// How stale the cached free-space figure may be.
pub const RECHECK: Duration = Duration::from_millis(10);

/// Reads the free bytes (available to this user) of the file system holding a path.
pub type Probe = Arc<dyn Fn(&Path) -> std::io::Result<u64> + Send + Sync>;

/// The configured floor; `min_free_bytes == 0` turns it off.
#[derive(Clone)]
pub struct ReserveConfig {
    pub min_free_bytes: u64,
    /// `statvfs` by default; tests substitute a controllable figure.
    pub probe: Probe,
}

impl Default for ReserveConfig {
    fn default() -> Self {
        ReserveConfig {
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            probe: Arc::new(free_bytes),
        }
    }
}

impl std::fmt::Debug for ReserveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReserveConfig")
            .field("min_free_bytes", &self.min_free_bytes)
            .finish_non_exhaustive()
    }
}

/// When the free space was last measured, and why writes are refused
/// (`None`: enough space).
type Measured = (Instant, Option<String>);

/// The floor applied to one data directory. Cheap to clone (shared cache).
#[derive(Clone)]
pub struct Reserve {
    dir: PathBuf,
    cfg: ReserveConfig,
    cached: Arc<Mutex<Option<Measured>>>,
}

impl Reserve {
    pub fn new(dir: &Path, cfg: ReserveConfig) -> Reserve {
        Reserve {
            dir: dir.to_path_buf(),
            cfg,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// Why new writes are refused now, or `None` if there is room (or the
    /// floor is off, or the free space cannot be read: then the disk-full path
    /// is the only guard).
    pub fn low(&self) -> Option<String> {
        if self.cfg.min_free_bytes == 0 {
            return None;
        }
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, why)) = cached.as_ref() {
            if at.elapsed() < RECHECK {
                return why.clone();
            }
        }
        let why = self.measure();
        *cached = Some((Instant::now(), why.clone()));
        why
    }

    fn measure(&self) -> Option<String> {
        match (self.cfg.probe)(&self.dir) {
            Ok(free) if free < self.cfg.min_free_bytes => Some(format!(
                "only {free} bytes free on the file system of {}, below --min-free-bytes {}",
                self.dir.display(),
                self.cfg.min_free_bytes
            )),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(dir = %self.dir.display(), "cannot read free space: {e}");
                None
            }
        }
    }
}

/// Free bytes available to unprivileged users on the file system of `path`
/// (`statvfs`: `f_bavail * f_frsize`).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable
    // memory of the right type; statvfs initialises it when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: rc == 0, so statvfs filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn refuses_below_the_floor_and_reads_the_real_file_system() {
        assert!(free_bytes(Path::new("/")).is_ok());
        let free = Arc::new(AtomicU64::new(100));
        let f = free.clone();
        let probe: Probe = Arc::new(move |_| Ok(f.load(Ordering::SeqCst)));
        let cfg = ReserveConfig {
            min_free_bytes: 50,
            probe,
        };
        let r = Reserve::new(Path::new("/data"), cfg.clone());
        assert_eq!(r.low(), None);
        free.store(10, Ordering::SeqCst);
        let r = Reserve::new(Path::new("/data"), cfg.clone());
        let why = r.low().unwrap();
        assert!(why.contains("only 10 bytes free") && why.contains("--min-free-bytes 50"));
        let off = Reserve::new(
            Path::new("/data"),
            ReserveConfig {
                min_free_bytes: 0,
                ..cfg
            },
        );
        assert_eq!(off.low(), None);
    }
}
