//! The process's memory as INFO's `memory` section reports it.
//!
//! `used_memory` is what the allocator handed out and not yet got back:
//! [`CountingAlloc`] wraps an allocator with one relaxed atomic add per
//! allocation and per free (the `raftkv` binary installs it, around its
//! allocator, as the global allocator; INFO's `mem_allocator` names the one
//! inside). Where it is not installed (library users, unit tests),
//! `used_memory` falls back to the resident set size and `mem_allocator` is
//! `libc`.
//! `used_memory_rss` and its peak come from `/proc/self/status` (`VmRSS`,
//! `VmHWM`), the machine's total from `/proc/meminfo`; off Linux they read 0.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static NAME: OnceLock<&'static str> = OnceLock::new();

/// An allocator (the system's by default), counting the bytes it has
/// outstanding.
pub struct CountingAlloc<A = System> {
    inner: A,
    name: &'static str,
}

impl<A> CountingAlloc<A> {
    /// Counts what `inner` hands out; `name` is INFO's `mem_allocator`.
    pub const fn new(inner: A, name: &'static str) -> Self {
        CountingAlloc { inner, name }
    }

    fn count_alloc(&self, size: usize) {
        ALLOCATED.fetch_add(size, Relaxed);
        if !INSTALLED.load(Relaxed) {
            // No allocation here: a set of a static cell, once.
            let _ = NAME.set(self.name);
            INSTALLED.store(true, Relaxed);
        }
    }
}

// SAFETY: every method forwards to the inner allocator with the caller's
// arguments unchanged; the counter is bookkeeping only.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            self.count_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            self.count_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.inner.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_sub(layout.size(), Relaxed);
            self.count_alloc(new_size);
        }
        p
    }
}

/// Bytes allocated and not freed, when [`CountingAlloc`] is the global allocator.
pub fn allocated_bytes() -> Option<u64> {
    INSTALLED
        .load(Relaxed)
        .then(|| ALLOCATED.load(Relaxed) as u64)
}

/// The allocator inside [`CountingAlloc`] (`libc` when it is not installed).
pub fn allocator_name() -> &'static str {
    NAME.get().copied().unwrap_or("libc")
}

/// What the process uses, as INFO's `memory` section reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    /// Whether `used` is the allocator's count (else the RSS).
    pub from_allocator: bool,
    pub rss: u64,
    pub rss_peak: u64,
    pub system_total: u64,
}

pub fn usage() -> Usage {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let rss = kib_field(&status, "VmRSS:");
    let allocated = allocated_bytes();
    Usage {
        used: allocated.unwrap_or(rss),
        from_allocator: allocated.is_some(),
        rss,
        rss_peak: kib_field(&status, "VmHWM:"),
        system_total: kib_field(&meminfo, "MemTotal:"),
    }
}

/// A `Name:   1234 kB` line of a /proc file, in bytes (0 when absent).
fn kib_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Redis's human form of a byte count: `1003B`, `4.03K`, `100.00M`, `2.32G`.
pub fn human(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (size, unit) in UNITS {
        if n >= size {
            return format!("{:.2}{unit}", n as f64 / size as f64);
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_like_redis() {
        assert_eq!(human(1003), "1003B");
        assert_eq!(human(4130), "4.03K");
        assert_eq!(human(100 << 20), "100.00M");
        assert_eq!(human(3 << 30), "3.00G");
    }

    #[test]
    fn proc_fields_parse() {
        let status = "Name:\traftkv\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), 1 << 20);
        assert_eq!(kib_field(status, "VmHWM:"), 2 << 20);
        assert_eq!(kib_field(status, "VmSwap:"), 0);
        if cfg!(target_os = "linux") {
            let u = usage();
            assert!(u.rss > 0 && u.rss_peak >= u.rss && u.system_total > u.rss);
        }
    }
}
