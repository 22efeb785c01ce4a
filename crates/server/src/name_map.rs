//! [`NameMap`]: a map keyed by command-table names (`get`, `client|list`),
//! hashed with FNV-1a instead of the standard library's SipHash. Every client
//! command looks its name up in two such maps (INFO's commandstats and the
//! `/metrics` counters); the keys are the table's own short names, fixed when
//! the port starts, so the flooding resistance SipHash buys is not needed.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from command-table names to `V`.
pub type NameMap<V> = HashMap<&'static str, V, BuildHasherDefault<Fnv1a>>;

/// 64-bit FNV-1a.
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_name_is_found_and_an_unknown_one_is_not() {
        let names = crate::resp::table::COMMANDS
            .iter()
            .flat_map(|c| std::iter::once(c).chain(c.subcommands))
            .map(|c| c.name);
        let map: NameMap<usize> = names.clone().enumerate().map(|(i, n)| (n, i)).collect();
        for (i, n) in names.enumerate() {
            assert_eq!(map.get(n), Some(&i), "{n}");
        }
        assert_eq!(map.get("no-such-command"), None);
    }
}
