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
    start_source(opts, limits, None)
}

fn start_source(opts: ServeOptions, limits: Limits, source: Option<String>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let state = AppState::from_shared(analyzer(), "embedded", limits, source);
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
    read_until(s, limit, None)
}

const HEALTH: &[u8] = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[test]
fn idle_and_stalled_connections_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(500);
    let (addr, _stop, _h) = start(ServeOptions { header_timeout: timeout, ..Default::default() });
    // Opens and sends nothing.
    let mut idle = TcpStream::connect(addr).unwrap();
    // Sends half a request head, then stalls.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
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
            "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
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
    write!(s, "POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len()).unwrap();
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
    let mut server = ServeProcess::start(None, &[]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(HEALTH).unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) }, 0);
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[path = "common/hostile.rs"]
mod hostile;

/// A client-to-server WebSocket frame (masked, as RFC 6455 requires of clients).
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x11, 0x22, 0x33, 0x44];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Open a WebSocket session on `addr`; the stream after the 101 answer (checked).
fn ws_open(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s
}

/// Write `bytes` until done, the peer closes, or writes block for `stall`; bytes written.
fn write_until_stalled(s: &mut TcpStream, bytes: &[u8], stall: Duration) -> usize {
    s.set_write_timeout(Some(stall)).unwrap();
    let mut sent = 0;
    while sent < bytes.len() {
        match s.write(&bytes[sent..(sent + 65536).min(bytes.len())]) {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    sent
}

/// A `ferrite serve` process on a free loopback port (under `prlimit --as=CAP` when given),
/// killed when dropped.
struct ServeProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl ServeProcess {
    fn start(cap: Option<u64>, args: &[&str]) -> ServeProcess {
        let mut cmd = match cap {
            Some(c) => {
                let mut c2 = std::process::Command::new("prlimit");
                c2.arg(format!("--as={c}")).arg(env!("CARGO_BIN_EXE_ferrite"));
                c2
            }
            None => std::process::Command::new(env!("CARGO_BIN_EXE_ferrite")),
        };
        let mut child = cmd
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        ServeProcess { child, addr }
    }

    /// Resident memory in bytes (VmRSS).
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap();
        kb * 1024
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POST `body` to /api/v1/analyze; the status code and body.
fn post_image(addr: SocketAddr, body: &[u8], timeout: Duration) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
    s.write_all(body).unwrap();
    let (reply, _) = read_to_close(&mut s, timeout);
    let text = String::from_utf8_lossy(&reply).to_string();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text)
}

/// Two million pings from a client that never reads: the pongs it does not take are capped,
/// the session is closed, and the server's memory stays where it was.
#[test]
fn a_ping_flood_costs_bounded_memory() {
    let server = ServeProcess::start(None, &[]);
    let mut ws = ws_open(server.addr);
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss();
    let pings: Vec<u8> = (0..2_000_000).flat_map(|_| ws_frame(0x9, b"")).collect();
    let sent = write_until_stalled(&mut ws, &pings, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss();
    eprintln!("ping flood: {sent} of {} bytes sent; server RSS {} -> {} MB", pings.len(), before >> 20, after >> 20);
    assert!(after < before + (50 << 20), "RSS grew from {} to {} MB", before >> 20, after >> 20);
}

/// A client that floods control messages and never reads its replies loses its session (its
/// writes stall past the write timeout), so the only slot is free again for the next client.
#[test]
fn a_websocket_that_does_not_read_is_closed() {
    let limits = Limits { max_sessions: 1, ..Limits::default() };
    let (addr, _stop, _h) = start_with(ServeOptions { write_timeout: Duration::from_secs(1), ..Default::default() }, limits);
    let mut flood = ws_open(addr);
    let msgs: Vec<u8> = (0..400_000).flat_map(|_| ws_frame(0x1, br#"{"type":"ping"}"#)).collect();
    let started = Instant::now();
    write_until_stalled(&mut flood, &msgs, Duration::from_secs(4));
    // Well within the 60 s idle limit, the slot is free again.
    let upgrade = b"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    wait_for_status(addr, upgrade, b"HTTP/1.1 101", started, Duration::from_secs(20), "the flooding session still holds the slot");
}

/// A connection to `addr` that has sent `request`, and the first 12 bytes of the answer.
fn status_line(addr: SocketAddr, request: &[u8]) -> (TcpStream, [u8; 12]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).unwrap();
    (s, buf)
}

/// Send `request` again and again until it is answered with `want`; fail with `why` once
/// `limit` has passed since `started`.
fn wait_for_status(addr: SocketAddr, request: &[u8], want: &[u8; 12], started: Instant, limit: Duration, why: &str) {
    while &status_line(addr, request).1 != want {
        assert!(started.elapsed() < limit, "{why}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `/video_feed` viewers that never read are dropped after the write timeout: they do not hold
/// the viewer slots for good.
#[test]
fn video_feed_viewers_that_do_not_read_are_dropped() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let video = dir.path().join("feed.mp4");
    let make = std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/make_video.sh"))
        .args([video.to_str().unwrap(), "2"])
        .output()
        .expect("bench/make_video.sh needs ffmpeg");
    assert!(make.status.success());
    let limits = Limits { max_viewers: 2, ..Limits::default() };
    let opts = ServeOptions { write_timeout: Duration::from_secs(1), ..Default::default() };
    let (addr, _stop, _h) = start_source(opts, limits, Some(video.display().to_string()));
    let feed = b"GET /video_feed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let (_a, a) = status_line(addr, feed);
    let (_b, b) = status_line(addr, feed);
    assert_eq!((&a, &b), (b"HTTP/1.1 200", b"HTTP/1.1 200"));
    wait_for_status(addr, feed, b"HTTP/1.1 200", Instant::now(), Duration::from_secs(60), "viewers that do not read hold the slots");
}

/// One client address cannot hold every connection: past its cap its new connections are
/// closed at once, while another address is still served.
#[test]
fn one_client_cannot_hold_every_connection() {
    let (addr, _stop, _h) = start(ServeOptions { max_connections_per_client: 3, header_timeout: Duration::from_secs(30), ..Default::default() });
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut extra = TcpStream::connect(addr).unwrap();
    let _ = extra.write_all(HEALTH);
    let (reply, closed) = read_to_close(&mut extra, Duration::from_secs(3));
    assert!(reply.is_empty() && closed.is_some(), "{}", String::from_utf8_lossy(&reply));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let other = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        sock.connect(addr).await.unwrap().into_std().unwrap()
    });
    other.set_nonblocking(false).unwrap();
    let mut other = other;
    other.write_all(HEALTH).unwrap();
    let mut buf = [0u8; 12];
    other.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    drop(held);
}

/// A connection to `addr` from the loopback address `from` (127.0.0.0/8 is all loopback).
fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        sock.connect(addr).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s
}

/// Issue 45: behind a trusted reverse proxy (127.0.0.1 here) every connection has the proxy's
/// address; requests are counted against the client its `X-Forwarded-For` names, so one client
/// cannot take the cap of all, and others are served. A client that is not a trusted proxy
/// (127.0.0.2) cannot choose its address with the header.
#[test]
fn clients_behind_a_trusted_proxy_are_counted_apart() {
    let opts = ServeOptions {
        max_connections_per_client: 2,
        header_timeout: Duration::from_secs(30),
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..Default::default()
    };
    let limits = Limits { body_timeout: Duration::from_secs(30), ..Limits::default() };
    let (addr, _stop, _h) = start_with(opts, limits);
    let health = |forwarded_for: &str| format!("GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: {forwarded_for}\r\nConnection: close\r\n\r\n");
    let status = |s: &mut TcpStream| {
        let (reply, _) = read_to_close(s, Duration::from_secs(5));
        String::from_utf8_lossy(&reply).lines().next().unwrap_or("").to_string()
    };
    // Client A, through the proxy: two uploads that stall mid-body hold its two slots.
    let uploads: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect_from("127.0.0.1", addr);
            write!(s, "POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 203.0.113.1\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\nJFIF").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut a = connect_from("127.0.0.1", addr);
    a.write_all(health("203.0.113.1").as_bytes()).unwrap();
    assert_eq!(status(&mut a), "HTTP/1.1 429 Too Many Requests", "client A past its cap");
    // Client B through the same proxy (its fourth connection) is served; so is a client the
    // proxy appended after one the client made up.
    for forwarded in ["203.0.113.2", "203.0.113.1, 198.51.100.7"] {
        let mut b = connect_from("127.0.0.1", addr);
        b.write_all(health(forwarded).as_bytes()).unwrap();
        assert_eq!(status(&mut b), "HTTP/1.1 200 OK", "{forwarded}");
    }
    // A's uploads end: its slots come back.
    drop(uploads);
    let start = Instant::now();
    loop {
        let mut a = connect_from("127.0.0.1", addr);
        a.write_all(health("203.0.113.1").as_bytes()).unwrap();
        let got = status(&mut a);
        if got == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "client A still refused: {got}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Not a trusted proxy: counted by its own address whatever its header says.
    let held: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.2", addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut c = connect_from("127.0.0.2", addr);
    let _ = c.write_all(health("192.0.2.99").as_bytes());
    let (reply, closed) = read_to_close(&mut c, Duration::from_secs(3));
    assert!(reply.is_empty() && closed.is_some(), "{}", String::from_utf8_lossy(&reply));
    drop(held);
}

/// The storm: under a 2 GB address-space cap, four uploads of a 1 KB file that decodes to
/// 8000 x 5000 pixels at once, with six live sessions sending it as frames, leave the server
/// up; it then answers a normal photo correctly and its memory is back within 100 MB.
#[test]
fn the_server_survives_image_bombs_under_a_2gb_cap() {
    let mut server = ServeProcess::start(Some(2_000_000_000), &[]);
    let photo = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos/astronaut.jpg")).unwrap();
    let (code, text) = post_image(server.addr, &photo, Duration::from_secs(30));
    assert_eq!(code, 200, "{text}");
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss();
    let bomb = hostile::rle8_bmp(8000, 5000);
    let addr = server.addr;
    let uploads: Vec<_> = (0..4)
        .map(|_| {
            let bomb = bomb.clone();
            std::thread::spawn(move || post_image(addr, &bomb, Duration::from_secs(90)).0)
        })
        .collect();
    let sessions: Vec<_> = (0..6)
        .map(|_| {
            let bomb = bomb.clone();
            std::thread::spawn(move || {
                let mut ws = ws_open(addr);
                ws.write_all(&ws_frame(0x2, &bomb)).unwrap();
                let (reply, _) = read_until(&mut ws, Duration::from_secs(60), Some(b"\"type\""));
                String::from_utf8_lossy(&reply).contains("\"type\"")
            })
        })
        .collect();
    let codes: Vec<u16> = uploads.into_iter().map(|h| h.join().unwrap()).collect();
    let replies: Vec<bool> = sessions.into_iter().map(|h| h.join().unwrap()).collect();
    eprintln!("bomb uploads: {codes:?}; live sessions answered: {replies:?}");
    assert!(server.alive(), "the server died");
    assert!(codes.iter().all(|c| [200, 413, 503].contains(c)), "{codes:?}");
    assert!(replies.iter().all(|r| *r), "every live session got an answer");
    let (code, text) = post_image(server.addr, &photo, Duration::from_secs(30));
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("\"faces\":[{"), "{text}");
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss();
    eprintln!("RSS before {} MB, after {} MB", before >> 20, after >> 20);
    assert!(after < before + (100 << 20), "RSS {} -> {} MB", before >> 20, after >> 20);
}

/// Read until `needle` (if any) has arrived, the peer closes, or `limit` passes; what was read
/// and when the peer closed.
fn read_until(s: &mut TcpStream, limit: Duration, needle: Option<&[u8]>) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (got, Some(started.elapsed())),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if needle.is_some_and(|w| got.windows(w.len()).any(|x| x == w)) {
                    return (got, None);
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (got, Some(started.elapsed())),
        }
    }
    (got, None)
}
