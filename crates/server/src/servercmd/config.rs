//! `CONFIG GET pattern [pattern ...]`, `CONFIG SET name value [...]` and
//! `CONFIG RESETSTAT`.
//!
//! `CONFIG GET` answers the parameters clients and tools probe, with
//! raftkv's real value where one applies ([`PARAMS`]): `maxclients`,
//! `timeout`, `proto-max-bulk-len`, the client buffer limits, `databases`
//! (1), `port`, `bind`, `dir`, `cluster-enabled`, and the persistence
//! parameters translated: no RDB snapshots (`save ""`), and every
//! acknowledged write is fsync'd in the Raft log first (`appendonly yes`,
//! `appendfsync always`). `requirepass` is not listed: raftkv keeps only a
//! digest of the password (Redis would show the password itself).
//!
//! raftkv's settings are command-line flags, fixed at startup, so `CONFIG
//! SET` succeeds only when it changes nothing (every value equal to the
//! current one: harmless probes such as `CONFIG SET save ""` pass) and
//! otherwise fails with Redis's wording, naming the flag to use.

use bytes::Bytes;

use super::Ctx;
use crate::port_state::PortSettings;
use crate::resp::table::CommandSpec;
use crate::resp::{CommandError, Frame};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigCmd {
    Get(Vec<Bytes>),
    Set(Vec<(Bytes, Bytes)>),
    ResetStat,
}

/// One parameter: its name, the flag that sets it (if any), its value.
struct Param {
    name: &'static str,
    flag: &'static str,
    value: fn(&PortSettings) -> String,
}

/// The parameters `CONFIG GET` knows, in the order they are listed.
const PARAMS: &[Param] = &[
    Param {
        name: "appendfsync",
        flag: "",
        value: |_| "always".into(),
    },
    Param {
        name: "appendonly",
        flag: "",
        value: |_| "yes".into(),
    },
    Param {
        name: "bind",
        flag: "--listen",
        value: |s| s.listen.ip().to_string(),
    },
    Param {
        name: "client-output-buffer-limit",
        flag: "--client-output-buffer-limit",
        value: |s| {
            format!(
                "normal {} 0 0 slave 0 0 0 pubsub 0 0 0",
                s.client.output_buffer_limit_bytes
            )
        },
    },
    Param {
        name: "client-query-buffer-limit",
        flag: "--client-query-buffer-limit",
        value: |s| s.client.query_buffer_limit_bytes.to_string(),
    },
    Param {
        name: "cluster-enabled",
        flag: "",
        value: |s| if s.sharded { "yes" } else { "no" }.into(),
    },
    Param {
        name: "databases",
        flag: "",
        value: |_| "1".into(),
    },
    Param {
        name: "dir",
        flag: "--data-dir",
        value: |s| s.data_dir.display().to_string(),
    },
    Param {
        name: "maxclients",
        flag: "--max-connections",
        value: |s| s.max_connections.to_string(),
    },
    Param {
        name: "maxmemory",
        flag: "",
        value: |_| "0".into(),
    },
    Param {
        name: "maxmemory-policy",
        flag: "",
        value: |_| "noeviction".into(),
    },
    Param {
        name: "notify-keyspace-events",
        flag: "",
        value: |_| String::new(),
    },
    Param {
        name: "port",
        flag: "--listen",
        value: |s| s.listen.port().to_string(),
    },
    Param {
        name: "proto-max-bulk-len",
        flag: "--proto-max-bulk-len",
        value: |s| s.client.proto_max_bulk_len.to_string(),
    },
    Param {
        name: "save",
        flag: "",
        value: |_| String::new(),
    },
    Param {
        name: "timeout",
        flag: "--timeout",
        value: |s| s.client.idle_timeout.map_or(0, |t| t.as_secs()).to_string(),
    },
];

/// Parses the arguments after `CONFIG <sub>` (arity already checked).
pub fn parse(spec: &CommandSpec, args: &[Bytes]) -> Result<ConfigCmd, CommandError> {
    Ok(match spec.short_name() {
        "get" => ConfigCmd::Get(args.to_vec()),
        "resetstat" => ConfigCmd::ResetStat,
        "set" if args.len().is_multiple_of(2) => ConfigCmd::Set(
            args.chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect(),
        ),
        "set" => {
            return Err(CommandError(
                "ERR wrong number of arguments for 'config|set' command".into(),
            ))
        }
        other => return Err(CommandError(format!("ERR unknown subcommand '{other}'"))),
    })
}

pub fn execute(ctx: &Ctx<'_>, cmd: ConfigCmd) -> Frame {
    let settings = &ctx.port.settings;
    match cmd {
        ConfigCmd::Get(patterns) => Frame::Map(
            PARAMS
                .iter()
                .filter(|p| {
                    patterns
                        .iter()
                        .any(|pat| kv::glob::matches(&pat.to_ascii_lowercase(), p.name.as_bytes()))
                })
                .map(|p| (bulk(p.name), bulk(&(p.value)(settings))))
                .collect(),
        ),
        ConfigCmd::Set(pairs) => match set(settings, &pairs) {
            Ok(()) => Frame::Simple("OK".into()),
            Err(e) => Frame::Error(e),
        },
        ConfigCmd::ResetStat => {
            ctx.port.stats.reset();
            Frame::Simple("OK".into())
        }
    }
}

/// Succeeds only when every value equals the current one.
fn set(settings: &PortSettings, pairs: &[(Bytes, Bytes)]) -> Result<(), String> {
    for (name, value) in pairs {
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        let Some(p) = PARAMS.iter().find(|p| p.name == lower) else {
            return Err(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            ));
        };
        let current = (p.value)(settings);
        if !current.eq_ignore_ascii_case(&String::from_utf8_lossy(value)) {
            let how = if p.flag.is_empty() {
                "it is fixed in raftkv".to_string()
            } else {
                format!("raftkv sets it at startup only ({})", p.flag)
            };
            return Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{lower}') - {how}; its value is '{current}'"
            ));
        }
    }
    Ok(())
}

fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientPortConfig;

    fn settings() -> PortSettings {
        PortSettings {
            listen: "127.0.0.1:6379".parse().unwrap(),
            max_connections: 100,
            client: ClientPortConfig::default(),
            data_dir: "/tmp/raftkv".into(),
            sharded: false,
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn params_are_sorted_and_set_changes_nothing() {
        assert!(PARAMS.windows(2).all(|w| w[0].name < w[1].name));
        let s = settings();
        assert_eq!(
            set(&s, &[(b("maxclients"), b("100")), (b("save"), b(""))]),
            Ok(())
        );
        assert_eq!(set(&s, &[(b("APPENDONLY"), b("YES"))]), Ok(()));
        assert_eq!(
            set(&s, &[(b("maxclients"), b("5"))]).unwrap_err(),
            "ERR CONFIG SET failed (possibly related to argument 'maxclients') - raftkv sets it at startup only (--max-connections); its value is '100'"
        );
        assert_eq!(
            set(&s, &[(b("nosuch"), b("1"))]).unwrap_err(),
            "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
        );
        assert_eq!((PARAMS[8].value)(&s), "100");
    }
}
