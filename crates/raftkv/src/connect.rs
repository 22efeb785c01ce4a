//! How every client command of this process reaches a client port: plain
//! TCP, or TLS with the settings of `--tls --cacert ...` (or those `raftkv
//! cluster --tls` generated), chosen once at startup ([`init`]).
//!
//! Invariant: set at most once, before the first connection; every
//! connection this process opens to a client port goes through [`connect`].

use std::sync::OnceLock;

use server::client::{Client, ClientTls};

static TLS: OnceLock<Option<ClientTls>> = OnceLock::new();

/// Chooses TLS (or not) for the rest of the process.
pub fn init(tls: Option<ClientTls>) {
    let _ = TLS.set(tls);
}

/// Connects to the client port at `addr`.
pub async fn connect(addr: &str) -> std::io::Result<Client> {
    let tls = TLS.get().and_then(|t| t.as_ref());
    Client::connect_with(addr, tls).await
}
