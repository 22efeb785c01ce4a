//! Per-link TCP proxies for partition tests: for every ordered pair of nodes
//! (i→j), a listener on 127.0.0.1 that node i dials as "node j" (via its
//! `--cluster` view) and that forwards to node j's real peer port.
//!
//! The peer transport gives each direction its own connection (i dials j,
//! says `Hello { from: i, to: j }`, and only writes; replies to forwarded
//! requests travel on j's own dial to i), and nodes identify each other by
//! that handshake id, not by address. So link (i→j) carries exactly the
//! traffic from i to j, and cutting it is a one-way partition.
//!
//! A cut closes every connection on the link and, until healed, treats new
//! ones per [`Fault`]. [`Net::cut`] returns only once no connection on the
//! link forwards anything any more, so whatever a node sends after it
//! returns is lost (bytes the proxy had already written to the destination's
//! socket may still be read, like packets already on the wire). Healing closes the connections held during
//! the cut (their byte stream lost data), so the dialer reconnects cleanly,
//! except under [`Fault::HalfOpen`], whose connections swallow until the
//! dialer closes them.
//! Everything stops when the `Net` drops.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a cut link does with connections opened while it is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Accept, read and discard everything (the dialer believes it is
    /// connected): packets silently lost.
    Blackhole,
    /// Accept and close at once: the dialer sees its connection fail.
    Refuse,
    /// Like `Blackhole`, but a connection accepted during the cut keeps
    /// swallowing after the heal (a middlebox that kept its state): the
    /// partition heals into a half-open connection, and only the dialer
    /// giving up on it and dialling again gets through.
    HalfOpen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    cut: Option<Fault>,
}

struct Link {
    addr: String,
    state: watch::Sender<State>,
    /// Connections that are (or may still start) forwarding bytes.
    forwarding: Arc<AtomicUsize>,
    /// Bound by `bind`, taken by `start`.
    listener: Option<TcpListener>,
    acceptor: Option<JoinHandle<()>>,
}

/// All the links between `ids`.
pub struct Net {
    ids: Vec<u64>,
    links: BTreeMap<(u64, u64), Link>,
}

impl Net {
    /// Binds one proxy listener per ordered pair of distinct `ids`, all
    /// links healthy. Bind the proxies before picking the nodes' ports: a
    /// port held here is never handed out again, while a "free" port picked
    /// and released earlier could be given to a proxy.
    pub async fn bind(ids: &[u64]) -> Net {
        let mut links = BTreeMap::new();
        for &from in ids {
            for &to in ids.iter().filter(|&&to| to != from) {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
                let addr = listener.local_addr().unwrap().to_string();
                let (state, _) = watch::channel(State { cut: None });
                let link = Link {
                    addr,
                    state,
                    forwarding: Arc::new(AtomicUsize::new(0)),
                    listener: Some(listener),
                    acceptor: None,
                };
                links.insert((from, to), link);
            }
        }
        Net {
            ids: ids.to_vec(),
            links,
        }
    }

    /// Starts forwarding: link (i→j) to `target(j)`.
    pub fn start(&mut self, target: impl Fn(u64) -> String) {
        for (&(_, to), link) in &mut self.links {
            let listener = link.listener.take().expect("started twice");
            link.acceptor = Some(tokio::spawn(accept_loop(
                listener,
                target(to),
                link.state.subscribe(),
                link.forwarding.clone(),
            )));
        }
    }

    /// The address node `from` dials to reach node `to`.
    pub fn addr(&self, from: u64, to: u64) -> String {
        self.links[&(from, to)].addr.clone()
    }

    /// Cuts the link from `from` to `to` (one direction), and waits until no
    /// connection on it forwards any more.
    pub async fn cut(&self, from: u64, to: u64, fault: Fault) {
        let link = &self.links[&(from, to)];
        link.state.send_if_modified(|s| {
            let changed = s.cut != Some(fault);
            s.cut = Some(fault);
            changed
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while link.forwarding.load(Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "link {from}->{to}: connections still open 5 s after the cut"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn heal(&self, from: u64, to: u64) {
        self.links[&(from, to)]
            .state
            .send_if_modified(|s| s.cut.take().is_some());
    }

    /// Cuts `id` off from every other node, both directions.
    pub async fn isolate(&self, id: u64, fault: Fault) {
        for &other in self.ids.iter().filter(|&&o| o != id) {
            self.cut(id, other, fault).await;
            self.cut(other, id, fault).await;
        }
    }

    pub fn heal_all(&self) {
        for &(from, to) in self.links.keys() {
            self.heal(from, to);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Connection tasks end when their link's `watch::Sender` drops.
        for acceptor in self.links.values().filter_map(|l| l.acceptor.as_ref()) {
            acceptor.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: String,
    state: watch::Receiver<State>,
    forwarding: Arc<AtomicUsize>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Counted before the state is read, so `cut` cannot miss it.
        forwarding.fetch_add(1, Ordering::SeqCst);
        let rx = state.clone();
        tokio::spawn(serve(inbound, target.clone(), rx, forwarding.clone()));
    }
}

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(
    mut inbound: TcpStream,
    target: String,
    mut rx: watch::Receiver<State>,
    forwarding: Arc<AtomicUsize>,
) {
    let counted = Counted(forwarding);
    let born = *rx.borrow_and_update();
    match born.cut {
        None => {
            let Ok(mut upstream) = TcpStream::connect(&target).await else {
                return;
            };
            let _ = (inbound.set_nodelay(true), upstream.set_nodelay(true));
            // `biased`: a cut seen at the first poll forwards nothing.
            tokio::select! {
                biased;
                _ = rx.changed() => {}
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut upstream) => {}
            }
            // Both sockets close here, before `counted` says so.
            drop((inbound, upstream));
            drop(counted);
        }
        Some(Fault::Refuse) => {}
        Some(Fault::Blackhole) => {
            drop(counted);
            tokio::select! {
                _ = rx.changed() => {}
                _ = swallow(&mut inbound) => {}
            }
        }
        Some(Fault::HalfOpen) => {
            drop(counted);
            let drain = swallow(&mut inbound);
            tokio::pin!(drain);
            loop {
                tokio::select! {
                    // Heals and new cuts leave it swallowing; the `Net` dropping ends it.
                    r = rx.changed() => if r.is_err() { break },
                    _ = &mut drain => break,
                }
            }
        }
    }
}

/// Reads and discards until the dialer closes.
async fn swallow(inbound: &mut TcpStream) {
    let mut buf = vec![0u8; 64 << 10];
    while matches!(inbound.read(&mut buf).await, Ok(n) if n > 0) {}
}
