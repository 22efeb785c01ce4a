//! Synthetic key-value histories for tests and benchmarks: clients issue
//! operations back to back with random latencies, each operation takes
//! effect at a random instant inside its interval, and outputs come from
//! executing them in that order against a map. The result is linearizable
//! by construction; tests mutate it to make it not.
//!
//! Seeded and dependency-free (SplitMix64), so a seed reproduces a history.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::history::Operation;
use crate::kv::{KvInput, KvOperation, KvOutput};

/// Shape of a synthetic history.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub seed: u64,
    /// Total operations.
    pub ops: usize,
    /// Concurrent clients, each issuing one operation at a time.
    pub clients: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Latency of an operation is uniform in `1..=max_latency` time units.
    pub max_latency: u64,
    /// Pause between a client's operations, uniform in `0..=max_think`.
    pub max_think: u64,
    /// Out of 1000 operations, how many lose their reply (unknown outcome).
    /// Half of those take effect, half never do.
    pub unknown_per_mille: u64,
}

impl Default for SynthConfig {
    /// 10,000 operations, 10 clients, 50 keys, 1% unknown outcomes.
    fn default() -> Self {
        Self {
            seed: 1,
            ops: 10_000,
            clients: 10,
            keys: 50,
            max_latency: 100,
            max_think: 20,
            unknown_per_mille: 10,
        }
    }
}

/// SplitMix64: tiny, seeded, good enough for workloads.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        self.next_u64() % n
    }
}

/// An operation before execution: its interval and the instant it takes
/// effect (`None`: never).
struct Planned {
    op: KvOperation,
    effect_at: Option<u64>,
}

/// Generates a linearizable history.
pub fn kv_history(cfg: &SynthConfig) -> Vec<KvOperation> {
    assert!(
        cfg.clients > 0 && cfg.keys > 0 && cfg.max_latency > 0,
        "degenerate config {cfg:?}"
    );
    let mut rng = Rng::new(cfg.seed);
    let mut clock: Vec<u64> = (0..cfg.clients)
        .map(|_| rng.below(cfg.max_think + 1))
        .collect();
    let mut planned = Vec::with_capacity(cfg.ops);
    for seq in 0..cfg.ops {
        let client = seq as u64 % cfg.clients;
        let p = plan(&mut rng, cfg, client, seq, clock[client as usize]);
        let busy_until =
            p.op.return_time()
                .unwrap_or(p.op.call + 2 * cfg.max_latency);
        clock[client as usize] = busy_until + rng.below(cfg.max_think + 1);
        planned.push(p);
    }
    execute(&mut rng, planned)
}

fn plan(rng: &mut Rng, cfg: &SynthConfig, client: u64, seq: usize, call: u64) -> Planned {
    let key = Bytes::from(format!("k{}", rng.below(cfg.keys)));
    let value = Bytes::from(format!("{client}.{seq};"));
    let input = match rng.below(10) {
        0..=3 => KvInput::Get { key },
        4..=6 => KvInput::Put { key, value },
        7..=8 => KvInput::Append { key, value },
        _ => KvInput::Delete { key },
    };
    let latency = 1 + rng.below(cfg.max_latency);
    if rng.below(1000) < cfg.unknown_per_mille {
        let effect_at = (rng.below(2) == 0).then(|| call + rng.below(4 * cfg.max_latency));
        return Planned {
            op: Operation::unknown(client, input, call),
            effect_at,
        };
    }
    // Strictly before the return, so an operation called at that instant
    // takes effect later.
    let effect_at = call + rng.below(latency);
    // The output is filled in by `execute`.
    let placeholder = KvOutput::Put;
    Planned {
        op: Operation::returned(client, input, call, call + latency, placeholder),
        effect_at: Some(effect_at),
    }
}

/// Applies operations in effect order and fills in their outputs.
fn execute(rng: &mut Rng, mut planned: Vec<Planned>) -> Vec<KvOperation> {
    let mut order: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].effect_at.is_some())
        .collect();
    order.sort_by_key(|&i| (planned[i].effect_at, i));
    let mut map: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    for i in order {
        let output = apply(rng, &mut map, &planned[i].op.input);
        if let Some(ret) = planned[i].op.ret.as_mut() {
            ret.output = output;
        }
    }
    planned.into_iter().map(|p| p.op).collect()
}

fn apply(rng: &mut Rng, map: &mut BTreeMap<Bytes, Bytes>, input: &KvInput) -> KvOutput {
    match input {
        KvInput::Get { key } => KvOutput::Get(map.get(key).cloned()),
        KvInput::Put { key, value } => {
            map.insert(key.clone(), value.clone());
            KvOutput::Put
        }
        KvInput::Append { key, value } => {
            let mut v = map.get(key).map(|b| b.to_vec()).unwrap_or_default();
            v.extend_from_slice(value);
            let len = v.len() as u64;
            map.insert(key.clone(), Bytes::from(v));
            KvOutput::Append((rng.below(2) == 0).then_some(len))
        }
        KvInput::Delete { key } => {
            let existed = map.remove(key).is_some();
            KvOutput::Delete((rng.below(2) == 0).then_some(existed))
        }
    }
}
