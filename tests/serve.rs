//! The HTTP server on real sockets (`server::serve`): idle and stalled connections closed after
//! the header timeout, a cap on open connections, graceful shutdown that lets a request in
//! flight finish, and the `ferrite serve` process stopping cleanly on SIGTERM.

use ferrite::vision::analyzer::Analyzer;
use ferrite::server::{AppState, Limits, ServeOptions, app, serve};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

fn analyzer() -> Arc<Analyzer> {
    static A: OnceLock<Arc<Analyzer>> = OnceLock::new();
    A.get_or_init(|| Arc::new(Analyzer::new().expect("embedded models load"))).clone()
}

/// A server on a free loopback port in its own runtime thread; dropping the sender shuts it
/// down. The join handle returns when `serve` has returned.
fn start(opts: ServeOptions) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    start_with(opts, Limits::default())
}

fn start_with(opts: ServeOptions, limits: Limits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let state = AppState::from_shared(analyzer(), "embedded", limits, None);
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, app(state), opts, async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        });
    });
    (addr_rx.recv().unwrap(), stop_tx, handle)
}

/// Read until the peer closes (or `limit` passes); returns what was read and when it closed.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (got, Some(started.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (got, Some(started.elapsed())),
        }
    }
    (got, None)
}

const HEALTH: &[u8] = b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn idle_and_stalled_connections_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(500);
    let (addr, _stop, _h) = start(ServeOptions { header_timeout: timeout, ..Default::default() });
    // Opens and sends nothing.
    let mut idle = TcpStream::connect(addr).unwrap();
    // Sends half a request head, then stalls.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n").unwrap();
    // A whole request, answered, then the connection stays open and idle (keep-alive).
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.write_all(HEALTH).unwrap();
    for (name, s) in [("idle", &mut idle), ("stalled", &mut stalled), ("kept-alive", &mut kept)] {
        let (_, closed) = read_to_close(s, Duration::from_secs(5));
        let closed = closed.unwrap_or_else(|| panic!("{name} connection still open after 5 s"));
        assert!(closed < timeout * 4, "{name} closed after {closed:?}");
    }
    // A healthy client is still served.
    let mut ok = TcpStream::connect(addr).unwrap();
    ok.write_all(HEALTH).unwrap();
    let (reply, _) = read_to_close(&mut ok, Duration::from_secs(3));
    assert!(reply.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&reply));
}

/// A WebSocket session that sends nothing is told why and closed after `session_idle`, and its
/// slot is free again; a handshake with a malformed key is refused.
#[test]
fn idle_websocket_sessions_are_closed() {
    let limits = Limits { session_idle: Duration::from_millis(400), max_sessions: 1, ..Limits::default() };
    let (addr, _stop, _h) = start_with(ServeOptions::default(), limits);
    let handshake = |key: &str| {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /api/v1/ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        )
        .unwrap();
        s
    };
    let mut bad = handshake("short");
    let (reply, _) = read_to_close(&mut bad, Duration::from_secs(3));
    assert!(reply.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&reply));
    for _ in 0..2 {
        // The one slot is free again after the idle close.
        let mut ws = handshake("dGhlIHNhbXBsZSBub25jZQ==");
        let (reply, closed) = read_to_close(&mut ws, Duration::from_secs(5));
        let text = String::from_utf8_lossy(&reply);
        assert!(text.starts_with("HTTP/1.1 101"), "{text}");
        assert!(text.contains("no message for"), "{text}");
        assert!(closed.is_some_and(|c| c < Duration::from_secs(3)), "{closed:?}");
    }
}

#[test]
fn connections_beyond_the_cap_get_503_at_once() {
    let (addr, _stop, _h) = start(ServeOptions { max_connections: 2, header_timeout: Duration::from_secs(30), ..Default::default() });
    let _a = TcpStream::connect(addr).unwrap();
    let _b = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut c = TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    let (reply, closed) = read_to_close(&mut c, Duration::from_secs(3));
    assert!(reply.starts_with(b"HTTP/1.1 503"), "{}", String::from_utf8_lossy(&reply));
    assert!(String::from_utf8_lossy(&reply).contains("too many connections"));
    assert!(closed.is_some() && started.elapsed() < Duration::from_secs(1));
    drop((_a, _b));
    // Slots come back when connections close.
    std::thread::sleep(Duration::from_millis(200));
    let mut d = TcpStream::connect(addr).unwrap();
    d.write_all(HEALTH).unwrap();
    let (reply, _) = read_to_close(&mut d, Duration::from_secs(3));
    assert!(reply.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&reply));
}

#[test]
fn shutdown_lets_the_request_in_flight_finish_and_refuses_new_ones() {
    let (addr, stop, handle) = start(ServeOptions::default());
    let jpeg = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos/group1.jpg")).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST /api/v1/analyze HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len()).unwrap();
    s.write_all(&jpeg[..jpeg.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stop.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(TcpStream::connect(addr).is_err(), "no new connections once shutting down");
    s.write_all(&jpeg[jpeg.len() / 2..]).unwrap();
    let (reply, closed) = read_to_close(&mut s, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"faces\""), "{text}");
    assert!(closed.is_some(), "the connection closes after its last response");
    handle.join().unwrap();
}

#[test]
fn ferrite_serve_stops_cleanly_on_sigterm() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let addr: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(HEALTH).unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
