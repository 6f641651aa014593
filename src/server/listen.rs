//! Serving the router on a socket: header-read timeout, write timeout, connection caps (in all
//! and per client address, the client read from `Forwarded`/`X-Forwarded-For` behind a trusted
//! reverse proxy), graceful shutdown.

use super::*;
use std::future::Future as _;

/// How `serve` treats connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A connection must send a complete request head within this time of opening (or of its
    /// previous response); one that sends nothing, or stalls mid-head, is closed.
    pub header_timeout: std::time::Duration,
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Connections one client address may hold open at once; one more is closed at once.
    pub max_connections_per_client: usize,
    /// A connection whose writes make no progress for this long (its client does not read) is
    /// closed: an MJPEG viewer or a WebSocket that stops reading frees its slot.
    pub write_timeout: std::time::Duration,
    /// On shutdown, in-flight requests get this long to finish before the server stops.
    pub drain_timeout: std::time::Duration,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name the client. Behind one
    /// every connection comes from the proxy's address, so on its connections the per-client
    /// cap counts each request against the client it was forwarded for (requests in flight,
    /// streamed responses included; one more is answered 429). Anyone else's headers are
    /// ignored: a client that is not a trusted proxy cannot choose its address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: std::time::Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_client: 64,
            write_timeout: std::time::Duration::from_secs(20),
            drain_timeout: std::time::Duration::from_secs(15),
            trusted_proxies: Vec::new(),
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
    let per_client: PerClient = Arc::default();
    let trusted: Arc<[std::net::IpAddr]> = opts.trusted_proxies.clone().into();
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
        // A trusted proxy's connections carry many clients: they are counted per request below.
        let proxied = opts.trusted_proxies.contains(&peer.ip());
        let client = if proxied {
            None
        } else {
            let Some(client) = ClientSlot::take(&per_client, peer.ip(), opts.max_connections_per_client) else {
                tracing::debug!(%peer, "connection refused: {} open from this address", opts.max_connections_per_client);
                drop(stream);
                continue;
            };
            Some(client)
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
        let io = WriteTimeout::new(stream, opts.write_timeout);
        let service = PerRequest {
            app: app.clone(),
            counted: proxied.then(|| (per_client.clone(), opts.max_connections_per_client, trusted.clone(), peer.ip())),
        };
        let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service)).with_upgrades();
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
            drop(client);
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

type PerClient = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One of a client address's open connections; counted down when dropped.
struct ClientSlot {
    map: PerClient,
    ip: std::net::IpAddr,
}

impl ClientSlot {
    fn take(map: &PerClient, ip: std::net::IpAddr, max: usize) -> Option<ClientSlot> {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_default();
        if *n >= max.max(1) {
            return None;
        }
        *n += 1;
        Some(ClientSlot { map: map.clone(), ip })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// The router as one connection serves it: on a trusted proxy's connection each request takes a
/// slot of the client it was forwarded for, held until its response body is done.
#[derive(Clone)]
struct PerRequest {
    app: Router,
    /// (the per-client counts, the cap, the trusted proxies, the proxy's address): set on a
    /// trusted proxy's connections only.
    counted: Option<(PerClient, usize, Arc<[std::net::IpAddr]>, std::net::IpAddr)>,
}

impl tower::Service<Request<hyper::body::Incoming>> for PerRequest {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<hyper::body::Incoming>) -> Self::Future {
        use tower::ServiceExt as _;
        let app = self.app.clone();
        let slot = match &self.counted {
            None => None,
            Some((map, max, trusted, proxy)) => {
                let client = forwarded_client(req.headers(), *proxy, trusted);
                match ClientSlot::take(map, client, *max) {
                    Some(slot) => Some(slot),
                    None => {
                        tracing::debug!(%client, proxy = %proxy, "request refused: {max} in flight for this client");
                        let body = json!({"error": "too many requests in flight from this client; try again later"});
                        return Box::pin(std::future::ready(Ok((StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response())));
                    }
                }
            }
        };
        Box::pin(async move {
            let res = app.oneshot(req.map(Body::new)).await?;
            Ok(match slot {
                None => res,
                // The slot lives as long as the body: a streamed response holds it to the end.
                Some(slot) => res.map(|body| {
                    use http_body_util::BodyExt as _;
                    Body::new(body.map_frame(move |frame| {
                        let _held = &slot;
                        frame
                    }))
                }),
            })
        })
    }
}

/// The client a trusted proxy forwarded a request for: the last address in `Forwarded` (`for=`;
/// RFC 7239) or, without it, `X-Forwarded-For` that is not itself a trusted proxy (each proxy
/// appends the address it saw, so entries to the left of the first untrusted one may be the
/// client's own inventions). Without a usable address (no header, `unknown`, an obfuscated
/// name, junk) the request counts against `proxy` itself.
pub fn forwarded_client(headers: &axum::http::HeaderMap, proxy: std::net::IpAddr, trusted: &[std::net::IpAddr]) -> std::net::IpAddr {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .collect()
    };
    let forwarded = values("forwarded");
    let hops: Vec<Option<std::net::IpAddr>> = if forwarded.is_empty() {
        values("x-forwarded-for").iter().map(|v| parse_node(v)).collect()
    } else {
        forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
            })
            .collect()
    };
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if trusted.contains(ip) => continue,
            Some(ip) => return *ip,
            None => break,
        }
    }
    proxy
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(v: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    v.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// A connection whose writes fail once they have made no progress for `timeout`.
struct WriteTimeout<S> {
    inner: S,
    timeout: std::time::Duration,
    /// Running while a write or flush is pending.
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: std::time::Duration) -> Self {
        WriteTimeout { inner, timeout, stalled: None }
    }

    /// After the inner call returned `r`: progress (or an error) resets the clock; pending
    /// starts it, and past the timeout pending becomes an error.
    fn watch<T>(&mut self, cx: &mut std::task::Context<'_>, r: std::task::Poll<std::io::Result<T>>) -> std::task::Poll<std::io::Result<T>> {
        use std::task::Poll;
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let timeout = self.timeout;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client did not read for too long"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteTimeout<S> {
    fn poll_read(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteTimeout<S> {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, r)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = std::pin::Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, r)
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = std::pin::Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_forwarded_client_is_the_last_address_no_trusted_proxy_wrote() {
        let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let trusted = [proxy, "10.0.0.2".parse().unwrap()];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let got = |pairs: &[(&'static str, &str)]| forwarded_client(&headers(pairs), proxy, &trusted);
        assert_eq!(got(&[("x-forwarded-for", "203.0.113.7")]), ip("203.0.113.7"));
        // A client's own invention stays to the left of what the proxies saw.
        assert_eq!(got(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.2")]), ip("203.0.113.7"));
        assert_eq!(got(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "198.51.100.9")]), ip("198.51.100.9"));
        // RFC 7239, with ports, IPv6 in brackets and quotes; it wins over X-Forwarded-For.
        assert_eq!(got(&[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43"), ("x-forwarded-for", "5.6.7.8")]), ip("192.0.2.60"));
        assert_eq!(got(&[("forwarded", r#"for="[2001:db8:cafe::17]:4711", For=10.0.0.2"#)]), ip("2001:db8:cafe::17"));
        assert_eq!(got(&[("forwarded", "for=192.0.2.43:47011")]), ip("192.0.2.43"));
        // Nothing usable: the proxy's own address.
        for junk in [&[][..], &[("x-forwarded-for", "unknown")][..], &[("forwarded", "for=_hidden")][..], &[("x-forwarded-for", "10.0.0.2")][..], &[("forwarded", "by=1.2.3.4")][..]] {
            assert_eq!(got(junk), proxy, "{junk:?}");
        }
    }
}
