//! [`SnapshotInput`]: snapshot bytes a decoder reads once, front to back, and the
//! store's way to take the part already read out of this process's memory.
//!
//! A snapshot read from disk is a memory map of its file: every page the decoder
//! touches becomes resident (counted in RSS and the peak) until something drops it.
//! Only the store knows whether the bytes are such a map; it hands the decoder a
//! `release` hook that drops the pages of a part already read (and does nothing for
//! bytes on the heap: there, dropping pages would lose data). The decoder calls it
//! behind its cursor ([`ReleasingCursor`], every [`RELEASE_STEP`] bytes), so a whole
//! snapshot is never resident at once. Releasing is a hint about memory, never about
//! content: a released part read again is the same bytes (faulted back from the file).

/// How many bytes a [`ReleasingCursor`] reads between two releases.
pub const RELEASE_STEP: usize = 4 << 20;

/// Snapshot bytes and the hook that releases the parts read (see the module docs).
#[derive(Clone, Copy)]
pub struct SnapshotInput<'a> {
    data: &'a [u8],
    release: &'a dyn Fn(&[u8]),
}

/// The hook of bytes that are not a file map: nothing to release.
static KEEP: fn(&[u8]) = |_| {};

impl<'a> SnapshotInput<'a> {
    /// `data`, whose parts already read the decoder passes to `release`.
    pub fn new(data: &'a [u8], release: &'a dyn Fn(&[u8])) -> Self {
        SnapshotInput { data, release }
    }

    /// Bytes on the heap (tests, snapshots held in memory): nothing is released.
    pub fn in_memory(data: &'a [u8]) -> Self {
        SnapshotInput {
            data,
            release: &KEEP,
        }
    }

    /// All of the bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Says `part` (a part of [`SnapshotInput::data`]) has been read and is not needed
    /// again soon.
    pub fn release(&self, part: &[u8]) {
        (self.release)(part)
    }

    /// A cursor at the start that releases what it has passed.
    pub fn cursor(self) -> ReleasingCursor<'a> {
        ReleasingCursor {
            input: self,
            pos: 0,
            released: 0,
        }
    }
}

/// Reads a [`SnapshotInput`] front to back and releases what it has passed every
/// [`RELEASE_STEP`] bytes, so at most about that much of it is resident at a time.
/// Slices it hands out stay valid (and unchanged) after their pages are released.
pub struct ReleasingCursor<'a> {
    input: SnapshotInput<'a>,
    pos: usize,
    /// Everything before this offset has been released.
    released: usize,
}

impl<'a> ReleasingCursor<'a> {
    /// The next `n` bytes, or `None` (and the cursor unmoved) if fewer are left.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let data = self.input.data;
        let part = data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        if self.pos - self.released >= RELEASE_STEP {
            self.release_read();
        }
        Some(part)
    }

    /// Releases everything read so far.
    pub fn release_read(&mut self) {
        if self.pos > self.released {
            self.input
                .release(&self.input.data[self.released..self.pos]);
            self.released = self.pos;
        }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.input.data[self.pos..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn a_cursor_releases_every_part_it_passed_once_in_order() {
        let data: Vec<u8> = (0..3 * RELEASE_STEP + 10).map(|i| i as u8).collect();
        let released = RefCell::new(Vec::new());
        let base = data.as_ptr() as usize;
        let hook = |part: &[u8]| {
            let start = part.as_ptr() as usize - base;
            released.borrow_mut().push(start..start + part.len());
        };
        let mut read = Vec::new();
        {
            let mut c = SnapshotInput::new(&data, &hook).cursor();
            while let Some(part) = c.take(1000) {
                read.extend_from_slice(part);
            }
            assert_eq!(c.rest().len(), (3 * RELEASE_STEP + 10) % 1000);
            assert!(
                c.take(usize::MAX).is_none(),
                "overflowing lengths are refused"
            );
            c.release_read();
        }
        let read_len = read.len();
        assert_eq!(read, data[..read_len], "the bytes read are the input's");
        let released = released.borrow().clone();
        assert_eq!(released.len(), 3, "{released:?}");
        let mut next = 0;
        for r in &released {
            assert_eq!(r.start, next, "released in order, without gaps or overlap");
            assert!(r.len() <= RELEASE_STEP + 1000);
            next = r.end;
        }
        assert_eq!(
            next, read_len,
            "everything read and nothing more is released"
        );
    }
}
