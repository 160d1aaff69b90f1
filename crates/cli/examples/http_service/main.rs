//! An HTTP service over jobprep's async facade: axum on tokio, every database call on
//! one of `AsyncDb`'s worker threads, JSON with the original app's field names.
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
//! - Every other route acts for the user that `auth::authenticate` returns, and this
//!   example verifies no session: they all answer 401 `{"error": "not authenticated"}`
//!   until a real service puts its session check there (see that function).
//! - `--insecure-dev-auth` (or `JOBPREP_INSECURE_DEV_AUTH=true`) is for development
//!   only: `auth::authenticate` then trusts the `x-user-id` header, so any caller can act
//!   as any user, and without a secret the webhook is accepted unsigned. The header
//!   must hold a user id without `,` or whitespace (it goes into `x-cache-tags`, see
//!   `auth::tag_safe_user_id`); another value answers the same 401. The
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
//! | `POST /job-infos`, `GET /job-infos` | create (`{name, experienceLevel, description, title?}`), list a page |
//! | `GET`, `PATCH`, `DELETE /job-infos/{id}` | read, change, delete with its interviews and questions |
//! | `POST`, `GET /job-infos/{id}/interviews` | start one (`{duration?, humeChatId?}`), list a page of those with a chat id |
//! | `GET`, `PATCH`, `DELETE /interviews/{id}` | read (with its job info), record `humeChatId`/`duration`/`feedback`, delete |
//! | `POST`, `GET /job-infos/{id}/questions` | add one (`{text, difficulty}`) or a list of 1 to `limits::MAX_QUESTIONS_PER_REQUEST` (100) in one transaction, within the question quota; list a page |
//! | `GET`, `PATCH`, `DELETE /questions/{id}` | read, change, delete |
//! | `POST /webhooks/auth` | the auth provider's (Clerk's) user events: `user.created` and `user.updated` upsert the user, `user.deleted` deletes it; other types answer 204 |
//!
//! The webhook maps the provider's user as the original app's webhook does: the id as
//! it is (without `,` or whitespace, as for `x-user-id`); the name from `first_name`
//! and `last_name` (the email when both are empty); the email whose `id` is
//! `primary_email_address_id` (none is a 400); an empty
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
//! `limits::DEFAULT_QUESTION_QUOTA`); every question is added through the library's
//! quota-checked insert, a list all or nothing.
//!
//! **Errors.** Every error answer has one body, `errors::ErrorBody`:
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
//! | 413 | the body is over `limits::BODY_LIMIT` bytes, or a list is over `limits::MAX_QUESTIONS_PER_REQUEST` (`field` `""`); `limit` names the limit |
//! | 415 | the body is not sent as `application/json` |
//! | 500 | a bug or an unclassified database error (details only in the service's log) |
//! | 503 | the database is unavailable: retry (`Retry-After: 1`) |
//!
//! Reads answer the same bytes from the cache as when they were read (serialized
//! once), so a hit is byte-identical to its miss.
//!
//! **Lists are pages**: `{"items": [...], "next": CURSOR|null}`, at most `?limit=N`
//! rows (1 to 1,000, default `extract::DEFAULT_PAGE_SIZE`), the next page at
//! `?limit=N&after=CURSOR`; the cursor is the last row's sort key, so rows inserted
//! meanwhile shift no page.
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
//! Its tests (`tests.rs` and `tests/`, run by `cargo test`) drive the service over HTTP
//! on both backends.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod auth;
mod cache;
mod errors;
mod extract;
mod json;
mod limits;
mod respond;
mod routes;
mod service;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;

use crate::auth::{Auth, WEBHOOK_SECRET_ENV};
use crate::limits::DEFAULT_QUESTION_QUOTA;
use crate::service::{open, serve_with_shutdown};

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
