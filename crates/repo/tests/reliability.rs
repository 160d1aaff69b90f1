//! Reliability and security through the public API, on both backends (see
//! RELIABILITY.md at the repository root for the guarantees these tests prove):
//!
//! - pool exhaustion: a retryable `Unavailable` after the connection timeout, never a
//!   deadlock, and the pool serves again afterwards;
//! - concurrent writers: some serial order, no torn rows, no lost rows;
//! - bad input (property tests): no panic, `InvalidInput` naming the field (or `Config`
//!   for URLs); valid text with SQL meta-characters stored and read back verbatim;
//! - tenant isolation, randomized against an in-memory model;
//! - migrations reverted and re-applied next to live traffic.
//!
//! Every wait is bounded: threads are joined with a deadline and loops have a fixed
//! number of iterations.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jobprep_interviews::{Interview, InterviewChanges, InterviewId, NewInterview};
use jobprep_job_infos::{ExperienceLevel, JobInfo, JobInfoChanges, JobInfoId, NewJobInfo};
use jobprep_questions::{NewQuestion, Question, QuestionChanges, QuestionDifficulty, QuestionId};
use jobprep_repo::{users, Backend, Db, DbConfig, Entity, Error, Executor, Result, UserId};
use jobprep_testing::backend_tests;
use jobprep_testing::TestDb;
use jobprep_users::NewUser;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// Creates a user (through the use case) and returns its id.
fn user(db: &Db, id: &str) -> UserId {
    let id = UserId::new(id).unwrap();
    let local: String = id
        .as_str()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    jobprep_users::upsert(
        db,
        &NewUser::new(
            id.clone(),
            format!("Name of {id}"),
            format!("{local}@example.com"),
        ),
    )
    .unwrap();
    id
}

fn new_job(name: &str) -> NewJobInfo {
    NewJobInfo::new(name, ExperienceLevel::Senior, format!("About {name}"))
}

/// Joins `handle`, failing the test (instead of hanging) when it has not finished
/// within `limit`.
fn join_within<T>(handle: JoinHandle<T>, limit: Duration, what: &str) -> T {
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} did not finish within {limit:?}: deadlock or hang"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T>, entity: Entity, context: &str) {
    assert!(
        matches!(result, Err(Error::NotFound { entity: e }) if e == entity),
        "{context}: expected {entity} not found, got {result:?}"
    );
}

/// The field of an `InvalidInput`, `None` for `Ok`; any other error fails the test.
fn invalid_field<T: std::fmt::Debug>(result: &Result<T>) -> Option<&'static str> {
    match result {
        Ok(_) => None,
        Err(Error::InvalidInput { field, .. }) => Some(field),
        Err(other) => panic!("expected Ok or InvalidInput, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// 3. Pool exhaustion
// ---------------------------------------------------------------------------------

const POOL_TIMEOUT: Duration = Duration::from_millis(300);
/// How late past the connection timeout an `Unavailable` may arrive on a loaded
/// machine; a hang would be far later.
const POOL_MARGIN: Duration = Duration::from_secs(4);

fn assert_timed_out<T: std::fmt::Debug>(result: &Result<T>, elapsed: Duration, context: &str) {
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{context}: expected Unavailable, got {result:?}"
    );
    assert!(
        result.as_ref().err().is_some_and(Error::is_retryable),
        "{context}: {result:?} should be retryable"
    );
    assert!(
        elapsed >= POOL_TIMEOUT,
        "{context}: gave up after {elapsed:?}, before the {POOL_TIMEOUT:?} timeout"
    );
    assert!(
        elapsed < POOL_TIMEOUT + POOL_MARGIN,
        "{context}: took {elapsed:?} for a {POOL_TIMEOUT:?} timeout"
    );
}

backend_tests! {
    fn an_exhausted_pool_times_out_with_unavailable_then_serves_again(t) {
        let db = Db::builder(&t.url)
            .max_size(2)
            .connection_timeout(POOL_TIMEOUT)
            .build()
            .unwrap();
        let owner = user(&db, "user_pool");

        // Holder 1: inside a transaction that writes; holder 2: inside a read. (Two
        // write transactions cannot both be open on SQLite: the second would queue on
        // the first's write lock.)
        let (ready_tx, ready_rx) = mpsc::channel::<&'static str>();
        let (release_tx1, release_rx1) = mpsc::channel::<()>();
        let (release_tx2, release_rx2) = mpsc::channel::<()>();
        let holder1 = {
            let (db, owner, ready) = (db.clone(), owner.clone(), ready_tx.clone());
            std::thread::spawn(move || {
                db.transaction(|tx| {
                    let job = jobprep_job_infos::insert(tx, &owner, &new_job("Held"))?;
                    ready.send("transaction").unwrap();
                    // Dropped sender (test failed) or release: go on either way.
                    let _ = release_rx1.recv_timeout(Duration::from_secs(20));
                    Ok(job)
                })
            })
        };
        let holder2 = {
            let (db, owner, ready) = (db.clone(), owner.clone(), ready_tx);
            std::thread::spawn(move || {
                db.read(|conn| {
                    let found = users::get(conn, &owner)?;
                    ready.send("read").unwrap();
                    let _ = release_rx2.recv_timeout(Duration::from_secs(20));
                    Ok(found)
                })
            })
        };
        for _ in 0..2 {
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("both holders got a connection");
        }
        assert_eq!(db.pool_state().connections, 2);
        assert_eq!(db.pool_state().idle, 0);

        // A third caller, a read and then a write, each time out.
        let started = Instant::now();
        let read = jobprep_job_infos::list_for_user(&db, &owner);
        assert_timed_out(&read, started.elapsed(), "read on an exhausted pool");
        let started = Instant::now();
        let write = jobprep_job_infos::insert(&db, &owner, &new_job("Refused"));
        assert_timed_out(&write, started.elapsed(), "write on an exhausted pool");
        let started = Instant::now();
        let tx = db.transaction(|tx| jobprep_job_infos::insert(tx, &owner, &new_job("Refused")));
        assert_timed_out(&tx, started.elapsed(), "transaction on an exhausted pool");

        release_tx1.send(()).unwrap();
        release_tx2.send(()).unwrap();
        let held = join_within(holder1, Duration::from_secs(15), "holder 1").unwrap();
        join_within(holder2, Duration::from_secs(15), "holder 2").unwrap();

        // The pool serves again, on its own, and the held transaction committed.
        let jobs = jobprep_job_infos::list_for_user(&db, &owner).unwrap().value;
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![held.id]);
        assert_eq!(jobs[0].name, "Held", "the refused writes wrote nothing");
        let later = jobprep_job_infos::insert(&db, &owner, &new_job("Later")).unwrap();
        assert_eq!(jobprep_job_infos::get(&db, &owner, later.id).unwrap().value.name, "Later");
        assert!(db.pool_state().connections <= 2, "{:?}", db.pool_state());
    }

    fn a_waiting_caller_gets_the_connection_as_soon_as_it_is_returned(t) {
        let db = Db::builder(&t.url)
            .max_size(1)
            .connection_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let owner = user(&db, "user_waiter");
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let holder = {
            let db = db.clone();
            std::thread::spawn(move || {
                db.read(|_conn| {
                    ready_tx.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(250));
                    Ok(Instant::now())
                })
            })
        };
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let waited = jobprep_job_infos::list_for_user(&db, &owner);
        let served = Instant::now();
        assert!(waited.is_ok(), "{waited:?}");
        let released = join_within(holder, Duration::from_secs(10), "holder").unwrap();
        assert!(served > released, "the caller waited for the connection to be returned");
        let late = served - released;
        assert!(late < Duration::from_secs(5), "served when returned, not at the timeout ({late:?} late)");
    }

    fn a_call_on_the_db_from_inside_its_own_transaction_times_out_instead_of_hanging(t) {
        let db = Db::builder(&t.url)
            .max_size(1)
            .connection_timeout(POOL_TIMEOUT)
            .build()
            .unwrap();
        let owner = user(&db, "user_nested");
        let handle = {
            let (db, owner) = (db.clone(), owner.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                // The mistake: `&db` instead of `tx` inside the transaction needs a second
                // connection from a pool of one.
                let inner = db.transaction(|tx| {
                    jobprep_job_infos::insert(tx, &owner, &new_job("Kept"))?;
                    let started = Instant::now();
                    let nested = jobprep_job_infos::list_for_user(&db, &owner);
                    let elapsed = started.elapsed();
                    Ok((nested, elapsed))
                });
                let propagated = db.transaction(|tx| {
                    jobprep_job_infos::insert(tx, &owner, &new_job("Rolled back too"))?;
                    jobprep_questions::count_for_user(&db, &owner)?;
                    Ok(())
                });
                (inner, propagated, started.elapsed())
            })
        };
        let (inner, propagated, total) =
            join_within(handle, POOL_TIMEOUT * 2 + POOL_MARGIN * 2, "nested call");
        let (nested, elapsed) = inner.unwrap();
        assert_timed_out(&nested, elapsed, "nested call inside a transaction");
        assert!(matches!(propagated, Err(Error::Unavailable { .. })), "{propagated:?}");
        assert!(total < POOL_TIMEOUT * 2 + POOL_MARGIN, "{total:?}");
        // The first transaction committed (its closure returned Ok, holding the error);
        // the second, which propagated it, rolled
        // back; the one connection went back to the pool.
        let names: Vec<String> = jobprep_job_infos::list_for_user(&db, &owner)
            .unwrap()
            .value
            .into_iter()
            .map(|j| j.name)
            .collect();
        assert_eq!(names, vec!["Kept".to_owned()]);
        assert_eq!(db.pool_state().connections, 1);
    }
}

// ---------------------------------------------------------------------------------
// 4. Concurrency
// ---------------------------------------------------------------------------------

/// Parses the `(thread, round)` a writer encoded in a field.
fn writer_of(text: &str, prefix: &str) -> (usize, usize) {
    let rest = text
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{text:?} lacks {prefix:?}"));
    let (thread, round) = rest.split_once('/').unwrap();
    (thread.parse().unwrap(), round.parse().unwrap())
}

backend_tests! {
    fn concurrent_updates_of_one_interview_end_in_one_writers_state(t) {
        const THREADS: usize = 6;
        const ROUNDS: usize = 12;
        let owner = user(&t.db, "user_interviewer");
        let job = jobprep_job_infos::insert(&t.db, &owner, &new_job("Contended")).unwrap();
        let interview = jobprep_interviews::insert(&t.db, &owner, job.id, &NewInterview::new()).unwrap();
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (db, owner, barrier) = (t.db.clone(), owner.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut errors = Vec::new();
                    for round in 0..ROUNDS {
                        let duration = format!("{thread:02}:{round:02}:00");
                        let chat = format!("chat {thread}/{round}");
                        let feedback = format!("feedback {thread}/{round}");
                        // Odd threads split their write in two statements in one
                        // transaction: a torn row would show if isolation failed.
                        let result = if thread % 2 == 0 {
                            jobprep_interviews::update(&db, &owner, interview.id, &InterviewChanges {
                                duration: Some(duration),
                                hume_chat_id: Some(Some(chat)),
                                feedback: Some(Some(feedback)),
                            })
                        } else {
                            db.transaction(|tx| {
                                jobprep_interviews::update(tx, &owner, interview.id, &InterviewChanges {
                                    duration: Some(duration),
                                    ..Default::default()
                                })?;
                                jobprep_interviews::update(tx, &owner, interview.id, &InterviewChanges {
                                    hume_chat_id: Some(Some(chat)),
                                    feedback: Some(Some(feedback)),
                                    ..Default::default()
                                })
                            })
                        };
                        if let Err(error) = result {
                            errors.push(format!("thread {thread} round {round}: {error:?}"));
                        }
                    }
                    errors
                })
            })
            .collect();
        let errors: Vec<String> = handles
            .into_iter()
            .flat_map(|h| join_within(h, Duration::from_secs(60), "interview writer"))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");

        let row = jobprep_interviews::get(&t.db, &owner, interview.id).unwrap().value.interview;
        let from_chat = writer_of(row.hume_chat_id.as_deref().unwrap(), "chat ");
        let from_feedback = writer_of(row.feedback.as_deref().unwrap(), "feedback ");
        let (hours, minutes) = row.duration.split_once(':').unwrap();
        let from_duration = (hours.parse().unwrap(), minutes[..2].parse().unwrap());
        assert_eq!(from_chat, from_feedback, "torn row: {row:?}");
        assert_eq!(from_chat, from_duration, "torn row: {row:?}");
        // In a serial order, the last write is the last one of some thread.
        assert_eq!(from_chat.1, ROUNDS - 1, "a later write was lost: {row:?}");
        assert!(row.updated_at >= row.created_at);
    }

    fn concurrent_bulk_inserts_into_one_job_info_keep_every_acknowledged_row(t) {
        const THREADS: usize = 4;
        const ROUNDS: usize = 6;
        let owner = user(&t.db, "user_bulk");
        let job = jobprep_job_infos::insert(&t.db, &owner, &new_job("Bulk")).unwrap();
        let other_job = jobprep_job_infos::insert(&t.db, &owner, &new_job("Bystander")).unwrap();
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (db, owner, barrier) = (t.db.clone(), owner.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut acknowledged = BTreeMap::new();
                    let mut errors = Vec::new();
                    for round in 0..ROUNDS {
                        let n = 1 + (thread * 7 + round * 13) % 40;
                        let batch: Vec<NewQuestion> = (0..n)
                            .map(|i| NewQuestion::new(format!("t{thread} r{round} q{i}"), QuestionDifficulty::Medium))
                            .collect();
                        // Every other round reads, then writes, in one transaction: on
                        // SQLite this is where BEGIN IMMEDIATE matters.
                        let result = if round % 2 == 0 {
                            jobprep_questions::insert_many(&db, &owner, job.id, &batch)
                        } else {
                            db.transaction(|tx| {
                                let before = jobprep_questions::list_for_job_info(tx, &owner, job.id)?.value.len();
                                let keys = jobprep_questions::insert_many(tx, &owner, job.id, &batch)?;
                                let after = jobprep_questions::list_for_job_info(tx, &owner, job.id)?.value.len();
                                // SQLite's writers are serialized (BEGIN IMMEDIATE): nobody
                                // else adds rows meanwhile. PostgreSQL's READ COMMITTED
                                // shows each statement the rows committed so far: never
                                // fewer.
                                let consistent = match db.backend() {
                                    Backend::Sqlite => after == before + keys.len(),
                                    Backend::Postgres => after >= before + keys.len(),
                                };
                                if !consistent {
                                    return Err(Error::Config(format!("saw {before} then {after} rows after adding {}", keys.len())));
                                }
                                Ok(keys)
                            })
                        };
                        match result {
                            Ok(keys) => {
                                assert_eq!(keys.len(), n);
                                for (key, question) in keys.into_iter().zip(batch) {
                                    acknowledged.insert(key.id, question.text);
                                }
                            }
                            Err(error) => errors.push(format!("thread {thread} round {round}: {error:?}")),
                        }
                    }
                    (acknowledged, errors)
                })
            })
            .collect();
        let mut acknowledged = BTreeMap::new();
        let mut errors = Vec::new();
        for handle in handles {
            let (acked, errs) = join_within(handle, Duration::from_secs(60), "bulk inserter");
            acknowledged.extend(acked);
            errors.extend(errs);
        }
        assert!(errors.is_empty(), "{errors:#?}");
        let expected: usize = (0..THREADS)
            .flat_map(|thread| (0..ROUNDS).map(move |round| 1 + (thread * 7 + round * 13) % 40))
            .sum();
        assert_eq!(acknowledged.len(), expected, "ids are unique");

        let stored: BTreeMap<QuestionId, String> =
            jobprep_questions::list_for_job_info(&t.db, &owner, job.id)
                .unwrap()
                .value
                .into_iter()
                .map(|q| (q.id, q.text))
                .collect();
        assert_eq!(stored, acknowledged, "exactly the acknowledged rows, each with its text");
        assert_eq!(
            jobprep_questions::count_for_user(&t.db, &owner).unwrap().value,
            i64::try_from(expected).unwrap()
        );
        assert!(jobprep_questions::list_for_job_info(&t.db, &owner, other_job.id).unwrap().value.is_empty());
    }
}

// ---------------------------------------------------------------------------------
// 5. Bad input: property tests
// ---------------------------------------------------------------------------------

/// Fragments that break naive escaping or validation.
const NASTY: &[&str] = &[
    "'",
    "\"",
    ";",
    "--",
    "/*",
    "*/",
    "\\",
    "\\'",
    "\0",
    "%",
    "_",
    "$1",
    "?",
    ":name",
    "' OR '1'='1",
    "'); DROP TABLE users; --",
    "\"; DELETE FROM job_info; /*",
    "E'\\x00'",
    "😀",
    "🦀",
    "👩‍💻",
    "é",
    "e\u{301}",
    "中文",
    "\u{202e}",
    "\u{feff}",
    "\u{200b}",
    "\u{10ffff}",
    " ",
    "\u{a0}",
    "\n",
    "\r\n",
    "\t",
    "@",
    ".",
    ":",
];

fn fragment() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(NASTY).prop_map(str::to_owned),
        2 => "[a-zA-Z0-9]{1,6}",
        1 => any::<char>().prop_map(String::from),
    ]
    .boxed()
}

/// Arbitrary strings: nasty fragments, arbitrary unicode, empty, blank, lengths around
/// the 255 and 1000 character limits, and very long ones.
fn any_text() -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::collection::vec(fragment(), 0..12).prop_map(|parts| parts.concat()),
        3 => any::<String>(),
        1 => Just(String::new()),
        1 => "[ \t\n\u{a0}\u{3000}]{1,4}",
        1 => (fragment(), 250usize..260).prop_map(|(part, n)| {
            let part = if part.is_empty() { "x".to_owned() } else { part };
            part.chars().cycle().take(n).collect()
        }),
        1 => (fragment(), 995usize..1005).prop_map(|(part, n)| {
            let part = if part.is_empty() { "y".to_owned() } else { part };
            part.chars().cycle().take(n).collect()
        }),
        1 => (fragment(), 20_000usize..70_000).prop_map(|(part, n)| {
            let part = if part.is_empty() { "z".to_owned() } else { part };
            part.chars().cycle().take(n).collect()
        }),
    ]
    .boxed()
}

/// The documented contract of required text: non-blank, at most `max` characters (as
/// PostgreSQL counts them), no NUL.
fn required_ok(text: &str, max: usize) -> bool {
    !text.trim().is_empty() && !text.contains('\0') && text.chars().count() <= max
}

/// `HH:MM:SS`, hours 2 to 6 digits, minutes and seconds 00 to 59.
fn duration_ok(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    let digits = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    let below_60 = |p: &str| p.len() == 2 && digits(p) && p.parse::<u32>().is_ok_and(|n| n < 60);
    parts.len() == 3
        && (2..=6).contains(&parts[0].len())
        && digits(parts[0])
        && below_60(parts[1])
        && below_60(parts[2])
}

fn durations() -> BoxedStrategy<String> {
    prop_oneof![
        2 => any_text(),
        2 => "[0-9]{0,7}:[0-9]{0,3}:[0-9]{0,3}",
        1 => "[0-9]{2}:[0-6][0-9]:[0-6][0-9]",
        1 => "[0-9 +-]{1,3}:[0-9]{2}:[0-9]{2}(:[0-9]{2})?",
    ]
    .boxed()
}

fn uuid_like() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any_text(),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).hyphenated().to_string()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string()),
        1 => any::<u128>().prop_map(|n| format!(" {} ", uuid::Uuid::from_u128(n).urn())),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).braced().to_string().to_uppercase()),
        1 => (any::<u128>(), 0usize..36).prop_map(|(n, cut)| uuid::Uuid::from_u128(n).to_string()[..cut].to_owned()),
        1 => (any::<u128>(), fragment()).prop_map(|(n, f)| format!("{}{f}", uuid::Uuid::from_u128(n))),
    ]
    .boxed()
}

fn labels() -> BoxedStrategy<String> {
    let known = ["junior", "mid-level", "senior", "easy", "medium", "hard"];
    prop_oneof![
        2 => any_text(),
        2 => proptest::sample::select(known.to_vec()).prop_map(str::to_owned),
        1 => (proptest::sample::select(known.to_vec()), fragment())
            .prop_map(|(label, f)| format!("{label}{f}")),
        1 => proptest::sample::select(known.to_vec()).prop_map(str::to_uppercase),
        1 => proptest::sample::select(known.to_vec()).prop_map(|l| format!(" {l}")),
    ]
    .boxed()
}

/// The `jobprep_*` URL options.
const OPTIONS: &[&str] = &[
    "pool_max_size",
    "pool_min_idle",
    "pool_timeout_secs",
    "pool_idle_timeout_secs",
    "pool_max_lifetime_secs",
    "pooler_safe",
    "max_replica_lag_ms",
];

fn urls() -> BoxedStrategy<String> {
    let schemes = [
        "postgres://",
        "postgresql://",
        "sqlite://",
        "sqlite:",
        "mysql://",
        "postgres:/",
        "://",
        "",
    ];
    prop_oneof![
        2 => any_text(),
        2 => (proptest::sample::select(schemes.to_vec()), any_text())
            .prop_map(|(scheme, rest)| format!("{scheme}{rest}")),
        1 => (any_text(), any_text())
            .prop_map(|(key, value)| format!("postgres://u:pw@h/db?jobprep_{key}={value}")),
        1 => (proptest::sample::select(OPTIONS.to_vec()), any_text())
            .prop_map(|(key, value)| format!("postgres://u:pw@h/db?a=b&jobprep_{key}={value}&c")),
        1 => (any_text(), any_text())
            .prop_map(|(path, query)| format!("sqlite://{path}?{query}")),
    ]
    .boxed()
}

fn pure_config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Picks which one field of a form gets the arbitrary value; the others stay valid.
fn one_field(fields: usize) -> impl Strategy<Value = (usize, String)> {
    (0..fields, any_text())
}

proptest! {
    #![proptest_config(pure_config())]

    #[test]
    fn user_ids_accept_exactly_the_documented_text(text in any_text()) {
        let result = UserId::new(text.clone());
        match invalid_field(&result) {
            None => {
                prop_assert!(required_ok(&text, 255), "{text:?} was accepted");
                let id = result.unwrap();
                prop_assert_eq!(id.as_str(), text.as_str());
            }
            Some(field) => {
                prop_assert_eq!(field, "userId");
                prop_assert!(!required_ok(&text, 255), "{text:?} was refused");
            }
        }
        // FromStr and JSON agree with the constructor.
        prop_assert_eq!(UserId::from_str(&text).ok(), UserId::new(text.clone()).ok());
        let json = serde_json::to_string(&text).unwrap();
        prop_assert_eq!(serde_json::from_str::<UserId>(&json).ok(), UserId::new(text.clone()).ok());
    }

    #[test]
    fn uuid_ids_parse_uuids_and_refuse_the_rest_naming_the_field(text in uuid_like()) {
        let expected = uuid::Uuid::parse_str(text.trim()).ok();
        let job = JobInfoId::from_str(&text);
        let interview = InterviewId::from_str(&text);
        let question = QuestionId::from_str(&text);
        prop_assert_eq!(invalid_field(&job), expected.is_none().then_some("jobInfoId"));
        prop_assert_eq!(invalid_field(&interview), expected.is_none().then_some("interviewId"));
        prop_assert_eq!(invalid_field(&question), expected.is_none().then_some("questionId"));
        if let Some(uuid) = expected {
            let job = job.unwrap();
            prop_assert_eq!(job.as_uuid(), uuid);
            prop_assert_eq!(JobInfoId::from_str(&job.to_string()).unwrap(), job);
            prop_assert_eq!(interview.unwrap().as_uuid(), uuid);
            prop_assert_eq!(question.unwrap().as_uuid(), uuid);
        }
    }

    #[test]
    fn enum_labels_parse_exactly_and_refuse_the_rest_naming_the_field(text in labels()) {
        let level = ExperienceLevel::from_str(&text);
        let known_level = ExperienceLevel::ALL.iter().find(|l| l.as_str() == text);
        prop_assert_eq!(invalid_field(&level), known_level.is_none().then_some("experienceLevel"));
        prop_assert_eq!(level.ok(), known_level.copied());
        let difficulty = QuestionDifficulty::from_str(&text);
        let known_difficulty = QuestionDifficulty::ALL.iter().find(|d| d.as_str() == text);
        prop_assert_eq!(invalid_field(&difficulty), known_difficulty.is_none().then_some("difficulty"));
        prop_assert_eq!(difficulty.ok(), known_difficulty.copied());
    }

    #[test]
    fn new_user_validation_names_the_bad_field((which, text) in one_field(3)) {
        let id = UserId::new("user_prop").unwrap();
        let mut form = NewUser::new(id, "Valid Name", "valid@example.com");
        let (field, ok) = match which {
            0 => { form.name = text.clone(); ("name", required_ok(&text, 255)) }
            1 => {
                form.email = text.clone();
                // Not the whole rule, but what any accepted email must satisfy.
                let plausible = required_ok(&text, 255)
                    && text.matches('@').count() == 1
                    && !text.starts_with('@')
                    && !text.chars().any(char::is_whitespace);
                let result = form.validate();
                if result.is_ok() {
                    prop_assert!(plausible, "accepted email {text:?}");
                }
                ("email", result.is_ok())
            }
            _ => { form.image_url = Some(text.clone()); ("imageUrl", required_ok(&text, 1000)) }
        };
        let result = form.validate();
        prop_assert_eq!(invalid_field(&result), (!ok).then_some(field), "{:?}", text);
    }

    #[test]
    fn new_job_info_validation_names_the_bad_field((which, text) in one_field(3)) {
        let mut form = new_job("Valid");
        let field = match which {
            0 => { form.name = text.clone(); "name" }
            1 => { form.description = text.clone(); "description" }
            _ => { form.title = Some(text.clone()); "title" }
        };
        let ok = required_ok(&text, usize::MAX);
        prop_assert_eq!(invalid_field(&form.validate()), (!ok).then_some(field), "{:?}", text);

        let mut changes = JobInfoChanges::default();
        match which {
            0 => changes.name = Some(text.clone()),
            1 => changes.description = Some(text.clone()),
            _ => changes.title = Some(Some(text.clone())),
        }
        prop_assert_eq!(invalid_field(&changes.validate()), (!ok).then_some(field), "{:?}", text);
        let untitle = JobInfoChanges { title: Some(None), ..Default::default() };
        prop_assert!(untitle.validate().is_ok());
    }

    #[test]
    fn interview_validation_names_the_bad_field(duration in durations(), text in any_text(), which in 0..3usize) {
        let mut form = NewInterview::new();
        let mut changes = InterviewChanges::default();
        let (field, ok) = match which {
            0 => {
                form.duration = duration.clone();
                changes.duration = Some(duration.clone());
                ("duration", duration_ok(&duration))
            }
            1 => {
                form.hume_chat_id = Some(text.clone());
                changes.hume_chat_id = Some(Some(text.clone()));
                ("humeChatId", required_ok(&text, usize::MAX))
            }
            _ => {
                changes.feedback = Some(Some(text.clone()));
                ("feedback", required_ok(&text, usize::MAX))
            }
        };
        if which < 2 {
            prop_assert_eq!(invalid_field(&form.validate()), (!ok).then_some(field), "{:?} {:?}", duration, text);
        }
        prop_assert_eq!(invalid_field(&changes.validate()), (!ok).then_some(field), "{:?} {:?}", duration, text);
    }

    #[test]
    fn question_validation_names_the_bad_field(text in any_text()) {
        let ok = required_ok(&text, usize::MAX);
        let form = NewQuestion::new(text.clone(), QuestionDifficulty::Easy);
        prop_assert_eq!(invalid_field(&form.validate()), (!ok).then_some("text"));
        let changes = QuestionChanges { text: Some(text.clone()), difficulty: None };
        prop_assert_eq!(invalid_field(&changes.validate()), (!ok).then_some("text"));
    }

    #[test]
    fn forms_from_json_never_panic_and_keep_the_text_for_validation(
        text in any_text(),
        label in labels(),
        raw in any_text(),
    ) {
        // Arbitrary bytes as JSON: an error, never a panic.
        let _ = serde_json::from_str::<NewJobInfo>(&raw);
        let _ = serde_json::from_str::<InterviewChanges>(&raw);
        let _ = serde_json::from_str::<NewUser>(&raw);
        // Well-formed JSON with arbitrary values: the text arrives unchanged (validation
        // is the write's job); an unknown enum label is refused.
        let job = serde_json::from_value::<NewJobInfo>(serde_json::json!({
            "name": text, "description": text, "title": text, "experienceLevel": label,
        }));
        let known = ExperienceLevel::from_str(&label).is_ok();
        prop_assert_eq!(job.is_ok(), known, "{:?}", label);
        if let Ok(job) = job {
            prop_assert_eq!(&job.name, &text);
            prop_assert_eq!(job.validate().is_ok(), required_ok(&text, usize::MAX));
        }
        let question = serde_json::from_value::<NewQuestion>(serde_json::json!({
            "text": text, "difficulty": label,
        }));
        prop_assert_eq!(question.is_ok(), QuestionDifficulty::from_str(&label).is_ok());
        let changes = serde_json::from_value::<InterviewChanges>(serde_json::json!({
            "duration": text, "humeChatId": null, "feedback": text,
        }))
        .unwrap();
        prop_assert_eq!(&changes.hume_chat_id, &Some(None));
        prop_assert_eq!(changes.feedback.as_ref().and_then(Option::as_deref), Some(text.as_str()));
        prop_assert_eq!(invalid_field(&changes.validate()), (!duration_ok(&text)).then_some("duration"));
    }

    #[test]
    fn url_parsing_never_panics_and_refuses_with_a_configuration_error(url in urls()) {
        match DbConfig::parse(&url) {
            Ok(config) => {
                // Printing works, whatever the URL held.
                let _ = format!("{config:?} {}", config.url);
            }
            Err(error) => prop_assert!(matches!(error, Error::Config(_)), "{error:?}"),
        }
        // Building a handle opens nothing, so garbage never reaches a driver here.
        match Db::connect(&url) {
            Ok(db) => {
                let _ = format!("{db:?}");
                prop_assert_eq!(db.pool_state().connections, 0);
            }
            Err(error) => prop_assert!(matches!(error, Error::Config(_)), "{error:?}"),
        }
        prop_assert_eq!(DbConfig::parse(&url).is_ok(), Db::connect(&url).is_ok());
    }
}

#[test]
fn known_bad_urls_are_configuration_errors() {
    for url in [
        "",
        "   ",
        "mysql://root@localhost/db",
        "postgres://u@h/db\0",
        "sqlite://",
        "sqlite::memory:",
        "sqlite://a.db?mode=ro",
        "postgres://h/db?jobprep_pool_max_size=lots",
        "postgres://h/db?jobprep_pool_max_size=0",
        "postgres://h/db?jobprep_pool_max_size=99999999999",
        "postgres://h/db?jobprep_pool_min_idle=5&jobprep_pool_max_size=2",
        "postgres://h/db?jobprep_pool_timeout_secs=0",
        "postgres://h/db?jobprep_pooler_safe=maybe",
        "postgres://h/db?jobprep_=1",
    ] {
        let error = Db::connect(url).unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{url:?}: {error:?}");
        assert!(!error.to_string().is_empty());
    }
}

/// Valid text made of SQL meta-characters, quotes, escapes and unicode.
fn tricky_text(max_chars: usize) -> BoxedStrategy<String> {
    proptest::collection::vec(fragment(), 1..10)
        .prop_map(move |parts| {
            let text: String = parts.concat().replace('\0', "\\0");
            let text: String = text.chars().take(max_chars).collect();
            if text.trim().is_empty() {
                format!("x{text}").chars().take(max_chars).collect()
            } else {
                text
            }
        })
        .boxed()
}

fn db_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

backend_tests! {
    fn sql_metacharacters_and_unicode_are_stored_and_read_back_verbatim(t) {
        let case = AtomicUsize::new(0);
        let mut runner = TestRunner::new(db_config(48));
        let strategy = (tricky_text(200), tricky_text(255), tricky_text(1000));
        runner.run(&strategy, |(a, b, c)| {
            let n = case.fetch_add(1, Ordering::Relaxed);
            // Users: the id, name and image URL as given; the email's local part too.
            let id = UserId::new(format!("{a}#{n}")).unwrap();
            let local: String = a.chars().filter(|ch| !ch.is_whitespace() && *ch != '@').collect();
            let form = NewUser {
                id: id.clone(),
                name: b.clone(),
                email: format!("{local}.{n}@example.com"),
                image_url: Some(c.clone()),
                created_at: None,
                updated_at: None,
            };
            prop_assert!(form.validate().is_ok(), "{form:?}");
            let written = jobprep_users::upsert(&t.db, &form).unwrap();
            let read = jobprep_users::get(&t.db, &id).unwrap().value;
            prop_assert_eq!(&written, &read);
            prop_assert_eq!((read.id.as_str(), read.name.as_str(), read.email.as_str()), (id.as_str(), b.as_str(), form.email.as_str()));
            prop_assert_eq!(read.image_url.as_deref(), Some(c.as_str()));

            // Job infos: insert, update, list.
            let job = jobprep_job_infos::insert(&t.db, &id, &NewJobInfo::new(a.clone(), ExperienceLevel::Junior, c.clone()).with_title(b.clone())).unwrap();
            let row = jobprep_job_infos::get(&t.db, &id, job.id).unwrap().value;
            prop_assert_eq!((row.name.as_str(), row.title.as_deref(), row.description.as_str()), (a.as_str(), Some(b.as_str()), c.as_str()));
            jobprep_job_infos::update(&t.db, &id, job.id, &JobInfoChanges {
                name: Some(c.clone()),
                title: Some(Some(a.clone())),
                description: Some(b.clone()),
                experience_level: None,
            }).unwrap();
            let listed = jobprep_job_infos::list_for_user(&t.db, &id).unwrap().value;
            prop_assert_eq!(listed.len(), 1);
            prop_assert_eq!((listed[0].name.as_str(), listed[0].title.as_deref(), listed[0].description.as_str()), (c.as_str(), Some(a.as_str()), b.as_str()));

            // Interviews: chat id on create, feedback on update.
            let interview = jobprep_interviews::insert(&t.db, &id, job.id, &NewInterview {
                duration: "00:01:02".into(),
                hume_chat_id: Some(b.clone()),
            }).unwrap();
            jobprep_interviews::update(&t.db, &id, interview.id, &InterviewChanges {
                feedback: Some(Some(c.clone())),
                ..Default::default()
            }).unwrap();
            let got = jobprep_interviews::get(&t.db, &id, interview.id).unwrap().value;
            prop_assert_eq!(got.interview.hume_chat_id.as_deref(), Some(b.as_str()));
            prop_assert_eq!(got.interview.feedback.as_deref(), Some(c.as_str()));
            prop_assert_eq!(got.job_info.title.as_deref(), Some(a.as_str()));
            let listed = jobprep_interviews::list_for_job_info(&t.db, &id, job.id).unwrap().value;
            prop_assert_eq!(listed.len(), 1);
            prop_assert_eq!(&listed[0], &got.interview);

            // Questions: one insert, one bulk insert (the hand-written SQL), one update.
            let single = jobprep_questions::insert(&t.db, &id, job.id, &NewQuestion::new(a.clone(), QuestionDifficulty::Hard)).unwrap();
            let bulk = jobprep_questions::insert_many(&t.db, &id, job.id, &[
                NewQuestion::new(b.clone(), QuestionDifficulty::Easy),
                NewQuestion::new(c.clone(), QuestionDifficulty::Medium),
            ]).unwrap();
            let texts: BTreeMap<QuestionId, String> = jobprep_questions::list_for_job_info(&t.db, &id, job.id)
                .unwrap().value.into_iter().map(|q| (q.id, q.text)).collect();
            let expected: BTreeMap<QuestionId, String> = [(single.id, a.clone()), (bulk[0].id, b.clone()), (bulk[1].id, c.clone())].into_iter().collect();
            prop_assert_eq!(texts, expected);
            jobprep_questions::update(&t.db, &id, bulk[0].id, &QuestionChanges { text: Some(c.clone()), difficulty: None }).unwrap();
            prop_assert_eq!(jobprep_questions::get(&t.db, &id, bulk[0].id).unwrap().value.question.text, c.clone());
            Ok(())
        }).unwrap();
    }

    fn arbitrary_input_through_the_use_cases_is_stored_verbatim_or_refused_writing_nothing(t) {
        let owner = user(&t.db, "user_arbitrary");
        let job = jobprep_job_infos::insert(&t.db, &owner, &new_job("Target")).unwrap();
        let mut runner = TestRunner::new(db_config(64));
        runner.run(&(any_text(), durations(), 0..4usize), |(text, duration, which)| {
            let jobs_before = jobprep_job_infos::list_for_user(&t.db, &owner).unwrap().value.len();
            let questions_before = jobprep_questions::count_for_user(&t.db, &owner).unwrap().value;
            match which {
                0 => {
                    let form = new_job("Named").with_title(text.clone());
                    let result = jobprep_job_infos::insert(&t.db, &owner, &form);
                    prop_assert_eq!(invalid_field(&result), (!required_ok(&text, usize::MAX)).then_some("title"));
                    if let Ok(key) = result {
                        let row = jobprep_job_infos::get(&t.db, &owner, key.id).unwrap().value;
                        prop_assert_eq!(row.title.as_deref(), Some(text.as_str()));
                        jobprep_job_infos::delete(&t.db, &owner, key.id).unwrap();
                    }
                }
                1 => {
                    // One bad question in a batch refuses the whole batch.
                    let batch = [
                        NewQuestion::new("fine", QuestionDifficulty::Easy),
                        NewQuestion::new(text.clone(), QuestionDifficulty::Hard),
                    ];
                    let result = jobprep_questions::insert_many(&t.db, &owner, job.id, &batch);
                    prop_assert_eq!(invalid_field(&result), (!required_ok(&text, usize::MAX)).then_some("text"));
                    if let Ok(keys) = result {
                        let row = jobprep_questions::get(&t.db, &owner, keys[1].id).unwrap().value;
                        prop_assert_eq!(row.question.text, text.clone());
                        for key in keys {
                            jobprep_questions::delete(&t.db, &owner, key.id).unwrap();
                        }
                    }
                }
                2 => {
                    let form = NewInterview { duration: duration.clone(), hume_chat_id: None };
                    let result = jobprep_interviews::insert(&t.db, &owner, job.id, &form);
                    prop_assert_eq!(invalid_field(&result), (!duration_ok(&duration)).then_some("duration"));
                    if let Ok(key) = result {
                        let row = jobprep_interviews::get(&t.db, &owner, key.id).unwrap().value;
                        prop_assert_eq!(row.interview.duration, duration.clone());
                        jobprep_interviews::delete(&t.db, &owner, key.id).unwrap();
                    }
                }
                _ => {
                    let id = UserId::new("user_arbitrary_email").unwrap();
                    let result = jobprep_users::upsert(&t.db, &NewUser::new(id.clone(), "Someone", text.clone()));
                    match invalid_field(&result) {
                        Some(field) => {
                            prop_assert_eq!(field, "email");
                            assert_not_found(jobprep_users::get(&t.db, &id), Entity::User, "refused upsert");
                        }
                        None => {
                            prop_assert_eq!(jobprep_users::get(&t.db, &id).unwrap().value.email, text.clone());
                            jobprep_users::delete(&t.db, &id).unwrap();
                        }
                    }
                }
            }
            // Refused or cleaned up: nothing is left behind.
            prop_assert_eq!(jobprep_job_infos::list_for_user(&t.db, &owner).unwrap().value.len(), jobs_before);
            prop_assert_eq!(jobprep_questions::count_for_user(&t.db, &owner).unwrap().value, questions_before);
            Ok(())
        }).unwrap();
        assert_eq!(jobprep_interviews::count_for_user(&t.db, &owner).unwrap().value, 0);
    }

    fn very_long_text_is_stored_verbatim(t) {
        let owner = user(&t.db, "user_long");
        let long: String = "é'; -- /* 😀 \\ ".chars().cycle().take(500_000).collect();
        let job = jobprep_job_infos::insert(&t.db, &owner, &NewJobInfo::new("Long", ExperienceLevel::MidLevel, long.clone())).unwrap();
        assert_eq!(jobprep_job_infos::get(&t.db, &owner, job.id).unwrap().value.description, long);
        let keys = jobprep_questions::insert_many(&t.db, &owner, job.id, &[NewQuestion::new(long.clone(), QuestionDifficulty::Hard)]).unwrap();
        assert_eq!(jobprep_questions::get(&t.db, &owner, keys[0].id).unwrap().value.question.text, long);
        // The user columns are varchar(255) on PostgreSQL: 255 characters fit, even wide ones.
        let wide: String = "😀".repeat(255);
        let id = UserId::new(wide.clone()).unwrap();
        jobprep_users::upsert(&t.db, &NewUser::new(id.clone(), wide.clone(), format!("{}@example.com", "é".repeat(200)))).unwrap();
        assert_eq!(jobprep_users::get(&t.db, &id).unwrap().value.name, wide);
        let too_long = UserId::new("😀".repeat(256));
        assert_eq!(invalid_field(&too_long), Some("userId"));
    }
}

// ---------------------------------------------------------------------------------
// 6. Tenant isolation, randomized
// ---------------------------------------------------------------------------------

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }
    fn text(&mut self, prefix: &str) -> String {
        let spice = ["", "'", "; --", "😀", "/* */", "\\"];
        format!(
            "{prefix} {} {}",
            self.next() % 1000,
            spice[self.below(spice.len())]
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
struct JobModel {
    owner: usize,
    name: String,
    title: Option<String>,
    level: ExperienceLevel,
    description: String,
}

#[derive(Debug, Clone, PartialEq)]
struct InterviewModel {
    job: JobInfoId,
    duration: String,
    chat: Option<String>,
    feedback: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct QuestionModel {
    job: JobInfoId,
    text: String,
    difficulty: QuestionDifficulty,
}

#[derive(Default)]
struct Model {
    jobs: BTreeMap<JobInfoId, JobModel>,
    interviews: BTreeMap<InterviewId, InterviewModel>,
    questions: BTreeMap<QuestionId, QuestionModel>,
    gone_jobs: Vec<JobInfoId>,
    gone_interviews: Vec<InterviewId>,
    gone_questions: Vec<QuestionId>,
}

impl Model {
    fn interview_owner(&self, id: InterviewId) -> Option<usize> {
        self.interviews.get(&id).map(|i| self.jobs[&i.job].owner)
    }
    fn question_owner(&self, id: QuestionId) -> Option<usize> {
        self.questions.get(&id).map(|q| self.jobs[&q.job].owner)
    }
    fn jobs_of(&self, owner: usize) -> BTreeSet<JobInfoId> {
        self.jobs
            .iter()
            .filter(|(_, j)| j.owner == owner)
            .map(|(id, _)| *id)
            .collect()
    }
    fn interviews_under(&self, jobs: &BTreeSet<JobInfoId>) -> BTreeSet<InterviewId> {
        self.interviews
            .iter()
            .filter(|(_, i)| jobs.contains(&i.job))
            .map(|(id, _)| *id)
            .collect()
    }
    fn questions_under(&self, jobs: &BTreeSet<JobInfoId>) -> BTreeSet<QuestionId> {
        self.questions
            .iter()
            .filter(|(_, q)| jobs.contains(&q.job))
            .map(|(id, _)| *id)
            .collect()
    }
    fn remove_job(&mut self, id: JobInfoId) {
        self.jobs.remove(&id);
        self.gone_jobs.push(id);
        let interviews: Vec<_> = self
            .interviews
            .iter()
            .filter(|(_, i)| i.job == id)
            .map(|(k, _)| *k)
            .collect();
        for key in interviews {
            self.interviews.remove(&key);
            self.gone_interviews.push(key);
        }
        let questions: Vec<_> = self
            .questions
            .iter()
            .filter(|(_, q)| q.job == id)
            .map(|(k, _)| *k)
            .collect();
        for key in questions {
            self.questions.remove(&key);
            self.gone_questions.push(key);
        }
    }
}

/// An existing id of anyone (most often), a deleted one, or one that never existed.
fn pick<K: Copy>(rng: &mut Rng, live: Vec<K>, gone: &[K], fresh: impl FnOnce() -> K) -> K {
    let roll = rng.below(100);
    if roll < 80 && !live.is_empty() {
        live[rng.below(live.len())]
    } else if roll < 90 && !gone.is_empty() {
        gone[rng.below(gone.len())]
    } else {
        fresh()
    }
}

fn job_matches(row: &JobInfo, model: &JobModel, users: &[UserId]) -> bool {
    row.user_id == users[model.owner]
        && row.name == model.name
        && row.title == model.title
        && row.experience_level == model.level
        && row.description == model.description
}

fn interview_matches(row: &Interview, model: &InterviewModel) -> bool {
    row.job_info_id == model.job
        && row.duration == model.duration
        && row.hume_chat_id == model.chat
        && row.feedback == model.feedback
}

fn question_matches(row: &Question, model: &QuestionModel) -> bool {
    row.job_info_id == model.job && row.text == model.text && row.difficulty == model.difficulty
}

/// Runs `$body` with `$ex` bound to the `Db` or, when `$in_tx`, to a transaction that
/// commits whatever the body returned.
macro_rules! on_executor {
    ($db:expr, $in_tx:expr, |$ex:ident| $body:expr) => {
        if $in_tx {
            $db.transaction(|$ex| Ok($body))
                .expect("the transaction commits")
        } else {
            let $ex = $db;
            $body
        }
    };
}

/// Counts of what the run exercised, so that it cannot silently test nothing.
#[derive(Debug, Default)]
struct Coverage {
    cross_tenant_on_live_rows: usize,
    own_writes: usize,
    own_reads: usize,
    in_transaction: usize,
}

fn tenant_isolation_run(db: &Db, seed: u64, operations: usize) -> Coverage {
    const USERS: usize = 5;
    let users: Vec<UserId> = (0..USERS)
        .map(|n| user(db, &format!("user_tenant_{n}")))
        .collect();
    let mut rng = Rng(seed.max(1)); // xorshift is stuck at 0
    let mut model = Model::default();
    let mut coverage = Coverage::default();
    let levels = ExperienceLevel::ALL;
    let difficulties = QuestionDifficulty::ALL;

    for step in 0..operations {
        let a = rng.below(USERS);
        let actor = &users[a];
        let in_tx = rng.percent(25);
        coverage.in_transaction += usize::from(in_tx);
        let ctx = format!("seed {seed} step {step} actor {actor} in_tx {in_tx}");
        let job_target = |rng: &mut Rng, model: &Model| {
            pick(
                rng,
                model.jobs.keys().copied().collect(),
                &model.gone_jobs,
                JobInfoId::generate,
            )
        };
        match rng.below(18) {
            0 | 1 => {
                let form = NewJobInfo {
                    title: rng.percent(50).then(|| rng.text("title")),
                    name: rng.text("name"),
                    experience_level: levels[rng.below(levels.len())],
                    description: rng.text("description"),
                };
                let key = on_executor!(db, in_tx, |ex| jobprep_job_infos::insert(ex, actor, &form))
                    .unwrap();
                assert_eq!(&key.user_id, actor, "{ctx}");
                model.jobs.insert(
                    key.id,
                    JobModel {
                        owner: a,
                        name: form.name,
                        title: form.title,
                        level: form.experience_level,
                        description: form.description,
                    },
                );
                coverage.own_writes += 1;
            }
            2 => {
                let target = job_target(&mut rng, &model);
                let changes = JobInfoChanges {
                    title: match rng.below(3) {
                        0 => None,
                        1 => Some(None),
                        _ => Some(Some(rng.text("retitled"))),
                    },
                    name: rng.percent(50).then(|| rng.text("renamed")),
                    experience_level: rng.percent(50).then(|| levels[rng.below(levels.len())]),
                    description: rng.percent(50).then(|| rng.text("redescribed")),
                };
                let owner = model.jobs.get(&target).map(|j| j.owner);
                let before =
                    owner.map(|o| jobprep_job_infos::get(db, &users[o], target).unwrap().value);
                let result = on_executor!(db, in_tx, |ex| jobprep_job_infos::update(
                    ex, actor, target, &changes
                ));
                if owner == Some(a) {
                    let key = result.unwrap();
                    assert_eq!((key.id, &key.user_id), (target, actor), "{ctx}");
                    let job = model.jobs.get_mut(&target).unwrap();
                    if let Some(title) = changes.title {
                        job.title = title;
                    }
                    if let Some(name) = changes.name {
                        job.name = name;
                    }
                    if let Some(level) = changes.experience_level {
                        job.level = level;
                    }
                    if let Some(description) = changes.description {
                        job.description = description;
                    }
                    coverage.own_writes += 1;
                } else {
                    assert_not_found(result, Entity::JobInfo, &ctx);
                    if let (Some(o), Some(before)) = (owner, before) {
                        let after = jobprep_job_infos::get(db, &users[o], target).unwrap().value;
                        assert_eq!(
                            after, before,
                            "{ctx}: another user's update changed the row"
                        );
                        coverage.cross_tenant_on_live_rows += 1;
                    }
                }
            }
            3 => {
                let target = job_target(&mut rng, &model);
                let owner = model.jobs.get(&target).map(|j| j.owner);
                let before = owner.map(|o| {
                    (
                        jobprep_job_infos::get(db, &users[o], target).unwrap().value,
                        jobprep_questions::list_for_job_info(db, &users[o], target)
                            .unwrap()
                            .value,
                    )
                });
                let result =
                    on_executor!(db, in_tx, |ex| jobprep_job_infos::delete(ex, actor, target));
                if owner == Some(a) {
                    let removed = result.unwrap();
                    assert_eq!(
                        (removed.key.id, &removed.key.user_id),
                        (target, actor),
                        "{ctx}"
                    );
                    let jobs = BTreeSet::from([target]);
                    let interviews: BTreeSet<_> = removed.interviews.iter().map(|k| k.id).collect();
                    let questions: BTreeSet<_> = removed.questions.iter().map(|k| k.id).collect();
                    assert_eq!(interviews, model.interviews_under(&jobs), "{ctx}");
                    assert_eq!(questions, model.questions_under(&jobs), "{ctx}");
                    model.remove_job(target);
                    assert_not_found(
                        jobprep_job_infos::get(db, actor, target),
                        Entity::JobInfo,
                        &ctx,
                    );
                    coverage.own_writes += 1;
                } else {
                    assert_not_found(result, Entity::JobInfo, &ctx);
                    if let (Some(o), Some(before)) = (owner, before) {
                        let after = (
                            jobprep_job_infos::get(db, &users[o], target).unwrap().value,
                            jobprep_questions::list_for_job_info(db, &users[o], target)
                                .unwrap()
                                .value,
                        );
                        assert_eq!(
                            after, before,
                            "{ctx}: another user's delete touched the row"
                        );
                        coverage.cross_tenant_on_live_rows += 1;
                    }
                }
            }
            4 => {
                let target = job_target(&mut rng, &model);
                let result =
                    on_executor!(db, in_tx, |ex| jobprep_job_infos::get(ex, actor, target));
                match model.jobs.get(&target) {
                    Some(job) if job.owner == a => {
                        let row = result.unwrap().value;
                        assert!(job_matches(&row, job, &users), "{ctx}: {row:?} vs {job:?}");
                        coverage.own_reads += 1;
                    }
                    other => {
                        coverage.cross_tenant_on_live_rows += usize::from(other.is_some());
                        assert_not_found(result, Entity::JobInfo, &ctx);
                    }
                }
            }
            5 => {
                let rows =
                    on_executor!(db, in_tx, |ex| jobprep_job_infos::list_for_user(ex, actor))
                        .unwrap()
                        .value;
                let ids: BTreeSet<_> = rows.iter().map(|r| r.id).collect();
                assert_eq!(ids, model.jobs_of(a), "{ctx}");
                for row in &rows {
                    assert!(
                        job_matches(row, &model.jobs[&row.id], &users),
                        "{ctx}: {row:?}"
                    );
                }
                let any = on_executor!(db, in_tx, |ex| jobprep_job_infos::user_has_any(ex, actor))
                    .unwrap()
                    .value;
                assert_eq!(any, !ids.is_empty(), "{ctx}");
                coverage.own_reads += 1;
            }
            6 | 7 => {
                let target = job_target(&mut rng, &model);
                let form = NewInterview {
                    duration: format!(
                        "{:02}:{:02}:{:02}",
                        rng.below(100),
                        rng.below(60),
                        rng.below(60)
                    ),
                    hume_chat_id: rng.percent(60).then(|| rng.text("chat")),
                };
                let owner = model.jobs.get(&target).map(|j| j.owner);
                let result = on_executor!(db, in_tx, |ex| jobprep_interviews::insert(
                    ex, actor, target, &form
                ));
                if owner == Some(a) {
                    let key = result.unwrap();
                    assert_eq!(key.job_info_id, target, "{ctx}");
                    model.interviews.insert(
                        key.id,
                        InterviewModel {
                            job: target,
                            duration: form.duration,
                            chat: form.hume_chat_id,
                            feedback: None,
                        },
                    );
                    coverage.own_writes += 1;
                } else {
                    coverage.cross_tenant_on_live_rows += usize::from(owner.is_some());
                    assert_not_found(result, Entity::JobInfo, &ctx);
                }
            }
            8 => {
                let target = pick(
                    &mut rng,
                    model.interviews.keys().copied().collect(),
                    &model.gone_interviews,
                    InterviewId::generate,
                );
                let changes = InterviewChanges {
                    duration: rng.percent(50).then(|| {
                        format!(
                            "{:02}:{:02}:{:02}",
                            rng.below(100),
                            rng.below(60),
                            rng.below(60)
                        )
                    }),
                    hume_chat_id: match rng.below(3) {
                        0 => None,
                        1 => Some(None),
                        _ => Some(Some(rng.text("rechat"))),
                    },
                    feedback: match rng.below(3) {
                        0 => None,
                        1 => Some(None),
                        _ => Some(Some(rng.text("feedback"))),
                    },
                };
                let owner = model.interview_owner(target);
                let before = owner.map(|o| {
                    jobprep_interviews::get(db, &users[o], target)
                        .unwrap()
                        .value
                });
                let result = on_executor!(db, in_tx, |ex| jobprep_interviews::update(
                    ex, actor, target, &changes
                ));
                if owner == Some(a) {
                    let key = result.unwrap();
                    assert_eq!(key.id, target, "{ctx}");
                    let interview = model.interviews.get_mut(&target).unwrap();
                    if let Some(duration) = changes.duration {
                        interview.duration = duration;
                    }
                    if let Some(chat) = changes.hume_chat_id {
                        interview.chat = chat;
                    }
                    if let Some(feedback) = changes.feedback {
                        interview.feedback = feedback;
                    }
                    coverage.own_writes += 1;
                } else {
                    assert_not_found(result, Entity::Interview, &ctx);
                    if let (Some(o), Some(before)) = (owner, before) {
                        let after = jobprep_interviews::get(db, &users[o], target)
                            .unwrap()
                            .value;
                        assert_eq!(
                            after, before,
                            "{ctx}: another user's update changed the interview"
                        );
                        coverage.cross_tenant_on_live_rows += 1;
                    }
                }
            }
            9 => {
                let target = pick(
                    &mut rng,
                    model.interviews.keys().copied().collect(),
                    &model.gone_interviews,
                    InterviewId::generate,
                );
                let owner = model.interview_owner(target);
                let before = owner.map(|o| {
                    jobprep_interviews::get(db, &users[o], target)
                        .unwrap()
                        .value
                });
                let result = on_executor!(db, in_tx, |ex| jobprep_interviews::delete(
                    ex, actor, target
                ));
                if owner == Some(a) {
                    assert_eq!(result.unwrap().id, target, "{ctx}");
                    model.interviews.remove(&target);
                    model.gone_interviews.push(target);
                    coverage.own_writes += 1;
                } else {
                    assert_not_found(result, Entity::Interview, &ctx);
                    if let (Some(o), Some(before)) = (owner, before) {
                        let after = jobprep_interviews::get(db, &users[o], target)
                            .unwrap()
                            .value;
                        assert_eq!(
                            after, before,
                            "{ctx}: another user's delete touched the interview"
                        );
                        coverage.cross_tenant_on_live_rows += 1;
                    }
                }
            }
            10 => {
                let target = pick(
                    &mut rng,
                    model.interviews.keys().copied().collect(),
                    &model.gone_interviews,
                    InterviewId::generate,
                );
                let result =
                    on_executor!(db, in_tx, |ex| jobprep_interviews::get(ex, actor, target));
                match model.interview_owner(target) {
                    Some(o) if o == a => {
                        let got = result.unwrap().value;
                        assert!(
                            interview_matches(&got.interview, &model.interviews[&target]),
                            "{ctx}: {got:?}"
                        );
                        assert_eq!(
                            (got.job_info.id, &got.job_info.user_id),
                            (got.interview.job_info_id, actor),
                            "{ctx}"
                        );
                        coverage.own_reads += 1;
                    }
                    other => {
                        coverage.cross_tenant_on_live_rows += usize::from(other.is_some());
                        assert_not_found(result, Entity::Interview, &ctx);
                    }
                }
            }
            11 => {
                let target = job_target(&mut rng, &model);
                let rows = on_executor!(db, in_tx, |ex| jobprep_interviews::list_for_job_info(
                    ex, actor, target
                ))
                .unwrap()
                .value;
                let owner = model.jobs.get(&target).map(|j| j.owner);
                let expected: BTreeSet<InterviewId> = if owner == Some(a) {
                    model
                        .interviews
                        .iter()
                        .filter(|(_, i)| i.job == target && i.chat.is_some())
                        .map(|(k, _)| *k)
                        .collect()
                } else {
                    coverage.cross_tenant_on_live_rows += usize::from(owner.is_some());
                    BTreeSet::new()
                };
                let ids: BTreeSet<_> = rows.iter().map(|r| r.id).collect();
                assert_eq!(ids, expected, "{ctx}: interviews listed");
                for row in &rows {
                    assert!(
                        interview_matches(row, &model.interviews[&row.id]),
                        "{ctx}: {row:?}"
                    );
                }
                let count = on_executor!(db, in_tx, |ex| jobprep_interviews::count_for_user(
                    ex, actor
                ))
                .unwrap()
                .value;
                let jobs = model.jobs_of(a);
                let expected_count = model
                    .interviews
                    .values()
                    .filter(|i| jobs.contains(&i.job) && i.chat.is_some())
                    .count();
                assert_eq!(
                    count,
                    i64::try_from(expected_count).unwrap(),
                    "{ctx}: interview count"
                );
            }
            12 | 13 => {
                let target = job_target(&mut rng, &model);
                let batch: Vec<NewQuestion> = (0..rng.below(4))
                    .map(|_| {
                        NewQuestion::new(
                            rng.text("question"),
                            difficulties[rng.below(difficulties.len())],
                        )
                    })
                    .collect();
                let owner = model.jobs.get(&target).map(|j| j.owner);
                let result = if batch.len() == 1 {
                    on_executor!(db, in_tx, |ex| jobprep_questions::insert(
                        ex, actor, target, &batch[0]
                    ))
                    .map(|k| vec![k])
                } else {
                    on_executor!(db, in_tx, |ex| jobprep_questions::insert_many(
                        ex, actor, target, &batch
                    ))
                };
                if owner == Some(a) {
                    let keys = result.unwrap();
                    assert_eq!(keys.len(), batch.len(), "{ctx}");
                    for (key, question) in keys.into_iter().zip(batch) {
                        assert_eq!(key.job_info_id, target, "{ctx}");
                        model.questions.insert(
                            key.id,
                            QuestionModel {
                                job: target,
                                text: question.text,
                                difficulty: question.difficulty,
                            },
                        );
                    }
                    coverage.own_writes += 1;
                } else {
                    coverage.cross_tenant_on_live_rows += usize::from(owner.is_some());
                    assert_not_found(result, Entity::JobInfo, &ctx);
                }
            }
            14 => {
                let target = pick(
                    &mut rng,
                    model.questions.keys().copied().collect(),
                    &model.gone_questions,
                    QuestionId::generate,
                );
                let changes = QuestionChanges {
                    text: rng.percent(70).then(|| rng.text("reworded")),
                    difficulty: rng
                        .percent(50)
                        .then(|| difficulties[rng.below(difficulties.len())]),
                };
                let owner = model.question_owner(target);
                let before =
                    owner.map(|o| jobprep_questions::get(db, &users[o], target).unwrap().value);
                let result = on_executor!(db, in_tx, |ex| jobprep_questions::update(
                    ex, actor, target, &changes
                ));
                if owner == Some(a) {
                    assert_eq!(result.unwrap().id, target, "{ctx}");
                    let question = model.questions.get_mut(&target).unwrap();
                    if let Some(text) = changes.text {
                        question.text = text;
                    }
                    if let Some(difficulty) = changes.difficulty {
                        question.difficulty = difficulty;
                    }
                    coverage.own_writes += 1;
                } else {
                    assert_not_found(result, Entity::Question, &ctx);
                    if let (Some(o), Some(before)) = (owner, before) {
                        let after = jobprep_questions::get(db, &users[o], target).unwrap().value;
                        assert_eq!(
                            after, before,
                            "{ctx}: another user's update changed the question"
                        );
                        coverage.cross_tenant_on_live_rows += 1;
                    }
                }
            }
            15 => {
                let target = pick(
                    &mut rng,
                    model.questions.keys().copied().collect(),
                    &model.gone_questions,
                    QuestionId::generate,
                );
                let owner = model.question_owner(target);
                let before =
                    owner.map(|o| jobprep_questions::get(db, &users[o], target).unwrap().value);
                let result =
                    on_executor!(db, in_tx, |ex| jobprep_questions::delete(ex, actor, target));
                if owner == Some(a) {
                    assert_eq!(result.unwrap().id, target, "{ctx}");
                    model.questions.remove(&target);
                    model.gone_questions.push(target);
                    coverage.own_writes += 1;
                } else {
                    assert_not_found(result, Entity::Question, &ctx);
                    if let (Some(o), Some(before)) = (owner, before) {
                        let after = jobprep_questions::get(db, &users[o], target).unwrap().value;
                        assert_eq!(
                            after, before,
                            "{ctx}: another user's delete touched the question"
                        );
                        coverage.cross_tenant_on_live_rows += 1;
                    }
                }
            }
            16 => {
                let target = pick(
                    &mut rng,
                    model.questions.keys().copied().collect(),
                    &model.gone_questions,
                    QuestionId::generate,
                );
                let result =
                    on_executor!(db, in_tx, |ex| jobprep_questions::get(ex, actor, target));
                match model.question_owner(target) {
                    Some(o) if o == a => {
                        let got = result.unwrap().value;
                        assert!(
                            question_matches(&got.question, &model.questions[&target]),
                            "{ctx}: {got:?}"
                        );
                        assert_eq!(
                            (got.job_info.id, &got.job_info.user_id),
                            (got.question.job_info_id, actor),
                            "{ctx}"
                        );
                        coverage.own_reads += 1;
                    }
                    other => {
                        coverage.cross_tenant_on_live_rows += usize::from(other.is_some());
                        assert_not_found(result, Entity::Question, &ctx);
                    }
                }
            }
            _ => {
                let target = job_target(&mut rng, &model);
                let rows = on_executor!(db, in_tx, |ex| jobprep_questions::list_for_job_info(
                    ex, actor, target
                ))
                .unwrap()
                .value;
                let owner = model.jobs.get(&target).map(|j| j.owner);
                let expected = if owner == Some(a) {
                    model.questions_under(&BTreeSet::from([target]))
                } else {
                    coverage.cross_tenant_on_live_rows += usize::from(owner.is_some());
                    BTreeSet::new()
                };
                let ids: BTreeSet<_> = rows.iter().map(|r| r.id).collect();
                assert_eq!(ids, expected, "{ctx}: questions listed");
                for row in &rows {
                    assert!(
                        question_matches(row, &model.questions[&row.id]),
                        "{ctx}: {row:?}"
                    );
                }
                let count =
                    on_executor!(db, in_tx, |ex| jobprep_questions::count_for_user(ex, actor))
                        .unwrap()
                        .value;
                let expected_count = model.questions_under(&model.jobs_of(a)).len();
                assert_eq!(
                    count,
                    i64::try_from(expected_count).unwrap(),
                    "{ctx}: question count"
                );
            }
        }
    }

    // At the end the database equals the model: every row reads back as modelled, and
    // deleting each user removes exactly the rows the model gives them.
    for (id, job) in &model.jobs {
        let row = jobprep_job_infos::get(db, &users[job.owner], *id)
            .unwrap()
            .value;
        assert!(job_matches(&row, job, &users), "final {row:?} vs {job:?}");
    }
    for (id, interview) in &model.interviews {
        let owner = &users[model.jobs[&interview.job].owner];
        let row = jobprep_interviews::get(db, owner, *id)
            .unwrap()
            .value
            .interview;
        assert!(
            interview_matches(&row, interview),
            "final {row:?} vs {interview:?}"
        );
    }
    for (id, question) in &model.questions {
        let owner = &users[model.jobs[&question.job].owner];
        let row = jobprep_questions::get(db, owner, *id)
            .unwrap()
            .value
            .question;
        assert!(
            question_matches(&row, question),
            "final {row:?} vs {question:?}"
        );
    }
    for (n, id) in users.iter().enumerate() {
        let removed = jobprep_users::delete(db, id).expect("the user exists");
        let jobs = model.jobs_of(n);
        let removed_jobs: BTreeSet<_> = removed.job_infos.iter().map(|k| k.id).collect();
        let removed_interviews: BTreeSet<_> = removed.interviews.iter().map(|k| k.id).collect();
        let removed_questions: BTreeSet<_> = removed.questions.iter().map(|k| k.id).collect();
        assert_eq!(removed_jobs, jobs, "final job infos of {id}");
        assert_eq!(
            removed_interviews,
            model.interviews_under(&jobs),
            "final interviews of {id}"
        );
        assert_eq!(
            removed_questions,
            model.questions_under(&jobs),
            "final questions of {id}"
        );
        assert!(removed.job_infos.iter().all(|k| &k.user_id == id));
    }
    coverage
}

backend_tests! {
    fn randomized_operations_never_cross_tenants(t) {
        let seed = std::env::var("JOBPREP_TENANT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_1e55_c0ff_ee42_u64);
        let coverage = tenant_isolation_run(&t.db, seed, 500);
        // The run must have exercised what it claims to test.
        assert!(coverage.cross_tenant_on_live_rows >= 100, "{coverage:?}");
        assert!(coverage.own_writes >= 60, "{coverage:?}");
        assert!(coverage.own_reads >= 20, "{coverage:?}");
        assert!(coverage.in_transaction >= 50, "{coverage:?}");
    }
}

// ---------------------------------------------------------------------------------
// 7. Migrations next to live traffic
// ---------------------------------------------------------------------------------

/// Reads and writes in a loop on its own handle until told to stop (or a bound is
/// reached); returns how many operations succeeded and the errors met.
fn traffic(url: String, stop: Arc<AtomicBool>, done: Arc<AtomicUsize>) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        const MAX_OPERATIONS: usize = 20_000;
        let deadline = Instant::now() + Duration::from_secs(90);
        let db = Db::builder(&url).max_size(2).build().unwrap();
        let owner = user(&db, "user_traffic");
        let mut errors = Vec::new();
        for n in 0..MAX_OPERATIONS {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                break;
            }
            let result = (|| -> Result<()> {
                let job =
                    jobprep_job_infos::insert(&db, &owner, &new_job(&format!("Traffic {n}")))?;
                jobprep_questions::insert_many(
                    &db,
                    &owner,
                    job.id,
                    &[
                        NewQuestion::new("q1", QuestionDifficulty::Easy),
                        NewQuestion::new("q2", QuestionDifficulty::Hard),
                    ],
                )?;
                let interview =
                    jobprep_interviews::insert(&db, &owner, job.id, &NewInterview::new())?;
                jobprep_interviews::update(
                    &db,
                    &owner,
                    interview.id,
                    &InterviewChanges {
                        hume_chat_id: Some(Some(format!("chat {n}"))),
                        ..Default::default()
                    },
                )?;
                let listed = jobprep_questions::list_for_job_info(&db, &owner, job.id)?.value;
                if listed.len() != 2 {
                    return Err(Error::Config(format!("listed {} questions", listed.len())));
                }
                jobprep_job_infos::list_for_user(&db, &owner)?;
                jobprep_interviews::list_for_job_info(&db, &owner, job.id)?;
                if n % 3 == 0 {
                    jobprep_job_infos::delete(&db, &owner, job.id)?;
                }
                Ok(())
            })();
            match result {
                Ok(()) => {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => errors.push(format!("operation {n}: {error}")),
            }
        }
        errors
    })
}

fn wait_for(count: &AtomicUsize, at_least: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while count.load(Ordering::Relaxed) < at_least {
        assert!(
            Instant::now() < deadline,
            "traffic stalled at {} operations",
            count.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

backend_tests! {
    fn migrations_revert_and_reapply_next_to_live_traffic(t) {
        let fresh = TestDb::new(t.backend()).unwrap().db.describe_schema().unwrap();
        assert_eq!(t.db.describe_schema().unwrap(), fresh);
        let additive: Vec<String> = t.db.migration_status().unwrap()
            .into_iter()
            .skip(1) // the baseline: reverting it drops the tables under the traffic
            .map(|m| { assert!(m.applied, "{m:?}"); m.name })
            .collect();
        assert!(!additive.is_empty());

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let readers_and_writers = [
            traffic(t.url.clone(), stop.clone(), done.clone()),
            traffic(t.url.clone(), stop.clone(), done.clone()),
        ];
        wait_for(&done, 10, Duration::from_secs(30));

        for round in 0..2 {
            let before = done.load(Ordering::Relaxed);
            let mut reverted = Vec::new();
            for _ in 0..additive.len() {
                reverted.push(t.db.revert_last_migration().unwrap().expect("a migration to revert"));
            }
            reverted.reverse();
            assert_eq!(reverted, additive, "round {round}");
            let status = t.db.migration_status().unwrap();
            assert_eq!(status.iter().filter(|m| m.applied).count(), 1, "round {round}: {status:?}");
            assert_ne!(t.db.describe_schema().unwrap(), fresh, "round {round}: the indexes are gone");
            let report = t.db.migrate().unwrap();
            assert_eq!(report.applied, additive, "round {round}");
            assert!(!report.adopted);
            // The traffic kept going through the round.
            wait_for(&done, before + 10, Duration::from_secs(30));
        }
        stop.store(true, Ordering::Relaxed);
        let errors: Vec<String> = readers_and_writers
            .into_iter()
            .flat_map(|h| join_within(h, Duration::from_secs(120), "traffic"))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(t.db.describe_schema().unwrap(), fresh, "the schema ends as freshly migrated");
        assert!(t.db.migration_status().unwrap().iter().all(|m| m.applied));
        assert!(t.db.migrate().unwrap().applied.is_empty());
    }
}
