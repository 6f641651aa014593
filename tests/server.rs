//! The web app and API through `app(state).oneshot(...)`: every route, good and bad input.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ferrite::vision::analyzer::Analyzer;
use ferrite::server::{AppState, Limits, Session, app};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

fn analyzer() -> Arc<Analyzer> {
    static A: OnceLock<Arc<Analyzer>> = OnceLock::new();
    A.get_or_init(|| Arc::new(Analyzer::new().expect("embedded models load"))).clone()
}

fn state(limits: Limits) -> AppState {
    AppState::from_shared(analyzer(), "embedded", limits, None)
}

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos").join(name)).unwrap()
}

async fn call(limits: Limits, req: Request<Body>) -> (StatusCode, String, Vec<u8>) {
    let res = app(state(limits)).oneshot(req).await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, ct, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post(ct: &str, body: Vec<u8>) -> Request<Body> {
    Request::post("/api/v1/analyze").header(header::CONTENT_TYPE, ct).body(Body::from(body)).unwrap()
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// A 4xx answer with a JSON error naming the problem.
fn assert_json_error(status: StatusCode, ct: &str, body: &[u8], want: StatusCode, needle: &str) {
    assert_eq!(status, want, "{}", String::from_utf8_lossy(body));
    assert!(ct.starts_with("application/json"), "{ct}");
    let v = json(body);
    assert_eq!(v["error"]["status"], want.as_u16());
    let msg = v["error"]["message"].as_str().unwrap().to_lowercase();
    assert!(msg.contains(needle), "{msg}");
}

#[tokio::test]
async fn page_assets_and_openapi_are_served() {
    let (s, ct, body) = call(Limits::default(), get("/")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/html"));
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("Start camera") && html.contains("/app.js"));
    let (s, ct, body) = call(Limits::default(), get("/app.js")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/javascript"));
    assert!(String::from_utf8(body).unwrap().contains("getUserMedia"));
    let (s, ct, _) = call(Limits::default(), get("/style.css")).await;
    assert_eq!((s, ct.starts_with("text/css")), (StatusCode::OK, true));
    let (s, _, body) = call(Limits::default(), get("/api/openapi.json")).await;
    assert_eq!(s, StatusCode::OK);
    let spec = json(&body);
    for path in ["/api/v1/analyze", "/api/v1/health", "/api/v1/ws", "/video_feed"] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    let (s, _, body) = call(Limits::default(), get("/api/v1/health")).await;
    assert_eq!(s, StatusCode::OK);
    let h = json(&body);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["classes"].as_array().unwrap().len(), 7);
    assert_eq!(h["video_feed"], false);
    let (s, ct, body) = call(Limits::default(), get("/no/such/page")).await;
    assert_json_error(s, &ct, &body, StatusCode::NOT_FOUND, "no such route");
}

#[tokio::test]
async fn analyze_takes_raw_and_multipart_images() {
    let (s, _, body) = call(Limits::default(), post("image/jpeg", photo("astronaut.jpg"))).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["width"], 320);
    let faces = v["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1);
    let p: f64 = faces[0]["probabilities"].as_object().unwrap().values().map(|x| x.as_f64().unwrap()).sum();
    assert!((p - 1.0).abs() < 2e-3);
    // multipart/form-data with an "image" field
    let boundary = "XferriteX";
    let mut mp = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"g.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    mp.extend(photo("group4.jpg"));
    mp.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let (s, _, body) = call(Limits::default(), post(&format!("multipart/form-data; boundary={boundary}"), mp)).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(json(&body)["faces"].as_array().unwrap().len() >= 3);
    let (s, _, body) = call(Limits::default(), post("image/jpeg", photo("coffee.jpg"))).await;
    assert_eq!((s, json(&body)["faces"].as_array().unwrap().len()), (StatusCode::OK, 0));
}

#[tokio::test]
async fn analyze_rejects_bad_input_with_json_errors() {
    let d = Limits::default;
    let (s, ct, b) = call(d(), post("image/jpeg", Vec::new())).await;
    assert_json_error(s, &ct, &b, StatusCode::BAD_REQUEST, "empty");
    let (s, ct, b) = call(d(), post("image/png", b"this is not an image".to_vec())).await;
    assert_json_error(s, &ct, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE, "not an image");
    // A truncated JPEG: the header is fine, the data is not.
    let mut cut = photo("astronaut.jpg");
    cut.truncate(600);
    let (s, ct, b) = call(d(), post("image/jpeg", cut)).await;
    assert_json_error(s, &ct, &b, StatusCode::BAD_REQUEST, "not a readable image");
    let (s, ct, b) = call(d(), post("application/json", b"{\"image\": 1}".to_vec())).await;
    assert_json_error(s, &ct, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content type");
    // Huge dimensions in a small file: refused before decoding.
    let mut png = Vec::new();
    image::GrayImage::new(9000, 2).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let (s, ct, b) = call(d(), post("image/png", png)).await;
    assert_json_error(s, &ct, &b, StatusCode::PAYLOAD_TOO_LARGE, "too large");
    // An upload over the size limit.
    let small = Limits { max_upload_bytes: 10_000, ..Limits::default() };
    let (s, ct, b) = call(small, post("image/jpeg", photo("group6.jpg"))).await;
    assert_json_error(s, &ct, &b, StatusCode::PAYLOAD_TOO_LARGE, "too large");
    let (s, ct, b) = call(d(), post("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--zz--\r\n".to_vec())).await;
    assert_json_error(s, &ct, &b, StatusCode::BAD_REQUEST, "image");
    let (s, _, _) = call(d(), get("/api/v1/analyze")).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn websocket_route_and_feed_without_source() {
    // A plain GET is not a WebSocket upgrade.
    let (s, _, _) = call(Limits::default(), get("/api/v1/ws")).await;
    assert!(s.is_client_error(), "{s}");
    let (s, ct, b) = call(Limits::default(), get("/video_feed")).await;
    assert_json_error(s, &ct, &b, StatusCode::NOT_FOUND, "--source");
}

#[test]
fn websocket_protocol_messages() {
    let mut session = Session::new(analyzer(), Limits::default());
    let r = session.frame(&photo("group1.jpg"));
    assert_eq!(r["type"], "result", "{r}");
    assert_eq!(r["frame"], 1);
    let faces = r["faces"].as_array().unwrap();
    assert!(faces.len() >= 2, "{r}");
    let ids: Vec<u64> = faces.iter().map(|f| f["id"].as_u64().unwrap()).collect();
    // The same frame again: the same people keep their ids.
    let r2 = session.frame(&photo("group1.jpg"));
    let ids2: Vec<u64> = r2["faces"].as_array().unwrap().iter().map(|f| f["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, ids2);
    // Malformed messages get an error reply; the session goes on.
    assert_eq!(session.frame(b"garbage")["type"], "error");
    assert_eq!(session.control("{not json")["type"], "error");
    assert_eq!(session.control("{\"type\": \"launch\"}")["type"], "error");
    assert_eq!(session.control("{\"type\": \"ping\"}")["type"], "pong");
    assert_eq!(session.control("{\"type\": \"reset\"}")["type"], "reset");
    assert_eq!(session.frame(&photo("group1.jpg"))["frame"], 1);
}

/// Read a feed response until `parts` whole parts have arrived; returns the bytes.
async fn read_parts(res: axum::response::Response, parts: usize) -> Vec<u8> {
    let mut body = res.into_body();
    let mut buf = Vec::new();
    let started = std::time::Instant::now();
    while buf.windows(7).filter(|w| w == b"--frame").count() < parts + 1 {
        assert!(started.elapsed().as_secs() < 60, "feed too slow");
        let frame = body.frame().await.expect("stream open").unwrap();
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    buf
}

/// `/video_feed`: annotated JPEG parts; viewers share one decoder, at most `max_viewers` at
/// once; the decoder stops when the last viewer leaves and a new one starts the next.
#[tokio::test]
async fn video_feed_streams_annotated_jpeg_frames_of_the_source() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let video = dir.path().join("feed.mp4");
    let make = std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/make_video.sh"))
        .args([video.to_str().unwrap(), "2"])
        .output()
        .expect("bench/make_video.sh needs ffmpeg (.ci/run installs it)");
    assert!(make.status.success(), "{}", String::from_utf8_lossy(&make.stderr));
    let limits = Limits { max_viewers: 2, ..Limits::default() };
    let state = AppState::from_shared(analyzer(), "embedded", limits, Some(video.display().to_string()));
    let router = app(state.clone());
    let res = router.clone().oneshot(get("/video_feed")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "multipart/x-mixed-replace; boundary=frame");
    let second = router.clone().oneshot(get("/video_feed")).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    let third = router.clone().oneshot(get("/video_feed")).await.unwrap();
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE, "a third viewer is over the limit");
    // Both viewers get frames; the stream itself never ends (files loop).
    let (buf, buf2) = tokio::join!(read_parts(res, 2), read_parts(second, 2));
    assert!(buf2.starts_with(b"--frame\r\n"));
    assert_eq!(state.feed_decoders_started(), 1, "the viewers share one decoder");
    let text = String::from_utf8_lossy(&buf[..200]).to_string();
    assert!(text.starts_with("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "), "{text}");
    let start = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let jpeg = image::load_from_memory(&buf[start..]).expect("a JPEG frame");
    assert_eq!((jpeg.width(), jpeg.height()), (640, 480));
    // Both viewers gone (their responses were dropped by read_parts): the decoder stops, and
    // the next viewer starts a new one.
    let started = std::time::Instant::now();
    loop {
        let res = router.clone().oneshot(get("/video_feed")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        read_parts(res, 1).await;
        if state.feed_decoders_started() == 2 {
            break;
        }
        assert!(started.elapsed().as_secs() < 20, "the decoder did not stop after its viewers left");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A JPEG cut in half is refused with a 400 that says it is truncated (decoders would fill
/// the missing half with gray and analyse it).
#[tokio::test]
async fn a_truncated_jpeg_is_refused() {
    let whole = photo("group1.jpg");
    let (s, _, _) = call(Limits::default(), post("image/jpeg", whole.clone())).await;
    assert_eq!(s, StatusCode::OK);
    let (s, ct, body) = call(Limits::default(), post("image/jpeg", whole[..whole.len() / 2].to_vec())).await;
    assert_json_error(s, &ct, &body, StatusCode::BAD_REQUEST, "truncated");
}

/// A body announced larger than the limit gets 413 from the header alone, before any of it
/// is read; one that stalls mid-upload gets 408 after `body_timeout`.
#[tokio::test]
async fn oversized_announcements_and_stalled_uploads_are_answered_at_once() {
    let req = Request::post("/api/v1/analyze")
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CONTENT_LENGTH, 64 * 1024 * 1024)
        .body(Body::from(vec![0u8; 1024 * 1024]))
        .unwrap();
    let started = std::time::Instant::now();
    let (s, ct, body) = call(Limits::default(), req).await;
    assert_json_error(s, &ct, &body, StatusCode::PAYLOAD_TOO_LARGE, "67108864 bytes announced");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));

    let limits = Limits { body_timeout: std::time::Duration::from_millis(300), ..Limits::default() };
    let head = futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"\xFF\xD8\xFF"))]);
    let stalled = futures_util::StreamExt::chain(head, futures_util::stream::pending());
    let req = Request::post("/api/v1/analyze").header(header::CONTENT_TYPE, "image/jpeg").body(Body::from_stream(stalled)).unwrap();
    let started = std::time::Instant::now();
    let (s, ct, body) = call(limits, req).await;
    assert_json_error(s, &ct, &body, StatusCode::REQUEST_TIMEOUT, "did not arrive");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());
}

#[path = "common/hostile.rs"]
mod hostile;

/// Palette-colour TIFFs are read by the server as by the command line (they were refused with
/// "RGBPalette ... unsupported" by the size check's header read).
#[tokio::test]
async fn palette_tiffs_are_read() {
    let tiff = hostile::palette_tiff_lzw_bomb(64, 48, 64 * 48);
    let (status, _, body) = call(Limits::default(), post("image/tiff", tiff)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["width"], 64);
}

/// Images declaring more than the limits allow are refused from their header (413), and one
/// that alone needs more memory than the server's decode budget too; a small budget taken by
/// one image makes a second wait and then get 503.
#[tokio::test]
async fn decode_memory_is_budgeted_from_the_header() {
    let bmp = hostile::rle8_bmp(8000, 5000);
    let tight = Limits { max_pixels: 1_000_000, ..Limits::default() };
    let (status, ct, body) = call(tight, post("image/bmp", bmp.clone())).await;
    assert_json_error(status, &ct, &body, StatusCode::PAYLOAD_TOO_LARGE, "8000x5000");
    let small_budget = Limits { max_decode_memory: 64 << 20, ..Limits::default() };
    let (status, ct, body) = call(small_budget, post("image/bmp", bmp)).await;
    assert_json_error(status, &ct, &body, StatusCode::PAYLOAD_TOO_LARGE, "memory");
    // Budget for one 2000x1500 image at a time, and a short wait: of two at once, one is 503.
    let jpeg = hostile::jpeg_declaring(2000, 1500);
    let head = ferrite::data::imageio::header(&jpeg).unwrap();
    let one = ferrite::data::imageio::DecodeLimits::memory_cost(&head);
    let limits = Limits { max_decode_memory: one + one / 2, body_timeout: std::time::Duration::from_millis(50), ..Limits::default() };
    let router = app(state(limits));
    let (a, b) = tokio::join!(
        router.clone().oneshot(post("image/jpeg", jpeg.clone())),
        router.clone().oneshot(post("image/jpeg", jpeg.clone()))
    );
    let mut codes = [a.unwrap().status(), b.unwrap().status()];
    codes.sort();
    assert_eq!(codes[1], StatusCode::SERVICE_UNAVAILABLE, "{codes:?}");
}

/// Pages of other sites cannot drive the server: a foreign Host (DNS rebinding) or Origin is
/// refused, the server's own and listed origins are served.
#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    let req = |host: &str, origin: Option<&str>| {
        let mut r = Request::post("/api/v1/analyze").header(header::CONTENT_TYPE, "image/jpeg").header(header::HOST, host);
        if let Some(o) = origin {
            r = r.header(header::ORIGIN, o);
        }
        r.body(Body::from(photo("astronaut.jpg"))).unwrap()
    };
    let limits = Limits { allowed_origins: vec!["http://app.example:3000".into()], ..Limits::default() };
    for (host, origin, want) in [
        ("127.0.0.1:8080", None, StatusCode::OK),
        ("localhost:8080", Some("http://localhost:8080"), StatusCode::OK),
        ("[::1]:8080", Some("http://[::1]:8080"), StatusCode::OK),
        ("192.168.1.5:8080", Some("http://192.168.1.5:8080"), StatusCode::OK),
        ("127.0.0.1:8080", Some("http://app.example:3000"), StatusCode::OK),
        ("attacker.example:8080", None, StatusCode::FORBIDDEN),
        ("127.0.0.1:8080", Some("http://evil.example"), StatusCode::FORBIDDEN),
        ("127.0.0.1:8080", Some("http://127.0.0.1:9999"), StatusCode::FORBIDDEN),
        ("127.0.0.1:8080", Some("null"), StatusCode::FORBIDDEN),
    ] {
        let (status, _, body) = call(limits.clone(), req(host, origin)).await;
        assert_eq!(status, want, "Host {host}, Origin {origin:?}: {}", String::from_utf8_lossy(&body));
    }
    let ws = Request::get("/api/v1/ws")
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "http://evil.example")
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = call(Limits::default(), ws).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A source ffmpeg cannot decode: the client sees a generic 503 (never the source or ffmpeg's
/// text), ffmpeg is started a few times with backoff, not in a loop, and not again for each
/// viewer that asks after it failed.
#[tokio::test]
async fn a_broken_video_source_backs_off_and_keeps_its_secrets() {
    let secret = "rtsp://admin:S3cretPass@127.0.0.1:1/stream1";
    let state = AppState::from_shared(analyzer(), "embedded", Limits::default(), Some(secret.into()));
    let (status, _, body) = {
        let res = app(state.clone()).oneshot(get("/video_feed")).await.unwrap();
        let status = res.status();
        (status, (), res.into_body().collect().await.unwrap().to_bytes().to_vec())
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains("S3cret") && !text.contains("rtsp") && !text.contains("127.0.0.1"), "{text}");

    // A file whose frames cannot be decoded (its header can).
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let video = dir.path().join("broken.avi");
    let make = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=2", "-c:v", "mjpeg"])
        .arg(&video)
        .output()
        .expect("ffmpeg (.ci/run installs it)");
    assert!(make.status.success());
    let mut bytes = std::fs::read(&video).unwrap();
    let movi = bytes.windows(4).position(|w| w == b"movi").unwrap();
    let end = bytes.windows(4).rposition(|w| w == b"idx1").unwrap_or(bytes.len());
    for (i, b) in bytes[movi + 4..end].iter_mut().enumerate() {
        if i % 8 != 0 {
            *b = (i * 7) as u8;
        }
    }
    std::fs::write(&video, bytes).unwrap();
    let state = AppState::from_shared(analyzer(), "embedded", Limits::default(), Some(video.display().to_string()));
    let router = app(state.clone());
    let res = router.clone().oneshot(get("/video_feed")).await.unwrap();
    let started = std::time::Instant::now();
    if res.status() == StatusCode::OK {
        // The stream ends once the decoder gives up.
        let body = tokio::time::timeout(std::time::Duration::from_secs(30), res.into_body().collect()).await;
        assert!(body.is_ok(), "the stream of a broken source ended");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let reads = state.feed_reads_started();
    assert!((1..=3).contains(&reads), "{reads} ffmpeg starts");
    for _ in 0..5 {
        let res = router.clone().oneshot(get("/video_feed")).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains("broken.avi"));
    }
    assert_eq!(state.feed_reads_started(), reads, "no new ffmpeg for viewers after a failure");
}
