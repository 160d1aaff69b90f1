//! An HTTP service over jobprep's async facade: axum on tokio, every database call on
//! tokio's blocking pool through `AsyncDb`, JSON with the original app's field names.
//!
//! ```sh
//! # Development: embedded SQLite on 127.0.0.1:3000, the caller taken from `x-user-id`.
//! cargo run -p jobprep-cli --example http_service -- --insecure-dev-auth
//! curl -X PUT localhost:3000/users/me -H 'x-user-id: user_1' \
//!      -H 'content-type: application/json' -d '{"name": "Ada", "email": "ada@example.com"}'
//! curl -X POST localhost:3000/job-infos -H 'x-user-id: user_1' \
//!      -H 'content-type: application/json' \
//!      -d '{"name": "SRE", "experienceLevel": "senior", "description": "On call"}'
//! # With the provider's signing secret: the webhook is verified.
//! CLERK_WEBHOOK_SECRET=whsec_... cargo run -p jobprep-cli --example http_service -- \
//!      --database-url postgres://... --bind 127.0.0.1:8080
//! ```
//!
//! **Who is authenticated.**
//!
//! - `POST /webhooks/auth` is: a request must carry the provider's signature, as Svix
//!   (through which Clerk signs) specifies it. `svix-signature` lists `v1,<base64>`
//!   entries (others are ignored), one of which must be the HMAC-SHA256 of
//!   `{svix-id}.{svix-timestamp}.{body}` under the key that is the base64 after the
//!   `whsec_` of `CLERK_WEBHOOK_SECRET`; `svix-timestamp` (Unix seconds) must be within
//!   5 minutes of the service's clock. A missing, stale or wrong signature answers 401
//!   `{"error": "invalid webhook signature"}` and changes nothing. A delivery replayed
//!   within those 5 minutes is not detected (a service that must refuse replays keeps
//!   the `svix-id`s it has accepted).
//! - Every other route acts for the user that [`authenticate`] returns, and this example
//!   verifies no session: they all answer 401 `{"error": "not authenticated"}` until a
//!   real service puts its session check there (see that function).
//! - `--insecure-dev-auth` (or `JOBPREP_INSECURE_DEV_AUTH=true`) is for development
//!   only: [`authenticate`] then trusts the `x-user-id` header, so any caller can act
//!   as any user, and without a secret the webhook is accepted unsigned. The header
//!   must hold a user id without `,` or whitespace (it goes into `x-cache-tags`, see
//!   [`tag_safe_user_id`]); another value answers the same 401. The
//!   service says so on stderr when it starts. Without a secret and without the flag it
//!   does not start.
//!
//! The user routes read and write only the acting user's rows; another user's id
//! answers 404, like a missing one.
//!
//! | route | does |
//! |---|---|
//! | `PUT /users/me`, `GET /users/me`, `DELETE /users/me` | upsert (`{name, email, imageUrl?}`), read, delete with everything the user owns |
//! | `GET /users/me/usage` | `{interviews, questions}`: the plan quotas |
//! | `POST /job-infos`, `GET /job-infos` | create (`{name, experienceLevel, description, title?}`), list |
//! | `GET`, `PATCH`, `DELETE /job-infos/{id}` | read, change, delete with its interviews and questions |
//! | `POST`, `GET /job-infos/{id}/interviews` | start one (`{duration?, humeChatId?}`), list those with a chat id |
//! | `GET`, `PATCH`, `DELETE /interviews/{id}` | read (with its job info), record `humeChatId`/`duration`/`feedback`, delete |
//! | `POST`, `GET /job-infos/{id}/questions` | add one (`{text, difficulty}`) or a list of 1 to [`MAX_QUESTIONS_PER_REQUEST`] (100) in one transaction, within the question quota; list |
//! | `GET`, `PATCH`, `DELETE /questions/{id}` | read, change, delete |
//! | `POST /webhooks/auth` | the auth provider's (Clerk's) user events: `user.created` and `user.updated` upsert the user, `user.deleted` deletes it; other types answer 204 |
//!
//! The webhook maps the provider's user as the original app's webhook does: the id as
//! it is (without `,` or whitespace, as for `x-user-id`); the name from `first_name` and `last_name` (the email when both are empty);
//! the email whose `id` is `primary_email_address_id` (none is a 400); an empty
//! `image_url` as no image; `created_at` and `updated_at` (epoch milliseconds) as the
//! user's timestamps. It answers 200 with the stored user, or with what the deletion
//! removed (`null` when the user was already gone, so a redelivered event succeeds).
//!
//! Creations answer 201 with the new row's key; reads carry the cache tags they depend
//! on in `x-cache-tags`.
//!
//! **Input.** A body is JSON sent as `Content-Type: application/json` (parameters
//! such as `; charset=utf-8` are fine; a request without a body needs none, and reads
//! as `{}`). Every form is a JSON object, never an array filled in by position; unknown
//! fields, and `null` for a field that cannot be NULL, are refused, as the library's
//! forms do. Each user has a question quota (`--question-quota`, default
//! [`DEFAULT_QUESTION_QUOTA`]); every question is added through the library's
//! quota-checked insert, a list all or nothing.
//!
//! **Errors.** Every error answer has one body, [`ErrorBody`]:
//! `{"error": "...", "field": "...", "constraint": "...", "limit": ...}`, where `error`
//! is always there and the others only when they apply. `field` is the JSON path of
//! what is to blame (`name`, `[1].text` for an element of a list,
//! `data.email_addresses[0].email_address` in the webhook's payload, `""` for the body
//! itself), or the path parameter's name (`jobInfoId`). Messages use the API's words,
//! never Rust's types.
//!
//! | status | when |
//! |---|---|
//! | 400 | the JSON does not parse (`invalid JSON body: ...`, `field` where it broke off), or is not what the route takes, or fails a check (`field` always; a list's element by its index) |
//! | 401 | not authenticated, or a bad webhook signature (the reason only in the service's log) |
//! | 403 | the question quota is used up: `{"error": "question quota of 20 reached", "limit": 20}`. Not 429: waiting does not help (only fewer questions or a larger plan do), and clients and proxies retry 429 by themselves |
//! | 404 | no such row (or another user's), or no such route |
//! | 405 | the route does not take the method (with `Allow`) |
//! | 409 | the write conflicts, with `constraint` when the database names one |
//! | 413 | the body is over [`BODY_LIMIT`] bytes, or a list is over [`MAX_QUESTIONS_PER_REQUEST`] (`field` `""`); `limit` names the limit |
//! | 415 | the body is not sent as `application/json` |
//! | 500 | a bug or an unclassified database error (details only in the service's log) |
//! | 503 | the database is unavailable: retry (`Retry-After: 1`) |
//!
//! Reads answer the same bytes from the cache as when they were read (serialized
//! once), so a hit is byte-identical to its miss.
//!
//! **Read cache.** `GET /job-infos` and `GET /job-infos/{id}` are served from a small
//! in-memory cache keyed by route and caller, each entry stored under the cache tags
//! its read returned (`x-cache: hit` or `miss`). The service's own writes invalidate it
//! through the `Db`'s tag sink, before they answer; writes by any other process (another
//! instance, the original app, `psql`) through the cache feed's listener. Without a
//! listener (PostgreSQL without `jobprep cache-feed install`) the cache stays off, so
//! nothing stale is ever served; on SQLite the feed only carries this process's writes,
//! so run one process per SQLite file.
//!
//! `tests/http_service.rs` includes this file and drives [`serve`] on both backends.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{
    DefaultBodyLimit, FromRef, FromRequest, FromRequestParts, Path, Request, State,
};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use clap::Parser;
use hmac::{Hmac, Mac};
use jobprep_interviews::{asynch as interviews, InterviewChanges, NewInterview};
use jobprep_job_infos::{asynch as job_infos, JobInfoChanges, NewJobInfo};
use jobprep_questions::{asynch as questions, NewQuestion, QuestionChanges};
use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::feed::{FeedEvent, FeedOptions, Listener, StopHandle};
use jobprep_repo::{
    CacheTag, Cached, Db, DbConfig, Error, InterviewId, JobInfoId, QuestionId, TagSink,
};
use jobprep_users::{asynch as users, NewUser, UserId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;

/// The request header that names the caller in development mode.
pub const USER_HEADER: &str = "x-user-id";

/// The environment variable that holds the webhook's signing secret (`whsec_...`).
pub const WEBHOOK_SECRET_ENV: &str = "CLERK_WEBHOOK_SECRET";

/// How far `svix-timestamp` may be from the service's clock, either way (Svix's default).
pub const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The most bytes a request body may hold (axum's default, made explicit so the 413
/// can name it).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The most questions one `POST /job-infos/{id}/questions` may add.
pub const MAX_QUESTIONS_PER_REQUEST: usize = 100;

/// How many questions a user may have when `--question-quota` is not given. This
/// example knows no plans; a real service takes the limit from the user's plan.
pub const DEFAULT_QUESTION_QUOTA: u32 = 1000;

#[derive(Debug, Parser)]
#[command(about = "jobprep over HTTP (an example service)")]
struct Args {
    /// postgres://..., sqlite://PATH or a file path. Default: DATABASE_URL, else the
    /// embedded SQLite file.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// The address to listen on.
    #[arg(long, env = "JOBPREP_HTTP_BIND", default_value = "127.0.0.1:3000")]
    bind: SocketAddr,

    /// Development only: trust the x-user-id header as the caller, and accept unsigned
    /// webhooks when CLERK_WEBHOOK_SECRET is not set.
    #[arg(long, env = "JOBPREP_INSECURE_DEV_AUTH")]
    insecure_dev_auth: bool,

    /// How many questions a user may have; adding more answers 403.
    #[arg(long, env = "JOBPREP_QUESTION_QUOTA", default_value_t = DEFAULT_QUESTION_QUOTA)]
    question_quota: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // From the environment only: a secret on the command line shows in `ps`.
    let secret = std::env::var(WEBHOOK_SECRET_ENV).ok();
    let auth = match Auth::new(secret.as_deref(), args.insecure_dev_auth) {
        Ok(auth) => auth,
        Err(error) => {
            eprintln!("http_service: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("http_service: {}", auth.describe());
    let db = match open(args.database_url.as_deref(), auth).await {
        Ok(db) => db.with_question_quota(args.question_quota),
        Err(error) => {
            eprintln!("http_service: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(args.bind).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("http_service: cannot listen on {}: {error}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    println!("jobprep on http://{} ({})", args.bind, db.backend());
    let ctrl_c = async {
        // Without a signal handler, run until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    match serve_with_shutdown(listener, db, ctrl_c).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("http_service: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The service's state: the database, its read cache, how callers are authenticated
/// and the question quota.
#[derive(Clone)]
pub struct Service {
    db: AsyncDb,
    cache: ReadCache,
    auth: Auth,
    question_quota: u32,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("backend", &self.backend())
            .field("caching", &self.caching())
            .field("auth", &self.auth)
            .field("question_quota", &self.question_quota)
            .finish()
    }
}

impl FromRef<Service> for AsyncDb {
    fn from_ref(service: &Service) -> AsyncDb {
        service.db.clone()
    }
}

impl FromRef<Service> for ReadCache {
    fn from_ref(service: &Service) -> ReadCache {
        service.cache.clone()
    }
}

impl FromRef<Service> for Auth {
    fn from_ref(service: &Service) -> Auth {
        service.auth.clone()
    }
}

impl Service {
    /// The backend the service runs on.
    pub fn backend(&self) -> jobprep_repo::Backend {
        self.db.backend()
    }

    /// Whether reads are cached (a cache-feed listener is running).
    pub fn caching(&self) -> bool {
        self.cache.0.enabled.load(Ordering::SeqCst)
    }

    /// The service with `limit` as every user's question quota (default
    /// [`DEFAULT_QUESTION_QUOTA`]).
    pub fn with_question_quota(mut self, limit: u32) -> Service {
        self.question_quota = limit;
        self
    }
}

/// The service for `database_url` (default: `DATABASE_URL`, else the embedded SQLite
/// file), migrated, with its read cache following the cache feed when it can, and its
/// callers authenticated as `auth` says.
pub async fn open(database_url: Option<&str>, auth: Auth) -> jobprep_repo::Result<Service> {
    let cache = ReadCache::default();
    let sink: Arc<dyn TagSink> = Arc::new(cache.clone());
    let config = match database_url.filter(|url| !url.trim().is_empty()) {
        Some(url) => DbConfig::parse(url)?,
        None => DbConfig::from_env()?,
    };
    let db = AsyncDb::new(Db::from_config(config, sink)?);
    db.migrate().await?;
    if let Err(error) = cache.follow(db.sync()) {
        eprintln!("http_service: read cache off: {error}");
    }
    Ok(Service {
        db,
        cache,
        auth,
        question_quota: DEFAULT_QUESTION_QUOTA,
    })
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, service: Service) -> std::io::Result<()> {
    serve_with_shutdown(listener, service, std::future::pending()).await
}

/// Serves the API on `listener` until `shutdown` completes, then lets the requests in
/// flight finish.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    service: Service,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Every route, over `service`.
pub fn router(service: Service) -> Router {
    Router::new()
        .route("/users/me", get(get_me).put(put_me).delete(delete_me))
        .route("/users/me/usage", get(usage))
        .route("/job-infos", get(list_job_infos).post(create_job_info))
        .route(
            "/job-infos/{id}",
            get(get_job_info)
                .patch(update_job_info)
                .delete(delete_job_info),
        )
        .route(
            "/job-infos/{id}/interviews",
            get(list_interviews).post(create_interview),
        )
        .route(
            "/job-infos/{id}/questions",
            get(list_questions).post(create_questions),
        )
        .route(
            "/interviews/{id}",
            get(get_interview)
                .patch(update_interview)
                .delete(delete_interview),
        )
        .route(
            "/questions/{id}",
            get(get_question)
                .patch(update_question)
                .delete(delete_question),
        )
        .route("/webhooks/auth", post(auth_webhook))
        // After the routes: it applies to those registered before it.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NoRoute })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(service)
}

// ---- authentication ----

/// How the service authenticates its callers, set once at start-up (see the module
/// docs).
#[derive(Clone, Debug)]
pub struct Auth {
    /// Verifies the webhook; `None` only in development mode without a secret.
    webhook: Option<Arc<WebhookVerifier>>,
    /// Development mode: [`authenticate`] trusts the `x-user-id` header.
    insecure_dev: bool,
}

impl Auth {
    /// From the webhook's signing secret (`whsec_...`; empty counts as none) and the
    /// development flag. Without a secret only development mode starts; a secret that
    /// does not decode never does.
    pub fn new(webhook_secret: Option<&str>, insecure_dev: bool) -> Result<Auth, String> {
        let webhook = match webhook_secret.map(str::trim).filter(|s| !s.is_empty()) {
            Some(secret) => Some(Arc::new(WebhookVerifier::new(secret, WEBHOOK_TOLERANCE)?)),
            None if insecure_dev => None,
            None => {
                return Err(format!(
                    "set {WEBHOOK_SECRET_ENV} to the auth provider's webhook signing secret \
                     (whsec_...), or pass --insecure-dev-auth for development"
                ))
            }
        };
        Ok(Auth {
            webhook,
            insecure_dev,
        })
    }

    /// One line for the start-up log: what is verified and what is trusted.
    pub fn describe(&self) -> String {
        let webhook = if self.webhook.is_some() {
            "webhook signatures are verified".to_owned()
        } else {
            format!("INSECURE: webhooks are not verified (no {WEBHOOK_SECRET_ENV})")
        };
        let callers = if self.insecure_dev {
            format!(
                "INSECURE: the {USER_HEADER} header is trusted as the caller (--insecure-dev-auth)"
            )
        } else {
            "no session is verified, so every user route answers 401 until authenticate() \
             checks sessions"
                .to_owned()
        };
        format!("{webhook}; {callers}")
    }

    /// Checks a webhook request before anything reads its body.
    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
        match &self.webhook {
            Some(verifier) => verifier
                .verify(headers, body, unix_now())
                .map_err(ApiError::WebhookSignature),
            // Development mode without a secret, refused at start-up otherwise.
            None => Ok(()),
        }
    }
}

/// The acting user of a request to any route but the webhook.
///
/// **This is where a real service authenticates its callers, and this example does
/// not**: outside development mode it refuses every request (401). Put your session
/// check here. For the original app's provider (Clerk) that is the session token, a JWT
/// in `Authorization: Bearer ...` (or the browser's `__session` cookie): verify its
/// signature against the provider's JWKS, its `exp` and `nbf`, and its `azp` against
/// your own origins; the user id is its `sub` claim. Anything that does not verify is
/// [`ApiError::Unauthenticated`].
///
/// In development mode (`--insecure-dev-auth`) it trusts the `x-user-id` header, so any
/// caller can act as any user, if it holds a [`tag_safe_user_id`] (the reason for a
/// refusal goes to the service's log).
pub fn authenticate(parts: &Parts, auth: &Auth) -> Result<UserId, ApiError> {
    if !auth.insecure_dev {
        return Err(ApiError::Unauthenticated);
    }
    let header = parts
        .headers
        .get(USER_HEADER)
        .ok_or(ApiError::Unauthenticated)?;
    let id = header.to_str().map_err(|_| ApiError::Unauthenticated)?;
    tag_safe_user_id(id).map_err(|reason| {
        eprintln!("http_service: 401: {USER_HEADER} {reason}");
        ApiError::Unauthenticated
    })
}

/// A user id as `UserId::new` takes it (non-blank, at most 255 characters, no NUL),
/// and without `,` or whitespace: the library allows both, but the id goes into the
/// `x-cache-tags` header, a comma-separated list, where a comma would split one tag
/// into two. Used for `x-user-id` and for the webhook's `data.id`.
pub fn tag_safe_user_id(id: &str) -> Result<UserId, String> {
    if id.contains(',') || id.chars().any(char::is_whitespace) {
        return Err("must not contain commas or whitespace".to_owned());
    }
    UserId::new(id).map_err(|error| match error {
        Error::InvalidInput { reason, .. } => reason,
        other => other.to_string(),
    })
}

type HmacSha256 = Hmac<Sha256>;

/// Verifies the auth provider's webhook signatures as Svix specifies them (see the
/// module docs).
#[derive(Clone)]
pub struct WebhookVerifier {
    key: Vec<u8>,
    tolerance: Duration,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookVerifier")
            .field("key", &"<redacted>")
            .field("tolerance", &self.tolerance)
            .finish()
    }
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

impl WebhookVerifier {
    /// The verifier for `secret`: `whsec_` and the base64 key, as the provider shows it
    /// (the bare base64 is taken too, as Svix's own libraries do), accepting timestamps
    /// within `tolerance` of the clock.
    pub fn new(secret: &str, tolerance: Duration) -> Result<WebhookVerifier, String> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = BASE64
            .decode(encoded)
            .map_err(|error| format!("{WEBHOOK_SECRET_ENV} is not whsec_ and base64: {error}"))?;
        // An empty key is one anyone can sign with.
        if key.is_empty() {
            return Err(format!("{WEBHOOK_SECRET_ENV} holds an empty key"));
        }
        Ok(WebhookVerifier { key, tolerance })
    }

    /// Checks the `svix-id`, `svix-timestamp` and `svix-signature` headers against
    /// `body`, the raw bytes as received, at `now` (Unix seconds).
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), SignatureError> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .ok_or(SignatureError::MissingHeader(name))
        };
        let id = header("svix-id")?;
        let timestamp = header("svix-timestamp")?;
        let signatures = header("svix-signature")?;
        let sent: i64 = timestamp
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        if now.abs_diff(sent) > self.tolerance.as_secs() {
            return Err(SignatureError::Stale);
        }
        // HMAC takes a key of any length; this cannot fail.
        let mut mac =
            HmacSha256::new_from_slice(&self.key).map_err(|_| SignatureError::Mismatch)?;
        for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
            mac.update(part);
        }
        // Several entries during a secret rotation; other versions than v1 are skipped.
        let matches = signatures
            .split_ascii_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|signature| BASE64.decode(signature).ok())
            // `verify_slice` compares in constant time.
            .any(|signature| mac.clone().verify_slice(&signature).is_ok());
        if matches {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// The clock, in Unix seconds (0 before 1970, which no timestamp is near).
fn unix_now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

// ---- users ----

/// The profile the auth provider knows; the id is the caller's.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    name: String,
    email: String,
    #[serde(default)]
    image_url: Option<String>,
}

async fn put_me(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    JsonBody(profile): JsonBody<Profile>,
) -> Result<Response, ApiError> {
    let user = NewUser {
        image_url: profile.image_url,
        ..NewUser::new(me, profile.name, profile.email)
    };
    Ok(Json(users::upsert(&db, user).await?).into_response())
}

async fn get_me(State(db): State<AsyncDb>, Owner(me): Owner) -> Result<Response, ApiError> {
    cached(users::get(&db, me).await?)
}

async fn delete_me(State(db): State<AsyncDb>, Owner(me): Owner) -> Result<Response, ApiError> {
    Ok(Json(users::delete(&db, me).await?).into_response())
}

#[derive(Debug, Serialize)]
struct Usage {
    interviews: i64,
    questions: i64,
}

async fn usage(State(db): State<AsyncDb>, Owner(me): Owner) -> Result<Response, ApiError> {
    // Two independent reads, in flight at once.
    let (interviews, questions) = tokio::try_join!(
        interviews::count_for_user(&db, me.clone()),
        questions::count_for_user(&db, me),
    )?;
    let tags = [interviews.tags, questions.tags].concat();
    let usage = Usage {
        interviews: interviews.value,
        questions: questions.value,
    };
    cached(Cached::new(usage, tags))
}

// ---- the auth provider's webhook ----

/// An event of the auth provider: `{"type": "user.created", "data": {...}, ...}`.
#[derive(Debug, Deserialize)]
struct AuthEvent {
    #[serde(rename = "type")]
    kind: String,
    data: Value,
}

/// The provider's user, in its own field names. Email addresses are read one by one
/// (see [`new_user_from_provider`]), so each is refused unless it is an object.
#[derive(Debug, Deserialize)]
struct ProviderUser {
    id: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email_addresses: Vec<Value>,
    #[serde(default)]
    primary_email_address_id: Option<String>,
    #[serde(default)]
    image_url: Option<String>,
    /// Epoch milliseconds.
    created_at: i64,
    /// Epoch milliseconds.
    updated_at: i64,
}

#[derive(Debug, Deserialize)]
struct ProviderEmail {
    id: String,
    email_address: String,
}

/// What `user.deleted` carries: `{"id": ..., "deleted": true, "object": "user"}`.
#[derive(Debug, Deserialize)]
struct ProviderDeletedUser {
    id: String,
}

async fn auth_webhook(
    State(db): State<AsyncDb>,
    State(auth): State<Auth>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    // The signature covers the bytes as received: checked before they are parsed.
    auth.verify_webhook(&headers, &body)?;
    require_json(headers.get(header::CONTENT_TYPE), &body)?;
    let event: AuthEvent = from_object(parse_json(&body)?)?;
    match event.kind.as_str() {
        "user.created" | "user.updated" => {
            let user = new_user_from_provider(event_data(event.data)?)?;
            Ok(Json(users::upsert(&db, user).await?).into_response())
        }
        "user.deleted" => {
            let deleted: ProviderDeletedUser = event_data(event.data)?;
            let id = provider_user_id(&deleted.id)?;
            match users::delete(&db, id).await {
                Ok(removed) => Ok(Json(Some(removed)).into_response()),
                // Already gone: a redelivered event succeeds.
                Err(Error::NotFound { .. }) => Ok(Json(Value::Null).into_response()),
                Err(error) => Err(error.into()),
            }
        }
        // Events this service does not subscribe to: acknowledged, so they are not
        // delivered again.
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The provider's `data.id` as a user id ([`tag_safe_user_id`]).
fn provider_user_id(id: &str) -> Result<UserId, ApiError> {
    tag_safe_user_id(id).map_err(|reason| ApiError::invalid("data.id", reason))
}

/// The provider's user as jobprep's upsert form (see the module docs). Every refusal
/// names the provider's field, as a path into its payload; jobprep's own checks of
/// the form are run here, so their fields can be named so too.
fn new_user_from_provider(user: ProviderUser) -> Result<NewUser, ApiError> {
    let id = provider_user_id(&user.id)?;
    let mut emails = Vec::with_capacity(user.email_addresses.len());
    for (i, email) in user.email_addresses.into_iter().enumerate() {
        let email: ProviderEmail =
            from_object(email).map_err(|e| e.at(&format!("data.email_addresses[{i}]")))?;
        emails.push(email);
    }
    let primary = emails
        .iter()
        .position(|email| Some(&email.id) == user.primary_email_address_id.as_ref())
        .ok_or_else(|| {
            ApiError::invalid(
                "data.primary_email_address_id",
                "no entry of data.email_addresses has this id",
            )
        })?;
    let email = emails.swap_remove(primary).email_address;
    let first_name = user
        .first_name
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    let last_name = user.last_name.as_deref().map(str::trim).unwrap_or_default();
    let name_from = match (first_name.is_empty(), last_name.is_empty()) {
        (false, _) => "data.first_name",
        (true, false) => "data.last_name",
        (true, true) => "email",
    };
    let name = [first_name, last_name]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name = if name.is_empty() { email.clone() } else { name };
    let time = |field: &str, millis: i64| {
        chrono::DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| ApiError::invalid(field, "not a time in epoch milliseconds"))
    };
    let created_at = time("data.created_at", user.created_at)?;
    let updated_at = time("data.updated_at", user.updated_at)?;
    if user.updated_at < user.created_at {
        return Err(ApiError::invalid(
            "data.updated_at",
            "must not be before data.created_at",
        ));
    }
    let new = NewUser {
        // The provider sends "" for a user without an image; the column holds NULL.
        image_url: user.image_url.filter(|url| !url.trim().is_empty()),
        ..NewUser::new(id, name, email).with_provider_timestamps(created_at, updated_at)
    };
    let email_path = format!("data.email_addresses[{primary}].email_address");
    new.validate().map_err(|error| match error {
        Error::InvalidInput { field, reason } => {
            let path = match field {
                "name" if name_from == "email" => email_path.as_str(),
                "name" => name_from,
                "email" => email_path.as_str(),
                "imageUrl" => "data.image_url",
                "createdAt" => "data.created_at",
                "updatedAt" => "data.updated_at",
                _ => "data",
            };
            ApiError::invalid(path, reason)
        }
        other => other.into(),
    })?;
    Ok(new)
}

/// An event's `data`: an object, with a field that fails to deserialize named as
/// `data.{field}`.
fn event_data<T: DeserializeOwned>(data: Value) -> Result<T, ApiError> {
    from_object(data).map_err(|error| error.at("data"))
}

// ---- job infos ----

async fn create_job_info(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    JsonBody(job): JsonBody<NewJobInfo>,
) -> Result<Response, ApiError> {
    Ok(created(job_infos::insert(&db, me, job).await?))
}

async fn list_job_infos(
    State(db): State<AsyncDb>,
    State(cache): State<ReadCache>,
    Owner(me): Owner,
) -> Result<Response, ApiError> {
    let key = format!("{me} /job-infos");
    cache.serve(key, job_infos::list_for_user(&db, me)).await
}

async fn get_job_info(
    State(db): State<AsyncDb>,
    State(cache): State<ReadCache>,
    Owner(me): Owner,
    Id(id): Id<JobInfoId>,
) -> Result<Response, ApiError> {
    let key = format!("{me} /job-infos/{id}");
    cache.serve(key, job_infos::get(&db, me, id)).await
}

async fn update_job_info(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<JobInfoId>,
    JsonBody(changes): JsonBody<JobInfoChanges>,
) -> Result<Response, ApiError> {
    Ok(Json(job_infos::update(&db, me, id, changes).await?).into_response())
}

async fn delete_job_info(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<JobInfoId>,
) -> Result<Response, ApiError> {
    Ok(Json(job_infos::delete(&db, me, id).await?).into_response())
}

// ---- interviews ----

/// A new interview; the job info comes from the path. As in the library's forms, an
/// unknown field and `null` for the duration (a column that cannot be NULL) are
/// refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InterviewForm {
    #[serde(default, deserialize_with = "not_null")]
    duration: Option<String>,
    #[serde(default)]
    hume_chat_id: Option<String>,
}

async fn create_interview(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(job_info_id): Id<JobInfoId>,
    JsonBody(form): JsonBody<InterviewForm>,
) -> Result<Response, ApiError> {
    let mut interview = NewInterview::new();
    if let Some(duration) = form.duration {
        interview.duration = duration;
    }
    interview.hume_chat_id = form.hume_chat_id;
    Ok(created(
        interviews::insert(&db, me, job_info_id, interview).await?,
    ))
}

async fn list_interviews(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(job_info_id): Id<JobInfoId>,
) -> Result<Response, ApiError> {
    cached(interviews::list_for_job_info(&db, me, job_info_id).await?)
}

async fn get_interview(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<InterviewId>,
) -> Result<Response, ApiError> {
    cached(interviews::get(&db, me, id).await?)
}

async fn update_interview(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<InterviewId>,
    JsonBody(changes): JsonBody<InterviewChanges>,
) -> Result<Response, ApiError> {
    Ok(Json(interviews::update(&db, me, id, changes).await?).into_response())
}

async fn delete_interview(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<InterviewId>,
) -> Result<Response, ApiError> {
    Ok(Json(interviews::delete(&db, me, id).await?).into_response())
}

// ---- questions ----

/// One question (an object) or a list of 1 to [`MAX_QUESTIONS_PER_REQUEST`], within
/// the user's question quota. A list is written in one transaction, each question
/// through the library's quota-checked insert (it has no quota-checked bulk insert),
/// so a list that would go over the quota is refused as a whole.
async fn create_questions(
    State(service): State<Service>,
    Owner(me): Owner,
    Id(job_info_id): Id<JobInfoId>,
    JsonValue(body): JsonValue,
) -> Result<Response, ApiError> {
    let quota = service.question_quota;
    let items = match body {
        Value::Array(items) => items,
        body @ Value::Object(_) => {
            let one: NewQuestion = from_object(body)?;
            let key = questions::insert_within_quota(&service.db, me, job_info_id, one, quota);
            return Ok(created(key.await?));
        }
        other => {
            return Err(ApiError::invalid(
                "",
                format!(
                    "expected a question (a JSON object) or a list of them, found {}",
                    kind(&other)
                ),
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::invalid("", "the list of questions is empty"));
    }
    if items.len() > MAX_QUESTIONS_PER_REQUEST {
        return Err(ApiError::TooManyQuestions);
    }
    let at = |i: usize| move |error: ApiError| error.at(&format!("[{i}]"));
    let mut many = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let question: NewQuestion = from_object(item).map_err(at(i))?;
        // The library's checks, before the transaction, with the element's index.
        question.validate().map_err(ApiError::from).map_err(at(i))?;
        many.push(question);
    }
    let keys = service
        .db
        .transaction_with_error(move |tx| {
            let mut keys = Vec::with_capacity(many.len());
            for (i, question) in many.iter().enumerate() {
                let key =
                    jobprep_questions::insert_within_quota(tx, &me, job_info_id, question, quota);
                keys.push(key.map_err(ApiError::from).map_err(at(i))?);
            }
            Ok::<_, ApiError>(keys)
        })
        .await?;
    Ok(created(keys))
}

async fn list_questions(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(job_info_id): Id<JobInfoId>,
) -> Result<Response, ApiError> {
    cached(questions::list_for_job_info(&db, me, job_info_id).await?)
}

async fn get_question(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<QuestionId>,
) -> Result<Response, ApiError> {
    cached(questions::get(&db, me, id).await?)
}

async fn update_question(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<QuestionId>,
    JsonBody(changes): JsonBody<QuestionChanges>,
) -> Result<Response, ApiError> {
    Ok(Json(questions::update(&db, me, id, changes).await?).into_response())
}

async fn delete_question(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<QuestionId>,
) -> Result<Response, ApiError> {
    Ok(Json(questions::delete(&db, me, id).await?).into_response())
}

// ---- read cache ----

/// A read's answer as it goes out: the JSON bytes, serialized once, and the cache tags
/// it depends on. The cache keeps these very bytes, so a hit is byte-identical to the
/// miss that stored it.
type CachedBody = (Vec<CacheTag>, Bytes);

/// Read results under the cache tags they depend on, invalidated by the `Db`'s sink
/// (this process's writes) and by the cache feed (everyone's).
#[derive(Clone, Default)]
pub struct ReadCache(Arc<CacheInner>);

#[derive(Default)]
struct CacheInner {
    /// Off until a listener follows the feed: without it, entries could go stale.
    enabled: AtomicBool,
    /// Bumped by every invalidation: a read that started before one does not store
    /// its (possibly older) result.
    generation: AtomicU64,
    entries: Mutex<HashMap<String, CachedBody>>,
    listener: Mutex<Option<StopHandle>>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("enabled", &self.0.enabled.load(Ordering::SeqCst))
            .field("entries", &self.entries().len())
            .finish()
    }
}

impl Drop for CacheInner {
    fn drop(&mut self) {
        if let Some(stop) = self.listener.get_mut().ok().and_then(Option::take) {
            stop.stop();
        }
    }
}

impl ReadCache {
    /// Starts a cache-feed listener that invalidates this cache, and turns it on.
    fn follow(&self, db: &Db) -> jobprep_repo::Result<()> {
        let listener = Listener::start(db, FeedOptions::default())?;
        *self.lock_listener() = Some(listener.stop_handle());
        let cache: Weak<CacheInner> = Arc::downgrade(&self.0);
        std::thread::spawn(move || {
            for event in listener {
                // The service is gone: dropping the listener closes its connection.
                let Some(cache) = cache.upgrade().map(ReadCache) else {
                    return;
                };
                match event {
                    FeedEvent::Tags(tags) => cache.invalidate(&tags),
                    FeedEvent::Reset => cache.clear(),
                }
            }
        });
        self.0.enabled.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Answers from the cache, or runs `read` and keeps its serialized result.
    async fn serve<T: Serialize>(
        &self,
        key: String,
        read: impl std::future::Future<Output = jobprep_repo::Result<Cached<T>>>,
    ) -> Result<Response, ApiError> {
        if let Some((tags, body)) = self.entries().get(&key).cloned() {
            return Ok(with_cache_header(tagged_json(&tags, body), "hit"));
        }
        let generation = self.0.generation.load(Ordering::SeqCst);
        let read = read.await?;
        let body = json_bytes(&read.value)?;
        if self.0.enabled.load(Ordering::SeqCst) {
            let mut entries = self.entries();
            // Checked under the lock that invalidation takes too.
            if self.0.generation.load(Ordering::SeqCst) == generation {
                entries.insert(key, (read.tags.clone(), body.clone()));
            }
        }
        Ok(with_cache_header(tagged_json(&read.tags, body), "miss"))
    }

    fn invalidate(&self, tags: &[CacheTag]) {
        let mut entries = self.entries();
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, (depends_on, _)| !depends_on.iter().any(|tag| tags.contains(tag)));
    }

    fn clear(&self) {
        let mut entries = self.entries();
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedBody>> {
        self.0.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_listener(&self) -> std::sync::MutexGuard<'_, Option<StopHandle>> {
        self.0.listener.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TagSink for ReadCache {
    /// Called after this process's own writes commit, before they answer.
    fn revalidate(&self, tags: &[CacheTag]) {
        self.invalidate(tags);
    }
}

fn with_cache_header(mut response: Response, state: &'static str) -> Response {
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(state));
    response
}

// ---- responses ----

/// 201 with the new row's key (or keys).
fn created(value: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

/// A read's value, with the cache tags it depends on in `x-cache-tags`.
fn cached<T: Serialize>(read: Cached<T>) -> Result<Response, ApiError> {
    Ok(tagged_json(&read.tags, json_bytes(&read.value)?))
}

/// `value` as the JSON bytes every answer of it carries.
fn json_bytes<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|error| ApiError::Internal(format!("serializing a response: {error}")))
}

/// 200 with `body` (JSON) and `tags` in `x-cache-tags`.
fn tagged_json(tags: &[CacheTag], body: Bytes) -> Response {
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

// ---- extractors ----

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
fn require_json(content_type: Option<&HeaderValue>, body: &[u8]) -> Result<(), ApiError> {
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

/// The body's JSON (empty reads as `{}`); a syntax error is [`ApiError::Malformed`].
fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    let bytes: &[u8] = if bytes.trim_ascii().is_empty() {
        b"{}"
    } else {
        bytes
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        ApiError::Malformed {
            field: json_path(error.path()),
            message: error.into_inner().to_string(),
        }
    })?;
    deserializer.end().map_err(|error| ApiError::Malformed {
        field: String::new(),
        message: error.to_string(),
    })?;
    Ok(value)
}

/// `value` as `T`, which is a struct: anything but a JSON object is refused here,
/// because serde would fill a struct from an array by position.
fn from_object<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid(
            "",
            format!("expected a JSON object, found {}", kind(&value)),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = json_path(error.path());
        let (field, message) = in_api_words(path, &error.into_inner().to_string());
        ApiError::Invalid { field, message }
    })
}

/// `null` refused, any other value taken (with `#[serde(default)]`: absent is `None`).
fn not_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A path as JSON spells it: `name`, `[1].text`, `data.email_addresses[0].id`; `""`
/// for the body itself.
fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out = join_path(&out, &format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => out = join_path(&out, key),
            // A place the parser could not name: the path so far.
            Segment::Unknown => break,
        }
    }
    out
}

/// `prefix` and then `path`, both JSON paths.
fn join_path(prefix: &str, path: &str) -> String {
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
fn last_name(path: &str) -> &str {
    let last = path.rsplit('.').next().unwrap_or(path);
    last.split('[').next().unwrap_or(last)
}

/// What kind of JSON value `value` is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A serde error at `path` as the field to blame and a message in the API's words,
/// without Rust's type names: a missing or unknown field is named in the path.
fn in_api_words(path: String, message: &str) -> (String, String) {
    // "`name`, expected one of `a`, `b`" as the name and "one of a, b".
    let quoted = |rest: &'_ str| -> (String, String) {
        let (name, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = rest.strip_prefix(", expected ").unwrap_or_default();
        (name.to_owned(), expected.replace('`', ""))
    };
    // The field's path: the tracked path names an unknown field already, not a
    // missing one.
    let field_path = |name: &str| {
        if last_name(&path) == name {
            path.clone()
        } else {
            join_path(&path, name)
        }
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let (name, _) = quoted(rest);
        return (field_path(&name), format!("{name} is required"));
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, known) = quoted(rest);
        let message = if known.is_empty() {
            format!("unknown field {name}")
        } else {
            format!("unknown field {name}; expected {known}")
        };
        return (field_path(&name), message);
    }
    if let Some(rest) = message.strip_prefix("duplicate field `") {
        let (name, _) = quoted(rest);
        return (field_path(&name), format!("{name} is given twice"));
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, known) = quoted(rest);
        return (path, format!("expected {known}, found {value}"));
    }
    let mismatch = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rsplit_once(", expected "));
    if let Some((found, expected)) = mismatch {
        let message = format!(
            "expected {}, found {}",
            expected_words(expected),
            found_words(found)
        );
        return (path, message);
    }
    if let Some((_, expected)) = message
        .strip_prefix("invalid length ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        return (path, format!("expected {}", expected_words(expected)));
    }
    // A message of a type's own (the library's checks): already in the API's words.
    (path, message.to_owned())
}

/// What serde says it expected, in the API's words.
fn expected_words(expected: &str) -> String {
    let words = match expected {
        e if e.starts_with("struct ") || e == "a map" || e == "map" => "a JSON object",
        e if e.contains("sequence") || e.starts_with("tuple") || e.starts_with("a tuple") => {
            "a JSON array"
        }
        "a string" | "a borrowed string" | "string" | "string or map" => "a string",
        "a character" | "a char" | "char" => "one character",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "unit" => "null",
        e if e.starts_with("enum ") || e == "variant identifier" => "one of the listed values",
        // A visitor's own description ("a valid date"), unless it names a type.
        e if !e.contains("::") && !e.starts_with(char::is_uppercase) => return e.to_owned(),
        _ => "a different value",
    };
    words.to_owned()
}

/// What serde says it found, in the API's words.
fn found_words(found: &str) -> String {
    let backticked = |rest: &str| rest.trim_end_matches('`').to_owned();
    match found {
        "null" | "unit value" => "null".to_owned(),
        "sequence" => "an array".to_owned(),
        "map" => "an object".to_owned(),
        f if f.starts_with("string ") => "a string".to_owned(),
        f if f.starts_with("boolean `") => backticked(&f["boolean `".len()..]),
        f if f.starts_with("integer `") => {
            format!("the number {}", backticked(&f["integer `".len()..]))
        }
        f if f.starts_with("floating point `") => {
            format!("the number {}", backticked(&f["floating point `".len()..]))
        }
        _ => "another kind of value".to_owned(),
    }
}

// ---- errors ----

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
    fn invalid(path: &str, reason: impl std::fmt::Display) -> ApiError {
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
    fn at(self, prefix: &str) -> ApiError {
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
