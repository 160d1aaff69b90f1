//! What a handler takes from a request: the acting user, a typed path id, a page, a JSON body.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use jobprep_job_infos::PageRequest;
use jobprep_repo::Error;
use jobprep_users::UserId;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::{authenticate, Auth};
use crate::errors::ApiError;
use crate::json::{from_object, parse_json};

/// The acting user, from [`authenticate`] (401 when it refuses).
#[derive(Debug)]
pub struct Owner(pub UserId);

impl<S> FromRequestParts<S> for Owner
where
    S: Send + Sync,
    Auth: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        authenticate(parts, &Auth::from_ref(state)).map(Owner)
    }
}

/// A typed id from the path's `{id}`; one that does not parse is a 400 naming the
/// parameter (`jobInfoId`, ...).
#[derive(Debug)]
pub struct Id<T>(pub T);

impl<S, T> FromRequestParts<S> for Id<T>
where
    S: Send + Sync,
    T: std::str::FromStr<Err = Error>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::Request(rejection.status(), rejection.body_text()))?;
        Ok(Id(text.parse()?))
    }
}

/// How many rows a list answers when the request does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// The page a list route answers, from the query string: `?limit=N` (1 to 1,000,
/// default [`DEFAULT_PAGE_SIZE`]) and `&after=CURSOR` (the `next` of the previous
/// page). Any other parameter is a 400, as an unknown field in a body is.
#[derive(Debug)]
pub struct Paging(pub PageRequest);

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut page = PageRequest::first(DEFAULT_PAGE_SIZE);
        for pair in parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "limit" => {
                    page.limit = value.parse().map_err(|_| ApiError::Invalid {
                        field: "limit".into(),
                        message: "limit must be a whole number from 1 to 1000".into(),
                    })?
                }
                // Cursors are digits, `_` and hex: nothing to percent-decode.
                "after" => page.after = Some(value.parse()?),
                other => {
                    return Err(ApiError::Invalid {
                        field: other.chars().take(64).collect(),
                        message: "unknown query parameter: lists take limit and after".into(),
                    })
                }
            }
        }
        Ok(Paging(page))
    }
}

/// A JSON object as the body, deserialized into `T` (an empty body reads as `{}`).
/// Anything else is a 400 naming the offending field's JSON path (see [`JsonValue`]
/// for the media type and the syntax).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let JsonValue(value) = JsonValue::from_request(request, state).await?;
        from_object(value).map(JsonBody)
    }
}

/// Any JSON value as the body (an empty body reads as `{}`). The body must come as
/// `Content-Type: application/json` (parameters such as `; charset=utf-8` aside),
/// else 415; only an empty body may come without one. JSON that does not parse is a
/// 400 `invalid JSON body: ...` naming the path where it broke off.
#[derive(Debug)]
pub struct JsonValue(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonValue {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
        // Refused before the body is read.
        if content_type.as_ref().is_some_and(|value| !is_json(value)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        require_json(content_type.as_ref(), &bytes)?;
        parse_json(&bytes).map(JsonValue)
    }
}

/// The body's bytes as received (over [`BODY_LIMIT`] is a 413).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge,
                status => ApiError::Request(status, rejection.body_text()),
            })
    }
}

/// A body of `content_type` may be parsed as JSON: `application/json`, or no type at
/// all for an empty body.
pub(crate) fn require_json(
    content_type: Option<&HeaderValue>,
    body: &[u8],
) -> Result<(), ApiError> {
    match content_type {
        Some(value) if is_json(value) => Ok(()),
        None if body.trim_ascii().is_empty() => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// `application/json`, in any case, with or without parameters.
fn is_json(content_type: &HeaderValue) -> bool {
    content_type
        .to_str()
        .ok()
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}
