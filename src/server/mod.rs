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

pub use api::{decode_image, image_header, request_image};
pub use listen::{ServeOptions, serve, shutdown_signal};
pub use ws::Session;

static INDEX_HTML: &str = include_str!("../../web/index.html");
static APP_JS: &str = include_str!("../../web/app.js");
static STYLE_CSS: &str = include_str!("../../web/style.css");
static OPENAPI_JSON: &str = include_str!("../../web/openapi.json");

/// glibc malloc arenas for a server process ([`crate::device::limit_allocator_arenas`], set by
/// `ferrite serve` before its threads start): with glibc's default (8 per core) the memory that
/// image bombs freed stayed in the blocking threads' arenas (RSS 335 MiB after 90 s of load and
/// bombs, against 128 MiB with 2 arenas and 208 MiB with 4; 5% fewer requests per second with
/// 2; 2-core AMD EPYC, docs/RELIABILITY.md).
pub const ALLOCATOR_ARENAS: usize = 2;

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
    /// A live (WebSocket) session that sends no frame or control message for this long is
    /// closed (pings do not count), so idle clients cannot hold the `max_sessions` slots.
    pub session_idle: std::time::Duration,
    /// Memory all images being decoded and analysed at once may take, in bytes (uploads and
    /// WebSocket frames alike; each is counted from its header, `DecodeLimits::memory_cost`).
    /// An upload over what is left waits (up to `body_timeout`) and then gets 503; a live
    /// frame is answered "busy" at once. An image that alone needs more gets 413.
    pub max_decode_memory: u64,
    /// Browser origins (`http://host:port`) allowed besides the server's own and localhost's:
    /// requests whose `Origin` or `Host` names another site are refused (403), so a page
    /// elsewhere cannot drive this server (cross-site uploads, DNS rebinding).
    pub allowed_origins: Vec<String>,
}

impl Limits {
    /// The per-image decode limits these limits imply.
    pub fn decode_limits(&self) -> crate::data::imageio::DecodeLimits {
        crate::data::imageio::DecodeLimits { max_side: self.max_side, max_pixels: self.max_pixels }
    }
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
            max_decode_memory: 768 * 1024 * 1024,
            allowed_origins: Vec::new(),
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
    /// Decode memory left, in KiB permits ([`Limits::max_decode_memory`]).
    decode_memory: Arc<Semaphore>,
    /// When the `/video_feed` source last failed (no frame from it): new viewers are refused
    /// for a while after, rather than restarting ffmpeg for each.
    feed_failed_at: std::sync::Mutex<Option<Instant>>,
    /// Producers (decoders) started so far.
    feeds_started: std::sync::atomic::AtomicUsize,
    /// ffmpeg processes the producers have started (a looping file or a retry starts another).
    feed_reads: std::sync::atomic::AtomicUsize,
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
                decode_memory: Arc::new(Semaphore::new(kib_permits(limits.max_decode_memory).max(1) as usize)),
                feed_failed_at: std::sync::Mutex::new(None),
                limits,
                source,
                feed: std::sync::Mutex::new(None),
                feeds_started: std::sync::atomic::AtomicUsize::new(0),
                feed_reads: std::sync::atomic::AtomicUsize::new(0),
                model_name: model_name.into(),
                started: Instant::now(),
            }),
        }
    }
}

/// An image's share of the decode memory ([`AppState::reserve_decode_memory`]), given back
/// when dropped. After a large image (64 MiB or more) the memory it freed is also returned to
/// the system: glibc keeps freed heap pages for reuse, and without this the server's resident
/// size stays at its peak after an image bomb has been analysed.
pub(crate) struct DecodeMemory {
    _permit: tokio::sync::OwnedSemaphorePermit,
    large: bool,
}

impl Drop for DecodeMemory {
    fn drop(&mut self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if self.large {
            // SAFETY: malloc_trim takes no pointers and may be called from any thread at any time.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

/// Bytes as KiB permits of a semaphore (rounded up; at most what a semaphore holds).
fn kib_permits(bytes: u64) -> u32 {
    bytes.div_ceil(1024).min(Semaphore::MAX_PERMITS.min(u32::MAX as usize) as u64) as u32
}

impl AppState {
    /// Reserve the decode memory an image of `head` may take: waits up to `wait` (`None`: not at
    /// all) for other images to finish; 503 when they do not in time, 413 when the image alone
    /// needs more than the whole budget. The memory is returned when the reservation is dropped.
    pub(crate) async fn reserve_decode_memory(
        &self,
        head: &crate::data::imageio::ImageHeader,
        wait: Option<std::time::Duration>,
    ) -> Result<DecodeMemory, ApiError> {
        let cost = crate::data::imageio::DecodeLimits::memory_cost(head);
        let large = cost >= 64 << 20;
        let need = kib_permits(cost).max(1);
        if need > kib_permits(self.inner.limits.max_decode_memory).max(1) {
            return Err(bad(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("image {}x{} needs more memory to analyse than this server allows", head.width, head.height),
            ));
        }
        let busy = || bad(StatusCode::SERVICE_UNAVAILABLE, "busy: too many large images being analysed; try again later");
        let sem = self.inner.decode_memory.clone();
        let permit = match wait {
            None => sem.try_acquire_many_owned(need).map_err(|_| busy())?,
            Some(w) => match tokio::time::timeout(w, sem.acquire_many_owned(need)).await {
                Ok(Ok(p)) => p,
                _ => return Err(busy()),
            },
        };
        Ok(DecodeMemory { _permit: permit, large })
    }

    /// How many `/video_feed` decoders have been started (one serves every viewer at a time).
    pub fn feed_decoders_started(&self) -> usize {
        self.inner.feeds_started.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many times `/video_feed` decoders have started ffmpeg on the source.
    pub fn feed_reads_started(&self) -> usize {
        self.inner.feed_reads.load(std::sync::atomic::Ordering::Relaxed)
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
        .layer(axum::middleware::from_fn_with_state(state.clone(), same_site))
        .with_state(state)
}

/// Refuse (403) a request whose `Host` or `Origin` names a site this server does not answer for
/// ([`check_origin`]).
async fn same_site(State(s): State<AppState>, req: Request, next: axum::middleware::Next) -> Response {
    match check_origin(req.headers(), &s.inner.limits.allowed_origins) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Whether a request is for this server from a page allowed to use it: its `Host` (when sent) a
/// localhost name, an IP address or the host of an allowed origin (a DNS name an attacker
/// points at this machine is refused: DNS rebinding); its `Origin` (browsers send one with
/// uploads, scripts' requests and WebSockets) absent, the same as its `Host`, or listed in
/// `allowed` (`http://host:port`).
pub fn check_origin(headers: &axum::http::HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
    let text = |name| headers.get(name).map(|v| v.to_str().map(|s| s.trim().to_ascii_lowercase()).map_err(|_| ()));
    let allowed: Vec<String> = allowed.iter().map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase()).collect();
    let allowed_host = |host: &str| allowed.iter().any(|o| o.split_once("://").is_some_and(|(_, h)| h == host || host_name(h) == host_name(host)));
    let host = match text(header::HOST) {
        None => None,
        Some(Ok(h)) if local_host(host_name(&h)) || allowed_host(&h) => Some(h),
        Some(_) => return Err(bad(StatusCode::FORBIDDEN, "this server answers for localhost and IP addresses only (Host refused)")),
    };
    match text(header::ORIGIN) {
        None => Ok(()),
        Some(Ok(origin)) => {
            let same = origin.split_once("://").is_some_and(|(scheme, h)| matches!(scheme, "http" | "https") && Some(h) == host.as_deref());
            if same || allowed.contains(&origin) {
                Ok(())
            } else {
                Err(bad(StatusCode::FORBIDDEN, "requests from pages of other sites are refused (Origin)"))
            }
        }
        Some(Err(())) => Err(bad(StatusCode::FORBIDDEN, "unreadable Origin")),
    }
}

/// `host[:port]` without the port (`[::1]:80` -> `::1`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn local_host(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost") || name.parse::<std::net::IpAddr>().is_ok()
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
