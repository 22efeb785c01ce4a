//! The classic KV lab's client loop (`GenericTest`'s `spawn_clients_and_wait`
//! body) as a script a simulated client runs between operations:
//! first `Put(key, "")`, then at random `Append(key, "x {cli} {j} y")` (half
//! the time), `Put` (with random keys, a tenth of the rest) or `Get`. With a
//! fixed key per client it checks every `Get` against its own appends, as the
//! lab does; with random keys only the linearizability check judges.

use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::kv::clerk::{ClerkOp, ClerkResult};

#[derive(Clone, Debug)]
pub struct LabClient {
    /// The lab's client number `cli` (0-based).
    pub cli: u64,
    pub nclients: u64,
    pub random_keys: bool,
    /// Appends done so far (`j`).
    pub appends: u64,
    /// With fixed keys: the value this client expects under its key.
    last: String,
    started: bool,
    /// Whether an operation ended with an unknown outcome (then `last` is no
    /// longer known and the local check stops).
    pub lost_track: bool,
}

impl LabClient {
    pub fn new(cli: u64, nclients: u64, random_keys: bool) -> Self {
        LabClient {
            cli,
            nclients,
            random_keys,
            appends: 0,
            last: String::new(),
            started: false,
            lost_track: false,
        }
    }

    pub fn key(&self) -> Bytes {
        Bytes::from(self.cli.to_string())
    }

    pub fn next_op(&mut self, rng: &mut ChaCha8Rng) -> ClerkOp {
        if !self.started {
            self.started = true;
            return ClerkOp::Put(self.key(), Bytes::new());
        }
        let key = if self.random_keys {
            Bytes::from(rng.gen_range(0..self.nclients).to_string())
        } else {
            self.key()
        };
        let nv = format!("x {} {} y", self.cli, self.appends);
        if rng.gen_range(0..1000) < 500 {
            self.appends += 1;
            if !self.random_keys {
                self.last.push_str(&nv);
            }
            ClerkOp::Append(key, Bytes::from(nv))
        } else if self.random_keys && rng.gen_range(0..1000) < 100 {
            ClerkOp::Put(key, Bytes::from(nv))
        } else {
            ClerkOp::Get(key)
        }
    }

    /// The lab's `Get` check: with a fixed key the value must be what this
    /// client built. Returns an error message on a mismatch.
    pub fn on_result(&mut self, op: &ClerkOp, result: &ClerkResult) -> Result<(), String> {
        if *result == ClerkResult::Unknown {
            self.lost_track = true;
        }
        if self.random_keys || self.lost_track {
            return Ok(());
        }
        if let (ClerkOp::Get(key), ClerkResult::Value(v)) = (op, result) {
            let got = v.as_deref().unwrap_or_default();
            if got != self.last.as_bytes() {
                return Err(format!(
                    "client {} get({key:?}) wrong value: got {:?}, expected {:?}",
                    self.cli,
                    String::from_utf8_lossy(got),
                    self.last
                ));
            }
        }
        Ok(())
    }
}

/// The lab's `checkClntAppends`: every append `x cli j y` of client `cli`,
/// `j < count`, is in `value` exactly once and in order.
pub fn check_client_appends(cli: u64, value: &[u8], count: u64) -> Result<(), String> {
    let v = String::from_utf8_lossy(value);
    let mut last_off = None;
    for j in 0..count {
        let wanted = format!("x {cli} {j} y");
        let Some(off) = v.find(&wanted) else {
            return Err(format!("{cli} missing element {wanted:?} in Append result"));
        };
        if v.rfind(&wanted) != Some(off) {
            return Err(format!("duplicate element {wanted:?} in Append result"));
        }
        if last_off.is_some_and(|l| off <= l) {
            return Err(format!(
                "wrong order for element {wanted:?} in Append result"
            ));
        }
        last_off = Some(off);
    }
    Ok(())
}
