//! The auth webhook: Svix signatures, start-up modes, and the provider's user events.

use super::*;

backend_tests!(
    an_unsigned_or_badly_signed_webhook_changes_nothing,
    without_the_development_flag_no_caller_is_authenticated,
    the_auth_webhook_signs_up_updates_and_deletes_users_as_the_app_does,
);

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
    let verifier = WebhookVerifier::new(SVIX_SECRET, WEBHOOK_TOLERANCE).unwrap();
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
    use SignatureError::{Mismatch, MissingHeader, Stale};

    // Within 5 minutes of the clock, either way, and no further.
    assert_eq!(at(SVIX_TIMESTAMP), Ok(()));
    assert_eq!(at(SVIX_TIMESTAMP + 300), Ok(()));
    assert_eq!(at(SVIX_TIMESTAMP - 300), Ok(()));
    assert_eq!(at(SVIX_TIMESTAMP + 301), Err(Stale));
    assert_eq!(at(SVIX_TIMESTAMP - 301), Err(Stale));

    // The secret without its prefix is the same key.
    let bare = SVIX_SECRET.strip_prefix("whsec_").unwrap();
    let bare = WebhookVerifier::new(bare, WEBHOOK_TOLERANCE).unwrap();
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
    let refused = Auth::new(None, false).unwrap_err();
    assert!(
        refused.contains(WEBHOOK_SECRET_ENV) && refused.contains("--insecure-dev-auth"),
        "{refused}"
    );
    assert!(Auth::new(Some(" "), false).is_err(), "empty is none");
    for bad in ["whsec_not base64!", "whsec_"] {
        assert!(Auth::new(Some(bad), true).is_err(), "{bad}");
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
