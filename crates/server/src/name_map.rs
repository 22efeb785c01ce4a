//! [`NameMap`]: a map keyed by command-table names (`get`, `client|list`),
//! hashed with FNV-1a (the `fnv` crate) instead of the standard library's
//! SipHash. Every client command looks its name up in two such maps (INFO's
//! commandstats and the `/metrics` counters); the keys are the table's own
//! short names, fixed when the port starts, so the flooding resistance SipHash
//! buys is not needed.

/// A map from command-table names to `V`.
pub type NameMap<V> = fnv::FnvHashMap<&'static str, V>;

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
