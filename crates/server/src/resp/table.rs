//! The one table of the commands raftkv answers, described the way Redis
//! 7's `COMMAND` describes them: name, arity, flags, first key, last key,
//! key step, and for `COMMAND DOCS` a group, the Redis version that
//! introduced it and a one-line summary; container commands (`CLIENT`,
//! `CONFIG`, `COMMAND`, `CLUSTER`) list their subcommands as rows of their
//! own (`client|setname`), as Redis 7 does.
//!
//! The dispatcher checks arity and subcommand names against this table
//! ([`check`]) before a command is parsed, so the error wording is Redis's
//! for every command alike. Cluster clients (redis-py's `RedisCluster`, for
//! one) read key positions from `COMMAND` to route a command by its keys'
//! slot, so each row must say where the keys really are.
//!
//! Derived rather than written per row (documented differences from Redis):
//! the ACL categories come from the flags and the group (`@read`/`@write`,
//! `@fast`/`@slow`, `@string`, `@keyspace`, ...), and a key specification
//! from the key range (flags `RO access` for a read, `RW update` for a write,
//! unless the row gives its own).
//!
//! Invariant: every command `command::parse_command` accepts has a row here,
//! and the arities are Redis's (negative: "at least |n| arguments",
//! counting the command name), even where raftkv accepts fewer forms.

use bytes::Bytes;

use super::command::CommandError;
use super::frame::Frame;

/// One row of the command table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// Lower case; a subcommand is `parent|sub`, as Redis's full names.
    pub name: &'static str,
    pub arity: i64,
    pub flags: &'static [&'static str],
    pub first_key: i64,
    pub last_key: i64,
    pub step: i64,
    /// Redis's command group (`string`, `generic`, `connection`, ...).
    pub group: &'static str,
    /// The Redis version that introduced the command (raftkv's own: ours).
    pub since: &'static str,
    pub summary: &'static str,
    /// Key-spec flags when the derived ones (see the module docs) are wrong.
    pub key_flags: &'static [&'static str],
    pub subcommands: &'static [CommandSpec],
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        group: "generic",
        since: "",
        summary: "",
        key_flags: &[],
        subcommands: &[],
    }
}

impl CommandSpec {
    /// The `COMMAND DOCS` fields.
    pub const fn doc(
        mut self,
        group: &'static str,
        since: &'static str,
        summary: &'static str,
    ) -> Self {
        self.group = group;
        self.since = since;
        self.summary = summary;
        self
    }

    pub const fn subs(mut self, subcommands: &'static [CommandSpec]) -> Self {
        self.subcommands = subcommands;
        self
    }

    pub const fn key_flags(mut self, flags: &'static [&'static str]) -> Self {
        self.key_flags = flags;
        self
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    /// Whether `n` arguments (the command name included) fit the arity.
    pub fn arity_ok(&self, n: usize) -> bool {
        let n = n as i64;
        if self.arity >= 0 {
            n == self.arity
        } else {
            n >= -self.arity
        }
    }

    /// The name without the parent (`setname` for `client|setname`).
    pub fn short_name(&self) -> &'static str {
        self.name.rsplit('|').next().unwrap_or(self.name)
    }
}

pub const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
pub const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
pub const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);
/// `MSET`-style: key, value, key, value, ...
pub const PAIRS: (i64, i64, i64) = (1, -1, 2);

const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];
const CONN: &[&str] = &["noscript", "loading", "stale"];
const LS: &[&str] = &["loading", "stale"];
const NO_AUTH: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];

const CLIENT_SUBS: &[CommandSpec] = &[
    spec("client|getname", 2, CONN, NO_KEYS).doc(
        "connection",
        "2.6.9",
        "Returns the name of the connection.",
    ),
    spec("client|help", 2, LS, NO_KEYS).doc(
        "connection",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
    ),
    spec("client|id", 2, CONN, NO_KEYS).doc(
        "connection",
        "5.0.0",
        "Returns the unique client ID of the connection.",
    ),
    spec("client|info", 2, CONN, NO_KEYS).doc(
        "connection",
        "6.2.0",
        "Returns information about the connection.",
    ),
    spec("client|kill", -3, ADMIN, NO_KEYS).doc(
        "connection",
        "2.4.0",
        "Terminates open connections.",
    ),
    spec("client|list", -2, ADMIN, NO_KEYS).doc(
        "connection",
        "2.4.0",
        "Lists open connections.",
    ),
    spec("client|no-evict", 3, ADMIN, NO_KEYS).doc(
        "connection",
        "7.0.0",
        "Sets the client eviction mode of the connection (accepted; raftkv never evicts clients).",
    ),
    spec("client|no-touch", 3, CONN, NO_KEYS).doc(
        "connection",
        "7.2.0",
        "Controls whether commands sent by the client affect the LRU/LFU of accessed keys (accepted; raftkv keeps no LRU).",
    ),
    spec("client|setinfo", 4, CONN, NO_KEYS).doc(
        "connection",
        "7.2.0",
        "Sets information specific to the client or connection.",
    ),
    spec("client|setname", 3, CONN, NO_KEYS).doc(
        "connection",
        "2.6.9",
        "Sets the connection name.",
    ),
];

const CLUSTER_SUBS: &[CommandSpec] = &[
    spec("cluster|help", 2, LS, NO_KEYS).doc(
        "cluster",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
    ),
    spec("cluster|info", 2, &["stale"], NO_KEYS).doc(
        "cluster",
        "3.0.0",
        "Returns information about the state of a node.",
    ),
    spec("cluster|keyslot", 3, &["stale"], NO_KEYS).doc(
        "cluster",
        "3.0.0",
        "Returns the hash slot for a key.",
    ),
    spec("cluster|myid", 2, &["stale"], NO_KEYS).doc(
        "cluster",
        "3.0.0",
        "Returns the ID of a node.",
    ),
    spec("cluster|nodes", 2, &["stale"], NO_KEYS).doc(
        "cluster",
        "3.0.0",
        "Returns the cluster configuration for a node.",
    ),
    spec("cluster|shards", 2, LS, NO_KEYS).doc(
        "cluster",
        "7.0.0",
        "Returns the mapping of cluster slots to shards.",
    ),
    spec("cluster|slots", 2, LS, NO_KEYS).doc(
        "cluster",
        "3.0.0",
        "Returns the mapping of cluster slots to nodes.",
    ),
];

const COMMAND_SUBS: &[CommandSpec] = &[
    spec("command|count", 2, LS, NO_KEYS).doc("server", "2.8.13", "Returns a count of commands."),
    spec("command|docs", -2, LS, NO_KEYS).doc(
        "server",
        "7.0.0",
        "Returns documentary information about one, multiple or all commands.",
    ),
    spec("command|getkeys", -3, LS, NO_KEYS).doc(
        "server",
        "2.8.13",
        "Extracts the key names from an arbitrary command.",
    ),
    spec("command|help", 2, LS, NO_KEYS).doc(
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
    ),
    spec("command|info", -2, LS, NO_KEYS).doc(
        "server",
        "2.8.13",
        "Returns information about one, multiple or all commands.",
    ),
    spec("command|list", -2, LS, NO_KEYS).doc(
        "server",
        "7.0.0",
        "Returns a list of command names.",
    ),
];

const CONFIG_SUBS: &[CommandSpec] = &[
    spec("config|get", -3, ADMIN, NO_KEYS).doc(
        "server",
        "2.0.0",
        "Returns the effective values of configuration parameters.",
    ),
    spec("config|help", 2, LS, NO_KEYS).doc(
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
    ),
    spec("config|resetstat", 2, ADMIN, NO_KEYS).doc(
        "server",
        "2.0.0",
        "Resets the server's statistics.",
    ),
    spec("config|set", -4, ADMIN, NO_KEYS).doc(
        "server",
        "2.0.0",
        "Sets configuration parameters (raftkv: only to the value they already have; they are command-line flags).",
    ),
];

/// Every command raftkv answers, in name order.
pub const COMMANDS: &[CommandSpec] = &[
    spec("append", 3, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "string",
        "2.0.0",
        "Appends a string to the value of a key. Creates the key if it doesn't exist.",
    ),
    spec("asking", 1, &["fast"], NO_KEYS).doc(
        "cluster",
        "3.0.0",
        "Signals that a cluster client is following an -ASK redirect (accepted, no effect).",
    ),
    spec("auth", -2, NO_AUTH, NO_KEYS).doc(
        "connection",
        "1.0.0",
        "Authenticates the connection.",
    ),
    spec("client", -2, &[], NO_KEYS)
        .doc(
            "connection",
            "2.4.0",
            "A container for client connection commands.",
        )
        .subs(CLIENT_SUBS),
    spec("cluster", -2, &[], NO_KEYS)
        .doc("cluster", "3.0.0", "A container for Redis Cluster commands.")
        .subs(CLUSTER_SUBS),
    spec("command", -1, LS, NO_KEYS)
        .doc(
            "server",
            "2.8.13",
            "Returns detailed information about all commands.",
        )
        .subs(COMMAND_SUBS),
    spec("config", -2, &[], NO_KEYS)
        .doc(
            "server",
            "2.0.0",
            "A container for server configuration commands.",
        )
        .subs(CONFIG_SUBS),
    spec("dbsize", 1, &["readonly", "fast"], NO_KEYS).doc(
        "server",
        "1.0.0",
        "Returns the number of keys in the database.",
    ),
    spec("decr", 2, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "string",
        "1.0.0",
        "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
    ),
    spec("decrby", 3, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "string",
        "1.0.0",
        "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
    ),
    spec("del", -2, &["write"], ALL_KEYS)
        .doc("generic", "1.0.0", "Deletes one or more keys.")
        .key_flags(&["RM", "delete"]),
    spec("discard", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], NO_KEYS).doc(
        "transactions",
        "2.0.0",
        "Discards a transaction.",
    ),
    spec("echo", 2, &["fast"], NO_KEYS).doc("connection", "1.0.0", "Returns the given string."),
    spec("exec", 1, &["noscript", "loading", "stale", "skip_slowlog"], NO_KEYS).doc(
        "transactions",
        "1.2.0",
        "Executes all commands in a transaction (one log entry, applied atomically).",
    ),
    spec("exists", -2, &["readonly", "fast"], ALL_KEYS).doc(
        "generic",
        "1.0.0",
        "Determines whether one or more keys exist.",
    ),
    spec("expire", -3, &["write", "fast"], ONE_KEY).doc(
        "generic",
        "1.0.0",
        "Sets the expiration time of a key in seconds.",
    ),
    spec("expireat", -3, &["write", "fast"], ONE_KEY).doc(
        "generic",
        "1.2.0",
        "Sets the expiration time of a key to a Unix timestamp.",
    ),
    spec("expiretime", 2, &["readonly", "fast"], ONE_KEY).doc(
        "generic",
        "7.0.0",
        "Returns the expiration time of a key as a Unix timestamp.",
    ),
    spec("flushall", -1, &["write"], NO_KEYS).doc(
        "server",
        "1.0.0",
        "Removes all keys from all databases (one log entry).",
    ),
    spec("flushdb", -1, &["write"], NO_KEYS).doc(
        "server",
        "1.0.0",
        "Removes all keys from the current database (one log entry).",
    ),
    spec("get", 2, &["readonly", "fast"], ONE_KEY).doc(
        "string",
        "1.0.0",
        "Returns the string value of a key.",
    ),
    spec("getdel", 2, &["write", "fast"], ONE_KEY).doc(
        "string",
        "6.2.0",
        "Returns the string value of a key after deleting the key.",
    ),
    spec("getex", -2, &["write", "fast"], ONE_KEY).doc(
        "string",
        "6.2.0",
        "Returns the string value of a key after setting its expiration time.",
    ),
    spec("getrange", 4, &["readonly"], ONE_KEY).doc(
        "string",
        "2.4.0",
        "Returns a substring of the string stored at a key.",
    ),
    spec("getset", 3, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "string",
        "1.0.0",
        "Returns the previous string value of a key after setting it to a new value.",
    ),
    spec("hdel", -3, &["write", "fast"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.",
    ),
    spec("hello", -1, NO_AUTH, NO_KEYS).doc(
        "connection",
        "6.0.0",
        "Handshakes with the server.",
    ),
    spec("hexists", 3, &["readonly", "fast"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Determines whether a field exists in a hash.",
    ),
    spec("hget", 3, &["readonly", "fast"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Returns the value of a field in a hash.",
    ),
    spec("hgetall", 2, &["readonly"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Returns all fields and values in a hash.",
    ),
    spec("hincrby", 4, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.",
    ),
    spec("hincrbyfloat", 4, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "hash",
        "2.6.0",
        "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.",
    ),
    spec("hkeys", 2, &["readonly"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Returns all fields in a hash.",
    ),
    spec("hlen", 2, &["readonly", "fast"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Returns the number of fields in a hash.",
    ),
    spec("hmget", -3, &["readonly", "fast"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Returns the values of all fields in a hash.",
    ),
    spec("hscan", -3, &["readonly"], ONE_KEY).doc(
        "hash",
        "2.8.0",
        "Iterates over fields and values of a hash (raftkv answers every field in one page).",
    ),
    spec("hset", -4, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Creates or modifies the value of a field in a hash.",
    ),
    spec("hsetnx", 4, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Sets the value of a field in a hash only when the field doesn't exist.",
    ),
    spec("hstrlen", 3, &["readonly", "fast"], ONE_KEY).doc(
        "hash",
        "3.2.0",
        "Returns the length of the value of a field.",
    ),
    spec("hvals", 2, &["readonly"], ONE_KEY).doc(
        "hash",
        "2.0.0",
        "Returns all values in a hash.",
    ),
    spec("incr", 2, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "string",
        "1.0.0",
        "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
    ),
    spec("incrby", 3, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "string",
        "1.0.0",
        "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
    ),
    spec("incrbyfloat", 3, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "string",
        "2.6.0",
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
    ),
    spec("info", -1, LS, NO_KEYS).doc(
        "server",
        "1.0.0",
        "Returns information and statistics about the server.",
    ),
    spec("keys", 2, &["readonly"], NO_KEYS).doc(
        "generic",
        "1.0.0",
        "Returns all key names that match a pattern.",
    ),
    spec("mget", -2, &["readonly", "fast"], ALL_KEYS).doc(
        "string",
        "1.0.0",
        "Atomically returns the string values of one or more keys.",
    ),
    spec("mset", -3, &["write", "denyoom"], PAIRS).doc(
        "string",
        "1.0.1",
        "Atomically creates or modifies the string values of one or more keys.",
    ),
    spec("msetnx", -3, &["write", "denyoom"], PAIRS).doc(
        "string",
        "1.0.1",
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
    ),
    spec("multi", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], NO_KEYS).doc(
        "transactions",
        "1.2.0",
        "Starts a transaction.",
    ),
    spec("persist", 2, &["write", "fast"], ONE_KEY).doc(
        "generic",
        "2.2.0",
        "Removes the expiration time of a key.",
    ),
    spec("pexpire", -3, &["write", "fast"], ONE_KEY).doc(
        "generic",
        "2.6.0",
        "Sets the expiration time of a key in milliseconds.",
    ),
    spec("pexpireat", -3, &["write", "fast"], ONE_KEY).doc(
        "generic",
        "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    ),
    spec("pexpiretime", 2, &["readonly", "fast"], ONE_KEY).doc(
        "generic",
        "7.0.0",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
    ),
    spec("ping", -1, &["fast"], NO_KEYS).doc(
        "connection",
        "1.0.0",
        "Returns the server's liveliness response.",
    ),
    spec("psetex", 4, &["write", "denyoom"], ONE_KEY).doc(
        "string",
        "2.6.0",
        "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
    ),
    spec("pttl", 2, &["readonly", "fast"], ONE_KEY).doc(
        "generic",
        "2.6.0",
        "Returns the expiration time in milliseconds of a key.",
    ),
    spec("quit", -1, NO_AUTH, NO_KEYS).doc("connection", "1.0.0", "Closes the connection."),
    spec("raft", -2, &["admin"], NO_KEYS).doc(
        "cluster",
        "0.1.0",
        "raftkv's own: lists and changes the group's members (MEMBER LIST, ADD, PROMOTE, REMOVE), moves leadership (TRANSFER), takes a backup (SNAPSHOT); any node forwards to the leader.",
    ),
    spec("randomkey", 1, &["readonly"], NO_KEYS).doc(
        "generic",
        "1.0.0",
        "Returns a key name from the database (chosen by the replicated state, the same on every node).",
    ),
    spec("readonly", 1, &["loading", "stale", "fast"], NO_KEYS).doc(
        "cluster",
        "3.0.0",
        "Enables read-only queries for a connection to a Redis Cluster replica node (accepted; every raftkv read is linearizable).",
    ),
    spec("readwrite", 1, &["loading", "stale", "fast"], NO_KEYS).doc(
        "cluster",
        "3.0.0",
        "Enables read-write queries for a connection to a Redis Cluster replica node (accepted, no effect).",
    ),
    spec("rename", 3, &["write"], (1, 2, 1)).doc(
        "generic",
        "1.0.0",
        "Renames a key and overwrites the destination.",
    ),
    spec("renamenx", 3, &["write", "fast"], (1, 2, 1)).doc(
        "generic",
        "1.0.0",
        "Renames a key only when the target key name doesn't exist.",
    ),
    spec("scan", -2, &["readonly"], NO_KEYS).doc(
        "generic",
        "2.8.0",
        "Iterates over the key names in the database (cursor: a position in a fixed hash order).",
    ),
    spec("select", 2, &["loading", "stale", "fast"], NO_KEYS).doc(
        "connection",
        "1.0.0",
        "Changes the selected database (raftkv has database 0 only).",
    ),
    spec("set", -3, &["write", "denyoom"], ONE_KEY)
        .doc(
            "string",
            "1.0.0",
            "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        )
        .key_flags(&["RW", "access", "update", "variable_flags"]),
    spec("setex", 4, &["write", "denyoom"], ONE_KEY).doc(
        "string",
        "2.0.0",
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
    ),
    spec("setnx", 3, &["write", "denyoom", "fast"], ONE_KEY).doc(
        "string",
        "1.0.0",
        "Set the string value of a key only when the key doesn't exist.",
    ),
    spec("setrange", 4, &["write", "denyoom"], ONE_KEY).doc(
        "string",
        "2.2.0",
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
    ),
    spec("shardctl", -2, &["admin"], NO_KEYS).doc(
        "cluster",
        "0.1.0",
        "raftkv's own: queries and changes the shard controller's configuration (QUERY, JOIN, LEAVE, MOVE).",
    ),
    spec("strlen", 2, &["readonly", "fast"], ONE_KEY).doc(
        "string",
        "2.2.0",
        "Returns the length of a string value.",
    ),
    spec("time", 1, &["loading", "stale", "fast"], NO_KEYS).doc(
        "server",
        "2.6.0",
        "Returns the server time.",
    ),
    spec("touch", -2, &["readonly", "fast"], ALL_KEYS).doc(
        "generic",
        "3.2.1",
        "Returns the number of existing keys out of those specified (raftkv keeps no access times).",
    ),
    spec("ttl", 2, &["readonly", "fast"], ONE_KEY).doc(
        "generic",
        "1.0.0",
        "Returns the expiration time in seconds of a key.",
    ),
    spec("type", 2, &["readonly", "fast"], ONE_KEY).doc(
        "generic",
        "1.0.0",
        "Determines the type of value stored at a key.",
    ),
    spec("unlink", -2, &["write", "fast"], ALL_KEYS).doc(
        "generic",
        "4.0.0",
        "Asynchronously deletes one or more keys.",
    ),
    spec("unwatch", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], NO_KEYS).doc(
        "transactions",
        "2.2.0",
        "Forgets about watched keys of a transaction.",
    ),
    spec("watch", -2, &["noscript", "loading", "stale", "fast", "allow_busy"], ALL_KEYS).doc(
        "transactions",
        "2.2.0",
        "Monitors changes to keys to determine the execution of a transaction.",
    ),
];

/// The row of `name` (any case). A binary search without allocating: it
/// runs for every request.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    find(COMMANDS, name, |c| c.name)
}

/// The subcommand row of `parent` named `sub` (any case).
pub fn lookup_sub(parent: &'static CommandSpec, sub: &[u8]) -> Option<&'static CommandSpec> {
    find(parent.subcommands, sub, |c| c.short_name())
}

/// The row of `rows` (sorted by `key`, lower case) whose key is `name`,
/// compared ASCII case-insensitively.
fn find(
    rows: &'static [CommandSpec],
    name: &[u8],
    key: impl Fn(&CommandSpec) -> &str,
) -> Option<&'static CommandSpec> {
    rows.binary_search_by(|c| key(c).bytes().cmp(name.iter().map(u8::to_ascii_lowercase)))
        .ok()
        .map(|i| &rows[i])
}

/// The row a request runs under (a subcommand's for a container command),
/// with Redis's errors for a wrong arity or an unknown subcommand. `None`:
/// the command is not in the table (the parser says it is unknown).
/// `args[0]` is the command name.
pub fn check(args: &[Bytes]) -> Result<Option<&'static CommandSpec>, CommandError> {
    let Some(top) = args.first().and_then(|n| lookup(n)) else {
        return Ok(None);
    };
    if top.subcommands.is_empty() || args.len() < 2 {
        return arity(top, args.len()).map(Some);
    }
    match lookup_sub(top, &args[1]) {
        Some(sub) => arity(sub, args.len()).map(Some),
        None => Err(CommandError(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            String::from_utf8_lossy(&args[1][..args[1].len().min(128)]),
            String::from_utf8_lossy(&args[0]).to_ascii_uppercase()
        ))),
    }
}

fn arity(c: &'static CommandSpec, n: usize) -> Result<&'static CommandSpec, CommandError> {
    if c.arity_ok(n) {
        Ok(c)
    } else {
        Err(CommandError(format!(
            "ERR wrong number of arguments for '{}' command",
            c.name
        )))
    }
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn status_set<'a>(items: impl IntoIterator<Item = &'a str>) -> Frame {
    Frame::Set(
        items
            .into_iter()
            .map(|f| Frame::Simple(f.to_string()))
            .collect(),
    )
}

/// Redis's ACL categories of a row, derived from its flags and group.
pub fn acl_categories(c: &CommandSpec) -> Vec<&'static str> {
    let mut cats = Vec::new();
    if c.has_flag("write") {
        cats.push("@write");
    }
    if c.has_flag("readonly") {
        cats.push("@read");
    }
    match c.group {
        "string" => cats.push("@string"),
        "hash" => cats.push("@hash"),
        "list" => cats.push("@list"),
        "set" => cats.push("@set"),
        "sorted-set" => cats.push("@sortedset"),
        "generic" => cats.push("@keyspace"),
        "connection" => cats.push("@connection"),
        "transactions" => cats.push("@transaction"),
        _ => {}
    }
    if c.has_flag("admin") {
        cats.extend(["@admin", "@dangerous"]);
    }
    cats.push(if c.has_flag("fast") { "@fast" } else { "@slow" });
    cats
}

/// The key specification of a row (a set with at most one: its key range).
fn key_specs(c: &CommandSpec) -> Frame {
    if c.first_key <= 0 {
        return Frame::Set(vec![]);
    }
    let flags: &[&str] = if !c.key_flags.is_empty() {
        c.key_flags
    } else if c.has_flag("write") {
        &["RW", "update"]
    } else {
        &["RO", "access"]
    };
    let lastkey = if c.last_key < 0 {
        c.last_key
    } else {
        c.last_key - c.first_key
    };
    let map = |pairs: Vec<(&str, Frame)>| {
        Frame::Map(pairs.into_iter().map(|(k, v)| (bulk(k), v)).collect())
    };
    Frame::Set(vec![map(vec![
        ("flags", status_set(flags.iter().copied())),
        (
            "begin_search",
            map(vec![
                ("type", bulk("index")),
                ("spec", map(vec![("index", Frame::Integer(c.first_key))])),
            ]),
        ),
        (
            "find_keys",
            map(vec![
                ("type", bulk("range")),
                (
                    "spec",
                    map(vec![
                        ("lastkey", Frame::Integer(lastkey)),
                        ("keystep", Frame::Integer(c.step)),
                        ("limit", Frame::Integer(0)),
                    ]),
                ),
            ]),
        ),
    ])])
}

/// One command's `COMMAND INFO` entry (Redis 7's ten fields).
pub fn describe(c: &CommandSpec) -> Frame {
    Frame::Array(vec![
        bulk(c.name),
        Frame::Integer(c.arity),
        status_set(c.flags.iter().copied()),
        Frame::Integer(c.first_key),
        Frame::Integer(c.last_key),
        Frame::Integer(c.step),
        status_set(acl_categories(c)),
        Frame::Set(vec![]), // tips
        key_specs(c),
        if c.subcommands.is_empty() {
            Frame::Set(vec![])
        } else {
            Frame::Array(c.subcommands.iter().map(describe).collect())
        },
    ])
}

/// One command's `COMMAND DOCS` entry: a map of summary, since, group
/// and, for a container, its subcommands' entries.
pub fn docs(c: &CommandSpec) -> Frame {
    let mut pairs = vec![
        (bulk("summary"), bulk(c.summary)),
        (bulk("since"), bulk(c.since)),
        (bulk("group"), bulk(c.group)),
    ];
    if !c.subcommands.is_empty() {
        pairs.push((
            bulk("subcommands"),
            Frame::Map(
                c.subcommands
                    .iter()
                    .map(|s| (bulk(s.name), docs(s)))
                    .collect(),
            ),
        ));
    }
    Frame::Map(pairs)
}

/// `<CMD> HELP`: the subcommands and their summaries, as Redis lays it out.
pub fn help(c: &CommandSpec) -> Frame {
    let upper = c.name.to_ascii_uppercase();
    let mut lines = vec![Frame::Simple(format!(
        "{upper} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ))];
    for s in c.subcommands {
        lines.push(Frame::Simple(s.short_name().to_ascii_uppercase()));
        lines.push(Frame::Simple(format!("    {}", s.summary)));
    }
    Frame::Array(lines)
}

/// The positions of the keys in `args` (`args[0]` is the command name),
/// per the table; empty for a command without keys or not in it.
pub fn key_positions(args_len: usize, c: &CommandSpec) -> Vec<usize> {
    if c.first_key <= 0 || c.step <= 0 {
        return Vec::new();
    }
    let last = if c.last_key < 0 {
        args_len as i64 + c.last_key
    } else {
        c.last_key
    };
    (c.first_key..=last.min(args_len as i64 - 1))
        .step_by(c.step as usize)
        .map(|i| i as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<Bytes> {
        a.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn table_is_sorted_and_key_positions_follow_it() {
        assert!(COMMANDS.windows(2).all(|w| w[0].name < w[1].name));
        for c in COMMANDS {
            assert!(
                c.subcommands.windows(2).all(|w| w[0].name < w[1].name),
                "{}'s subcommands are not sorted",
                c.name
            );
            for s in c.subcommands {
                assert_eq!(s.name, format!("{}|{}", c.name, s.short_name()));
            }
        }
        let del = lookup(b"DEL").unwrap();
        assert_eq!(key_positions(4, del), vec![1, 2, 3]);
        assert_eq!(key_positions(3, lookup(b"set").unwrap()), vec![1]);
        assert!(key_positions(2, lookup(b"ping").unwrap()).is_empty());
        assert!(lookup(b"nosuchcommand").is_none());
    }

    /// Redis 7's wording for arity and subcommand errors, from the table.
    #[test]
    fn check_gives_redis_errors() {
        let err = |a: &[&str]| check(&args(a)).unwrap_err().0;
        assert_eq!(
            err(&["GET"]),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            err(&["client"]),
            "ERR wrong number of arguments for 'client' command"
        );
        assert_eq!(
            err(&["client", "setname"]),
            "ERR wrong number of arguments for 'client|setname' command"
        );
        assert_eq!(
            err(&["client", "bogus"]),
            "ERR unknown subcommand 'bogus'. Try CLIENT HELP."
        );
        assert_eq!(
            check(&args(&["Client", "ID"])).unwrap().unwrap().name,
            "client|id"
        );
        assert_eq!(check(&args(&["command"])).unwrap().unwrap().name, "command");
        assert_eq!(check(&args(&["nosuch", "x"])), Ok(None));
    }

    /// `COMMAND INFO get` has Redis 7's shape: ten fields, flags as a set,
    /// derived categories, one key spec at index 1.
    #[test]
    fn describe_matches_redis_shape() {
        let Frame::Array(f) = describe(lookup(b"get").unwrap()) else {
            panic!("not an array")
        };
        assert_eq!(f.len(), 10);
        assert_eq!(f[0], bulk("get"));
        assert_eq!(f[1], Frame::Integer(2));
        assert_eq!(f[2], status_set(["readonly", "fast"]));
        assert_eq!(f[6], status_set(["@read", "@string", "@fast"]));
        let Frame::Set(specs) = &f[8] else {
            panic!("key specs not a set")
        };
        assert_eq!(specs.len(), 1);
        let Frame::Array(client) = describe(lookup(b"client").unwrap()) else {
            panic!()
        };
        let Frame::Array(subs) = &client[9] else {
            panic!("no subcommands")
        };
        assert_eq!(subs.len(), CLIENT_SUBS.len());
    }
}
