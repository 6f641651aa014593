//! The web app and JSON API (axum): the live-webcam page, photo analysis, a WebSocket for
//! browser camera frames, and an MJPEG view of a server-side video source.
//!
//! `app(state)` builds the router, so tests drive it without a socket. Expensive objects (the
//! face detector and expression model) are built once in `AppState` and shared.

use crate::analyzer::{Analyzer, TrackedFace, VideoAnalyzer, VideoOptions};
use crate::emotion::Emotion;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use image::{DynamicImage, ImageReader};
use serde_json::{Value, json};
use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

static INDEX_HTML: &str = include_str!("../web/index.html");
static APP_JS: &str = include_str!("../web/app.js");
static STYLE_CSS: &str = include_str!("../web/style.css");
static OPENAPI_JSON: &str = include_str!("../web/openapi.json");

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
                limits,
                source,
                model_name: model_name.into(),
                started: Instant::now(),
            }),
        }
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
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("cannot read the image: {e}")))?;
    if reader.format().is_none() {
        return Err(bad(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not an image (JPEG, PNG, BMP, TIFF or GIF expected)"));
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("not a readable image: {e}")))?;
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
    crate::imageio::decode(bytes, Some(l)).map_err(|e| match e {
        crate::imageio::DecodeError::UnknownFormat => bad(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()),
        e => bad(StatusCode::BAD_REQUEST, format!("not a readable image: {e}")),
    })
}

/// The image bytes of a request: a raw image body (image/* or application/octet-stream) or
/// the first file field of a multipart form.
async fn request_image(state: &AppState, req: Request) -> Result<Bytes, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let too_big = |e: String| {
        if e.contains("length limit") || e.contains("too large") {
            bad(StatusCode::PAYLOAD_TOO_LARGE, format!("upload too large (at most {} bytes)", state.inner.limits.max_upload_bytes))
        } else {
            bad(StatusCode::BAD_REQUEST, e)
        }
    };
    // A body announced as too large is refused at once, before any of it is read.
    let limit = state.inner.limits.max_upload_bytes;
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(bad(StatusCode::PAYLOAD_TOO_LARGE, format!("upload too large: {len} bytes announced, at most {limit} accepted")));
    }
    let timeout = state.inner.limits.body_timeout;
    let slow = || bad(StatusCode::REQUEST_TIMEOUT, format!("the upload did not arrive within {} s", timeout.as_secs_f32()));
    tokio::time::timeout(timeout, read_image_body(state, req, &ct, too_big)).await.map_err(|_| slow())?
}

async fn read_image_body(state: &AppState, req: Request, ct: &str, too_big: impl Fn(String) -> ApiError) -> Result<Bytes, ApiError> {
    if ct.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, state).await.map_err(|e| bad(StatusCode::BAD_REQUEST, e.body_text()))?;
        while let Some(field) = mp.next_field().await.map_err(|e| too_big(e.body_text()))? {
            if field.name() == Some("image") || field.file_name().is_some() {
                return field.bytes().await.map_err(|e| too_big(e.body_text()));
            }
        }
        Err(bad(StatusCode::BAD_REQUEST, "multipart form without an 'image' file field"))
    } else if ct.is_empty() || ct.starts_with("image/") || ct.starts_with("application/octet-stream") {
        Bytes::from_request(req, state).await.map_err(|e| too_big(e.body_text()))
    } else {
        Err(bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type '{ct}' not accepted: send image/* bytes or multipart/form-data"),
        ))
    }
}

fn faces_json(faces: &[crate::analyzer::Face]) -> Vec<Value> {
    faces.iter().map(|f| f.to_json()).collect()
}

async fn analyze(State(s): State<AppState>, req: Request) -> Result<axum::Json<Value>, ApiError> {
    let bytes = request_image(&s, req).await?;
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

async fn ws(State(s): State<AppState>, upgrade: WebSocketUpgrade) -> Result<Response, ApiError> {
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
    loop {
        tokio::select! {
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { break };
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
/// tutorials' Flask app. Files loop; frames are dropped, never queued, for slow clients.
async fn video_feed(State(s): State<AppState>) -> Result<Response, ApiError> {
    let Some(source) = s.inner.source.clone() else {
        return Err(bad(StatusCode::NOT_FOUND, "no server-side video source (start `ferrite serve --source FILE_OR_CAMERA`)"));
    };
    let info = crate::video::probe(&source).map_err(|e| bad(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    let analyzer = s.inner.analyzer.clone();
    std::thread::spawn(move || {
        let mut video = VideoAnalyzer::new(analyzer.clone(), info.fps, VideoOptions::default());
        let frame_time = std::time::Duration::from_secs_f64(1.0 / info.fps.max(1.0));
        let is_file = std::path::Path::new(&source).is_file();
        loop {
            let Ok(mut reader) = crate::video::FrameReader::open(&source, &info) else { return };
            while let Ok(Some(mut frame)) = reader.next_frame() {
                let t = Instant::now();
                let Ok(r) = video.process(&frame) else { return };
                analyzer.draw_tracked(&mut frame, &r.faces);
                let mut jpeg = Vec::new();
                if DynamicImage::ImageRgb8(frame).write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).is_err() {
                    return;
                }
                let mut part = format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len()).into_bytes();
                part.extend_from_slice(&jpeg);
                part.extend_from_slice(b"\r\n");
                match tx.try_send(Bytes::from(part)) {
                    Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {}
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
                }
                if is_file && let Some(rest) = frame_time.checked_sub(t.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            if !is_file {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), rx)) });
    Response::builder()
        .header(header::CONTENT_TYPE, "multipart/x-mixed-replace; boundary=frame")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
