//! `examples/http_service.rs` end to end, on both backends: the service listens on a
//! loopback port of its own and a real HTTP client (ureq, 10 s timeouts) walks the
//! product flow, checks ownership and error answers, then sends concurrent requests;
//! webhooks are signed here, from Svix's documented scheme, and forged ones change
//! nothing.
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

#[allow(dead_code)]
#[path = "../examples/http_service.rs"]
mod service;

backend_tests!(
    an_unsigned_or_badly_signed_webhook_changes_nothing,
    without_the_development_flag_no_caller_is_authenticated,
    http_service_serves_the_product_flow,
    the_auth_webhook_signs_up_updates_and_deletes_users_as_the_app_does,
    every_refusal_answers_the_one_error_body,
    question_lists_are_capped_and_within_the_quota,
    a_cache_hit_is_byte_identical_to_the_miss,
    lists_answer_bounded_pages_that_follow_their_cursor,
);

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
    fn start(url: &str, auth: service::Auth) -> Server {
        Server::start_with_quota(url, auth, service::DEFAULT_QUESTION_QUOTA)
    }

    /// With `quota` questions per user.
    fn start_with_quota(url: &str, auth: service::Auth, quota: u32) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (listener, db) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let service = service::open(Some(url), auth).await.unwrap();
            (listener, service.with_question_quota(quota))
        });
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = runtime.spawn(service::serve_with_shutdown(listener, db, async {
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
        let user = user.map(|user| (service::USER_HEADER, user.to_owned()));
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
fn dev_auth() -> service::Auth {
    service::Auth::new(None, true).unwrap()
}

/// Development mode with the secret: webhooks verified, the caller from `x-user-id`.
fn signed_dev_auth() -> service::Auth {
    service::Auth::new(Some(SECRET), true).unwrap()
}

/// As the example starts without the development flag: webhooks verified, no caller
/// authenticated.
fn production_auth() -> service::Auth {
    service::Auth::new(Some(SECRET), false).unwrap()
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

/// A fixed vector published by the provider: the `test_sign` case of Svix's own Rust
/// library (github.com/svix/svix-webhooks, `rust/src/webhooks.rs`).
const SVIX_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SVIX_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const SVIX_TIMESTAMP: i64 = 1_649_367_553;
const SVIX_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
const SVIX_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

fn header_map(headers: &[(&'static str, String)]) -> axum::http::HeaderMap {
    headers
        .iter()
        .map(|(name, value)| {
            let name = axum::http::HeaderName::from_static(name);
            (name, value.parse().unwrap())
        })
        .collect()
}

/// The signer above and the service's verifier both agree with the provider's vector;
/// the verifier takes "now" as an argument, so the tolerance is checked without waiting.
#[test]
fn signatures_match_svixs_published_vector() {
    assert_eq!(
        sign(SVIX_SECRET, SVIX_ID, SVIX_TIMESTAMP, SVIX_BODY),
        SVIX_SIGNATURE
    );
    let verifier = service::WebhookVerifier::new(SVIX_SECRET, service::WEBHOOK_TOLERANCE).unwrap();
    let with = |signature: &str, timestamp: i64| {
        header_map(&[
            ("svix-id", SVIX_ID.to_owned()),
            ("svix-timestamp", timestamp.to_string()),
            ("svix-signature", signature.to_owned()),
        ])
    };
    let body = SVIX_BODY.as_bytes();
    let headers = with(SVIX_SIGNATURE, SVIX_TIMESTAMP);
    let at = |now: i64| verifier.verify(&headers, body, now);
    use service::SignatureError::{Mismatch, MissingHeader, Stale};

    // Within 5 minutes of the clock, either way, and no further.
    assert_eq!(at(SVIX_TIMESTAMP), Ok(()));
    assert_eq!(at(SVIX_TIMESTAMP + 300), Ok(()));
    assert_eq!(at(SVIX_TIMESTAMP - 300), Ok(()));
    assert_eq!(at(SVIX_TIMESTAMP + 301), Err(Stale));
    assert_eq!(at(SVIX_TIMESTAMP - 301), Err(Stale));

    // The secret without its prefix is the same key.
    let bare = SVIX_SECRET.strip_prefix("whsec_").unwrap();
    let bare = service::WebhookVerifier::new(bare, service::WEBHOOK_TOLERANCE).unwrap();
    assert_eq!(bare.verify(&headers, body, SVIX_TIMESTAMP), Ok(()));

    // One match among several entries is enough; other versions are ignored, also when
    // they carry the right bytes.
    let right = SVIX_SIGNATURE.strip_prefix("v1,").unwrap();
    let listed = format!("v2,{right} v1,bm90IGl0 v1,not-base64! {SVIX_SIGNATURE}");
    let now = SVIX_TIMESTAMP;
    assert_eq!(verifier.verify(&with(&listed, now), body, now), Ok(()));
    let other_version = format!("v2,{right} v1a,{right} {right}");
    assert_eq!(
        verifier.verify(&with(&other_version, now), body, now),
        Err(Mismatch)
    );

    // Any change to what is signed: the body, the id, the timestamp.
    let tampered = br#"{"email":"test@example.com","username":"test_user2"}"#;
    assert_eq!(verifier.verify(&headers, tampered, now), Err(Mismatch));
    let mut other_id = headers.clone();
    other_id.insert("svix-id", "msg_other".parse().unwrap());
    assert_eq!(verifier.verify(&other_id, body, now), Err(Mismatch));
    let moved = with(SVIX_SIGNATURE, now + 1);
    assert_eq!(verifier.verify(&moved, body, now), Err(Mismatch));
    let mut missing = headers.clone();
    missing.remove("svix-signature");
    assert_eq!(
        verifier.verify(&missing, body, now),
        Err(MissingHeader("svix-signature"))
    );
}

/// Without a secret the service starts only in development mode; a secret that is not
/// a key never.
#[test]
fn the_service_starts_only_with_a_secret_or_the_development_flag() {
    let refused = service::Auth::new(None, false).unwrap_err();
    assert!(
        refused.contains(service::WEBHOOK_SECRET_ENV) && refused.contains("--insecure-dev-auth"),
        "{refused}"
    );
    assert!(
        service::Auth::new(Some(" "), false).is_err(),
        "empty is none"
    );
    for bad in ["whsec_not base64!", "whsec_"] {
        assert!(service::Auth::new(Some(bad), true).is_err(), "{bad}");
    }
    let dev = dev_auth().describe();
    assert!(
        dev.contains("not verified") && dev.contains("x-user-id header is trusted"),
        "{dev}"
    );
    let production = production_auth().describe();
    assert!(!production.contains("INSECURE"), "{production}");
}

/// The one answer to a refused webhook.
#[track_caller]
fn expect_refused(reply: Reply) {
    assert_eq!(
        expect(reply, 401),
        json!({"error": "invalid webhook signature"})
    );
}

/// Whether the user is stored, read through the data layer rather than the service.
fn stored(t: &TestDb, id: &str) -> bool {
    match jobprep_users::get(&t.db, &UserId::new(id).unwrap()) {
        Ok(_) => true,
        Err(jobprep_repo::Error::NotFound { .. }) => false,
        Err(error) => panic!("reading {id}: {error}"),
    }
}

fn an_unsigned_or_badly_signed_webhook_changes_nothing(t: &TestDb) {
    const HOOK: &str = "/webhooks/auth";
    const USER: &str = "user_clerk";
    let server = Server::start(&t.url, production_auth());
    let http = Client::new(&server);
    let deliver =
        |headers: &[(&str, String)], body: &str| http.send("POST", HOOK, headers, body.into());
    let created = 1_757_715_292_823;
    let event = provider_event("user.created", json!("Ada"), "", created, created).to_string();
    let now = unix_now();
    let signed = svix_headers(SECRET, "msg_created", now, &event);

    // A tampered body under the original's signature.
    let tampered = event.replace("ada@example.com", "eve@example.com");
    assert_ne!(tampered, event);
    expect_refused(deliver(&signed, &tampered));
    // Signed with another secret.
    expect_refused(deliver(
        &svix_headers(OTHER_SECRET, "msg_created", now, &event),
        &event,
    ));
    // Signed correctly, 10 minutes ago: a replay.
    expect_refused(deliver(
        &svix_headers(SECRET, "msg_created", now - 600, &event),
        &event,
    ));
    // A header missing, each in turn, or all of them.
    for missing in ["svix-id", "svix-timestamp", "svix-signature"] {
        let headers: Vec<_> = signed
            .iter()
            .filter(|(name, _)| *name != missing)
            .cloned()
            .collect();
        expect_refused(deliver(&headers, &event));
    }
    expect_refused(deliver(&[], &event));
    assert!(!stored(t, USER), "a refused delivery created the user");

    // Signed correctly: the user is created.
    let user = expect(deliver(&signed, &event), 200);
    assert_eq!(user["id"], USER);
    assert!(stored(t, USER));

    // A forged deletion leaves the user; a signed one deletes it.
    let deletion =
        json!({"type": "user.deleted", "data": {"id": USER, "deleted": true, "object": "user"}})
            .to_string();
    expect_refused(deliver(
        &svix_headers(OTHER_SECRET, "msg_deleted", now, &deletion),
        &deletion,
    ));
    expect_refused(deliver(&signed, &deletion));
    expect_refused(deliver(&[], &deletion));
    assert!(stored(t, USER), "a refused deletion removed the user");
    let removed = expect(
        deliver(
            &svix_headers(SECRET, "msg_deleted", now, &deletion),
            &deletion,
        ),
        200,
    );
    assert_eq!(removed["id"], USER);
    assert!(!stored(t, USER));

    drop(http);
    server.stop();
}

fn without_the_development_flag_no_caller_is_authenticated(t: &TestDb) {
    let server = Server::start(&t.url, production_auth());
    let http = Client::new(&server);
    let refused = json!({"error": "not authenticated"});

    // Signing up through x-user-id is refused and writes nothing.
    let profile = json!({"name": "Ada", "email": "ada@example.com"});
    assert_eq!(expect(http.put("/users/me", ADA, profile), 401), refused);
    assert!(!stored(t, ADA));

    // An existing user's id in the header reads, writes and deletes nothing.
    let ada = jobprep_testing::user(&t.db, ADA);
    assert_eq!(expect(http.get("/users/me", ADA), 401), refused);
    let job = json!({"name": "SRE", "experienceLevel": "senior", "description": "On call"});
    assert_eq!(expect(http.post("/job-infos", ADA, job), 401), refused);
    assert_eq!(expect(http.delete("/users/me", ADA), 401), refused);
    assert!(stored(t, ADA));
    let jobs = jobprep_job_infos::list_for_user(&t.db, &ada).unwrap();
    assert!(jobs.value.is_empty(), "{:?}", jobs.value);
    assert_eq!(
        expect(http.call("GET", "/users/me", None, None), 401),
        refused
    );

    drop(http);
    server.stop();
}

/// The read cache serves hits, and fresh data after a write made by another process
/// (here raw SQL on a connection of its own, as the original app writes), which reaches
/// the service only through the cache feed.
#[test]
fn a_cached_read_is_fresh_after_another_process_writes() {
    let Some(t) = TestDb::new(jobprep_repo::Backend::Postgres) else {
        return;
    };
    t.db.install_cache_feed().unwrap();
    let server = Server::start(&t.url, dev_auth());
    let client = Client::new(&server);
    let me = "user_cache_reader";
    expect(
        client.put(
            "/users/me",
            me,
            json!({"name": "Ada", "email": "ada@cache.example"}),
        ),
        200,
    );
    let job = json!({"name": "SRE", "experienceLevel": "senior", "description": "On call"});
    expect(client.post("/job-infos", me, job), 201);

    let first = client.get("/job-infos", me);
    assert_eq!(first.cache.as_deref(), Some("miss"));
    // The feed echoes the service's own writes a few milliseconds later, which may
    // invalidate once more; then reads are hits.
    let hit = until_hit(&client, me);
    assert_eq!(hit.body["items"].as_array().unwrap().len(), 1);

    // The service's own write invalidates before it answers.
    let job = json!({"name": "DBA", "experienceLevel": "junior", "description": "Backups"});
    expect(client.post("/job-infos", me, job), 201);
    let own = client.get("/job-infos", me);
    assert_eq!(
        (
            own.cache.as_deref(),
            own.body["items"].as_array().unwrap().len()
        ),
        (Some("miss"), 2)
    );
    assert_eq!(
        until_hit(&client, me).body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Another process's write: fresh data within a bounded time, never a stale hit after.
    t.execute_sql(
        "INSERT INTO job_info (name, \"experienceLevel\", description, \"userId\") \
         VALUES ('From the app', 'mid-level', 'written elsewhere', 'user_cache_reader')",
    )
    .unwrap();
    let started = Instant::now();
    let fresh = loop {
        let reply = client.get("/job-infos", me);
        if reply.body["items"].as_array().unwrap().len() == 3 {
            break reply;
        }
        assert!(started.elapsed() < TIMEOUT, "still stale: {reply:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(fresh.cache.as_deref(), Some("miss"));
    let names: Vec<&str> = fresh.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"From the app"), "{names:?}");
    server.stop();
}

/// Reads `/job-infos` until the cache answers it (bounded).
fn until_hit(client: &Client, user: &str) -> Reply {
    let started = Instant::now();
    loop {
        let reply = client.get("/job-infos", user);
        if reply.cache.as_deref() == Some("hit") {
            return reply;
        }
        assert!(started.elapsed() < TIMEOUT, "never a hit: {reply:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A provider event for `user_clerk`, in the provider's field names.
fn provider_event(
    kind: &str,
    first_name: Value,
    image_url: &str,
    created: i64,
    updated: i64,
) -> Value {
    json!({
        "object": "event",
        "type": kind,
        "data": {
            "id": "user_clerk",
            "object": "user",
            "first_name": first_name,
            "last_name": "Lovelace",
            "email_addresses": [
                {"id": "idn_other", "email_address": "other@example.com"},
                {"id": "idn_primary", "email_address": "ada@example.com"},
            ],
            "primary_email_address_id": "idn_primary",
            "image_url": image_url,
            "created_at": created,
            "updated_at": updated,
        },
    })
}

/// A JSON timestamp as a point in time.
fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap().into()
}

fn millis(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap()
}

fn the_auth_webhook_signs_up_updates_and_deletes_users_as_the_app_does(t: &TestDb) {
    const HOOK: &str = "/webhooks/auth";
    const CREATED: i64 = 1_757_715_292_823;
    let server = Server::start(&t.url, signed_dev_auth());
    let http = Client::new(&server);
    let hook = |event: Value| {
        let body = event.to_string();
        let headers = svix_headers(SECRET, "msg_1", unix_now(), &body);
        http.send("POST", HOOK, &headers, body)
    };

    // user.created: the primary email, the provider's timestamps, "" as no image.
    let created = expect(
        hook(provider_event(
            "user.created",
            json!("Ada"),
            "",
            CREATED,
            CREATED + 5,
        )),
        200,
    );
    assert_eq!(created["id"], "user_clerk");
    assert_eq!(created["name"], "Ada Lovelace");
    assert_eq!(created["email"], "ada@example.com");
    assert!(created["imageUrl"].is_null(), "{created}");
    assert_eq!(time(&created["createdAt"]), millis(CREATED));
    assert_eq!(time(&created["updatedAt"]), millis(CREATED + 5));
    assert_eq!(
        expect(http.get("/users/me", "user_clerk"), 200),
        created,
        "stored as answered"
    );

    // user.updated: a new profile and image; updatedAt moves forward.
    let later = CREATED + 60_000;
    let image = "https://img.clerk.com/ada.png";
    let updated = expect(
        hook(provider_event(
            "user.updated",
            json!("Augusta Ada"),
            image,
            CREATED,
            later,
        )),
        200,
    );
    assert_eq!(updated["name"], "Augusta Ada Lovelace");
    assert_eq!(updated["imageUrl"], image);
    assert_eq!(time(&updated["updatedAt"]), millis(later));
    assert_eq!(time(&updated["createdAt"]), millis(CREATED));

    // A late, older event refreshes the profile but never moves updatedAt back; the
    // provider's createdAt is the source of truth.
    let stale = expect(
        hook(provider_event(
            "user.updated",
            Value::Null,
            "",
            CREATED - 1_000,
            CREATED,
        )),
        200,
    );
    assert_eq!(
        stale["name"], "Lovelace",
        "a missing first name is left out"
    );
    assert!(stale["imageUrl"].is_null());
    assert_eq!(time(&stale["updatedAt"]), millis(later));
    assert_eq!(time(&stale["createdAt"]), millis(CREATED - 1_000));

    // Refused: no primary email, a time out of range, updatedAt before createdAt, a
    // bad user id, a missing field. Nothing changes.
    let mut no_primary = provider_event("user.updated", json!("Eve"), "", CREATED, later + 1);
    no_primary["data"]["primary_email_address_id"] = json!("idn_missing");
    expect_invalid(hook(no_primary), "data.primary_email_address_id");
    expect_invalid(
        hook(provider_event(
            "user.updated",
            json!("Eve"),
            "",
            i64::MAX,
            i64::MAX,
        )),
        "data.created_at",
    );
    expect_invalid(
        hook(provider_event(
            "user.updated",
            json!("Eve"),
            "",
            later,
            CREATED,
        )),
        "data.updated_at",
    );
    let mut bad_id = provider_event("user.created", json!("Eve"), "", CREATED, CREATED);
    bad_id["data"]["id"] = json!("");
    expect_invalid(hook(bad_id), "data.id");
    let mut incomplete = provider_event("user.created", json!("Eve"), "", CREATED, CREATED);
    incomplete["data"]
        .as_object_mut()
        .unwrap()
        .remove("created_at");
    let missing = expect_invalid(hook(incomplete), "data.created_at");
    assert_eq!(missing["error"], "created_at is required");
    // Every refusal names the provider's field as a path into its payload, also for
    // jobprep's own checks (the email is the primary entry's, [1]).
    let event = || provider_event("user.updated", json!("Eve"), "", CREATED, later + 1);
    let mut bad_email = event();
    bad_email["data"]["email_addresses"][1]["email_address"] = json!("nope");
    let refused = expect_invalid(hook(bad_email), "data.email_addresses[1].email_address");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid email_address: "),
        "{refused}"
    );
    let mut bad_image = event();
    bad_image["data"]["image_url"] = json!("x".repeat(1001));
    expect_invalid(hook(bad_image), "data.image_url");
    let mut long_name = event();
    long_name["data"]["first_name"] = json!("x".repeat(300));
    expect_invalid(hook(long_name), "data.first_name");
    let mut listed = event();
    listed["data"]["email_addresses"] = json!({"id": "idn_primary"});
    let refused = expect_invalid(hook(listed), "data.email_addresses");
    assert_eq!(refused["error"], "expected a JSON array, found an object");
    let mut positional = event();
    positional["data"]["email_addresses"][0] = json!(["idn_other", "other@example.com"]);
    let refused = expect_invalid(hook(positional), "data.email_addresses[0]");
    assert_eq!(refused["error"], "expected a JSON object, found an array");
    let mut incomplete_email = event();
    incomplete_email["data"]["email_addresses"][0] = json!({"id": "idn_other"});
    expect_invalid(
        hook(incomplete_email),
        "data.email_addresses[0].email_address",
    );
    let mut comma = event();
    comma["data"]["id"] = json!("user_clerk,user_ada");
    let refused = expect_invalid(hook(comma), "data.id");
    assert_eq!(
        refused["error"],
        "invalid id: must not contain commas or whitespace"
    );
    let mut data_list = event();
    data_list["data"] = json!([]);
    expect_invalid(hook(data_list), "data");
    expect_invalid(hook(json!({"data": {}})), "type");
    expect_invalid(hook(json!([])), "");
    // Signed, but not sent as JSON.
    let body = event().to_string();
    let headers = svix_headers(SECRET, "msg_2", unix_now(), &body);
    expect_error(
        http.send_as("POST", HOOK, &headers, Some("text/plain"), body),
        415,
        None,
    );
    assert_eq!(expect(http.get("/users/me", "user_clerk"), 200), stale);

    // Other event types are acknowledged and ignored.
    let session = json!({"type": "session.created", "data": {"id": "sess_1"}});
    assert_eq!(hook(session).status, 204);

    // user.deleted removes the user with everything it owns; a redelivery finds
    // nothing and still succeeds.
    let job = json!({"name": "Analyst", "experienceLevel": "senior", "description": "Engines"});
    expect(http.post("/job-infos", "user_clerk", job), 201);
    let deleted = json!({"type": "user.deleted", "data": {"id": "user_clerk", "deleted": true, "object": "user"}});
    let removed = expect(hook(deleted.clone()), 200);
    assert_eq!(removed["id"], "user_clerk");
    assert_eq!(
        removed["jobInfos"].as_array().unwrap().len(),
        1,
        "{removed}"
    );
    expect(http.get("/users/me", "user_clerk"), 404);
    assert_eq!(expect(hook(deleted), 200), Value::Null);
    expect_invalid(
        hook(json!({"type": "user.deleted", "data": {"deleted": true}})),
        "data.id",
    );

    drop(http);
    server.stop();
}

fn http_service_serves_the_product_flow(t: &TestDb) {
    let started = Instant::now();
    let server = Server::start(&t.url, dev_auth());
    let http = Client::new(&server);

    // Who is calling (development mode): no header, or one that is not a user id, is
    // 401.
    let anonymous = expect(http.call("GET", "/users/me", None, None), 401);
    assert_eq!(anonymous, json!({"error": "not authenticated"}));
    expect(http.get("/job-infos", ""), 401);

    // Users: upsert from the body, the id from the header.
    expect(http.get("/users/me", ADA), 404);
    let profile = json!({"name": "Ada", "email": "ada@example.com"});
    let ada = expect(http.put("/users/me", ADA, profile), 200);
    assert_eq!(ada["id"], ADA);
    assert!(
        ada["createdAt"].is_string() && ada["imageUrl"].is_null(),
        "{ada}"
    );
    let me = http.get("/users/me", ADA);
    assert_eq!(me.tags.as_deref(), Some("id:user_ada:users"));
    assert_eq!(expect(me, 200)["email"], "ada@example.com");
    let bad = json!({"name": "Ada", "email": "nope"});
    expect_invalid(http.put("/users/me", ADA, bad), "email");
    let stolen = json!({"name": "Eve", "email": "ada@example.com"});
    let taken = expect_error(http.put("/users/me", EVE, stolen), 409, None);
    assert_eq!(taken["constraint"], "users_email_unique");
    let own = json!({"name": "Eve", "email": "eve@example.com"});
    expect(http.put("/users/me", EVE, own), 200);

    // Job infos.
    let form = json!({
        "name": "Backend engineer",
        "title": "Senior backend engineer",
        "experienceLevel": "mid-level",
        "description": "Rust and PostgreSQL",
    });
    let key = expect(http.post("/job-infos", ADA, form), 201);
    assert_eq!(key["userId"], ADA);
    let job = key["id"].as_str().unwrap().to_owned();
    let blank = json!({"name": " ", "experienceLevel": "junior", "description": "x"});
    expect_invalid(http.post("/job-infos", ADA, blank), "name");
    let wizard = json!({"name": "x", "experienceLevel": "wizard", "description": "x"});
    expect_invalid(http.post("/job-infos", ADA, wizard), "experienceLevel");
    let incomplete = json!({"name": "x", "experienceLevel": "junior"});
    let missing = expect_invalid(http.post("/job-infos", ADA, incomplete), "description");
    assert_eq!(missing["error"], "description is required");
    let malformed = http.raw("POST", "/job-infos", Some(ADA), r#"{"name": "#.into());
    // The field is where the JSON broke off.
    let malformed = expect_error(malformed, 400, Some("name"));
    let error = malformed["error"].as_str().unwrap();
    assert!(
        error.starts_with("invalid JSON body: ") && error.contains("EOF"),
        "{malformed}"
    );
    expect_invalid(http.get("/job-infos/not-a-uuid", ADA), "jobInfoId");
    let changes = json!({"title": null, "name": "Staff backend engineer"});
    assert_eq!(
        expect(http.patch(&format!("/job-infos/{job}"), ADA, changes), 200),
        key
    );
    let read = http.get(&format!("/job-infos/{job}"), ADA);
    assert_eq!(read.tags, Some(format!("id:{job}:jobInfos")));
    let read = expect(read, 200);
    assert_eq!(read["name"], "Staff backend engineer");
    assert_eq!(read["experienceLevel"], "mid-level");
    assert!(read["title"].is_null(), "{read}");

    // Interviews: started, then finished with a chat id, duration and feedback.
    let interviews = format!("/job-infos/{job}/interviews");
    let started_one = expect(http.post(&interviews, ADA, json!({})), 201);
    assert_eq!(started_one["jobInfoId"], job.as_str());
    let interview = started_one["id"].as_str().unwrap().to_owned();
    // Only interviews with a chat id are listed.
    assert_eq!(
        expect(http.get(&interviews, ADA), 200),
        json!({"items": [], "next": null})
    );
    let finished = json!({
        "humeChatId": "chat_1",
        "duration": "00:21:09",
        "feedback": "Solid answers.",
    });
    expect(
        http.patch(&format!("/interviews/{interview}"), ADA, finished),
        200,
    );
    let too_vague = json!({"duration": "soon"});
    let reply = http.patch(&format!("/interviews/{interview}"), ADA, too_vague);
    expect_invalid(reply, "duration");
    let read = expect(http.get(&format!("/interviews/{interview}"), ADA), 200);
    assert_eq!(read["humeChatId"], "chat_1");
    assert_eq!(read["duration"], "00:21:09");
    assert_eq!(read["feedback"], "Solid answers.");
    assert_eq!(read["jobInfo"]["id"], job.as_str());
    let listed = expect(http.get(&interviews, ADA), 200)["items"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], interview.as_str());

    // Questions: one, or many at once.
    let questions = format!("/job-infos/{job}/questions");
    let one = json!({"text": "Explain MVCC.", "difficulty": "hard"});
    assert_eq!(
        expect(http.post(&questions, ADA, one), 201)["jobInfoId"],
        job.as_str()
    );
    let many = json!([
        {"text": "Design a rate limiter.", "difficulty": "medium"},
        {"text": "What is a B-tree?", "difficulty": "easy"},
    ]);
    let keys = expect(http.post(&questions, ADA, many), 201);
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    let one_bad = json!([
        {"text": "Fine.", "difficulty": "easy"},
        {"text": "Bad.", "difficulty": "impossible"},
    ]);
    expect_invalid(http.post(&questions, ADA, one_bad), "[1].difficulty");
    let empty = json!({"text": "", "difficulty": "easy"});
    expect_invalid(http.post(&questions, ADA, empty), "text");
    let listed = expect(http.get(&questions, ADA), 200)["items"].clone();
    assert_eq!(
        texts(&listed),
        [
            "Explain MVCC.",
            "Design a rate limiter.",
            "What is a B-tree?"
        ]
    );
    let question = listed[0]["id"].as_str().unwrap().to_owned();
    let easier = json!({"difficulty": "medium"});
    expect(
        http.patch(&format!("/questions/{question}"), ADA, easier),
        200,
    );
    let read = expect(http.get(&format!("/questions/{question}"), ADA), 200);
    assert_eq!(read["difficulty"], "medium");
    let usage = json!({"interviews": 1, "questions": 3});
    assert_eq!(expect(http.get("/users/me/usage", ADA), 200), usage);

    // Everything of Ada's is invisible to Eve: 404 or empty, never Ada's data.
    assert_eq!(
        expect(http.get("/job-infos", EVE), 200),
        json!({"items": [], "next": null})
    );
    for path in [
        format!("/job-infos/{job}"),
        format!("/interviews/{interview}"),
        format!("/questions/{question}"),
    ] {
        expect(http.get(&path, EVE), 404);
        // A change of nothing is refused before the row is looked up.
        expect_invalid(http.patch(&path, EVE, json!({})), "");
        let change = if path.starts_with("/job-infos") {
            json!({"name": "Eve's now"})
        } else if path.starts_with("/interviews") {
            json!({"feedback": "Eve's now"})
        } else {
            json!({"text": "Eve's now"})
        };
        expect_error(http.patch(&path, EVE, change), 404, None);
        expect_error(http.delete(&path, EVE), 404, None);
    }
    let empty = json!({"items": [], "next": null});
    assert_eq!(expect(http.get(&interviews, EVE), 200), empty);
    assert_eq!(expect(http.get(&questions, EVE), 200), empty);
    let sneaky = json!({"text": "Mine now?", "difficulty": "easy"});
    expect(http.post(&questions, EVE, sneaky), 404);
    expect(http.post(&interviews, EVE, json!({})), 404);
    let nothing = json!({"interviews": 0, "questions": 0});
    assert_eq!(expect(http.get("/users/me/usage", EVE), 200), nothing);
    assert_eq!(
        expect(http.get("/job-infos", ADA), 200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    expect_error(http.get("/no/such/route", ADA), 404, None);

    // Concurrent requests, from as many threads at once: every one succeeds and every
    // write is visible afterwards.
    let concurrent = Instant::now();
    let barrier = Barrier::new(CONCURRENT);
    let statuses: Vec<[u16; 3]> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONCURRENT)
            .map(|i| {
                let (http, barrier, questions, job) = (&http, &barrier, &questions, &job);
                scope.spawn(move || {
                    barrier.wait();
                    let text = format!("Concurrent question {i}");
                    let question = json!({"text": text, "difficulty": "easy"});
                    let name = format!("Job {i}");
                    let form =
                        json!({"name": name, "experienceLevel": "junior", "description": "Load"});
                    [
                        http.post(questions, ADA, question).status,
                        http.post("/job-infos", ADA, form).status,
                        http.get(&format!("/job-infos/{job}"), ADA).status,
                    ]
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == [201, 201, 200]),
        "{statuses:?}"
    );
    let concurrent = concurrent.elapsed();
    let listed = expect(http.get(&questions, ADA), 200)["items"].clone();
    let texts = texts(&listed);
    assert_eq!(texts.len(), 3 + CONCURRENT);
    for i in 0..CONCURRENT {
        let text = format!("Concurrent question {i}");
        assert!(texts.contains(&text.as_str()), "{text} is missing");
    }
    let jobs = expect(http.get("/job-infos", ADA), 200);
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1 + CONCURRENT);

    // Deleting the job info takes its interviews and questions along.
    let removed = expect(http.delete(&format!("/job-infos/{job}"), ADA), 200);
    assert_eq!(removed["interviews"].as_array().unwrap().len(), 1);
    assert_eq!(
        removed["questions"].as_array().unwrap().len(),
        3 + CONCURRENT
    );
    expect(http.get(&format!("/job-infos/{job}"), ADA), 404);
    expect(http.get(&format!("/interviews/{interview}"), ADA), 404);
    let nothing = json!({"interviews": 0, "questions": 0});
    assert_eq!(expect(http.get("/users/me/usage", ADA), 200), nothing);

    drop(http);
    server.stop();
    eprintln!(
        "{}: whole flow {:?}, {CONCURRENT} concurrent clients {:?}",
        t.db.backend(),
        started.elapsed(),
        concurrent
    );
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

fn every_refusal_answers_the_one_error_body(t: &TestDb) {
    let server = Server::start(&t.url, dev_auth());
    let http = Client::new(&server);
    let job = ada_with_a_job(&http);
    let form = json!({"name": "DBA", "experienceLevel": "junior", "description": "Backups"});
    let as_type = |content_type: Option<&str>| {
        let ada = [(service::USER_HEADER, ADA.to_owned())];
        http.send_as("POST", "/job-infos", &ada, content_type, form.to_string())
    };

    // Bodies come as JSON: another type, or none, is a 415 and writes nothing.
    for content_type in [Some("text/plain"), None, Some("application/jsonx")] {
        let refused = expect_error(as_type(content_type), 415, None);
        assert!(
            refused["error"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{refused}"
        );
    }
    assert_eq!(ada_jobs(&http), 1, "a refused body wrote");
    expect(as_type(Some("application/json; charset=utf-8")), 201);
    expect(as_type(Some("Application/JSON")), 201);
    // A request without a body needs no type: it reads as {}.
    let interviews = format!("/job-infos/{job}/interviews");
    let ada = [(service::USER_HEADER, ADA.to_owned())];
    expect(
        http.send_as("POST", &interviews, &ada, None, String::new()),
        201,
    );

    // An array, or null, where an object is expected: the body is to blame, in the
    // API's words; nothing is written.
    let positional = json!(["T", "Name", "junior", "desc"]);
    let refused = expect_invalid(http.post("/job-infos", ADA, positional), "");
    assert_eq!(refused["error"], "expected a JSON object, found an array");
    let refused = expect_invalid(
        http.call("POST", "/job-infos", Some(ADA), Some(Value::Null)),
        "",
    );
    assert_eq!(refused["error"], "expected a JSON object, found null");
    assert_eq!(ada_jobs(&http), 3);
    let path = format!("/job-infos/{job}");
    expect_invalid(http.patch(&path, ADA, json!(["x"])), "");
    expect_invalid(
        http.put("/users/me", ADA, json!(["Eve", "eve@example.com"])),
        "",
    );
    // A wrong type inside: the field's path, no Rust type names.
    let wrong = json!({"name": 5, "experienceLevel": "junior", "description": "x"});
    let refused = expect_invalid(http.post("/job-infos", ADA, wrong), "name");
    assert_eq!(refused["error"], "expected a string, found the number 5");
    let refused = expect_invalid(
        http.post("/job-infos", ADA, json!({"name": "x"})),
        "experienceLevel",
    );
    assert_eq!(refused["error"], "experienceLevel is required");

    // Change forms: a misspelt field, null where the column cannot be NULL, nothing
    // to change. The job info is unchanged.
    let before = expect(http.get(&path, ADA), 200);
    let misspelt = expect_invalid(
        http.patch(&path, ADA, json!({"experience_level": "senior"})),
        "experience_level",
    );
    let error = misspelt["error"].as_str().unwrap();
    assert!(
        error.starts_with("unknown field experience_level; expected one of ")
            && error.contains("experienceLevel"),
        "{misspelt}"
    );
    let null = expect_invalid(http.patch(&path, ADA, json!({"name": null})), "name");
    assert_eq!(null["error"], "expected a string, found null");
    expect_invalid(http.patch(&path, ADA, json!({})), "");
    assert_eq!(expect(http.get(&path, ADA), 200), before);
    let refused = expect_invalid(
        http.post(&interviews, ADA, json!({"duration": null})),
        "duration",
    );
    assert_eq!(refused["error"], "expected a string, found null");
    expect_invalid(
        http.post(&interviews, ADA, json!({"humeChatID": "x"})),
        "humeChatID",
    );

    // Syntax errors keep their prefix; trailing text is the body's.
    let trailing = http.raw("POST", "/job-infos", Some(ADA), format!("{form} x"));
    let trailing = expect_error(trailing, 400, Some(""));
    assert!(
        trailing["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body: "),
        "{trailing}"
    );

    // x-user-id must be a user id that fits x-cache-tags: no comma, no whitespace.
    let refused = json!({"error": "not authenticated"});
    for id in ["user_ada,user_eve", "user ada", "user_ada,"] {
        let profile = json!({"name": "Eve", "email": "eve@example.com"});
        assert_eq!(
            expect(http.put("/users/me", id, profile), 401),
            refused,
            "{id}"
        );
        assert!(!stored(t, id), "{id} was stored");
    }
    assert_eq!(expect(http.get("/job-infos", "user_ada,"), 401), refused);

    // The router's own answers: an unknown route, a method the route does not take,
    // a body over the limit.
    expect_error(http.get("/no/such/route", ADA), 404, None);
    let method = http.call("DELETE", "/users/me/usage", Some(ADA), None);
    assert_eq!(method.allow.as_deref(), Some("GET,HEAD"), "{method:?}");
    expect_error(method, 405, None);
    expect_error(http.call("GET", "/webhooks/auth", None, None), 405, None);
    let huge = json!({"name": "x".repeat(service::BODY_LIMIT), "experienceLevel": "junior", "description": "x"});
    let too_large = expect_error(http.post("/job-infos", ADA, huge), 413, None);
    assert_eq!(too_large["limit"], service::BODY_LIMIT);
    assert!(
        too_large["error"]
            .as_str()
            .unwrap()
            .contains(&service::BODY_LIMIT.to_string()),
        "{too_large}"
    );
    assert_eq!(ada_jobs(&http), 3);

    drop(http);
    server.stop();
}

fn question_lists_are_capped_and_within_the_quota(t: &TestDb) {
    const QUOTA: u32 = 5;
    let server = Server::start_with_quota(&t.url, dev_auth(), QUOTA);
    let http = Client::new(&server);
    let job = ada_with_a_job(&http);
    let questions = format!("/job-infos/{job}/questions");
    let question = |text: &str| json!({"text": text, "difficulty": "easy"});
    let count = || {
        let usage = expect(http.get("/users/me/usage", ADA), 200);
        usage["questions"].as_i64().unwrap()
    };

    // An empty list, a list over the cap, a list that is not of objects.
    let empty = expect_invalid(http.post(&questions, ADA, json!([])), "");
    assert_eq!(empty["error"], "the list of questions is empty");
    let cap = service::MAX_QUESTIONS_PER_REQUEST;
    let many: Vec<Value> = (0..=cap).map(|i| question(&format!("Q{i}"))).collect();
    let too_many = expect_error(http.post(&questions, ADA, json!(many)), 413, Some(""));
    assert_eq!(too_many["limit"], cap);
    assert_eq!(
        too_many["error"],
        format!("at most {cap} questions per request")
    );
    let positional = json!([question("Fine."), ["Positional?", "easy"]]);
    let refused = expect_invalid(http.post(&questions, ADA, positional), "[1]");
    assert_eq!(refused["error"], "expected a JSON object, found an array");
    let refused = expect_invalid(http.post(&questions, ADA, json!("text")), "");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("a list of them"),
        "{refused}"
    );

    // Every check inside a list names the element: deserialization and the library's.
    let blank = json!([question("Fine."), question(" ")]);
    let refused = expect_invalid(http.post(&questions, ADA, blank), "[1].text");
    assert_eq!(refused["error"], "invalid text: must not be empty");
    let unknown = json!([question("Fine."), {"text": "x", "difficulty": "easy", "level": 1}]);
    expect_invalid(http.post(&questions, ADA, unknown), "[1].level");
    let missing = json!([{"difficulty": "easy"}]);
    let refused = expect_invalid(http.post(&questions, ADA, missing), "[0].text");
    assert_eq!(refused["error"], "text is required");
    let impossible = json!([question("Fine."), {"text": "x", "difficulty": "impossible"}]);
    let refused = expect_invalid(http.post(&questions, ADA, impossible), "[1].difficulty");
    assert_eq!(
        refused["error"],
        "expected one of easy, medium, hard, found impossible"
    );
    assert_eq!(count(), 0, "a refused list wrote");

    // The quota: a list that fits, then one that would go over is refused whole, and
    // a single question too once the quota is used up.
    let keys = expect(
        http.post(
            &questions,
            ADA,
            json!([question("A"), question("B"), question("C")]),
        ),
        201,
    );
    assert_eq!(keys.as_array().unwrap().len(), 3);
    let over = json!([question("D"), question("E"), question("F")]);
    let quota = expect_error(http.post(&questions, ADA, over), 403, None);
    assert_eq!(
        quota,
        json!({"error": format!("question quota of {QUOTA} reached"), "limit": QUOTA})
    );
    assert_eq!(count(), 3, "a list over the quota wrote");
    expect(
        http.post(&questions, ADA, json!([question("D"), question("E")])),
        201,
    );
    let quota = expect_error(http.post(&questions, ADA, question("F")), 403, None);
    assert_eq!(quota["limit"], QUOTA);
    let listed = expect(http.get(&questions, ADA), 200)["items"].clone();
    assert_eq!(texts(&listed), ["A", "B", "C", "D", "E"]);

    drop(http);
    server.stop();
}

fn a_cache_hit_is_byte_identical_to_the_miss(t: &TestDb) {
    if t.db.backend() == jobprep_repo::Backend::Postgres {
        t.db.install_cache_feed().unwrap();
    }
    let server = Server::start(&t.url, dev_auth());
    let http = Client::new(&server);
    let job = ada_with_a_job(&http);
    let path = format!("/job-infos/{job}");
    let miss = http.get(&path, ADA);
    assert_eq!(miss.cache.as_deref(), Some("miss"));
    let started = Instant::now();
    let hit = loop {
        let reply = http.get(&path, ADA);
        if reply.cache.as_deref() == Some("hit") {
            break reply;
        }
        assert!(started.elapsed() < TIMEOUT, "never a hit: {reply:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(hit.text, miss.text, "the same bytes");
    assert_eq!(hit.tags, miss.tags);
    // In the struct's order (id first), not sorted.
    assert!(hit.text.starts_with(r#"{"id":"#), "{}", hit.text);

    drop(http);
    server.stop();
}

fn lists_answer_bounded_pages_that_follow_their_cursor(t: &TestDb) {
    let server = Server::start(&t.url, dev_auth());
    let http = Client::new(&server);
    let job = ada_with_a_job(&http);
    for name in ["B", "C", "D", "E"] {
        let form = json!({"name": name, "experienceLevel": "junior", "description": "d"});
        expect(http.post("/job-infos", ADA, form), 201);
    }
    let whole = expect(http.get("/job-infos", ADA), 200);
    assert_eq!(
        whole["items"].as_array().unwrap().len(),
        5,
        "the default page holds all five"
    );
    assert_eq!(whole["next"], Value::Null);

    // Pages of two, followed by their cursors, are the whole list in its order.
    let mut names = Vec::new();
    let mut path = "/job-infos?limit=2".to_owned();
    loop {
        let page = expect(http.get(&path, ADA), 200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        names.extend(items.iter().map(|j| j["name"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/job-infos?limit=2&after={next}"),
            None => break,
        }
    }
    let in_order: Vec<&str> = whole["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, in_order);

    let questions = format!("/job-infos/{job}/questions");
    let three = json!([
        {"text": "Q1", "difficulty": "easy"},
        {"text": "Q2", "difficulty": "easy"},
        {"text": "Q3", "difficulty": "easy"},
    ]);
    expect(http.post(&questions, ADA, three), 201);
    let first = expect(http.get(&format!("{questions}?limit=2"), ADA), 200);
    assert_eq!(texts(&first["items"]), ["Q1", "Q2"]);
    let next = first["next"].as_str().unwrap();
    let rest = expect(
        http.get(&format!("{questions}?limit=2&after={next}"), ADA),
        200,
    );
    assert_eq!(texts(&rest["items"]), ["Q3"]);
    assert_eq!(rest["next"], Value::Null);
    let interviews = format!("/job-infos/{job}/interviews?limit=1");
    assert_eq!(
        expect(http.get(&interviews, ADA), 200),
        json!({"items": [], "next": null})
    );

    // Bad paging is a 400 in the one body, naming the parameter.
    expect_invalid(http.get("/job-infos?limit=0", ADA), "limit");
    expect_invalid(http.get("/job-infos?limit=1001", ADA), "limit");
    expect_invalid(http.get("/job-infos?limit=many", ADA), "limit");
    expect_invalid(http.get("/job-infos?after=not-a-cursor", ADA), "cursor");
    expect_invalid(http.get(&format!("{questions}?page=2"), ADA), "page");
}
