//! Errors from opening a data directory. Each names the file (and byte offset, for
//! damaged data) so an operator can find the problem; none is ever "fixed" silently.

use raft::Index;
use std::io;
use std::path::PathBuf;

/// Why [`crate::DiskStorage::open`] refused a data directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// An operating-system call failed (includes a directory that is not writable).
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Data that may have been acknowledged is damaged or missing.
    #[error("corrupt data in {path} at byte offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A file written by a format version this build does not read.
    #[error("{path} has format version {found}; this build reads version {supported}")]
    IncompatibleVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// Log entries this directory once held durably are gone: a segment file was deleted
    /// (the WAL head names a newer segment than any present, or the segment numbers have
    /// a gap) or the log was cut below the durable commit index. Starting anyway would silently rewind the node, so it is
    /// refused; `first..=last` is the missing range (`last` is `None` when only its start
    /// is known), `files` the files that should hold it.
    #[error(
        "log entries {} are missing from {}: {reason} ({}); refusing to start rather than \
         silently rewinding this node: restore the missing files, or replace this node",
        missing_range(*first, *last),
        dir.display(),
        missing_files(files)
    )]
    MissingLog {
        dir: PathBuf,
        first: Index,
        last: Option<Index>,
        files: Vec<PathBuf>,
        reason: String,
    },
    /// Another process (or another open store in this one) holds the directory's lock.
    #[error("data directory {path} is in use by another process (lock file {path}/LOCK is held)")]
    Locked { path: PathBuf },
}

impl OpenError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> OpenError {
        let path = path.into();
        move |source| OpenError::Io { op, path, source }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> OpenError {
        OpenError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

fn missing_range(first: Index, last: Option<Index>) -> String {
    match last {
        Some(last) => format!("{first}..={last}"),
        None => format!("from {first} on"),
    }
}

fn missing_files(files: &[PathBuf]) -> String {
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    format!("files: {}", names.join(", "))
}
