//! The registry of open client connections on one RESP port: what `CLIENT
//! ID | LIST | INFO | SETNAME | GETNAME | SETINFO`, `HELLO`'s `id` and
//! INFO's `connected_clients` report.
//!
//! Each connection registers when it starts and holds a [`Registered`]
//! guard; dropping the guard (the connection ending, however it ends)
//! removes the entry, so the registry never lists a closed connection.
//! Ids are unique for the life of the process and increase, as Redis's.
//!
//! Cost: a connection updates its own entry once per command (one
//! uncontended mutex) and checks its stop flag on every wake-up (two
//! atomics on its own entry); only `CLIENT LIST | KILL` and `INFO` take the
//! registry lock.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures::task::AtomicWaker;

/// Why a connection must close (bits of its entry's stop flag): `CLIENT KILL`.
pub const KILLED: u8 = 1;
/// Why a connection must close: the node is stopping.
pub const SHUTDOWN: u8 = 2;

/// Every open connection, by id.
#[derive(Default)]
pub struct Clients {
    next_id: AtomicU64,
    live: Mutex<BTreeMap<u64, Arc<ClientEntry>>>,
}

/// One connection, as `CLIENT LIST` shows it.
pub struct ClientEntry {
    pub id: u64,
    /// The client's address (`ip:port`).
    pub addr: String,
    /// Our address it connected to.
    pub laddr: String,
    pub fd: i64,
    created: Instant,
    state: Mutex<ClientState>,
    /// Why the connection must close ([`KILLED`], [`SHUTDOWN`]), once it
    /// must: bits are only ever set. After `CLIENT KILL` the connection
    /// still sends what it has (a client that kills itself gets its reply).
    stop: AtomicU8,
    /// The connection's task, woken when `stop` changes. A connection
    /// polls [`ClientEntry::stopped`] on every wake-up, so that poll is
    /// lock-free and touches only this entry (a `Notify` and a broadcast
    /// receiver polled there took a lock each, the broadcast's shared by
    /// every connection of the port).
    waker: AtomicWaker,
}

/// What changes while a connection runs.
#[derive(Clone, Debug)]
pub struct ClientState {
    /// `CLIENT SETNAME` / `HELLO ... SETNAME` (none: empty in the list).
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// The full name (`client|list`) of the last command, `NULL` before any.
    pub last_cmd: &'static str,
    pub last_active: Instant,
    /// 2 or 3 (`HELLO`).
    pub resp: u8,
    /// Bytes received but not yet executed (the last command included), and
    /// replies not yet sent, when the last command started.
    pub qbuf: usize,
    pub omem: usize,
}

/// A connection's registration; dropping it deregisters.
pub struct Registered {
    pub entry: Arc<ClientEntry>,
    clients: Arc<Clients>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.clients
            .live
            .lock()
            .expect("clients lock")
            .remove(&self.entry.id);
    }
}

impl std::ops::Deref for Registered {
    type Target = ClientEntry;
    fn deref(&self) -> &ClientEntry {
        &self.entry
    }
}

impl Clients {
    /// Registers a new connection.
    pub fn register(self: &Arc<Self>, addr: String, laddr: String, fd: i64) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let entry = Arc::new(ClientEntry {
            id,
            addr,
            laddr,
            fd,
            created: now,
            stop: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            state: Mutex::new(ClientState {
                name: None,
                lib_name: None,
                lib_ver: None,
                last_cmd: "NULL",
                last_active: now,
                resp: 2,
                qbuf: 0,
                omem: 0,
            }),
        });
        self.live
            .lock()
            .expect("clients lock")
            .insert(id, entry.clone());
        Registered {
            entry,
            clients: self.clone(),
        }
    }

    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.live.lock().expect("clients lock").len()
    }

    /// The open connections in id order (a snapshot).
    pub fn all(&self) -> Vec<Arc<ClientEntry>> {
        self.live
            .lock()
            .expect("clients lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientEntry>> {
        self.live.lock().expect("clients lock").get(&id).cloned()
    }
}

impl ClientEntry {
    pub fn state(&self) -> ClientState {
        self.state.lock().expect("client lock").clone()
    }

    /// Asks the connection to close (`CLIENT KILL`).
    pub fn kill(&self) {
        self.signal(KILLED);
    }

    /// Tells the connection the node is stopping.
    pub fn shut_down(&self) {
        self.signal(SHUTDOWN);
    }

    fn signal(&self, why: u8) {
        self.stop.fetch_or(why, Ordering::Release);
        self.waker.wake();
    }

    /// Completes once a reason in `mask` ([`KILLED`], [`SHUTDOWN`]) is set.
    /// Meant for the connection's own task (the entry keeps one waker).
    pub fn stopped(&self, mask: u8) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.stop.load(Ordering::Acquire) & mask != 0 {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // Set between the load and the register: that wake found no waker.
            if self.stop.load(Ordering::Acquire) & mask != 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Changes this connection's state.
    pub fn update(&self, f: impl FnOnce(&mut ClientState)) {
        f(&mut self.state.lock().expect("client lock"));
    }

    /// One line of `CLIENT LIST` / `CLIENT INFO`, in Redis 7.2's field
    /// order. Fields raftkv has no notion of hold Redis's neutral value
    /// (`db=0`, `sub=0`, `multi=-1`, `user=default`, `redir=-1`).
    pub fn line(&self, now: Instant) -> String {
        let s = self.state();
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            text(&s.name),
            now.duration_since(self.created).as_secs(),
            now.duration_since(s.last_active).as_secs(),
            s.qbuf,
            s.omem,
            s.qbuf + s.omem,
            s.last_cmd,
            s.resp,
            text(&s.lib_name),
            text(&s.lib_ver),
        )
    }
}

/// Redis's rule for names and library attributes shown in `CLIENT LIST`:
/// printable ASCII without spaces, so the list splits on spaces.
pub fn valid_attr(value: &[u8]) -> bool {
    value.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_dropped_connections_leave() {
        let clients = Arc::new(Clients::default());
        let a = clients.register("127.0.0.1:5000".into(), "127.0.0.1:6379".into(), 7);
        let b = clients.register("127.0.0.1:5001".into(), "127.0.0.1:6379".into(), 8);
        assert!(b.id > a.id);
        assert_eq!(clients.count(), 2);
        drop(a);
        assert_eq!(clients.count(), 1);
        assert_eq!(clients.all()[0].id, b.id);
        assert!(clients.get(b.id).is_some());
    }

    #[test]
    fn line_has_redis_fields_in_order() {
        let clients = Arc::new(Clients::default());
        let c = clients.register("127.0.0.1:5000".into(), "127.0.0.1:6379".into(), 9);
        c.update(|s| {
            s.name = Some(Bytes::from("worker-1"));
            s.last_cmd = "client|list";
        });
        let line = c.line(Instant::now());
        let keys: Vec<&str> = line
            .split(' ')
            .map(|kv| kv.split_once('=').unwrap().0)
            .collect();
        assert_eq!(
            keys.join(" "),
            "id addr laddr fd name age idle flags db sub psub ssub multi qbuf qbuf-free argv-mem multi-mem rbs rbp obl oll omem tot-mem events cmd user redir resp lib-name lib-ver"
        );
        assert!(line.contains(" name=worker-1 "));
        assert!(line.contains(" cmd=client|list "));
        assert!(line.starts_with(&format!(
            "id={} addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=9 ",
            c.id
        )));
    }

    #[test]
    fn stop_reasons_complete_only_the_waits_that_ask_for_them() {
        use futures::FutureExt;
        let clients = Arc::new(Clients::default());
        let c = clients.register("127.0.0.1:5000".into(), "127.0.0.1:6379".into(), 7);
        assert!(c.stopped(KILLED | SHUTDOWN).now_or_never().is_none());
        c.kill();
        assert!(c.stopped(KILLED | SHUTDOWN).now_or_never().is_some());
        assert!(
            c.stopped(KILLED).now_or_never().is_some(),
            "the flag stays set"
        );
        assert!(
            c.stopped(SHUTDOWN).now_or_never().is_none(),
            "a kill does not interrupt the flush of the reply"
        );
        c.shut_down();
        assert!(c.stopped(SHUTDOWN).now_or_never().is_some());
    }

    #[tokio::test]
    async fn a_waiting_connection_is_woken_by_a_kill() {
        let clients = Arc::new(Clients::default());
        let c = clients.register("127.0.0.1:5000".into(), "127.0.0.1:6379".into(), 7);
        let entry = c.entry.clone();
        let waiter = tokio::spawn(async move { entry.stopped(KILLED).await });
        tokio::task::yield_now().await;
        c.kill();
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .expect("no panic");
    }

    #[test]
    fn attributes_are_printable_without_spaces() {
        assert!(valid_attr(b"redis-py"));
        assert!(valid_attr(b""));
        assert!(!valid_attr(b"a b"));
        assert!(!valid_attr(b"a\nb"));
        assert!(!valid_attr("é".as_bytes()));
    }
}
