//! `ferrite serve`: the web app and JSON API.

use super::face::FaceArgs;
use anyhow::{Context, Result};
use clap::Args;
use ferrite::ModelSource;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// A server-side video source for /video_feed (file, /dev/video0, rtsp://...).
    #[arg(long)]
    pub source: Option<String>,
    /// Largest upload in MiB.
    #[arg(long, default_value_t = 10)]
    pub max_upload_mb: usize,
    /// Most concurrent live-camera sessions.
    #[arg(long, default_value_t = 8)]
    pub max_sessions: usize,
    /// Most open connections; one more is answered 503 and closed.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a connection may take to send a request head (idle and stalled connections
    /// are closed after it) and an upload its body (408 after it).
    #[arg(long, default_value_t = 10)]
    pub timeout_s: u64,
    /// Most concurrent /video_feed viewers (they share one decoder).
    #[arg(long, default_value_t = 16)]
    pub max_viewers: usize,
    /// A browser origin (http://host:port) whose pages may use this server, besides its own
    /// address and localhost; repeat for more. Others' uploads and WebSockets get 403.
    #[arg(long)]
    pub allow_origin: Vec<String>,
    /// Most connections one client address may hold open (default 64).
    #[arg(long)]
    pub max_connections_per_client: Option<usize>,
    /// The address of a reverse proxy in front of this server (repeat for more): on its
    /// connections the client is read from `Forwarded` / `X-Forwarded-For`, and the per-client
    /// cap counts that client's requests in flight. Nobody else's headers are believed.
    #[arg(long, value_name = "IP")]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Memory in MiB that all images being decoded and analysed at once may take (uploads and
    /// live frames; default 768). More waits, then gets 503.
    #[arg(long)]
    pub max_decode_mb: Option<u64>,
    #[command(flatten)]
    pub face: FaceArgs,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let ServeArgs {
        addr,
        source,
        max_upload_mb,
        max_sessions,
        max_connections,
        timeout_s,
        max_viewers,
        allow_origin,
        max_connections_per_client,
        trusted_proxy,
        max_decode_mb,
        face,
    } = args;
    let analyzer = face.analyzer()?;
    let model_name = ModelSource::from_arg(face.model.as_deref()).name();
    let defaults = ferrite::server::Limits::default();
    let limits = ferrite::server::Limits {
        max_upload_bytes: max_upload_mb.max(1) * 1024 * 1024,
        max_sessions: max_sessions.max(1),
        max_viewers: max_viewers.max(1),
        body_timeout: std::time::Duration::from_secs(timeout_s.max(1)),
        max_pixels: face.max_pixels.unwrap_or(defaults.max_pixels),
        max_decode_memory: max_decode_mb.map_or(defaults.max_decode_memory, |m| m.max(1) * 1024 * 1024),
        allowed_origins: allow_origin,
        ..defaults
    };
    let serve_defaults = ferrite::server::ServeOptions::default();
    let serve_opts = ferrite::server::ServeOptions {
        header_timeout: std::time::Duration::from_secs(timeout_s.max(1)),
        max_connections: max_connections.max(1),
        max_connections_per_client: max_connections_per_client.unwrap_or(serve_defaults.max_connections_per_client),
        trusted_proxies: trusted_proxy,
        ..serve_defaults
    };
    let state = ferrite::server::AppState::new(analyzer, model_name, limits, source);
    // Before any worker thread exists: memory freed after a large image goes back to a few
    // shared arenas, where malloc_trim can return it. glibc's own MALLOC_ARENA_MAX, where the
    // user sets one, is left to decide (bench/bomb_memory.sh compares them).
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        ferrite::device::limit_allocator_arenas(ferrite::server::ALLOCATOR_ARENAS);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        let stop = ferrite::server::shutdown_signal().context("installing the SIGINT/SIGTERM handlers")?;
        println!("ferrite is serving on http://{local}/ (Ctrl-C or SIGTERM stops)");
        let app = ferrite::server::app(state);
        ferrite::server::serve(listener, app, serve_opts, stop).await.context("server failed")
    })?;
    Ok(())
}
