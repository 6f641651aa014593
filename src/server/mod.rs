//! The web app and JSON API (axum): the live-webcam page, photo analysis, a WebSocket for
//! browser camera frames, and an MJPEG view of a server-side video source.
//!
//! `app(state)` builds the router ([`api`], [`ws`], [`mjpeg`]), so tests drive it without a
//! socket; [`serve`] runs it ([`listen`]). Expensive objects (the
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

pub mod api;
pub mod listen;
pub mod mjpeg;
pub mod ws;

pub use api::{decode_image, request_image};
pub use listen::{ServeOptions, serve, shutdown_signal};
pub use ws::Session;

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
        .route("/api/v1/analyze", post(api::analyze))
        .route("/api/v1/ws", get(ws::ws))
        .route("/video_feed", get(mjpeg::video_feed))
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
