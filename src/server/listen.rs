//! Serving the router on a socket: header-read timeout, connection cap, graceful shutdown.

use super::*;

/// How `serve` treats connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A connection must send a complete request head within this time of opening (or of its
    /// previous response); one that sends nothing, or stalls mid-head, is closed.
    pub header_timeout: std::time::Duration,
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// On shutdown, in-flight requests get this long to finish before the server stops.
    pub drain_timeout: std::time::Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: std::time::Duration::from_secs(10),
            max_connections: 1024,
            drain_timeout: std::time::Duration::from_secs(15),
        }
    }
}

/// Serve `app` on `listener` (HTTP/1.1 with upgrades for the WebSocket) until `shutdown`
/// completes; then stop accepting, let in-flight requests finish (up to `drain_timeout`) and
/// return. Streams that never end (the MJPEG feed) are cut at the drain deadline.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use tokio::io::AsyncWriteExt;
    let max = opts.max_connections.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(max));
    // Tells every connection to finish its request in flight and close.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: {} open", opts.max_connections);
            tokio::spawn(async move {
                let body = r#"{"error":"too many connections; try again later"}"#;
                let reply = format!(
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(reply.as_bytes())).await;
            });
            continue;
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(opts.header_timeout);
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone())).with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { stopping.wait_for(|s| *s).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    let _ = stop.send(true);
    // Every connection holds a slot until it has closed.
    let drained = tokio::time::timeout(opts.drain_timeout, slots.acquire_many(max as u32)).await;
    if drained.is_err() {
        tracing::warn!("drain timeout: closing the remaining connections");
    }
    Ok(())
}

/// A future that completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed here, not
/// when the future is first polled, so a signal that arrives once this has returned (say, right
/// after the server has said where it listens) stops the server cleanly instead of killing the
/// process. Call it inside a Tokio runtime.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
