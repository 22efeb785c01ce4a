//! Link liveness: how a node notices that a peer connection has gone silent
//! (a middlebox, NAT or proxy that accepted it and swallows everything, a
//! partition that healed into a half-open connection, a peer whose socket
//! never drains) and replaces it, instead of writing into it forever.
//!
//! The signal is end to end. Each direction of a node pair has its own
//! connection, owned by its dialer (see the module above), so a dialer cannot
//! learn from its own socket whether its bytes arrive. Instead every outbound
//! connection gets a fresh id ([`new_conn_id`]) and writes a `Keepalive`
//! frame each [`LinkTimeouts::keepalive`] carrying that id and a report: the
//! id of the receiver's newest connection to us and how many bytes we have
//! read on it ([`CountingRead`]). So node A learns, on B's connection, how
//! many bytes of A's current connection B has read. A's link to B is closed
//! and re-dialled when that count has not grown for
//! [`LinkTimeouts::dead_after`]: since A writes a keepalive at least every
//! `keepalive`, a count that stands still means either A's bytes do not
//! reach B (A→B is dead, or A's writes make no progress) or B's reports do
//! not reach A (B→A is dead; B's own link then sees A's reports stand still
//! and re-dials too). Either way the pair recovers within about `dead_after`
//! plus a reconnect. Reports name the connection, so a stale report (bytes
//! B read on an older connection) never passes for progress on a new one.
//!
//! An inbound connection on which nothing at all arrives for `dead_after` is
//! closed too (live links carry keepalives), and a dialler must say `Hello`
//! within `dead_after`. Dials give up after [`LinkTimeouts::connect`]. TCP
//! keepalive (probes after `dead_after` idle) is a backstop for sockets the
//! application does not watch.
//!
//! Invariant: `keepalive * 8 <= dead_after`, so a live peer reports progress
//! many times within one `dead_after`, and a slow but alive peer (a stalled
//! disk, a busy runtime, a large frame trickling through) whose reader makes
//! any progress within `dead_after` keeps its link. Bytes count as they are
//! read, not per whole frame, so one large frame on a slow link is progress.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The bounds of link liveness (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTimeouts {
    /// A dial that has not connected by then is abandoned (and retried).
    pub connect: Duration,
    /// Every outbound link writes a `Keepalive` this often, busy or idle.
    pub keepalive: Duration,
    /// A link whose peer has reported no new bytes from us for this long is
    /// closed and re-dialled; an inbound connection silent this long is closed.
    pub dead_after: Duration,
}

/// Least `dead_after`: generous enough for a GC-less process that stalls on a
/// slow disk, short enough that a half-open link heals within seconds
/// (etcd drops a stalled peer stream after about 5 s).
const MIN_DEAD_AFTER: Duration = Duration::from_secs(2);
const MAX_DEAD_AFTER: Duration = Duration::from_secs(60);
/// `dead_after` in election timeouts.
const DEAD_AFTER_ELECTIONS: u32 = 8;

impl LinkTimeouts {
    /// The bounds for a group whose base election timeout is `election`:
    /// `dead_after` is 8 election timeouts within [2 s, 60 s] (2.4 s at the
    /// default 300 ms), keepalives 16 per `dead_after`, dials bounded by
    /// `dead_after`.
    pub fn for_election_timeout(election: Duration) -> LinkTimeouts {
        let dead_after = (election * DEAD_AFTER_ELECTIONS).clamp(MIN_DEAD_AFTER, MAX_DEAD_AFTER);
        let t = LinkTimeouts {
            connect: dead_after,
            keepalive: dead_after / 16,
            dead_after,
        };
        debug_assert!(t.keepalive * 8 <= t.dead_after);
        t
    }

    /// Turns on TCP keepalive on `stream` (probes once idle for `dead_after`).
    pub fn set_tcp_keepalive(&self, stream: &TcpStream) {
        let ka = socket2::TcpKeepalive::new()
            .with_time(self.dead_after)
            .with_interval(self.dead_after / 4);
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
            tracing::debug!("cannot set TCP keepalive: {e}");
        }
    }
}

/// A fresh, non-zero id for an outbound connection, distinct from this
/// process's earlier ones and (with overwhelming likelihood) from those of
/// an earlier process on the same node.
pub fn new_conn_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let base = *BASE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 40)
    });
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    base.wrapping_add(n).max(1)
}

/// What one peer's outbound link and our inbound connections from that peer
/// share.
#[derive(Default)]
pub struct LinkState {
    /// The peer's latest report: (id of our connection, bytes it read on it).
    report: Mutex<(u64, u64)>,
    /// Our newest inbound connection from the peer: (its id, bytes read).
    inbound: Mutex<(u64, Arc<AtomicU64>)>,
    /// Totals over every connection, for `/metrics`: bytes written to the
    /// peer, bytes read from it after its handshakes, and items the link
    /// refused to send (queue full, or the write failed).
    pub sent_bytes: AtomicU64,
    pub received_bytes: AtomicU64,
    pub dropped_sends: AtomicU64,
}

impl LinkState {
    /// Records the peer's report from a `Keepalive`.
    pub fn note_report(&self, conn: u64, read: u64) {
        *lock(&self.report) = (conn, read);
    }

    /// Bytes the peer says it has read on our connection `conn` (0 if its
    /// latest report is about another connection).
    pub fn reported(&self, conn: u64) -> u64 {
        match *lock(&self.report) {
            (c, read) if c == conn => read,
            _ => 0,
        }
    }

    /// The inbound connection `conn`, read through `counter`, is the peer's
    /// newest (it just sent a keepalive naming itself).
    pub fn note_inbound(&self, conn: u64, counter: &Arc<AtomicU64>) {
        let mut cur = lock(&self.inbound);
        if cur.0 != conn {
            *cur = (conn, counter.clone());
        }
    }

    /// The report we owe the peer: its newest connection's id, bytes read.
    pub fn inbound(&self) -> (u64, u64) {
        let cur = lock(&self.inbound);
        (cur.0, cur.1.load(Ordering::Relaxed))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a counter has stood still: the outbound link's view of the
/// peer's reports.
#[derive(Debug)]
pub struct Progress {
    last: u64,
    since: Instant,
}

impl Progress {
    pub fn new(value: u64, now: Instant) -> Progress {
        Progress {
            last: value,
            since: now,
        }
    }

    /// Records `value` at `now`; returns how long it has been unchanged. Any
    /// change counts (a restarted peer's count starts again from zero).
    pub fn observe(&mut self, value: u64, now: Instant) -> Duration {
        if value != self.last {
            self.last = value;
            self.since = now;
        }
        now.saturating_duration_since(self.since)
    }
}

/// A reader that counts the bytes read through it (writes pass through
/// uncounted: the acceptor answers the handshake on the same stream).
pub struct CountingRead<S> {
    inner: S,
    read: Arc<AtomicU64>,
}

impl<S> CountingRead<S> {
    pub fn new(inner: S) -> Self {
        CountingRead {
            inner,
            read: Arc::default(),
        }
    }

    /// The counter, for reports that outlive a borrow of the reader.
    pub fn counter(&self) -> &Arc<AtomicU64> {
        &self.read
    }

    /// Bytes read so far.
    pub fn read_bytes(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingRead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.read.fetch_add(n, Ordering::Relaxed);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingRead<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_generous_and_ordered() {
        let t = LinkTimeouts::for_election_timeout(Duration::from_millis(300));
        assert_eq!(t.dead_after, Duration::from_millis(2400));
        assert_eq!(t.keepalive, Duration::from_millis(150));
        let short = LinkTimeouts::for_election_timeout(Duration::from_millis(10));
        assert_eq!(short.dead_after, MIN_DEAD_AFTER);
        let long = LinkTimeouts::for_election_timeout(Duration::from_secs(60));
        assert_eq!(long.dead_after, MAX_DEAD_AFTER);
        for t in [t, short, long] {
            assert!(t.keepalive * 8 <= t.dead_after);
        }
    }

    #[test]
    fn progress_measures_how_long_a_count_stood_still() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut p = Progress::new(5, t0);
        assert_eq!(p.observe(5, t0 + s), s);
        assert_eq!(p.observe(5, t0 + 2 * s), 2 * s);
        assert_eq!(p.observe(9, t0 + 3 * s), Duration::ZERO);
        // A restarted peer counts from zero again: still a change.
        assert_eq!(p.observe(0, t0 + 4 * s), Duration::ZERO);
        assert_eq!(p.observe(0, t0 + 6 * s), 2 * s);
    }

    #[test]
    fn a_report_counts_only_for_the_connection_it_names() {
        let st = LinkState::default();
        st.note_report(7, 100);
        assert_eq!(st.reported(7), 100);
        assert_eq!(
            st.reported(8),
            0,
            "a report about connection 7 is no news about 8"
        );
        let counter = Arc::new(AtomicU64::new(5));
        st.note_inbound(3, &counter);
        counter.fetch_add(2, Ordering::Relaxed);
        assert_eq!(st.inbound(), (3, 7));
        assert_ne!(new_conn_id(), new_conn_id());
    }
}
