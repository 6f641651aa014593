//! `/video_feed`: an MJPEG stream of a server-side video source, one shared decoder for all
//! viewers.

use super::*;

/// MJPEG (multipart/x-mixed-replace) of the server-side `--source`, annotated, as in the
/// tutorials' Flask app. One decoder thread per source serves every viewer (at most
/// `max_viewers`); each viewer gets the newest frame, so slow clients skip frames and nothing
/// queues. Files loop; the decoder stops when its last viewer leaves.
pub(super) async fn video_feed(State(s): State<AppState>) -> Result<Response, ApiError> {
    let Some(source) = s.inner.source.clone() else {
        return Err(bad(StatusCode::NOT_FOUND, "no server-side video source (start `ferrite serve --source FILE_OR_CAMERA`)"));
    };
    // A source that just failed is not tried again for each viewer that asks.
    if s.inner.feed_failed_at.lock().ok().and_then(|t| *t).is_some_and(|t| t.elapsed() < FEED_RETRY_AFTER) {
        return Err(unavailable());
    }
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
                .map_err(|e| {
                    // The detail (it may hold the source's password or paths) goes to the log only.
                    tracing::warn!("video source {}: {e}", redact(&source));
                    s.feed_failed();
                    unavailable()
                })?;
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

/// How long a failed source is left alone before a viewer may start it again.
const FEED_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// Starts of ffmpeg in a row that give no frame before the decoder gives up (waiting 2 s, then
/// 4 s, between them): with `FEED_RETRY_AFTER`, at most this many starts a minute.
const FEED_ATTEMPTS: u32 = 3;

/// What a client is told about a source that does not work: never the source or ffmpeg's text.
fn unavailable() -> ApiError {
    bad(StatusCode::SERVICE_UNAVAILABLE, "the video source is not available")
}

/// A source name fit for the log: the user name and password of a URL left out.
pub(super) fn redact(source: &str) -> String {
    match source.split_once("://") {
        Some((scheme, rest)) => {
            let host_end = rest.find('/').unwrap_or(rest.len());
            match rest[..host_end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => source.to_string(),
            }
        }
        None => source.to_string(),
    }
}

impl AppState {
    fn feed_failed(&self) {
        if let Ok(mut t) = self.inner.feed_failed_at.lock() {
            *t = Some(Instant::now());
        }
    }
}

/// The `/video_feed` decoder: decode, analyse, draw and JPEG-encode frames of `source` into
/// `tx` until no viewer is left (or the source fails or, for a stream, ends); then clear the
/// state's slot, which ends every viewer's stream. A file loops; a start of ffmpeg that gives
/// no frame is retried after 2 s and 4 s, then the source is reported (once) and left alone
/// for `FEED_RETRY_AFTER`.
pub(super) fn produce_feed(state: &AppState, source: &str, info: &crate::vision::video::VideoInfo, tx: &tokio::sync::watch::Sender<Option<Bytes>>) {
    let analyzer = state.inner.analyzer.clone();
    let mut video = VideoAnalyzer::new(analyzer.clone(), info.fps, VideoOptions::default());
    let frame_time = std::time::Duration::from_secs_f64(1.0 / info.fps.max(1.0));
    let is_file = std::path::Path::new(source).is_file();
    let mut leave = false;
    let mut failures = 0u32;
    // True when the last viewer has gone; the slot is then cleared under the same lock a new
    // viewer subscribes under, so a viewer either joins this decoder before it decides to stop
    // or finds the slot empty and starts the next one (never one that is about to end).
    let no_viewer = || {
        if tx.receiver_count() != 0 {
            return false;
        }
        let Ok(mut slot) = state.inner.feed.lock() else { return true };
        if tx.receiver_count() != 0 {
            return false;
        }
        clear_slot(&mut slot, tx);
        true
    };
    'source: while !leave {
        let mut frames = 0u64;
        let mut why = String::new();
        state.inner.feed_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match crate::vision::video::FrameReader::open(source, info) {
            Err(e) => why = e.to_string(),
            Ok(mut reader) => loop {
                let read = match reader.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        why = e.to_string();
                        break;
                    }
                };
                frames += 1;
                let t = Instant::now();
                // The stream's own frame numbers and times (a looping file starts again at 0).
                let Ok(r) = video.process_at(&read.image, read.index, read.time_s) else { break 'source };
                let mut frame = read.image;
                analyzer.draw_tracked(&mut frame, &r.faces);
                let mut jpeg = Vec::new();
                if DynamicImage::ImageRgb8(frame).write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).is_err() {
                    break 'source;
                }
                let mut part = format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len()).into_bytes();
                part.extend_from_slice(&jpeg);
                part.extend_from_slice(b"\r\n");
                tx.send_replace(Some(Bytes::from(part)));
                if no_viewer() {
                    leave = true;
                    break;
                }
                if is_file && let Some(rest) = frame_time.checked_sub(t.elapsed()) {
                    std::thread::sleep(rest);
                }
            },
        }
        if leave || (!is_file && frames > 0) {
            break;
        }
        if frames > 0 {
            failures = 0;
            continue;
        }
        failures += 1;
        if failures >= FEED_ATTEMPTS {
            tracing::warn!("video source {} gives no frames ({failures} tries); left alone for {} s: {why}", redact(source), FEED_RETRY_AFTER.as_secs());
            state.feed_failed();
            break;
        }
        // Back off, still leaving as soon as the last viewer has gone.
        let until = Instant::now() + std::time::Duration::from_secs(1 << failures);
        while Instant::now() < until {
            if no_viewer() {
                break 'source;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    if let Ok(mut slot) = state.inner.feed.lock() {
        clear_slot(&mut slot, tx);
    }
}

/// Empty the state's feed slot if it still holds this decoder's sender.
fn clear_slot(slot: &mut Option<Arc<tokio::sync::watch::Sender<Option<Bytes>>>>, tx: &tokio::sync::watch::Sender<Option<Bytes>>) {
    if slot.as_ref().is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), tx)) {
        *slot = None;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_in_source_urls_are_left_out_of_the_log() {
        assert_eq!(super::redact("rtsp://admin:S3cretPass@127.0.0.1:1/stream1"), "rtsp://***@127.0.0.1:1/stream1");
        assert_eq!(super::redact("rtsp://cam.local/s@1"), "rtsp://cam.local/s@1");
        assert_eq!(super::redact("/videos/a@b.mp4"), "/videos/a@b.mp4");
    }
}
