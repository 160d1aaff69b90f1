//! Successful answers: 201 with a key, 200 with a read's value and its cache tags.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobprep_repo::{CacheTag, Cached};
use serde::Serialize;

use crate::errors::ApiError;

/// 201 with the new row's key (or keys).
pub(crate) fn created(value: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

/// A read's value, with the cache tags it depends on in `x-cache-tags`.
pub(crate) fn cached<T: Serialize>(read: Cached<T>) -> Result<Response, ApiError> {
    Ok(tagged_json(&read.tags, json_bytes(&read.value)?))
}

/// `value` as the JSON bytes every answer of it carries.
pub(crate) fn json_bytes<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|error| ApiError::Internal(format!("serializing a response: {error}")))
}

/// 200 with `body` (JSON) and `tags` in `x-cache-tags`.
pub(crate) fn tagged_json(tags: &[CacheTag], body: Bytes) -> Response {
    let tags: Vec<&str> = tags.iter().map(CacheTag::as_str).collect();
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&tags.join(", ")) {
        response.headers_mut().insert("x-cache-tags", value);
    }
    response
}
