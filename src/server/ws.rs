//! The live-camera WebSocket: one tracked session per browser, frames in, faces out.

use super::*;

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

pub(super) fn tracked_json(t: &TrackedFace) -> Value {
    let mut v = t.face.to_json();
    v["id"] = json!(t.id);
    v
}

/// RFC 6455 4.2.1: the key is 16 bytes in base64 (24 characters, the last two `==`).
pub(super) fn valid_websocket_key(key: &[u8]) -> bool {
    key.len() == 24 && key.ends_with(b"==") && key[..22].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

pub(super) async fn ws(State(s): State<AppState>, headers: axum::http::HeaderMap, upgrade: WebSocketUpgrade) -> Result<Response, ApiError> {
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
    // Replies (and the automatic pongs) a client does not read pile up in the write buffer: at
    // this cap the connection fails and the session ends, so a ping flood costs bounded memory.
    Ok(upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .write_buffer_size(64 * 1024)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
        live_session(s, socket).await;
        drop(permit);
    }))
}

/// Bytes of replies a live session may have unwritten before it is closed.
const MAX_WRITE_BUFFER: usize = 1024 * 1024;

/// Start analysing a frame: its header checked and its decode memory reserved first (without
/// waiting: a live frame the server has no memory for now is answered "busy" and dropped).
async fn start_frame(
    s: &AppState,
    mut sess: Session,
    bytes: Bytes,
) -> Result<tokio::task::JoinHandle<(Session, Value)>, (Session, Value)> {
    let memory = match image_header(&bytes, &s.inner.limits) {
        Ok(head) => s.reserve_decode_memory(&head, None).await,
        Err(e) => Err(e),
    };
    match memory {
        Ok(memory) => Ok(tokio::task::spawn_blocking(move || {
            let _memory = memory;
            let v = sess.frame(&bytes);
            (sess, v)
        })),
        Err(e) => Err((sess, json!({"type": "error", "message": e.1}))),
    }
}

/// Frames are processed one at a time; while one is being analysed only the newest waiting
/// frame is kept (older ones are dropped and counted), so a slow server never builds a queue.
/// A session ends when the client has sent no frame or control message for
/// `Limits::session_idle`, does not read a reply within the connection's write timeout
/// (`ServeOptions::write_timeout`), or lets more than a megabyte of replies pile up.
pub(super) async fn live_session(s: AppState, socket: WebSocket) {
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
                match msg {
                    Message::Binary(b) => {
                        deadline = tokio::time::Instant::now() + idle;
                        if let Some(sess) = session.take() {
                            match start_frame(&s, sess, b).await {
                                Ok(job) => busy = Some(job),
                                Err((sess, reply)) => {
                                    session = Some(sess);
                                    if tx.send(Message::Text(reply.to_string().into())).await.is_err() { break }
                                }
                            }
                        } else if pending.replace(b).is_some() {
                            dropped += 1;
                        }
                    }
                    Message::Text(t) => {
                        deadline = tokio::time::Instant::now() + idle;
                        let reply = match session.as_mut() {
                            Some(sess) => sess.control(t.as_str()),
                            None => json!({"type": "error", "message": "busy: control messages are taken between frames"}),
                        };
                        if tx.send(Message::Text(reply.to_string().into())).await.is_err() { break }
                    }
                    Message::Close(_) => break,
                    // Pings are answered by the WebSocket layer (within its write-buffer cap)
                    // and, like pongs, do not keep a session alive.
                    _ => {}
                }
            }
            done = async { busy.as_mut().expect("guarded").await }, if busy.is_some() => {
                busy = None;
                let Ok((sess, mut reply)) = done else { break };
                reply["dropped"] = json!(dropped);
                if tx.send(Message::Text(reply.to_string().into())).await.is_err() { break }
                match pending.take() {
                    Some(b) => match start_frame(&s, sess, b).await {
                        Ok(job) => busy = Some(job),
                        Err((sess, reply)) => {
                            session = Some(sess);
                            if tx.send(Message::Text(reply.to_string().into())).await.is_err() { break }
                        }
                    },
                    None => session = Some(sess),
                }
            }
        }
    }
    tracing::info!(dropped, "live session ended");
}
