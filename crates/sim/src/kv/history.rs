//! Recording clerk operations as a lincheck history: one `invoke` when a clerk
//! starts an operation, one `complete` when it finishes with a known result.
//! Operations never finished, or finished with `ClerkResult::Unknown`, stay
//! unknown (possibly applied at any time after their call, or never).

use lincheck::{HistoryRecorder, KvInput, KvOperation, KvOutput, OpHandle};

use crate::events::Micros;
use crate::kv::clerk::{ClerkOp, ClerkResult};
use crate::kv::net::ClientId;

#[derive(Default)]
pub struct History {
    rec: HistoryRecorder<KvInput, KvOutput>,
    /// Operations finished with a known result.
    pub completed: u64,
}

impl History {
    pub fn invoke(&mut self, client: ClientId, op: &ClerkOp, at: Micros) -> OpHandle {
        self.rec.invoke(client, input_of(op), at)
    }

    pub fn complete(&mut self, handle: OpHandle, result: &ClerkResult, at: Micros) {
        if let Some(output) = output_of(result) {
            self.rec.complete(handle, output, at);
            self.completed += 1;
        }
    }

    pub fn ops(&self) -> &[KvOperation] {
        self.rec.history()
    }

    pub fn len(&self) -> usize {
        self.rec.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rec.is_empty()
    }
}

fn input_of(op: &ClerkOp) -> KvInput {
    match op.clone() {
        ClerkOp::Get(key) => KvInput::Get { key },
        ClerkOp::Put(key, value) => KvInput::Put { key, value },
        ClerkOp::Append(key, value) => KvInput::Append { key, value },
        ClerkOp::Delete(key) => KvInput::Delete { key },
    }
}

fn output_of(result: &ClerkResult) -> Option<KvOutput> {
    match result {
        ClerkResult::Value(v) => Some(KvOutput::Get(v.clone())),
        ClerkResult::Done => Some(KvOutput::Put),
        ClerkResult::Length(n) => Some(KvOutput::Append(Some(*n))),
        ClerkResult::Deleted(b) => Some(KvOutput::Delete(Some(*b))),
        ClerkResult::Failed(_) | ClerkResult::Unknown => None,
    }
}
