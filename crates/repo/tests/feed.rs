//! The change feed of cache tags (`jobprep_repo::feed`) on real databases: the
//! listener receives exactly the tags of each committed write, once, whoever wrote.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::{Connection as _, RunQueryDsl as _};
use jobprep_interviews::NewInterview;
use jobprep_job_infos::{ExperienceLevel, NewJobInfo};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::feed::{FeedEvent, FeedInstallation, FeedOptions, Listener};
use jobprep_repo::{Backend, Db, Error, UserId};
use jobprep_testing::backend_tests;
use jobprep_testing::{tag_set, user, TestDb};

/// Every wait in these tests is bounded by this.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long to keep listening after the expected tags arrived, to catch repeats.
const QUIET: Duration = Duration::from_millis(400);

fn listen(t: &TestDb) -> Listener {
    if t.backend() == Backend::Postgres {
        t.db.install_cache_feed().unwrap();
    }
    Listener::start(&t.db, FeedOptions::default()).unwrap()
}

fn strings(tags: &[jobprep_repo::CacheTag]) -> Vec<String> {
    tags.iter().map(|t| t.as_str().to_owned()).collect()
}

/// The events that arrive until `expected` is covered (or `PATIENCE` runs out), then
/// for `QUIET` more.
fn collect(listener: &mut Listener, expected: &[String]) -> Vec<FeedEvent> {
    let expected: BTreeSet<&String> = expected.iter().collect();
    let mut seen = BTreeSet::new();
    let mut events = Vec::new();
    let started = Instant::now();
    while !expected.iter().all(|tag| seen.contains(*tag)) && started.elapsed() < PATIENCE {
        if let Some(event) = listener.recv_timeout(Duration::from_millis(100)) {
            if let FeedEvent::Tags(tags) = &event {
                seen.extend(strings(tags));
            }
            events.push(event);
        }
    }
    let quiet = Instant::now();
    while quiet.elapsed() < QUIET {
        if let Some(event) = listener.recv_timeout(Duration::from_millis(50)) {
            events.push(event);
        }
    }
    events
}

/// Asserts that the events are exactly one batch holding exactly `expected`.
fn assert_one_batch(events: &[FeedEvent], expected: &[String]) {
    match events {
        [FeedEvent::Tags(tags)] => {
            let got = strings(tags);
            assert_eq!(
                got.len(),
                tag_set(got.clone()).len(),
                "no tag twice: {got:?}"
            );
            assert_eq!(tag_set(got), tag_set(expected.to_vec()));
        }
        other => panic!("expected one batch of {expected:?}, got {other:?}"),
    }
}

fn job(name: &str) -> NewJobInfo {
    NewJobInfo::new(name, ExperienceLevel::Senior, "Rust and PostgreSQL")
}

/// A user with one job info, one interview and two questions; returns the user.
fn seed(t: &TestDb, id: &str) -> (UserId, jobprep_repo::JobInfoId) {
    let me = user(t, id);
    let job = jobprep_job_infos::insert(&t.db, &me, &job("Backend")).unwrap();
    jobprep_interviews::insert(&t.db, &me, job.id, &NewInterview::new()).unwrap();
    let asked = ["Explain MVCC.", "Design a rate limiter."]
        .map(|q| NewQuestion::new(q, QuestionDifficulty::Hard));
    jobprep_questions::insert_many(&t.db, &me, job.id, &asked).unwrap();
    t.sink.take();
    (me, job.id)
}

backend_tests! {
    fn a_write_through_jobprep_arrives_once_with_the_rules_tags(t) {
        let me = user(t, "user_feed_write");
        let mut listener = listen(t);
        jobprep_job_infos::insert(&t.db, &me, &job("Backend")).unwrap();
        let reported = t.sink.take_sorted();
        assert_eq!(reported.len(), 3);
        // The database computes the same tags the Rust rules report.
        assert_one_batch(&collect(&mut listener, &reported), &reported);
        listener.stop();
    }

    fn a_write_through_a_second_db_in_another_thread_arrives(t) {
        let mut listener = listen(t);
        let url = t.url.clone();
        let expected = std::thread::spawn(move || {
            let other = Db::connect(&url).unwrap();
            let me = UserId::new("user_feed_other").unwrap();
            let written = jobprep_users::upsert(
                &other,
                &jobprep_users::NewUser::new(me, "Other", "other@feed.example"),
            )
            .unwrap();
            strings(&jobprep_repo::cache_rules::user_write(&written.id))
        })
        .join()
        .unwrap();
        assert_one_batch(&collect(&mut listener, &expected), &expected);
        listener.stop();
    }

    fn a_cascade_delete_reports_every_removed_row(t) {
        let (me, _) = seed(t, "user_feed_cascade");
        let mut listener = listen(t);
        jobprep_users::delete(&t.db, &me).unwrap();
        let reported = t.sink.take_sorted();
        // The user, one job info, one interview, two questions.
        assert_eq!(tag_set(reported.clone()).len(), 2 + 3 + 3 + 4, "{reported:?}");
        assert_one_batch(&collect(&mut listener, &reported), &tag_set(reported.clone()));
        listener.stop();
    }

    fn a_rolled_back_transaction_sends_nothing(t) {
        let me = user(t, "user_feed_rollback");
        let mut listener = listen(t);
        let outcome: Result<(), Error> = t.db.transaction(|tx| {
            jobprep_job_infos::insert(tx, &me, &job("Never"))?;
            Err(Error::Config("changed my mind".into()))
        });
        assert!(outcome.is_err());
        // A later write is the only thing that arrives.
        jobprep_users::upsert(
            &t.db,
            &jobprep_users::NewUser::new(me.clone(), "Renamed", "renamed@feed.example"),
        )
        .unwrap();
        let expected = strings(&jobprep_repo::cache_rules::user_write(&me));
        assert_one_batch(&collect(&mut listener, &expected), &expected);
        listener.stop();
    }

    fn a_transaction_arrives_as_one_batch(t) {
        let me = user(t, "user_feed_tx");
        let mut listener = listen(t);
        t.sink.take();
        t.db.transaction(|tx| {
            let job = jobprep_job_infos::insert(tx, &me, &job("Backend"))?;
            jobprep_interviews::insert(tx, &me, job.id, &NewInterview::new())?;
            jobprep_job_infos::update(tx, &me, job.id, &Default::default())?;
            Ok(())
        })
        .unwrap();
        let reported = t.sink.take_sorted();
        assert_one_batch(&collect(&mut listener, &reported), &reported);
        listener.stop();
    }

    fn a_stopped_listener_ends_its_iterator_in_bounded_time(t) {
        let listener = listen(t);
        let stop = listener.stop_handle();
        let reader = std::thread::spawn(move || listener.count());
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        stop.stop();
        assert_eq!(reader.join().unwrap(), 0);
        assert!(started.elapsed() < PATIENCE);
    }
}

/// A PostgreSQL test database with the feed installed; `None` when PostgreSQL is
/// skipped.
fn postgres() -> Option<TestDb> {
    let t = TestDb::new(Backend::Postgres)?;
    t.db.install_cache_feed().unwrap();
    Some(t)
}

fn raw(t: &TestDb) -> PgConnection {
    PgConnection::establish(&t.url).unwrap()
}

#[test]
fn a_raw_sql_write_by_another_app_arrives_with_the_same_tags() {
    let Some(t) = postgres() else { return };
    let me = user(&t, "user_feed_raw");
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    let mut app = raw(&t);
    // As the original app writes through drizzle: plain SQL, database defaults for ids.
    app.batch_execute(
        "INSERT INTO job_info (name, \"experienceLevel\", description, \"userId\") \
         VALUES ('From the app', 'junior', 'written by psql', 'user_feed_raw')",
    )
    .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let id: Id = diesel::RunQueryDsl::get_result(
        diesel::sql_query("SELECT id::text AS id FROM job_info WHERE name = 'From the app'"),
        &mut app,
    )
    .unwrap();
    let expected = vec![
        "global:jobInfos".to_string(),
        format!("user:{me}:jobInfos"),
        format!("id:{}:jobInfos", id.id),
    ];
    assert_one_batch(&collect(&mut listener, &expected), &expected);

    // An update that matches nothing, or leaves its rows as they were (the no-op
    // update a quota-checked write locks the user with), sends nothing; one that
    // changes rows sends their tags.
    app.batch_execute("UPDATE job_info SET name = 'x' WHERE false")
        .unwrap();
    app.batch_execute("UPDATE job_info SET name = name")
        .unwrap();
    app.batch_execute(&format!(
        "UPDATE users SET \"updatedAt\" = \"updatedAt\" WHERE id = '{me}'"
    ))
    .unwrap();
    app.batch_execute("UPDATE job_info SET name = 'Renamed by the app'")
        .unwrap();
    assert_one_batch(&collect(&mut listener, &expected), &expected);
    listener.stop();
}

#[test]
fn a_bulk_insert_is_a_few_notifications_and_one_batch() {
    let Some(t) = postgres() else { return };
    let (_, job) = seed(&t, "user_feed_bulk");
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    // A second, bare listener counts the notifications themselves.
    let mut counter = raw(&t);
    counter.batch_execute("LISTEN jobprep_cache_tags").unwrap();
    let mut app = raw(&t);
    app.batch_execute(&format!(
        "INSERT INTO questions (\"jobInfoId\", text, difficulty) \
         SELECT '{job}', 'question ' || n, 'easy' FROM generate_series(1, 10000) AS n"
    ))
    .unwrap();
    let expected = vec![
        "global:questions".to_string(),
        format!("jobInfo:{job}:questions"),
    ];
    let events = collect(&mut listener, &expected);
    let tags: Vec<String> = events
        .iter()
        .flat_map(|e| match e {
            FeedEvent::Tags(tags) => strings(tags),
            FeedEvent::Reset => panic!("no reset expected: {events:?}"),
        })
        .collect();
    assert_eq!(
        tags.len(),
        10_002,
        "every question's id tag and the two shared ones"
    );
    assert_eq!(tag_set(tags.clone()).len(), 10_002, "each once");
    // Normally one batch; a burst that pauses mid-way on a busy machine may be split,
    // never repeated (the tags above are each once).
    assert!(!events.is_empty());

    let mut notifications = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        for n in counter.notifications_iter() {
            notifications.push(n.unwrap().payload);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        notifications.iter().all(|p| p.len() < 8000),
        "every payload under the limit"
    );
    assert!(
        (2..=100).contains(&notifications.len()),
        "10,000 rows in a few dozen notifications, not 10,000: {}",
        notifications.len()
    );
    eprintln!(
        "bulk insert of 10000 rows: {} notifications",
        notifications.len()
    );
    listener.stop();
}

#[test]
fn short_tags_in_bulk_stay_under_the_payload_limit() {
    let Some(t) = postgres() else { return };
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    // The shortest tags pack the most per notification: `id:u1:users` and the like.
    raw(&t)
        .batch_execute(
            "INSERT INTO users (id, name, email) \
             SELECT 'u' || n, 'n', n || '@x' FROM generate_series(1, 5000) AS n \
             UNION ALL SELECT repeat(chr(1), 255), 'n', 'ctl@x' \
             UNION ALL SELECT repeat('\"', 255), 'n', 'quote@x'",
        )
        .expect("the write succeeds: no payload over the limit");
    let mut expected: Vec<String> = (1..=5000).map(|n| format!("id:u{n}:users")).collect();
    expected.push("global:users".into());
    // The widest tags JSON can make of a 255-character id (escaped 6 and 2 times over).
    expected.push(format!("id:{}:users", "\u{1}".repeat(255)));
    expected.push(format!("id:{}:users", "\"".repeat(255)));
    let tags: Vec<String> = collect(&mut listener, &expected)
        .iter()
        .flat_map(|e| match e {
            FeedEvent::Tags(tags) => strings(tags),
            FeedEvent::Reset => panic!("no reset expected"),
        })
        .collect();
    assert_eq!(tags.len(), 5003);
    assert_eq!(tag_set(tags), tag_set(expected));
    listener.stop();
}

#[test]
fn a_killed_connection_reconnects_and_resets_before_new_batches() {
    let Some(t) = postgres() else { return };
    let me = user(&t, "user_feed_kill");
    let options = FeedOptions {
        min_backoff: Duration::from_millis(50),
        ..FeedOptions::default()
    };
    let mut listener = Listener::start(&t.db, options).unwrap();
    let pid = listener.status().backend_pid.unwrap();
    raw(&t)
        .batch_execute(&format!("SELECT pg_terminate_backend({pid})"))
        .unwrap();
    // Writes made while the listener is away are lost; the reset stands for them.
    let started = Instant::now();
    let first = loop {
        assert!(started.elapsed() < PATIENCE, "no event after the kill");
        if let Some(event) = listener.recv_timeout(Duration::from_millis(100)) {
            break event;
        }
    };
    assert_eq!(first, FeedEvent::Reset);
    let status = listener.status();
    assert_eq!(status.reconnects, 1);
    assert_ne!(status.backend_pid, Some(pid));
    assert!(status.last_error.is_some());

    jobprep_job_infos::insert(&t.db, &me, &job("After the kill")).unwrap();
    let reported = t.sink.take_sorted();
    let reported: Vec<String> = reported
        .into_iter()
        .filter(|tag| tag.contains("jobInfos"))
        .collect();
    assert_one_batch(&collect(&mut listener, &reported), &reported);
    listener.stop();
}

#[test]
fn truncate_is_a_reset() {
    let Some(t) = postgres() else { return };
    seed(&t, "user_feed_truncate");
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    raw(&t).batch_execute("TRUNCATE questions").unwrap();
    let started = Instant::now();
    let event = loop {
        assert!(started.elapsed() < PATIENCE, "no event after TRUNCATE");
        if let Some(event) = listener.recv_timeout(Duration::from_millis(100)) {
            break event;
        }
    };
    assert_eq!(event, FeedEvent::Reset);
    listener.stop();
}

#[test]
fn an_update_reports_only_the_rows_it_changed() {
    let Some(t) = postgres() else { return };
    let (_, job) = seed(&t, "user_feed_partial");
    let mut app = raw(&t);
    let easy: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
        "(SELECT id::text FROM questions WHERE \"jobInfoId\" = '{job}' ORDER BY text LIMIT 1)"
    )))
    .get_result(&mut app)
    .unwrap();
    app.batch_execute(&format!(
        "UPDATE questions SET difficulty = 'easy' WHERE id = '{easy}'"
    ))
    .unwrap();
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    // Both questions are set to easy; only the one that was hard changes.
    app.batch_execute(&format!(
        "UPDATE questions SET difficulty = 'easy' WHERE \"jobInfoId\" = '{job}'"
    ))
    .unwrap();
    let events = collect(&mut listener, &["global:questions".to_string()]);
    let changed: Vec<String> = events
        .iter()
        .flat_map(|e| match e {
            FeedEvent::Tags(tags) => strings(tags),
            FeedEvent::Reset => panic!("no reset expected: {events:?}"),
        })
        .collect();
    assert_eq!(changed.len(), 3, "{changed:?}");
    assert!(
        !changed.contains(&format!("id:{easy}:questions")),
        "{changed:?}"
    );
    assert!(changed.contains(&format!("jobInfo:{job}:questions")));
    listener.stop();
}

#[test]
fn a_row_whose_tags_cannot_fit_a_notification_is_a_reset_not_a_failed_write() {
    let Some(t) = postgres() else { return };
    let mut app = raw(&t);
    // The app's ids are at most 255 characters, under 1,600 bytes as JSON; the guard
    // is for a schema that widens them, as the app's team could.
    app.batch_execute("ALTER TABLE users ALTER COLUMN id TYPE text")
        .unwrap();
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    // JSON escapes chr(1) as six bytes: the id tag alone is over 7,000 bytes.
    app.batch_execute(
        "INSERT INTO users (id, name, email) \
             VALUES (repeat(chr(1), 1200), 'n', 'long@x'), ('user_short', 'n', 'short@x')",
    )
    .expect("the write succeeds");
    let events = collect(&mut listener, &["id:user_short:users".to_string()]);
    assert!(events.contains(&FeedEvent::Reset), "{events:?}");
    listener.stop();
}

#[test]
fn a_foreign_payload_on_the_channel_is_a_reset_and_is_reported() {
    let Some(t) = postgres() else { return };
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    raw(&t)
        .batch_execute("NOTIFY jobprep_cache_tags, 'not the feed''s JSON'")
        .unwrap();
    let started = Instant::now();
    let event = loop {
        assert!(
            started.elapsed() < PATIENCE,
            "no event after the foreign payload"
        );
        if let Some(event) = listener.recv_timeout(Duration::from_millis(100)) {
            break event;
        }
    };
    assert_eq!(event, FeedEvent::Reset);
    let error = listener.status().last_error.unwrap();
    assert!(error.contains("unreadable notification"), "{error}");
    listener.stop();
}

#[test]
fn install_remove_and_status_are_idempotent() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    assert_eq!(t.db.cache_feed_status().unwrap(), FeedInstallation::Absent);
    let schema_before = t.db.describe_schema().unwrap();
    let refused = Listener::start(&t.db, FeedOptions::default()).unwrap_err();
    assert!(
        matches!(&refused, Error::Config(m) if m.contains("cache-feed install")),
        "{refused}"
    );
    t.db.install_cache_feed().unwrap();
    t.db.install_cache_feed().unwrap();
    assert_eq!(
        t.db.cache_feed_status().unwrap(),
        FeedInstallation::Installed
    );
    // The migrated schema, as migrations compare it, does not change; migrating again
    // is still a no-op.
    assert_eq!(t.db.describe_schema().unwrap(), schema_before);
    assert!(t.db.migrate().unwrap().applied.is_empty());

    let mut admin = raw(&t);
    admin
        .batch_execute("ALTER TABLE questions DISABLE TRIGGER jobprep_cache_feed_insert")
        .unwrap();
    assert_eq!(
        t.db.cache_feed_status().unwrap(),
        FeedInstallation::Partial {
            missing: vec!["questions.jobprep_cache_feed_insert".into()]
        }
    );
    t.db.install_cache_feed().unwrap();
    assert_eq!(
        t.db.cache_feed_status().unwrap(),
        FeedInstallation::Installed
    );

    t.db.remove_cache_feed().unwrap();
    t.db.remove_cache_feed().unwrap();
    assert_eq!(t.db.cache_feed_status().unwrap(), FeedInstallation::Absent);
    // The tables and their writes are untouched.
    let me = user(&t, "user_feed_removed");
    jobprep_job_infos::insert(&t.db, &me, &job("Still works")).unwrap();
}

#[test]
fn a_transaction_mode_pooler_url_is_refused() {
    let Some(t) = postgres() else { return };
    let pooled = Db::builder(&t.url).pooler_safe(true).build().unwrap();
    let refused = Listener::start(&pooled, FeedOptions::default()).unwrap_err();
    assert!(
        matches!(&refused, Error::Config(m) if m.contains("session connection")),
        "{refused}"
    );
    assert!(!refused.is_retryable());
}

#[test]
fn sqlite_needs_nothing_installed() {
    let t = TestDb::new(Backend::Sqlite).unwrap();
    assert_eq!(
        t.db.cache_feed_status().unwrap(),
        FeedInstallation::InProcess
    );
    assert!(matches!(t.db.install_cache_feed(), Err(Error::Config(_))));
    assert!(matches!(t.db.remove_cache_feed(), Err(Error::Config(_))));
}

#[test]
fn sqlite_a_full_queue_turns_into_a_reset_before_newer_batches() {
    let t = TestDb::new(Backend::Sqlite).unwrap();
    let options = FeedOptions {
        capacity: 2,
        ..FeedOptions::default()
    };
    let mut listener = Listener::start(&t.db, options).unwrap();
    for n in 0..5 {
        user(&t, &format!("user_feed_full_{n}"));
        jobprep_users::upsert(
            &t.db,
            &jobprep_users::NewUser::new(
                UserId::new(format!("user_feed_full_{n}")).unwrap(),
                "Full",
                format!("full{n}@feed.example"),
            ),
        )
        .unwrap();
    }
    let first = listener.recv_timeout(Duration::from_secs(1));
    assert_eq!(
        first,
        Some(FeedEvent::Reset),
        "the dropped batches come first as a reset"
    );
    let mut rest = Vec::new();
    while let Some(event) = listener.recv_timeout(Duration::from_millis(100)) {
        rest.push(event);
    }
    assert_eq!(rest.len(), 2, "the two queued batches follow: {rest:?}");
    assert_eq!(listener.status().resets, 1);
    listener.stop();
}
