//! [`ExpiredKeys`]: how many keys this replica's active expiry has removed
//! since the process started (INFO's `expired_keys`).
//!
//! Invariant: it is a statistic of this process, not replicated state. It is
//! never written to a snapshot, survives a snapshot install, restarts at 0
//! with the process (as Redis's counter does), and two state machines compare
//! equal whatever their counts, so replica-equality checks stay about state.
//! Every replica applies the same purges, so the counts differ only by when
//! each process started or installed its last snapshot.

/// A count of expired keys removed (module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct ExpiredKeys(pub u64);

impl ExpiredKeys {
    pub fn add(&mut self, n: usize) {
        self.0 = self.0.saturating_add(n as u64);
    }
}

/// Always equal: a statistic is not state (module docs).
impl PartialEq for ExpiredKeys {
    fn eq(&self, _: &ExpiredKeys) -> bool {
        true
    }
}

impl Eq for ExpiredKeys {}
