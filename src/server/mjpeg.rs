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
pub(super) fn produce_feed(state: &AppState, source: &str, info: &crate::vision::video::VideoInfo, tx: &tokio::sync::watch::Sender<Option<Bytes>>) {
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
