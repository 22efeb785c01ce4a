//! RESP, the Redis wire protocol: frames ([`frame`]), the commands raftkv
//! understands ([`command`]) and the one table of them ([`table`]: arity
//! checks for the parser, and what `COMMAND` says). Requests are RESP2
//! arrays (what every client sends); replies are RESP2, or RESP3 after
//! `HELLO 3` (newer client libraries, e.g. redis-py 8, negotiate it on
//! connect).
//!
//! Why not a crate: `redis-protocol` fits, but its API has changed shape
//! across every major version and its decoder does not bound bulk lengths
//! the way we need (a client announcing a 512 MiB bulk must be refused before
//! we buffer it). The subset a server needs is small: a check-then-parse
//! decoder in the style of mini-redis, an encoder, and limits; it is
//! property-tested against an independent encoder in `tests/resp_codec.rs`.

pub mod command;
pub mod data;
pub mod decoder;
pub mod frame;
pub mod table;

pub use command::{parse_command, ClusterQuery, Command, CommandError, ShardCtl};
pub use decoder::Decoder;
pub use frame::{parse_frame, Frame, Limits, ParseError, Protocol};
