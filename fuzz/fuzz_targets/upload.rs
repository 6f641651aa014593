//! Fuzz target: photo upload request bodies (`server::request_image`: raw image bodies and
//! multipart forms, size limits), then the image decoder. The input's first line is the
//! Content-Type header, the rest the body.
#![no_main]
use axum::body::Body;
use axum::extract::Request;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static R: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    R.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime"))
}

fuzz_target!(|data: &[u8]| {
    ferrite_fuzz::report_caught_panics();
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (ct, body) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let Ok(req) = Request::builder()
        .method("POST")
        .uri("/api/v1/analyze")
        .header("content-type", ct)
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let limits = ferrite::server::Limits { max_upload_bytes: 1 << 16, max_side: 1024, max_pixels: 1 << 20, ..Default::default() };
    if let Ok(bytes) = runtime().block_on(ferrite::server::request_image(&limits, req)) {
        assert!(bytes.len() <= body.len());
        let _ = ferrite::server::decode_image(&bytes, &limits);
    }
});
