//! An HTTP service over jobprep's async facade: axum on tokio, every database call on
//! tokio's blocking pool through `AsyncDb`, JSON with the original app's field names.
//!
//! ```sh
//! # Development: embedded SQLite on 127.0.0.1:3000, the caller taken from `x-user-id`.
//! cargo run -p jobprep-cli --example http_service -- --insecure-dev-auth
//! curl -X PUT localhost:3000/users/me -H 'x-user-id: user_1' \
//!      -d '{"name": "Ada", "email": "ada@example.com"}'
//! curl -X POST localhost:3000/job-infos -H 'x-user-id: user_1' \
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
//!   only: [`authenticate`] then trusts the `x-user-id` header as it is, so any caller
//!   can act as any user, and without a secret the webhook is accepted unsigned. The
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
//! | `POST`, `GET /job-infos/{id}/questions` | add one (`{text, difficulty}`) or many (an array), list |
//! | `GET`, `PATCH`, `DELETE /questions/{id}` | read, change, delete |
//! | `POST /webhooks/auth` | the auth provider's (Clerk's) user events: `user.created` and `user.updated` upsert the user, `user.deleted` deletes it; other types answer 204 |
//!
//! The webhook maps the provider's user as the original app's webhook does: the id as
//! it is; the name from `first_name` and `last_name` (the email when both are empty);
//! the email whose `id` is `primary_email_address_id` (none is a 400); an empty
//! `image_url` as no image; `created_at` and `updated_at` (epoch milliseconds) as the
//! user's timestamps. It answers 200 with the stored user, or with what the deletion
//! removed (`null` when the user was already gone, so a redelivered event succeeds).
//!
//! Creations answer 201 with the new row's key; reads carry the cache tags they depend
//! on in `x-cache-tags`. Errors are `{"error": ...}`: 400 (with `"field"` when one is to
//! blame), 401 (not authenticated, or a bad webhook signature; the reason only in the
//! service's log), 404, 409 (with `"constraint"`), 503 (retry), 500 (details only in the
//! service's log).
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
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request, State};
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
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::TcpListener;

/// The request header that names the caller in development mode.
pub const USER_HEADER: &str = "x-user-id";

/// The environment variable that holds the webhook's signing secret (`whsec_...`).
pub const WEBHOOK_SECRET_ENV: &str = "CLERK_WEBHOOK_SECRET";

/// How far `svix-timestamp` may be from the service's clock, either way (Svix's default).
pub const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

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
        Ok(db) => db,
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

/// The service's state: the database, its read cache and how callers are authenticated.
#[derive(Clone)]
pub struct Service {
    db: AsyncDb,
    cache: ReadCache,
    auth: Auth,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("backend", &self.backend())
            .field("caching", &self.caching())
            .field("auth", &self.auth)
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
    Ok(Service { db, cache, auth })
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
        .fallback(|| async { ApiError::NoRoute })
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
/// In development mode (`--insecure-dev-auth`) it trusts the `x-user-id` header as it
/// is, so any caller can act as any user.
pub fn authenticate(parts: &Parts, auth: &Auth) -> Result<UserId, ApiError> {
    if !auth.insecure_dev {
        return Err(ApiError::Unauthenticated);
    }
    let header = parts
        .headers
        .get(USER_HEADER)
        .ok_or(ApiError::Unauthenticated)?;
    let id = header.to_str().map_err(|_| ApiError::Unauthenticated)?;
    UserId::new(id).map_err(|_| ApiError::Unauthenticated)
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
#[serde(rename_all = "camelCase")]
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
    Ok(cached(users::get(&db, me).await?))
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
    Ok(cached(Cached::new(usage, tags)))
}

// ---- the auth provider's webhook ----

/// An event of the auth provider: `{"type": "user.created", "data": {...}, ...}`.
#[derive(Debug, Deserialize)]
struct AuthEvent {
    #[serde(rename = "type")]
    kind: String,
    data: serde_json::Value,
}

/// The provider's user, in its own field names.
#[derive(Debug, Deserialize)]
struct ProviderUser {
    id: UserId,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email_addresses: Vec<ProviderEmail>,
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
    id: UserId,
}

async fn auth_webhook(
    State(db): State<AsyncDb>,
    State(auth): State<Auth>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    // The signature covers the bytes as received: checked before they are parsed.
    auth.verify_webhook(&headers, &body)?;
    let event: AuthEvent = parse_json(&body)?;
    match event.kind.as_str() {
        "user.created" | "user.updated" => {
            let user = new_user_from_provider(event_data(event.data)?)?;
            Ok(Json(users::upsert(&db, user).await?).into_response())
        }
        "user.deleted" => {
            let deleted: ProviderDeletedUser = event_data(event.data)?;
            match users::delete(&db, deleted.id).await {
                Ok(removed) => Ok(Json(Some(removed)).into_response()),
                // Already gone: a redelivered event succeeds.
                Err(Error::NotFound { .. }) => Ok(Json(serde_json::Value::Null).into_response()),
                Err(error) => Err(error.into()),
            }
        }
        // Events this service does not subscribe to: acknowledged, so they are not
        // delivered again.
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The provider's user as jobprep's upsert form (see the module docs).
fn new_user_from_provider(user: ProviderUser) -> Result<NewUser, ApiError> {
    let invalid = |field: &str, message: &str| ApiError::Json {
        field: Some(format!("data.{field}")),
        message: message.to_owned(),
    };
    let email = user
        .email_addresses
        .into_iter()
        .find(|email| Some(&email.id) == user.primary_email_address_id.as_ref())
        .map(|email| email.email_address)
        .ok_or_else(|| {
            invalid(
                "primary_email_address_id",
                "no email address has the primary id",
            )
        })?;
    let name = [user.first_name, user.last_name]
        .into_iter()
        .flatten()
        .map(|part| part.trim().to_owned())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name = if name.is_empty() { email.clone() } else { name };
    let time = |field: &str, millis: i64| {
        chrono::DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| invalid(field, "not a time in epoch milliseconds"))
    };
    let created_at = time("created_at", user.created_at)?;
    let updated_at = time("updated_at", user.updated_at)?;
    Ok(NewUser {
        // The provider sends "" for a user without an image; the column holds NULL.
        image_url: user.image_url.filter(|url| !url.trim().is_empty()),
        ..NewUser::new(user.id, name, email).with_provider_timestamps(created_at, updated_at)
    })
}

/// An event's `data`, with a field that fails to deserialize named as `data.{field}`.
fn event_data<T: DeserializeOwned>(data: serde_json::Value) -> Result<T, ApiError> {
    from_json(data).map_err(|error| match error {
        ApiError::Json { field, message } => ApiError::Json {
            field: Some(field.map_or_else(|| "data".to_owned(), |f| format!("data.{f}"))),
            message,
        },
        other => other,
    })
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

/// A new interview; the job info comes from the path.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InterviewForm {
    #[serde(default)]
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
    Ok(cached(
        interviews::list_for_job_info(&db, me, job_info_id).await?,
    ))
}

async fn get_interview(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<InterviewId>,
) -> Result<Response, ApiError> {
    Ok(cached(interviews::get(&db, me, id).await?))
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

async fn create_questions(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(job_info_id): Id<JobInfoId>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    if body.is_array() {
        let many: Vec<NewQuestion> = from_json(body)?;
        Ok(created(
            questions::insert_many(&db, me, job_info_id, many).await?,
        ))
    } else {
        let one: NewQuestion = from_json(body)?;
        Ok(created(questions::insert(&db, me, job_info_id, one).await?))
    }
}

async fn list_questions(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(job_info_id): Id<JobInfoId>,
) -> Result<Response, ApiError> {
    Ok(cached(
        questions::list_for_job_info(&db, me, job_info_id).await?,
    ))
}

async fn get_question(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<QuestionId>,
) -> Result<Response, ApiError> {
    Ok(cached(questions::get(&db, me, id).await?))
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
    entries: Mutex<HashMap<String, (Vec<CacheTag>, serde_json::Value)>>,
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

    /// Answers from the cache, or runs `read` and keeps its result.
    async fn serve<T: Serialize>(
        &self,
        key: String,
        read: impl std::future::Future<Output = jobprep_repo::Result<Cached<T>>>,
    ) -> Result<Response, ApiError> {
        if let Some((tags, value)) = self.entries().get(&key).cloned() {
            return Ok(with_cache_header(cached(Cached::new(value, tags)), "hit"));
        }
        let generation = self.0.generation.load(Ordering::SeqCst);
        let read = read.await?;
        if self.0.enabled.load(Ordering::SeqCst) {
            if let Ok(value) = serde_json::to_value(&read.value) {
                let mut entries = self.entries();
                // Checked under the lock that invalidation takes too.
                if self.0.generation.load(Ordering::SeqCst) == generation {
                    entries.insert(key, (read.tags.clone(), value));
                }
            }
        }
        Ok(with_cache_header(cached(read), "miss"))
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

    fn entries(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (Vec<CacheTag>, serde_json::Value)>> {
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
fn cached<T: Serialize>(read: Cached<T>) -> Response {
    let tags: Vec<&str> = read.tags.iter().map(CacheTag::as_str).collect();
    let mut response = Json(read.value).into_response();
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
/// field (`jobInfoId`, ...).
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

/// A JSON body (an empty body reads as `{}`). A body that does not deserialize is a
/// 400 naming the offending field, as the data layer's own validation does.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The body's bytes as received (too large or unreadable is the request's error).
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|rejection| ApiError::Request(rejection.status(), rejection.body_text()))
    }
}

/// [`JsonBody`]'s parsing, for a body already read.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.trim_ascii().is_empty() {
        b"{}"
    } else {
        bytes
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(|error| ApiError::Json {
        field: None,
        message: error.to_string(),
    })?;
    Ok(value)
}

fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(json_error)
}

fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    ApiError::Json {
        // "." is the body itself (a missing field is named in the message), "?" a
        // place the parser could not name (malformed JSON).
        field: (path != "." && path != "?").then_some(path),
        message: error.into_inner().to_string(),
    }
}

// ---- errors ----

/// Everything a request can fail with, and its HTTP answer.
#[derive(Debug)]
pub enum ApiError {
    /// From the data layer.
    Db(Error),
    /// [`authenticate`] found no acting user.
    Unauthenticated,
    /// The webhook's signature is missing, stale or wrong.
    WebhookSignature(SignatureError),
    /// The body is not the JSON this route takes.
    Json {
        field: Option<String>,
        message: String,
    },
    /// The request itself is unusable (body too large, path not decodable, ...).
    Request(StatusCode, String),
    /// No such route.
    NoRoute,
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError::Db(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = |error: String| serde_json::json!({ "error": error });
        let (status, body) = match self {
            ApiError::Db(Error::NotFound { entity }) => {
                (StatusCode::NOT_FOUND, body(format!("{entity} not found")))
            }
            ApiError::Db(error @ Error::InvalidInput { field, .. }) => (
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": error.to_string(), "field": field }),
            ),
            ApiError::Db(Error::Conflict { constraint, .. }) => (
                StatusCode::CONFLICT,
                serde_json::json!({
                    "error": "the write conflicts with existing data",
                    "constraint": constraint,
                }),
            ),
            ApiError::Db(error @ Error::Unavailable { .. }) => {
                eprintln!("http_service: 503: {error}");
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(body("the database is unavailable; try again".into())),
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
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    body("internal error".into()),
                )
            }
            ApiError::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, body("not authenticated".into()))
            }
            ApiError::WebhookSignature(reason) => {
                // One answer for every reason: the reason is for the operator.
                eprintln!("http_service: 401 on the webhook: {reason}");
                (
                    StatusCode::UNAUTHORIZED,
                    body("invalid webhook signature".into()),
                )
            }
            ApiError::Json { field, message } => (
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": format!("invalid JSON body: {message}"), "field": field }),
            ),
            ApiError::Request(status, message) => (status, body(message)),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, body("no such route".into())),
        };
        (status, Json(body)).into_response()
    }
}
