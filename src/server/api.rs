//! The JSON API: image uploads within the limits, decoding, `/api/analyze`.

use super::*;
use crate::data::imageio::{DecodeError, ImageHeader};

/// The header of an uploaded image, checked against the size limits before any pixel is
/// decoded; errors are 4xx with a reason.
pub fn image_header(bytes: &[u8], limits: &Limits) -> Result<ImageHeader, ApiError> {
    if bytes.is_empty() {
        return Err(bad(StatusCode::BAD_REQUEST, "empty body: send the image bytes"));
    }
    let head = crate::data::imageio::header(bytes).map_err(decode_error)?;
    limits.decode_limits().check(&head).map_err(decode_error)?;
    Ok(head)
}

/// Decode an uploaded image within the size limits (checked from its header first, as
/// [`image_header`] does); errors are 4xx with a reason.
pub fn decode_image(bytes: &[u8], limits: &Limits) -> Result<DynamicImage, ApiError> {
    if bytes.is_empty() {
        return Err(bad(StatusCode::BAD_REQUEST, "empty body: send the image bytes"));
    }
    crate::data::imageio::decode(bytes, &limits.decode_limits()).map_err(decode_error)
}

fn decode_error(e: DecodeError) -> ApiError {
    match e {
        DecodeError::UnknownFormat => bad(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string()),
        DecodeError::TooLarge { .. } => bad(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        e => bad(StatusCode::BAD_REQUEST, format!("not a readable image: {e}")),
    }
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
    // axum's rejections carry their status: 413 where a length limit stopped the body.
    let too_big = |status: StatusCode, e: String| {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
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

pub(super) async fn read_image_body(req: Request, ct: &str, too_big: impl Fn(StatusCode, String) -> ApiError) -> Result<Bytes, ApiError> {
    if ct.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, &()).await.map_err(|e| bad(StatusCode::BAD_REQUEST, e.body_text()))?;
        while let Some(field) = mp.next_field().await.map_err(|e| too_big(e.status(), e.body_text()))? {
            if field.name() == Some("image") || field.file_name().is_some() {
                return field.bytes().await.map_err(|e| too_big(e.status(), e.body_text()));
            }
        }
        Err(bad(StatusCode::BAD_REQUEST, "multipart form without an 'image' file field"))
    } else if ct.is_empty() || ct.starts_with("image/") || ct.starts_with("application/octet-stream") {
        Bytes::from_request(req, &()).await.map_err(|e| too_big(e.status(), e.body_text()))
    } else {
        Err(bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type '{ct}' not accepted: send image/* bytes or multipart/form-data"),
        ))
    }
}

pub(super) fn faces_json(faces: &[crate::vision::analyzer::Face]) -> Vec<Value> {
    faces.iter().map(|f| f.to_json()).collect()
}

pub(super) async fn analyze(State(s): State<AppState>, req: Request) -> Result<axum::Json<Value>, ApiError> {
    let bytes = request_image(&s.inner.limits, req).await?;
    let head = image_header(&bytes, &s.inner.limits)?;
    // Its share of the decode memory, waited for as long as a body may take to arrive.
    let memory = s.reserve_decode_memory(&head, Some(s.inner.limits.body_timeout)).await?;
    let _permit = s.inner.analyses.acquire().await.map_err(|_| bad(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    let state = s.clone();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let _memory = memory;
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
