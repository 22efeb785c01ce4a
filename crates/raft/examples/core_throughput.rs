//! How fast is the consensus core alone? Three in-process nodes over `MemStorage`,
//! messages handed over directly (no network, no fsync): proposals per second through
//! propose → Append → persist → ack → commit → apply, at several batch sizes.
//!
//! ```text
//! cargo run --release -p raft --example core_throughput
//! ```

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use raft::{Config, MemStorage, Message, RawNode, Role};

fn drive(nodes: &mut [RawNode<MemStorage>], queue: &mut VecDeque<Message>, applied: &mut u64) {
    loop {
        let mut progressed = false;
        for (i, node) in nodes.iter_mut().enumerate() {
            while node.has_ready() {
                progressed = true;
                let rd = node.ready();
                queue.extend(rd.messages.iter().cloned());
                node.persist(&rd).unwrap();
                queue.extend(rd.persisted_messages.iter().cloned());
                if i == 0 {
                    *applied += rd.committed_entries.len() as u64;
                }
                node.advance(rd);
            }
        }
        while let Some(m) = queue.pop_front() {
            progressed = true;
            nodes[(m.to - 1) as usize].step(m);
        }
        if !progressed {
            return;
        }
    }
}

fn main() {
    let value = Bytes::from(vec![b'v'; 256]);
    for batch in [1usize, 16, 256] {
        let mut nodes: Vec<RawNode<MemStorage>> = (1..=3)
            .map(|id| RawNode::new(Config::new(id, vec![1, 2, 3]), MemStorage::new()).unwrap())
            .collect();
        let mut queue = VecDeque::new();
        let mut applied = 0;
        nodes[0].campaign();
        drive(&mut nodes, &mut queue, &mut applied);
        assert_eq!(nodes[0].status().role, Role::Leader);
        let total = 200_000usize;
        let start = Instant::now();
        let mut proposed = 0;
        while proposed < total {
            for _ in 0..batch {
                nodes[0].propose(value.clone()).unwrap();
            }
            proposed += batch;
            drive(&mut nodes, &mut queue, &mut applied);
            if proposed % 8192 < batch {
                // Keep memory bounded: compact what all three applied.
                let idx = nodes.iter().map(|n| n.status().applied).min().unwrap();
                for n in nodes.iter_mut() {
                    let _ = n.compact(idx, Bytes::new());
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "batch {batch:>3}: {:>9.0} proposals/s committed and applied ({} in {:.2} s)",
            total as f64 / secs,
            total,
            secs
        );
    }
}
