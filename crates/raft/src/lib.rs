//! raftkv's consensus core.
pub mod config;
pub mod error;
pub mod message;
pub mod storage;
pub mod types;

pub use config::Config;
pub use error::{RaftError, Result, StorageError};
pub use message::{Message, MessageBody, RejectHint};
pub use storage::{MemStorage, Storage, StorageResult};
pub use types::*;
