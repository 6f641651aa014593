//! The web app and JSON API (axum): the live-webcam page, photo analysis, a WebSocket for
//! browser camera frames, and an MJPEG view of a server-side video source.
//!
//! `app(state)` builds the router, so tests drive it without a socket. Expensive objects (the
//! face detector and expression model) are built once in `AppState` and shared.

use crate::vision::analyzer::{Analyzer, TrackedFace, VideoAnalyzer, VideoOptions};
use crate::emotion::Emotion;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use image::DynamicImage;
use serde_json::{Value, json};
use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

static INDEX_HTML: &str = include_str!("../../web/index.html");
static APP_JS: &str = include_str!("../../web/app.js");
static STYLE_CSS: &str = include_str!("../../web/style.css");
static OPENAPI_JSON: &str = include_str!("../../web/openapi.json");

/// Limits that keep one client from exhausting the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (photo upload) in bytes.
    pub max_upload_bytes: usize,
    /// Largest image side in pixels (uploads and WebSocket frames).
    pub max_side: u32,
    /// Largest image area in pixels.
    pub max_pixels: u64,
    /// Concurrent WebSocket (live camera) sessions.
    pub max_sessions: usize,
    /// Largest WebSocket frame message in bytes.
    pub max_frame_bytes: usize,
    /// Photo analyses running at once; more requests wait (bounded by the HTTP server).
    pub max_concurrent_analyses: usize,
    /// Longest time a request body may take to arrive; a slower (stalled) upload gets 408.
    pub body_timeout: std::time::Duration,
    /// Concurrent `/video_feed` viewers (they share one decoder); more get 503.
    pub max_viewers: usize,
    /// A live (WebSocket) session that sends nothing for this long is closed, so idle clients
    /// cannot hold the `max_sessions` slots.
    pub session_idle: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 10 * 1024 * 1024,
            max_side: 8192,
            max_pixels: 40_000_000,
            max_sessions: 8,
            max_frame_bytes: 2 * 1024 * 1024,
            max_concurrent_analyses: 4,
            body_timeout: std::time::Duration::from_secs(10),
            max_viewers: 16,
            session_idle: std::time::Duration::from_secs(60),
        }
    }
}

/// Shared server state: built once, cloned cheaply into handlers.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    analyzer: Arc<Analyzer>,
    limits: Limits,
    sessions: Arc<Semaphore>,
    analyses: Semaphore,
    source: Option<String>,
    /// The running `/video_feed` producer's latest frame, shared by every viewer (`None`: none
    /// running); the producer thread clears it when its last viewer leaves.
    feed: std::sync::Mutex<Option<Arc<tokio::sync::watch::Sender<Option<Bytes>>>>>,
    viewers: Arc<Semaphore>,
    /// Producers (decoders) started so far.
    feeds_started: std::sync::atomic::AtomicUsize,
    model_name: String,
    started: Instant,
}

impl AppState {
    /// `source`: an optional server-side video source (file, camera, stream) for `/video_feed`.
    pub fn new(analyzer: Analyzer, model_name: impl Into<String>, limits: Limits, source: Option<String>) -> AppState {
        AppState::from_shared(Arc::new(analyzer), model_name, limits, source)
    }

    /// Like `new`, with an analyzer that is already shared.
    pub fn from_shared(analyzer: Arc<Analyzer>, model_name: impl Into<String>, limits: Limits, source: Option<String>) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                analyzer,
                sessions: Arc::new(Semaphore::new(limits.max_sessions)),
                analyses: Semaphore::new(limits.max_concurrent_analyses.max(1)),
                viewers: Arc::new(Semaphore::new(limits.max_viewers.max(1))),
                limits,
                source,
                feed: std::sync::Mutex::new(None),
                feeds_started: std::sync::atomic::AtomicUsize::new(0),
                model_name: model_name.into(),
                started: Instant::now(),
            }),
        }
    }
}

impl AppState {
    /// How many `/video_feed` decoders have been started (one serves every viewer at a time).
    pub fn feed_decoders_started(&self) -> usize {
        self.inner.feeds_started.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A JSON error response: `{"error": {"status": 400, "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": {"status": self.0.as_u16(), "message": self.1}}))).into_response()
    }
}

fn bad(status: StatusCode, m: impl Into<String>) -> ApiError {
    ApiError(status, m.into())
}

/// The router: page, assets, API, WebSocket, MJPEG.
pub fn app(state: AppState) -> Router {
    let body_limit = state.inner.limits.max_upload_bytes;
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS) }))
        .route("/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE_CSS) }))
        .route("/api/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON) }))
        .route("/api/v1/health", get(health))
        .route("/api/v1/analyze", post(analyze))
        .route("/api/v1/ws", get(ws))
        .route("/video_feed", get(video_feed))
        .fallback(|| async { bad(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn health(State(s): State<AppState>) -> axum::Json<Value> {
    let i = &s.inner;
    axum::Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "model": i.model_name,
        "classes": Emotion::ALL.iter().map(|e| e.name()).collect::<Vec<_>>(),
        "live_sessions": i.limits.max_sessions - i.sessions.available_permits(),
        "max_live_sessions": i.limits.max_sessions,
        "video_feed": i.source.is_some(),
        "uptime_s": i.started.elapsed().as_secs(),
    }))
}

/// Decode an uploaded image within the size limits; errors are 4xx with a reason.
pub fn decode_image(bytes: &[u8], limits: &Limits) -> Result<DynamicImage, ApiError> {
    if bytes.is_empty() {
        return Err(bad(StatusCode::BAD_REQUEST, "empty body: send the image bytes"));
    }
    let (w, h) = crate::data::imageio::dimensions(bytes).map_err(|e| match e {
        crate::data::imageio::DecodeError::UnknownFormat => bad(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()),
        e => bad(StatusCode::BAD_REQUEST, format!("not a readable image: {e}")),
    })?;
    if w == 0 || h == 0 {
        return Err(bad(StatusCode::BAD_REQUEST, "the image is empty (0 pixels)"));
    }
    if w > limits.max_side || h > limits.max_side || w as u64 * h as u64 > limits.max_pixels {
        return Err(bad(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("image {w}x{h} is too large (at most {} px a side, {} pixels)", limits.max_side, limits.max_pixels),
        ));
    }
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_pixels * 8);
    crate::data::imageio::decode(bytes, Some(l)).map_err(|e| match e {
        crate::data::imageio::DecodeError::UnknownFormat => bad(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()),
        e => bad(StatusCode::BAD_REQUEST, format!("not a readable image: {e}")),
    })
}

/// The image bytes of a request: a raw image body (image/* or application/octet-stream) or
/// the first file field of a multipart form, within `limits` (size, time). Fuzzed:
/// `fuzz/fuzz_targets/upload.rs`.
pub async fn request_image(limits: &Limits, req: Request) -> Result<Bytes, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let too_big = |e: String| {
        if e.contains("length limit") || e.contains("too large") {
            bad(StatusCode::PAYLOAD_TOO_LARGE, format!("upload too large (at most {} bytes)", limits.max_upload_bytes))
        } else {
            bad(StatusCode::BAD_REQUEST, e)
        }
    };
    // A body announced as too large is refused at once, before any of it is read.
    let limit = limits.max_upload_bytes;
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(bad(StatusCode::PAYLOAD_TOO_LARGE, format!("upload too large: {len} bytes announced, at most {limit} accepted")));
    }
    let timeout = limits.body_timeout;
    let slow = || bad(StatusCode::REQUEST_TIMEOUT, format!("the upload did not arrive within {} s", timeout.as_secs_f32()));
    tokio::time::timeout(timeout, read_image_body(req, &ct, too_big)).await.map_err(|_| slow())?
}

async fn read_image_body(req: Request, ct: &str, too_big: impl Fn(String) -> ApiError) -> Result<Bytes, ApiError> {
    if ct.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, &()).await.map_err(|e| bad(StatusCode::BAD_REQUEST, e.body_text()))?;
        while let Some(field) = mp.next_field().await.map_err(|e| too_big(e.body_text()))? {
            if field.name() == Some("image") || field.file_name().is_some() {
                return field.bytes().await.map_err(|e| too_big(e.body_text()));
            }
        }
        Err(bad(StatusCode::BAD_REQUEST, "multipart form without an 'image' file field"))
    } else if ct.is_empty() || ct.starts_with("image/") || ct.starts_with("application/octet-stream") {
        Bytes::from_request(req, &()).await.map_err(|e| too_big(e.body_text()))
    } else {
        Err(bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type '{ct}' not accepted: send image/* bytes or multipart/form-data"),
        ))
    }
}

fn faces_json(faces: &[crate::vision::analyzer::Face]) -> Vec<Value> {
    faces.iter().map(|f| f.to_json()).collect()
}

async fn analyze(State(s): State<AppState>, req: Request) -> Result<axum::Json<Value>, ApiError> {
    let bytes = request_image(&s.inner.limits, req).await?;
    let _permit = s.inner.analyses.acquire().await.map_err(|_| bad(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    let state = s.clone();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let img = decode_image(&bytes, &state.inner.limits)?;
        let faces = state
            .inner
            .analyzer
            .analyze(&img)
            .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(json!({"width": img.width(), "height": img.height(), "faces": faces_json(&faces)}))
    })
    .await
    .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let mut result = result;
    result["ms"] = json!((started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0);
    tracing::debug!(faces = result["faces"].as_array().map_or(0, |a| a.len()), "analyze");
    Ok(axum::Json(result))
}

/// One live session: its tracker and frame counter.
pub struct Session {
    video: VideoAnalyzer<Arc<Analyzer>>,
    limits: Limits,
    started: Instant,
    frames: u64,
}

impl Session {
    pub fn new(analyzer: Arc<Analyzer>, limits: Limits) -> Session {
        Session {
            video: VideoAnalyzer::new(analyzer, 10.0, VideoOptions { detect_every: 1, ..Default::default() }),
            limits,
            started: Instant::now(),
            frames: 0,
        }
    }

    /// Analyse one camera frame (JPEG/PNG bytes); the reply message of the protocol.
    pub fn frame(&mut self, bytes: &[u8]) -> Value {
        let started = Instant::now();
        let img = match decode_image(bytes, &self.limits) {
            Ok(i) => i,
            Err(e) => return json!({"type": "error", "message": e.1}),
        };
        let rgb = img.to_rgb8();
        match self.video.process(&rgb) {
            Ok(r) => {
                self.frames += 1;
                json!({
                    "type": "result",
                    "frame": self.frames,
                    "t": (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                    "ms": (started.elapsed().as_secs_f64() * 10000.0).round() / 10.0,
                    "width": rgb.width(),
                    "height": rgb.height(),
                    "faces": r.faces.iter().map(tracked_json).collect::<Vec<_>>(),
                })
            }
            Err(e) => json!({"type": "error", "message": e.to_string()}),
        }
    }

    /// A text (control) message: `{"type": "reset"}` starts tracking afresh; anything else is
    /// answered with an error message.
    pub fn control(&mut self, text: &str) -> Value {
        match serde_json::from_str::<Value>(text) {
            Ok(v) if v["type"] == "reset" => {
                *self = Session::new(self.video_analyzer(), self.limits.clone());
                json!({"type": "reset"})
            }
            Ok(v) if v["type"] == "ping" => json!({"type": "pong"}),
            Ok(_) => json!({"type": "error", "message": "unknown message: send frames as binary JPEG/PNG, or {\"type\": \"reset\"}"}),
            Err(e) => json!({"type": "error", "message": format!("malformed JSON: {e}")}),
        }
    }

    fn video_analyzer(&self) -> Arc<Analyzer> {
        self.video.analyzer().clone()
    }
}

fn tracked_json(t: &TrackedFace) -> Value {
    let mut v = t.face.to_json();
    v["id"] = json!(t.id);
    v
}

/// RFC 6455 4.2.1: the key is 16 bytes in base64 (24 characters, the last two `==`).
fn valid_websocket_key(key: &[u8]) -> bool {
    key.len() == 24 && key.ends_with(b"==") && key[..22].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

async fn ws(State(s): State<AppState>, headers: axum::http::HeaderMap, upgrade: WebSocketUpgrade) -> Result<Response, ApiError> {
    if !headers.get(header::SEC_WEBSOCKET_KEY).is_some_and(|k| valid_websocket_key(k.as_bytes())) {
        return Err(bad(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455)"));
    }
    let permit = s
        .inner
        .sessions
        .clone()
        .try_acquire_owned()
        .map_err(|_| bad(StatusCode::SERVICE_UNAVAILABLE, "too many live sessions; try again later"))?;
    let max = s.inner.limits.max_frame_bytes;
    Ok(upgrade.max_message_size(max).max_frame_size(max).on_upgrade(move |socket| async move {
        live_session(s, socket).await;
        drop(permit);
    }))
}

/// Frames are processed one at a time; while one is being analysed only the newest waiting
/// frame is kept (older ones are dropped and counted), so a slow server never builds a queue.
async fn live_session(s: AppState, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut session = Some(Session::new(s.inner.analyzer.clone(), s.inner.limits.clone()));
    let mut busy: Option<tokio::task::JoinHandle<(Session, Value)>> = None;
    let mut pending: Option<Bytes> = None;
    let mut dropped = 0u64;
    tracing::info!("live session started");
    let idle = s.inner.limits.session_idle;
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline), if busy.is_none() => {
                let reply = json!({"type": "error", "message": format!("closing: no message for {} s", idle.as_secs_f32())});
                let _ = tx.send(Message::Text(reply.to_string().into())).await;
                let _ = tx.send(Message::Close(None)).await;
                break;
            }
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { break };
                deadline = tokio::time::Instant::now() + idle;
                match msg {
                    Message::Binary(b) => {
                        if let Some(sess) = session.take() {
                            busy = Some(tokio::task::spawn_blocking(move || { let mut sess = sess; let v = sess.frame(&b); (sess, v) }));
                        } else if pending.replace(b).is_some() {
                            dropped += 1;
                        }
                    }
                    Message::Text(t) => {
                        let reply = match session.as_mut() {
                            Some(sess) => sess.control(t.as_str()),
                            None => json!({"type": "error", "message": "busy: control messages are taken between frames"}),
                        };
                        if tx.send(Message::Text(reply.to_string().into())).await.is_err() { break }
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            done = async { busy.as_mut().expect("guarded").await }, if busy.is_some() => {
                busy = None;
                let Ok((sess, mut reply)) = done else { break };
                reply["dropped"] = json!(dropped);
                if tx.send(Message::Text(reply.to_string().into())).await.is_err() { break }
                match pending.take() {
                    Some(b) => busy = Some(tokio::task::spawn_blocking(move || { let mut sess = sess; let v = sess.frame(&b); (sess, v) })),
                    None => session = Some(sess),
                }
            }
        }
    }
    tracing::info!(dropped, "live session ended");
}

/// MJPEG (multipart/x-mixed-replace) of the server-side `--source`, annotated, as in the
/// tutorials' Flask app. One decoder thread per source serves every viewer (at most
/// `max_viewers`); each viewer gets the newest frame, so slow clients skip frames and nothing
/// queues. Files loop; the decoder stops when its last viewer leaves.
async fn video_feed(State(s): State<AppState>) -> Result<Response, ApiError> {
    let Some(source) = s.inner.source.clone() else {
        return Err(bad(StatusCode::NOT_FOUND, "no server-side video source (start `ferrite serve --source FILE_OR_CAMERA`)"));
    };
    let permit = s
        .inner
        .viewers
        .clone()
        .try_acquire_owned()
        .map_err(|_| bad(StatusCode::SERVICE_UNAVAILABLE, format!("too many viewers (at most {})", s.inner.limits.max_viewers)))?;
    let running = s.inner.feed.lock().map_err(|_| bad(StatusCode::INTERNAL_SERVER_ERROR, "feed state poisoned"))?.as_ref().map(|tx| tx.subscribe());
    let rx = match running {
        Some(rx) => rx,
        None => {
            // ffprobe blocks: off the async runtime.
            let probed = source.clone();
            let info = tokio::task::spawn_blocking(move || crate::vision::video::probe(&probed))
                .await
                .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                .map_err(|e| bad(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            let mut slot = s.inner.feed.lock().map_err(|_| bad(StatusCode::INTERNAL_SERVER_ERROR, "feed state poisoned"))?;
            match slot.as_ref() {
                // Another viewer started it meanwhile.
                Some(tx) => tx.subscribe(),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    let tx = Arc::new(tx);
                    *slot = Some(tx.clone());
                    s.inner.feeds_started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let state = s.clone();
                    std::thread::spawn(move || produce_feed(&state, &source, &info, &tx));
                    rx
                }
            }
        }
    };
    let stream = futures_util::stream::unfold((rx, permit), |(mut rx, permit)| async move {
        loop {
            rx.changed().await.ok()?;
            let part = rx.borrow_and_update().clone();
            if let Some(part) = part {
                return Some((Ok::<_, std::convert::Infallible>(part), (rx, permit)));
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "multipart/x-mixed-replace; boundary=frame")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The `/video_feed` decoder: decode, analyse, draw and JPEG-encode frames of `source` into
/// `tx` until no viewer is left (or the source fails or, for a stream, ends); then clear the
/// state's slot, which ends every viewer's stream.
fn produce_feed(state: &AppState, source: &str, info: &crate::vision::video::VideoInfo, tx: &tokio::sync::watch::Sender<Option<Bytes>>) {
    let analyzer = state.inner.analyzer.clone();
    let mut video = VideoAnalyzer::new(analyzer.clone(), info.fps, VideoOptions::default());
    let frame_time = std::time::Duration::from_secs_f64(1.0 / info.fps.max(1.0));
    let is_file = std::path::Path::new(source).is_file();
    let mut leave = false;
    'source: while !leave {
        let Ok(mut reader) = crate::vision::video::FrameReader::open(source, info) else { break };
        while let Ok(Some(mut frame)) = reader.next_frame() {
            let t = Instant::now();
            let Ok(r) = video.process(&frame) else { break 'source };
            analyzer.draw_tracked(&mut frame, &r.faces);
            let mut jpeg = Vec::new();
            if DynamicImage::ImageRgb8(frame).write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).is_err() {
                break 'source;
            }
            let mut part = format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len()).into_bytes();
            part.extend_from_slice(&jpeg);
            part.extend_from_slice(b"\r\n");
            tx.send_replace(Some(Bytes::from(part)));
            if tx.receiver_count() == 0 {
                // Checked again under the lock a new viewer subscribes under.
                let Ok(slot) = state.inner.feed.lock() else { break 'source };
                if tx.receiver_count() == 0 {
                    drop(slot);
                    leave = true;
                    break;
                }
            }
            if is_file && let Some(rest) = frame_time.checked_sub(t.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        if !is_file {
            break;
        }
    }
    if let Ok(mut slot) = state.inner.feed.lock()
        && slot.as_ref().is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), tx))
    {
        *slot = None;
    }
}

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

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
