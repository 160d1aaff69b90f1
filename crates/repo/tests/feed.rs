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

/// The next event, which must come within `PATIENCE` of `cause`.
fn next_event(listener: &mut Listener, cause: &str) -> FeedEvent {
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < PATIENCE, "no event after {cause}");
        if let Some(event) = listener.recv_timeout(Duration::from_millis(100)) {
            return event;
        }
    }
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
    let me = user(&t.db, id);
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
        let me = user(&t.db, "user_feed_write");
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
        let me = user(&t.db, "user_feed_rollback");
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
        let me = user(&t.db, "user_feed_tx");
        let mut listener = listen(t);
        t.sink.take();
        t.db.transaction(|tx| {
            let job = jobprep_job_infos::insert(tx, &me, &job("Backend"))?;
            jobprep_interviews::insert(tx, &me, job.id, &NewInterview::new())?;
            let renamed = jobprep_job_infos::JobInfoChanges { name: Some("Platform".into()), ..Default::default() };
            jobprep_job_infos::update(tx, &me, job.id, &renamed)?;
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

    fn options_that_cannot_work_are_refused_with_the_reason(t) {
        if t.backend() == Backend::Postgres {
            t.db.install_cache_feed().unwrap();
        }
        let refused = |options: FeedOptions| match Listener::start(&t.db, options) {
            Err(Error::Config(reason)) => reason,
            other => panic!("expected a configuration error, got {other:?}"),
        };
        let zero = refused(FeedOptions { capacity: 0, ..FeedOptions::default() });
        assert!(zero.contains("capacity"), "{zero}");
        let inverted = refused(FeedOptions {
            poll_interval: Duration::from_millis(500),
            idle_poll_interval: Duration::from_millis(100),
            ..FeedOptions::default()
        });
        assert!(inverted.contains("idle_poll_interval"), "{inverted}");

        // Extreme but valid waits neither overflow nor delay a stop.
        let listener = Listener::start(
            &t.db,
            FeedOptions {
                poll_interval: Duration::from_millis(1),
                idle_poll_interval: Duration::MAX,
                max_backoff: Duration::MAX,
                ..FeedOptions::default()
            },
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        listener.stop();
        assert!(started.elapsed() < Duration::from_secs(5));
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
    let me = user(&t.db, "user_feed_raw");
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
    // update a quota-checked write locks the user with), an insert that conflicts
    // and does nothing, and a delete of nothing send nothing; one that changes rows
    // sends their tags.
    app.batch_execute("UPDATE job_info SET name = 'x' WHERE false")
        .unwrap();
    app.batch_execute(&format!(
        "INSERT INTO users (id, name, email) VALUES ('{me}', 'n', 'x@x') ON CONFLICT DO NOTHING"
    ))
    .unwrap();
    app.batch_execute("DELETE FROM questions WHERE false")
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

/// The text of one value a query on `conn` returns.
fn text(conn: &mut PgConnection, sql: &str) -> String {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(sql))
        .get_result(conn)
        .unwrap()
}

/// The tags of the events, which must hold no reset.
fn all_tags(events: &[FeedEvent]) -> Vec<String> {
    events
        .iter()
        .flat_map(|e| match e {
            FeedEvent::Tags(tags) => strings(tags),
            FeedEvent::Reset => panic!("no reset expected: {events:?}"),
        })
        .collect()
}

/// Commits `insert`, one multi-row statement, from another connection; returns how many
/// rows of the feed's table it recorded, and the tags of the one batch the listener
/// got, which must hold `shared` and `rows` id tags besides, each once.
fn insert_rows(t: &TestDb, insert: &str, shared: &[String], rows: usize) -> String {
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    let mut app = raw(t);
    app.batch_execute(&format!("BEGIN; {insert}")).unwrap();
    let xid = text(&mut app, "pg_current_xact_id()::text");
    app.batch_execute("COMMIT").unwrap();
    let recorded = text(
        &mut app,
        &format!("(SELECT count(*)::text FROM jobprep_cache_feed.changes WHERE xid = '{xid}')"),
    );
    let events = collect(&mut listener, shared);
    assert_eq!(events.len(), 1, "one batch");
    let tags = all_tags(&events);
    assert_eq!(
        tags.len(),
        rows + shared.len(),
        "every row's id tag and the shared ones"
    );
    assert_eq!(tag_set(tags).len(), rows + shared.len(), "each once");
    listener.stop();
    recorded
}

#[test]
fn a_bulk_insert_is_one_recorded_change_and_one_batch() {
    let Some(t) = postgres() else { return };
    let (_, job) = seed(&t, "user_feed_bulk");
    let recorded = insert_rows(
        &t,
        &format!(
            "INSERT INTO questions (\"jobInfoId\", text, difficulty) \
             SELECT '{job}', 'question ' || n, 'easy' FROM generate_series(1, 10000) AS n"
        ),
        &[
            "global:questions".into(),
            format!("jobInfo:{job}:questions"),
        ],
        10_000,
    );
    assert_eq!(
        recorded, "1",
        "one row for the statement, not one per question"
    );
}

#[test]
fn a_multi_row_insert_into_a_table_recorded_per_row_is_still_one_batch() {
    let Some(t) = postgres() else { return };
    let (me, _) = seed(&t, "user_feed_many_jobs");
    let recorded = insert_rows(
        &t,
        &format!(
            "INSERT INTO job_info (name, \"experienceLevel\", description, \"userId\") \
             SELECT 'job ' || n, 'junior', 'd', '{me}' FROM generate_series(1, 500) AS n"
        ),
        &["global:jobInfos".into(), format!("user:{me}:jobInfos")],
        500,
    );
    // job_info's inserts are recorded per row; the listener joins a transaction's rows.
    assert_eq!(recorded, "500");
}

#[test]
fn ids_of_any_length_and_characters_arrive_intact() {
    let Some(t) = postgres() else { return };
    let mut app = raw(&t);
    // The app's ids are at most 255 characters; a schema that widens them still works.
    app.batch_execute("ALTER TABLE users ALTER COLUMN id TYPE text")
        .unwrap();
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    app.batch_execute(
        "INSERT INTO users (id, name, email) VALUES \
         (repeat(chr(1), 20000), 'n', 'long@x'), (repeat('\"', 255), 'n', 'quote@x'), \
         ('user_short', 'n', 'short@x')",
    )
    .unwrap();
    let expected = vec![
        "global:users".to_string(),
        format!("id:{}:users", "\u{1}".repeat(20000)),
        format!("id:{}:users", "\"".repeat(255)),
        "id:user_short:users".to_string(),
    ];
    assert_one_batch(&collect(&mut listener, &expected), &expected);
    listener.stop();
}

#[test]
fn a_column_the_app_adds_later_of_a_type_without_equality_keeps_updates_working() {
    let Some(t) = postgres() else { return };
    let (_, job) = seed(&t, "user_feed_json");
    let mut app = raw(&t);
    // `json` has no equality operator: a feed that compared rows column by column
    // would fail the app's updates.
    app.batch_execute("ALTER TABLE job_info ADD COLUMN meta json")
        .unwrap();
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    app.batch_execute(&format!(
        "UPDATE job_info SET meta = '{{\"a\": 1}}' WHERE id = '{job}'"
    ))
    .expect("the app's update succeeds");
    app.batch_execute(&format!(
        "UPDATE job_info SET meta = meta WHERE id = '{job}'"
    ))
    .unwrap();
    let expected = vec![
        "global:jobInfos".to_string(),
        format!("id:{job}:jobInfos"),
        "user:user_feed_json:jobInfos".to_string(),
    ];
    assert_one_batch(&collect(&mut listener, &expected), &expected);
    listener.stop();
}

#[test]
fn transactions_that_commit_out_of_id_order_each_arrive_once() {
    let Some(t) = postgres() else { return };
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    // The older transaction takes its id first and commits last.
    let mut older = raw(&t);
    older
        .batch_execute(
            "BEGIN; INSERT INTO users (id, name, email) VALUES ('user_older', 'n', 'older@x')",
        )
        .unwrap();
    raw(&t)
        .batch_execute(
            "INSERT INTO users (id, name, email) VALUES ('user_younger', 'n', 'younger@x')",
        )
        .unwrap();
    // The younger one arrives while the older one is still open...
    let younger = vec![
        "global:users".to_string(),
        "id:user_younger:users".to_string(),
    ];
    assert_one_batch(&collect(&mut listener, &younger), &younger);
    // ...and the older one when it commits, although its id is below what was read.
    older.batch_execute("COMMIT").unwrap();
    let older = vec![
        "global:users".to_string(),
        "id:user_older:users".to_string(),
    ];
    assert_one_batch(&collect(&mut listener, &older), &older);
    listener.stop();
}

#[test]
fn trimming_removes_what_listeners_read_without_a_reset() {
    let Some(t) = postgres() else { return };
    let me = user(&t.db, "user_feed_trim");
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    let mut app = raw(&t);
    let recorded = |app: &mut PgConnection| {
        text(
            app,
            "(SELECT count(*)::text FROM jobprep_cache_feed.changes)",
        )
    };
    jobprep_job_infos::insert(&t.db, &me, &job("Before the trim")).unwrap();
    let reported = t.sink.take_sorted();
    assert_one_batch(&collect(&mut listener, &reported), &reported);
    assert_ne!(recorded(&mut app), "0");

    // A trim does anything at most once per 30 s; ageing its clock stands for the wait.
    let age = "UPDATE jobprep_cache_feed.trimmed SET horizon_at = now() - interval '1 hour'";
    app.batch_execute(age).unwrap();
    t.db.trim_cache_feed().unwrap();
    assert_eq!(t.db.trim_cache_feed().unwrap(), 0, "not again within 30 s");
    // The 30 s stand for "every listener polled in between": this one polls twice
    // before each trim. The horizon is the cluster's oldest running transaction, which
    // other databases' clients can hold back for a moment: trim again until it moved.
    let started = Instant::now();
    loop {
        let polls = listener.status().polls;
        while listener.status().polls < polls + 2 {
            assert!(started.elapsed() < PATIENCE, "the listener stopped polling");
            std::thread::sleep(Duration::from_millis(5));
        }
        app.batch_execute(age).unwrap();
        if t.db.trim_cache_feed().unwrap() > 0 {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the trim never deleted");
    }
    assert_eq!(recorded(&mut app), "0", "everything read is gone");

    // The listener, which kept polling, goes on without a reset.
    jobprep_job_infos::insert(&t.db, &me, &job("After the trim")).unwrap();
    let reported = t.sink.take_sorted();
    assert_one_batch(&collect(&mut listener, &reported), &reported);
    listener.stop();
}

#[test]
fn changes_trimmed_before_a_listener_read_them_are_a_reset() {
    let Some(t) = postgres() else { return };
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    // A write whose recorded change is trimmed before the listener reads it, as a
    // trim would do to a listener that did not poll for longer than 30 s.
    raw(&t)
        .batch_execute(
            "BEGIN; \
             INSERT INTO users (id, name, email) VALUES ('user_trimmed', 'n', 'trimmed@x'); \
             DELETE FROM jobprep_cache_feed.changes WHERE xid = pg_current_xact_id(); \
             UPDATE jobprep_cache_feed.trimmed \
               SET below = (pg_current_xact_id()::text::bigint + 1)::text::xid8; \
             COMMIT",
        )
        .unwrap();
    let event = next_event(&mut listener, "the trim");
    assert_eq!(event, FeedEvent::Reset);
    // Once: the listener has moved past the trimmed horizon.
    assert!(collect(&mut listener, &[]).is_empty());
    listener.stop();
}

#[test]
fn a_lost_trim_horizon_is_one_reset_and_an_incomplete_install() {
    let Some(t) = postgres() else { return };
    let me = user(&t.db, "user_feed_horizon");
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    raw(&t)
        .batch_execute("DELETE FROM jobprep_cache_feed.trimmed")
        .unwrap();
    // What was trimmed before the row went cannot be known: one reset.
    assert_eq!(next_event(&mut listener, "the delete"), FeedEvent::Reset);
    assert!(listener
        .status()
        .last_error
        .is_some_and(|e| e.contains("cache-feed install")));
    // Nothing trims without the row, so nothing more is lost: writes still arrive,
    // with no reset before each.
    for title in ["First after", "Second after"] {
        jobprep_job_infos::insert(&t.db, &me, &job(title)).unwrap();
        let reported = t.sink.take_sorted();
        assert_one_batch(&collect(&mut listener, &reported), &reported);
    }
    assert_eq!(t.db.trim_cache_feed().unwrap(), 0);
    assert_eq!(
        t.db.cache_feed_status().unwrap(),
        FeedInstallation::Partial {
            missing: vec!["jobprep_cache_feed.trimmed row".into()]
        }
    );
    assert!(matches!(
        Listener::start(&t.db, FeedOptions::default()),
        Err(Error::Config(_))
    ));
    listener.stop();
    t.db.install_cache_feed().unwrap();
    assert_eq!(
        t.db.cache_feed_status().unwrap(),
        FeedInstallation::Installed
    );
}

#[test]
fn reinstalling_under_a_running_listener_is_one_reset_never_a_silent_gap() {
    let Some(t) = postgres() else { return };
    let me = user(&t.db, "user_feed_reinstall");
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    // Whether or not the listener read this change before the install dropped the
    // table that recorded it, what it may have missed must be a reset.
    jobprep_job_infos::insert(&t.db, &me, &job("Before the reinstall")).unwrap();
    t.db.install_cache_feed().unwrap();
    t.sink.take();
    let key = jobprep_job_infos::insert(&t.db, &me, &job("After the reinstall")).unwrap();
    let after = t.sink.take_sorted();
    let events = collect(&mut listener, &after);
    let resets: Vec<usize> = (0..events.len())
        .filter(|&i| events[i] == FeedEvent::Reset)
        .collect();
    // Found by its own id: the write before the install shares its other tags.
    let own = format!("id:{}:jobInfos", key.id);
    let batch = events
        .iter()
        .position(|e| matches!(e, FeedEvent::Tags(tags) if strings(tags).contains(&own)))
        .unwrap_or_else(|| panic!("the write after the install arrives: {events:?}"));
    assert_eq!(resets.len(), 1, "one reset: {events:?}");
    assert!(resets[0] < batch, "the reset comes first: {events:?}");
    assert_one_batch(&events[batch..], &after);
    // A listener started after the install has nothing to reset.
    let mut fresh = Listener::start(&t.db, FeedOptions::default()).unwrap();
    jobprep_job_infos::insert(&t.db, &me, &job("Seen by the new listener")).unwrap();
    let reported = t.sink.take_sorted();
    assert_one_batch(&collect(&mut fresh, &reported), &reported);
    fresh.stop();
    listener.stop();
}

#[test]
fn a_killed_connection_reconnects_and_resets_before_new_batches() {
    let Some(t) = postgres() else { return };
    let me = user(&t.db, "user_feed_kill");
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
    let first = next_event(&mut listener, "the kill");
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
    let event = next_event(&mut listener, "TRUNCATE");
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
    let changed = all_tags(&events);
    assert_eq!(changed.len(), 3, "{changed:?}");
    assert!(
        !changed.contains(&format!("id:{easy}:questions")),
        "{changed:?}"
    );
    assert!(changed.contains(&format!("jobInfo:{job}:questions")));
    listener.stop();
}

#[test]
fn a_recorded_change_naming_an_unknown_table_is_a_reset_and_is_reported() {
    let Some(t) = postgres() else { return };
    let mut listener = Listener::start(&t.db, FeedOptions::default()).unwrap();
    raw(&t)
        .batch_execute(
            "INSERT INTO jobprep_cache_feed.changes (source, ids) VALUES ('not_a_table', '{x}')",
        )
        .unwrap();
    let event = next_event(&mut listener, "the unknown row");
    assert_eq!(event, FeedEvent::Reset);
    let error = listener.status().last_error.unwrap();
    assert!(error.contains("unknown table \"not_a_table\""), "{error}");
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
    // Triggers without the table they write to (an older version's, say) are not a
    // feed a listener can read: it is refused until the install runs again.
    admin
        .batch_execute("DROP TABLE jobprep_cache_feed.changes CASCADE")
        .unwrap();
    assert_eq!(
        t.db.cache_feed_status().unwrap(),
        FeedInstallation::Partial {
            missing: vec!["jobprep_cache_feed.changes".into()]
        }
    );
    assert!(matches!(
        Listener::start(&t.db, FeedOptions::default()),
        Err(Error::Config(_))
    ));
    t.db.install_cache_feed().unwrap();
    assert_eq!(
        t.db.cache_feed_status().unwrap(),
        FeedInstallation::Installed
    );

    t.db.remove_cache_feed().unwrap();
    t.db.remove_cache_feed().unwrap();
    assert_eq!(t.db.cache_feed_status().unwrap(), FeedInstallation::Absent);
    // The tables and their writes are untouched.
    let me = user(&t.db, "user_feed_removed");
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
    assert!(matches!(t.db.trim_cache_feed(), Err(Error::Config(_))));
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
        user(&t.db, &format!("user_feed_full_{n}"));
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

/// How many sessions the listeners of the test database hold on the server.
fn listener_sessions(t: &TestDb) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut admin = PgConnection::establish(&t.url).unwrap();
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'jobprep-cache-feed'",
    )
    .get_result::<Count>(&mut admin)
    .unwrap()
    .n
}

/// With `sleep_after`, an idle listener closes its connection (so a scale-to-zero
/// server may suspend), and a write made while it sleeps is delivered when it wakes:
/// exactly its tags, no reset, since the changes were still there to read.
#[test]
fn postgres_a_sleeping_listener_holds_no_connection_and_misses_nothing() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    t.db.install_cache_feed().unwrap();
    let owner = user(&t.db, "user_sleepy");
    let options = FeedOptions {
        sleep_after: Some(Duration::from_millis(300)),
        wake_every: Duration::from_secs(2),
        ..FeedOptions::default()
    };
    let mut listener = Listener::start(&t.db, options).unwrap();
    assert_eq!(listener_sessions(&t), 1);
    let started = Instant::now();
    while !listener.status().asleep {
        assert!(started.elapsed() < PATIENCE, "{:?}", listener.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    while listener_sessions(&t) > 0 {
        assert!(
            started.elapsed() < PATIENCE,
            "the sleeping listener's session stays"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let key = jobprep_job_infos::insert(
        &t.db,
        &owner,
        &NewJobInfo::new("Asleep", ExperienceLevel::Junior, "x"),
    )
    .unwrap();
    let expected = tag_set([
        "global:jobInfos".to_owned(),
        format!("id:{}:jobInfos", key.id),
        format!("user:{owner}:jobInfos"),
    ]);
    let events = collect(&mut listener, &expected);
    assert_one_batch(&events, &expected);
    let status = listener.status();
    assert_eq!((status.resets, status.reconnects), (0, 0), "{status:?}");
    assert!(status.sleeps >= 1, "{status:?}");

    // Found nothing on waking: back to sleep, no session again.
    let started = Instant::now();
    while listener_sessions(&t) > 0 || !listener.status().asleep {
        assert!(started.elapsed() < PATIENCE, "{:?}", listener.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    listener.stop();
}

#[test]
fn a_listener_refuses_a_zero_sleep_or_wake() {
    let Some(t) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    for options in [
        FeedOptions {
            sleep_after: Some(Duration::ZERO),
            ..FeedOptions::default()
        },
        FeedOptions {
            wake_every: Duration::ZERO,
            ..FeedOptions::default()
        },
    ] {
        match Listener::start(&t.db, options) {
            Err(Error::Config(reason)) => assert!(reason.contains("sleep_after"), "{reason}"),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }
}
