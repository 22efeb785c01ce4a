//! The RESP listener: accepts client connections, at most `max_connections`
//! at once (a `Semaphore`; the accept loop waits for a free permit, so excess
//! clients queue in the kernel backlog rather than exhausting file
//! descriptors), one task per connection, and a broadcast that tells them all
//! to stop on shutdown.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, Semaphore};

use crate::connection;
use crate::service::Service;

pub async fn accept_loop(
    listener: TcpListener,
    node: Arc<Service>,
    max_connections: usize,
    shutdown: broadcast::Sender<()>,
) {
    let limit = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("client accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let (node, rx) = (node.clone(), shutdown.subscribe());
        tokio::spawn(async move {
            if let Err(e) = connection::serve(stream, node, rx).await {
                tracing::debug!("client connection ended: {e}");
            }
            drop(permit);
        });
    }
}
