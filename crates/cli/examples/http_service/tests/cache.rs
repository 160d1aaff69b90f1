//! The read cache: hits, byte-identical answers, and freshness after another process writes.

use super::*;

backend_tests!(a_cache_hit_is_byte_identical_to_the_miss,);

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
