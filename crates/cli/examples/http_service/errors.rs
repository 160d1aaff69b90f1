//! Every error a request can end in, and its one HTTP body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobprep_repo::Error;
use serde::Serialize;

use crate::limits::{BODY_LIMIT, MAX_QUESTIONS_PER_REQUEST};

/// Everything a request can fail with, and its HTTP answer: every error has the body
/// [`ErrorBody`].
#[derive(Debug)]
pub enum ApiError {
    /// From the data layer (its `InvalidInput` becomes [`ApiError::Invalid`]).
    Db(Error),
    /// [`authenticate`] found no acting user.
    Unauthenticated,
    /// The webhook's signature is missing, stale or wrong.
    WebhookSignature(SignatureError),
    /// The body is not JSON: `field` is where it broke off.
    Malformed { field: String, message: String },
    /// The JSON is not what the route takes, or the data fails a check: `field` is the
    /// JSON path to blame (`""` for the body itself).
    Invalid { field: String, message: String },
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The body is over [`BODY_LIMIT`].
    BodyTooLarge,
    /// A list of more than [`MAX_QUESTIONS_PER_REQUEST`] questions.
    TooManyQuestions,
    /// The request itself is unusable (path not decodable, body unreadable, ...).
    Request(StatusCode, String),
    /// No such route.
    NoRoute,
    /// The route exists, without this method.
    MethodNotAllowed,
    /// A bug of the service's own (details only in its log).
    Internal(String),
}

impl ApiError {
    /// A data check failed at `path` (a JSON path): the message names the field's
    /// last name and the reason.
    pub(crate) fn invalid(path: &str, reason: impl std::fmt::Display) -> ApiError {
        let message = match last_name(path) {
            "" => reason.to_string(),
            name => format!("invalid {name}: {reason}"),
        };
        ApiError::Invalid {
            field: path.to_owned(),
            message,
        }
    }

    /// This error, found inside the value at `prefix` (an element of a list, the
    /// webhook's `data`): its path starts there.
    pub(crate) fn at(self, prefix: &str) -> ApiError {
        match self {
            ApiError::Invalid { field, message } => ApiError::Invalid {
                field: join_path(prefix, &field),
                message,
            },
            other => other,
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            // `changes` is the change form itself: the body.
            Error::InvalidInput {
                field: "changes",
                reason,
            } => ApiError::invalid("", reason),
            Error::InvalidInput { field, reason } => ApiError::invalid(field, reason),
            other => ApiError::Db(other),
        }
    }
}

/// The one body of every error answer: `error` always; `field` when the request's
/// content is to blame (a JSON path into the body, `""` for the body itself, or the
/// path parameter's name); `constraint` on a 409 (when the database names one); `limit`
/// when a limit was reached (413, a quota's 403).
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

impl ErrorBody {
    fn new(error: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            field: None,
            constraint: None,
            limit: None,
        }
    }

    fn field(self, field: String) -> ErrorBody {
        ErrorBody {
            field: Some(field),
            ..self
        }
    }

    fn limit(self, limit: u64) -> ErrorBody {
        ErrorBody {
            limit: Some(limit),
            ..self
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Db(Error::NotFound { entity }) => (
                StatusCode::NOT_FOUND,
                ErrorBody::new(format!("{entity} not found")),
            ),
            ApiError::Db(Error::InvalidInput { field, reason }) => {
                return ApiError::from(Error::InvalidInput { field, reason }).into_response()
            }
            ApiError::Db(Error::Conflict { constraint, .. }) => (
                StatusCode::CONFLICT,
                ErrorBody {
                    constraint,
                    ..ErrorBody::new("the write conflicts with existing data")
                },
            ),
            // Not 429: waiting does not help, only fewer rows or a larger plan do, and
            // clients and proxies retry 429s by themselves.
            ApiError::Db(error @ Error::QuotaExceeded { limit, .. }) => (
                StatusCode::FORBIDDEN,
                ErrorBody::new(error.to_string()).limit(limit.into()),
            ),
            ApiError::Db(error @ Error::Unavailable { .. }) => {
                eprintln!("http_service: 503: {error}");
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(ErrorBody::new("the database is unavailable; try again")),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            // The write may have been applied: no Retry-After, the client should
            // reload before it sends the write again.
            ApiError::Db(error @ Error::OutcomeUnknown { .. }) => {
                eprintln!("http_service: 504: {error}");
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorBody::new("the write may have been applied; reload before trying again"),
                )
            }
            ApiError::Db(error) => {
                // Configuration, migration and unclassified database errors: the
                // details are for the operator, not the client.
                eprintln!("http_service: 500: {error}");
                internal()
            }
            ApiError::Internal(error) => {
                eprintln!("http_service: 500: {error}");
                internal()
            }
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                ErrorBody::new("not authenticated"),
            ),
            ApiError::WebhookSignature(reason) => {
                // One answer for every reason: the reason is for the operator.
                eprintln!("http_service: 401 on the webhook: {reason}");
                (
                    StatusCode::UNAUTHORIZED,
                    ErrorBody::new("invalid webhook signature"),
                )
            }
            ApiError::Malformed { field, message } => (
                StatusCode::BAD_REQUEST,
                ErrorBody::new(format!("invalid JSON body: {message}")).field(field),
            ),
            ApiError::Invalid { field, message } => (
                StatusCode::BAD_REQUEST,
                ErrorBody::new(message).field(field),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorBody::new("the body must be sent as Content-Type: application/json"),
            ),
            ApiError::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new(format!("the body is larger than {BODY_LIMIT} bytes"))
                    .limit(BODY_LIMIT as u64),
            ),
            ApiError::TooManyQuestions => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new(format!(
                    "at most {MAX_QUESTIONS_PER_REQUEST} questions per request"
                ))
                .field(String::new())
                .limit(MAX_QUESTIONS_PER_REQUEST as u64),
            ),
            ApiError::Request(status, message) => (status, ErrorBody::new(message)),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, ErrorBody::new("no such route")),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorBody::new("this route does not take this method; see the Allow header"),
            ),
        };
        (status, Json(body)).into_response()
    }
}

fn internal() -> (StatusCode, ErrorBody) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorBody::new("internal error"),
    )
}

/// Why a webhook request is refused; each answers the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// A `svix-*` header is missing, or not visible ASCII.
    MissingHeader(&'static str),
    /// `svix-timestamp` is not Unix seconds.
    BadTimestamp,
    /// `svix-timestamp` is further from the service's clock than the tolerance.
    Stale,
    /// No `v1` signature matches.
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureError::MissingHeader(name) => write!(f, "no usable {name} header"),
            SignatureError::BadTimestamp => f.write_str("svix-timestamp is not Unix seconds"),
            SignatureError::Stale => f.write_str("svix-timestamp is outside the tolerance"),
            SignatureError::Mismatch => f.write_str("no v1 signature matches"),
        }
    }
}

/// `prefix` and then `path`, both JSON paths.
pub(crate) fn join_path(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_owned()
    } else if path.is_empty() {
        prefix.to_owned()
    } else if path.starts_with('[') {
        format!("{prefix}{path}")
    } else {
        format!("{prefix}.{path}")
    }
}

/// The last name in a JSON path (`email_address` of `data.email_addresses[0].email_address`).
pub(crate) fn last_name(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}
