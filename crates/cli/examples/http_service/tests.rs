//! The service end to end, on both backends: it listens on a loopback port of its own
//! and a real HTTP client (ureq, 10 s timeouts) walks the product flow, checks
//! ownership and error answers, then sends concurrent requests; webhooks are signed
//! here, from Svix's documented scheme, and forged ones change nothing. This file holds
//! the harness; `tests/` one file per concern.
//!
//! This is how a service that uses jobprep tests its handlers with `jobprep-testing`
//! (see docs/testing.md): each test is a function of a `TestDb`, a migrated database of
//! its own; `backend_tests!` runs it once on SQLite and once on PostgreSQL. The service
//! opens its own handle from `t.url`; the test checks what was stored through `t.db`,
//! and writes as another process would with `t.execute_sql`.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jobprep_testing::{backend_tests, TestDb};
use jobprep_users::UserId;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::auth::{Auth, WebhookVerifier, USER_HEADER, WEBHOOK_SECRET_ENV, WEBHOOK_TOLERANCE};
use crate::errors::SignatureError;
use crate::limits::{BODY_LIMIT, DEFAULT_QUESTION_QUOTA, MAX_QUESTIONS_PER_REQUEST};
use crate::service::{open, serve_with_shutdown};

mod cache;
mod pages;
mod product_flow;
mod refusals;
mod webhook;

const TIMEOUT: Duration = Duration::from_secs(10);
const CONCURRENT: usize = 32;

/// The service on its own runtime and loopback port.
struct Server {
    runtime: tokio::runtime::Runtime,
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    fn start(url: &str, auth: Auth) -> Server {
        Server::start_with_quota(url, auth, DEFAULT_QUESTION_QUOTA)
    }

    /// With `quota` questions per user.
    fn start_with_quota(url: &str, auth: Auth, quota: u32) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (listener, db) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let service = open(Some(url), auth).await.unwrap();
            (listener, service.with_question_quota(quota))
        });
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(serve_with_shutdown(listener, db, async {
            let _ = stopped.await;
        }));
        Server {
            runtime,
            base,
            stop,
            task,
        }
    }

    /// Shuts down gracefully, within the timeout.
    fn stop(self) {
        self.stop.send(()).unwrap();
        let served = self
            .runtime
            .block_on(async { tokio::time::timeout(TIMEOUT, self.task).await });
        served
            .expect("the server stops within the timeout")
            .unwrap()
            .unwrap();
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
    /// The body as received.
    text: String,
    tags: Option<String>,
    /// `hit` or `miss` on the cached routes.
    cache: Option<String>,
    allow: Option<String>,
}

#[derive(Clone)]
struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(server: &Server) -> Client {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            agent,
            base: server.base.clone(),
        }
    }

    /// Sends `body` (JSON) as `user`, or with no `x-user-id` when `user` is `None`.
    fn call(&self, method: &str, path: &str, user: Option<&str>, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, path, user, body)
    }

    fn raw(&self, method: &str, path: &str, user: Option<&str>, body: String) -> Reply {
        let user = user.map(|user| (USER_HEADER, user.to_owned()));
        self.send(method, path, user.as_slice(), body)
    }

    /// Sends `body` as it is, with `headers`, as JSON.
    fn send(&self, method: &str, path: &str, headers: &[(&str, String)], body: String) -> Reply {
        self.send_as(method, path, headers, Some("application/json"), body)
    }

    /// Sends `body` as it is, with `headers` and `content_type` (none when `None`).
    fn send_as(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        content_type: Option<&str>,
        body: String,
    ) -> Reply {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(body).unwrap();
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let tags = response
            .headers()
            .get("x-cache-tags")
            .map(|v| v.to_str().unwrap().to_owned());
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let cache = header("x-cache");
        let allow = header("allow");
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
        };
        Reply {
            status,
            body,
            text,
            tags,
            cache,
            allow,
        }
    }

    fn get(&self, path: &str, user: &str) -> Reply {
        self.call("GET", path, Some(user), None)
    }

    fn post(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call("POST", path, Some(user), Some(body))
    }

    fn put(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call("PUT", path, Some(user), Some(body))
    }

    fn patch(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(user), Some(body))
    }

    fn delete(&self, path: &str, user: &str) -> Reply {
        self.call("DELETE", path, Some(user), None)
    }
}

/// Asserts the status, showing the reply when it differs; returns the body.
#[track_caller]
fn expect(reply: Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{reply:?}");
    reply.body
}

/// Asserts an error answer of `status` in the one error body: an object with a
/// non-empty `error`, without Rust's words; `field` exactly this JSON path, or absent
/// when `None`; no keys but `error`, `field`, `constraint` and `limit`. Returns the body.
#[track_caller]
fn expect_error(reply: Reply, status: u16, field: Option<&str>) -> Value {
    let body = expect(reply, status);
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    for key in object.keys() {
        let known = ["error", "field", "constraint", "limit"];
        assert!(
            known.contains(&key.as_str()),
            "unexpected key {key}: {body}"
        );
    }
    let error = body["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "no error message: {body}");
    for rust in ["struct ", "`", "sequence", "Vec<", "Option<"] {
        assert!(!error.contains(rust), "{rust:?} in the message: {body}");
    }
    match field {
        Some(field) => assert_eq!(body["field"], field, "the field: {body}"),
        None => assert!(object.get("field").is_none(), "a field: {body}"),
    }
    body
}

/// Asserts a 400 for the JSON path `field`, its message not about JSON syntax.
#[track_caller]
fn expect_invalid(reply: Reply, field: &str) -> Value {
    let body = expect_error(reply, 400, Some(field));
    let error = body["error"].as_str().unwrap();
    assert!(!error.starts_with("invalid JSON body"), "{body}");
    body
}

const ADA: &str = "user_ada";
const EVE: &str = "user_eve";

/// The webhook's signing secret in these tests, of the provider's shape (`whsec_` and
/// base64), and one the provider does not use.
const SECRET: &str = "whsec_am9icHJlcCB0ZXN0IHNpZ25pbmcga2V5";
const OTHER_SECRET: &str = "whsec_bm90IHRoZSBwcm92aWRlciBzZWNyZXQh";

/// Development mode without a secret: the caller from `x-user-id`, webhooks unsigned.
fn dev_auth() -> Auth {
    Auth::new(None, true).unwrap()
}

/// Development mode with the secret: webhooks verified, the caller from `x-user-id`.
fn signed_dev_auth() -> Auth {
    Auth::new(Some(SECRET), true).unwrap()
}

/// As the example starts without the development flag: webhooks verified, no caller
/// authenticated.
fn production_auth() -> Auth {
    Auth::new(Some(SECRET), false).unwrap()
}

/// Svix's signature, computed here from its documentation rather than by the service:
/// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed with the
/// base64-decoded part of the secret after `whsec_`.
fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The `svix-*` headers of a delivery of `body` signed with `secret` at `timestamp`.
fn svix_headers(secret: &str, id: &str, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("svix-id", id.to_owned()),
        ("svix-timestamp", timestamp.to_string()),
        ("svix-signature", sign(secret, id, timestamp, body)),
    ]
}

fn unix_now() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap()
}

fn texts(questions: &Value) -> Vec<&str> {
    let questions = questions.as_array().unwrap();
    questions
        .iter()
        .map(|q| q["text"].as_str().unwrap())
        .collect()
}

/// A job info of Ada's, created through the service; returns its id.
fn ada_with_a_job(http: &Client) -> String {
    let profile = json!({"name": "Ada", "email": "ada@example.com"});
    expect(http.put("/users/me", ADA, profile), 200);
    let job = json!({"name": "SRE", "experienceLevel": "senior", "description": "On call"});
    let key = expect(http.post("/job-infos", ADA, job), 201);
    key["id"].as_str().unwrap().to_owned()
}

/// How many job infos Ada has, read through the service.
fn ada_jobs(http: &Client) -> usize {
    let jobs = expect(http.get("/job-infos", ADA), 200);
    jobs["items"].as_array().unwrap().len()
}

/// Whether the user is stored, read through the data layer rather than the service.
fn stored(t: &TestDb, id: &str) -> bool {
    match jobprep_users::get(&t.db, &UserId::new(id).unwrap()) {
        Ok(_) => true,
        Err(jobprep_repo::Error::NotFound { .. }) => false,
        Err(error) => panic!("reading {id}: {error}"),
    }
}
