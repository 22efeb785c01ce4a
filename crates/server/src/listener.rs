//! The RESP listener: accepts client connections, one task per connection,
//! at most `max_connections` at once (a `Semaphore`), and a broadcast that
//! tells them all to stop on shutdown.
//!
//! At the cap a new client is still accepted, told Redis's `-ERR max number
//! of clients reached` and closed (it used to wait in the kernel backlog
//! with no answer). Those refusals are themselves capped
//! ([`MAX_REFUSING`] at once, each at most [`REFUSE_TIMEOUT`]); beyond that
//! a client is closed without the message, so a flood costs a bounded
//! number of descriptors.
//!
//! With TLS (`--tls-cert-file`), each connection's task first runs the TLS
//! handshake, bounded by [`TLS_HANDSHAKE_TIMEOUT`]; a client that fails it
//! (plaintext RESP on the TLS port, an untrusted client certificate) is
//! closed, logged at DEBUG. Refusals at the cap are written in plaintext
//! (no handshake is spent on a client that cannot be served).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, Semaphore};

use crate::connection;
use crate::port_state::PortState;
use crate::service::Service;
use crate::stats::SAMPLE_EVERY;
use crate::stream::Stream;

/// Redis's reply to a client over `maxclients`.
pub const MAX_CLIENTS_REACHED: &[u8] = b"-ERR max number of clients reached\r\n";
/// Refusals in progress at most.
pub const MAX_REFUSING: usize = 64;
/// How long one refusal may take (write the error, let the client read it).
pub const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a client may take to complete its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts clients until aborted; between accepts, samples the port's
/// instantaneous rates every [`SAMPLE_EVERY`] (INFO's `instantaneous_*`).
pub async fn accept_loop(
    listener: TcpListener,
    node: Arc<Service>,
    port: Arc<PortState>,
    shutdown: broadcast::Sender<()>,
) {
    let limit = Arc::new(Semaphore::new(port.settings.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut sample = tokio::time::interval(SAMPLE_EVERY);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            now = sample.tick() => {
                port.stats.sample(now.into_std());
                continue;
            }
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("client accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            port.stats.rejected_connections.fetch_add(1, Relaxed);
            if let Ok(r) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(r);
                });
            }
            continue;
        };
        port.stats.connections_received.fetch_add(1, Relaxed);
        let (node, port, rx) = (node.clone(), port.clone(), shutdown.subscribe());
        tokio::spawn(async move {
            let tls = port.settings.client.tls.as_ref().map(|a| &a.acceptor);
            let handshake = Stream::accept(stream, tls);
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(stream)) => {
                    if let Err(e) = connection::serve(stream, node, port, rx).await {
                        tracing::debug!("client connection ended: {e}");
                    }
                }
                Ok(Err(e)) => tracing::debug!("client TLS handshake failed: {e}"),
                Err(_) => tracing::debug!("client TLS handshake timed out"),
            }
            drop(permit);
        });
    }
}

/// Tells a client over the cap why, then closes: FIN after the error, and
/// whatever it sent meanwhile is read and dropped so the close is not a
/// reset that could destroy the error before the client reads it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, async {
        stream.write_all(MAX_CLIENTS_REACHED).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
