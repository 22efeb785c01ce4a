//! Golden-transcript scenarios (STYLE habit 8): a small command language over the
//! synchronous test network, with the exact messages and states each step produced.
//! The transcripts in `tests/testdata/*.txt` read as documentation of the protocol.
//!
//! Commands: `nodes N`, `campaign ID`, `propose ID TEXT`, `read ID CTX`, `tick ID [N]`,
//! `deliver` (until quiet, printing each delivered or dropped message), `isolate ID`,
//! `heal`, `compact ID`, `status`. Lines starting with `#` are comments.
//!
//! A mismatch fails with a diff hint; `UPDATE_GOLDEN=1 cargo test -p raft --test it scenarios::`
//! rewrites the files from the current behaviour (review the diff before committing).

use crate::harness;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;
use harness::Net;
use raft::NodeId;

struct World {
    net: Net,
    isolated: BTreeSet<NodeId>,
}

impl World {
    fn run(&mut self, line: &str, out: &mut String) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let arg = |i: usize| -> u64 {
            words[i]
                .parse()
                .unwrap_or_else(|_| panic!("bad number in `{line}`"))
        };
        match words[0] {
            "nodes" => {
                self.net = Net::new(arg(1));
                self.isolated.clear();
            }
            "campaign" => {
                self.net.node(arg(1)).campaign();
                self.net.drive(arg(1));
            }
            "propose" => {
                let id = arg(1);
                match self.net.node(id).propose(Bytes::from(words[2].to_string())) {
                    Ok(index) => writeln!(out, "proposed at index {index}").unwrap(),
                    Err(e) => writeln!(out, "error: {e}").unwrap(),
                }
                self.net.drive(id);
            }
            "read" => {
                let id = arg(1);
                if let Err(e) = self.net.node(id).read_index(arg(2)) {
                    writeln!(out, "error: {e}").unwrap();
                }
                self.net.drive(id);
            }
            "tick" => {
                let id = arg(1);
                let n = if words.len() > 2 { arg(2) } else { 1 };
                for _ in 0..n {
                    self.net.node(id).tick();
                }
                self.net.drive(id);
            }
            "deliver" => self.deliver(out),
            "isolate" => {
                self.isolated.insert(arg(1));
            }
            "heal" => self.isolated.clear(),
            "compact" => {
                let id = arg(1);
                let applied = self.net.node(id).status().applied;
                let r = self
                    .net
                    .node(id)
                    .compact(applied, Bytes::from_static(b"snapshot"));
                writeln!(out, "compact to {applied}: {r:?}").unwrap();
            }
            "status" => {
                let ids: Vec<NodeId> = self.net.nodes.keys().copied().collect();
                for id in ids {
                    let s = self.net.node(id).status();
                    writeln!(
                        out,
                        "{id}: {:?} term={} leader={:?} commit={} applied={} last={} snap={}",
                        s.role,
                        s.term,
                        s.leader,
                        s.commit,
                        s.applied,
                        s.last_index,
                        s.snapshot_index
                    )
                    .unwrap();
                }
                let reads: Vec<String> = self
                    .net
                    .read_states
                    .iter()
                    .flat_map(|(id, rs)| {
                        rs.iter()
                            .map(move |r| format!("{id}:ctx{}@{}", r.ctx, r.index))
                    })
                    .collect();
                if !reads.is_empty() {
                    writeln!(out, "reads answered: {}", reads.join(" ")).unwrap();
                }
            }
            other => panic!("unknown command `{other}`"),
        }
    }

    fn deliver(&mut self, out: &mut String) {
        self.net.drive_all();
        let mut budget = 10_000;
        while let Some(m) = self.net.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "message storm");
            if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
                writeln!(out, "dropped {}", m.describe()).unwrap();
                continue;
            }
            writeln!(out, "{}", m.describe()).unwrap();
            let to = m.to;
            self.net.node(to).step(m);
            self.net.drive(to);
        }
    }
}

fn run_file(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut world = World {
        net: Net::new(3),
        isolated: BTreeSet::new(),
    };
    let mut rendered = String::new();
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("> ") {
            writeln!(rendered, "{line}").unwrap();
            world.run(cmd, &mut rendered);
        } else if line.starts_with('#') || line.trim().is_empty() {
            writeln!(rendered, "{line}").unwrap();
        }
    }
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(path, &rendered).unwrap();
        return;
    }
    if rendered != text {
        let (exp, got): (Vec<&str>, Vec<&str>) =
            (text.lines().collect(), rendered.lines().collect());
        let at = exp
            .iter()
            .zip(&got)
            .position(|(a, b)| a != b)
            .unwrap_or(exp.len().min(got.len()));
        panic!(
            "{}: transcript differs at line {}\nexpected: {:?}\n     got: {:?}\n(UPDATE_GOLDEN=1 rewrites)",
            path.display(),
            at + 1,
            exp.get(at),
            got.get(at)
        );
    }
}

#[test]
fn golden_transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no transcripts in {}", dir.display());
    for f in files {
        run_file(&f);
    }
}
