//! Round trips per use case on PostgreSQL, counted by the project's latency proxy
//! (`scripts/latency-proxy.py`, adding 0.5 ms each way) between jobprep and the server:
//! over a network each one costs a full network round trip, so these counts, not
//! loopback throughput, set a request's latency (BENCHMARKS.md, "Round trips"). Counts
//! are deterministic, delay or not; no time is measured here.
#![allow(clippy::unwrap_used)]

#[path = "support/round_trips.rs"]
mod round_trips;

use jobprep_interviews::{InterviewChanges, NewInterview};
use jobprep_job_infos::{JobInfoChanges, PageRequest};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::{Backend, Result};
use jobprep_testing::{job_form, TestDb};
use jobprep_users::{NewUser, UserId};
use round_trips::{through_script_proxy, through_script_proxy_with, ScriptProxy};

/// Added each way: enough that an answer cannot overtake the count.
const DELAY_MS: f64 = 0.5;

/// The round trips of one warm call of `f` (run twice before, so every statement is
/// prepared and the connection open).
fn warm<T>(proxy: &ScriptProxy, mut f: impl FnMut() -> Result<T>) -> u64 {
    f().unwrap();
    f().unwrap();
    let before = proxy.round_trips();
    f().unwrap();
    proxy.round_trips() - before
}

#[test]
fn postgres_round_trips_per_use_case() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let (proxy, db) = through_script_proxy(&t, DELAY_MS);

    // A cold start: a new handle's first call opens its connection.
    let me = UserId::new("user_rtt").unwrap();
    jobprep_users::upsert(&db, &NewUser::new(me.clone(), "R", "rtt@example.com")).unwrap();
    let (cold_proxy, cold_db) = through_script_proxy(&t, DELAY_MS);
    jobprep_users::get(&cold_db, &me).unwrap();
    let cold = cold_proxy.round_trips();
    // A cold write of an enum column: no type lookup (the enums are sent untyped).
    let (cold_proxy, cold_db) = through_script_proxy(&t, DELAY_MS);
    jobprep_job_infos::insert(&cold_db, &me, &job_form("Cold")).unwrap();
    let cold_enum_write = cold_proxy.round_trips();
    // With TLS: what its handshake adds to a cold start.
    let (cold_proxy, cold_db) = through_script_proxy_with(&t, DELAY_MS, "sslmode=require");
    jobprep_users::get(&cold_db, &me).unwrap();
    let cold_tls = cold_proxy.round_trips();

    let job = jobprep_job_infos::insert(&db, &me, &job_form("Backend")).unwrap();
    let chat = || NewInterview::new().with_hume_chat_id("chat");
    let question = || NewQuestion::new("Why?", QuestionDifficulty::Easy);
    let renamed = JobInfoChanges {
        name: Some("Renamed".into()),
        ..Default::default()
    };
    let interview = jobprep_interviews::insert(&db, &me, job.id, &NewInterview::new()).unwrap();
    let feedback = InterviewChanges {
        feedback: Some(Some("Good".into())),
        ..Default::default()
    };
    let counts = [
        ("users::get", warm(&proxy, || jobprep_users::get(&db, &me))),
        (
            "users::upsert",
            warm(&proxy, || {
                jobprep_users::upsert(&db, &NewUser::new(me.clone(), "R", "rtt@example.com"))
            }),
        ),
        (
            "job_infos::insert",
            warm(&proxy, || {
                jobprep_job_infos::insert(&db, &me, &job_form("More"))
            }),
        ),
        (
            "job_infos::get",
            warm(&proxy, || jobprep_job_infos::get(&db, &me, job.id)),
        ),
        (
            "job_infos::list_for_user",
            warm(&proxy, || jobprep_job_infos::list_for_user(&db, &me)),
        ),
        (
            "job_infos::list_page_for_user",
            warm(&proxy, || {
                jobprep_job_infos::list_page_for_user(&db, &me, &PageRequest::first(2))
            }),
        ),
        (
            "job_infos::update",
            warm(&proxy, || {
                jobprep_job_infos::update(&db, &me, job.id, &renamed)
            }),
        ),
        (
            "interviews::insert",
            warm(&proxy, || {
                jobprep_interviews::insert(&db, &me, job.id, &chat())
            }),
        ),
        (
            "interviews::insert_within_quota",
            warm(&proxy, || {
                jobprep_interviews::insert_within_quota(&db, &me, job.id, &chat(), 1000)
            }),
        ),
        (
            "interviews::update",
            warm(&proxy, || {
                jobprep_interviews::update(&db, &me, interview.id, &feedback)
            }),
        ),
        ("interviews::update_within_quota", {
            // Each call gives a new interview its first chat id: the counted case.
            let fresh: Vec<_> = (0..3)
                .map(|_| {
                    jobprep_interviews::insert(&db, &me, job.id, &NewInterview::new())
                        .unwrap()
                        .id
                })
                .collect();
            let mut next = fresh.into_iter();
            let chat_id = InterviewChanges {
                hume_chat_id: Some(Some("first chat".into())),
                ..Default::default()
            };
            warm(&proxy, || {
                jobprep_interviews::update_within_quota(
                    &db,
                    &me,
                    next.next().unwrap(),
                    &chat_id,
                    1000,
                )
            })
        }),
        (
            "interviews::count_for_user",
            warm(&proxy, || jobprep_interviews::count_for_user(&db, &me)),
        ),
        (
            "questions::insert_many",
            warm(&proxy, || {
                jobprep_questions::insert_many(&db, &me, job.id, &[question(), question()])
            }),
        ),
        (
            "questions::insert_within_quota",
            warm(&proxy, || {
                jobprep_questions::insert_within_quota(&db, &me, job.id, &question(), 1000)
            }),
        ),
        (
            "transaction: job_infos::insert + questions::insert_many",
            warm(&proxy, || {
                db.transaction(|tx| {
                    let job = jobprep_job_infos::insert(tx, &me, &job_form("In a transaction"))?;
                    jobprep_questions::insert_many(tx, &me, job.id, &[question()])
                })
            }),
        ),
        ("job_infos::delete", {
            let doomed: Vec<_> = (0..3)
                .map(|_| {
                    jobprep_job_infos::insert(&db, &me, &job_form("Doomed"))
                        .unwrap()
                        .id
                })
                .collect();
            let mut next = doomed.into_iter();
            warm(&proxy, || {
                jobprep_job_infos::delete(&db, &me, next.next().unwrap())
            })
        }),
        ("users::delete", {
            // Each doomed user has a job info with an interview and a question.
            let doomed: Vec<_> = (0..3)
                .map(|n| {
                    let user = UserId::new(format!("user_rtt_doomed_{n}")).unwrap();
                    let form = NewUser::new(user.clone(), "D", format!("doomed{n}@example.com"));
                    jobprep_users::upsert(&db, &form).unwrap();
                    let job = jobprep_job_infos::insert(&db, &user, &job_form("Doomed")).unwrap();
                    jobprep_interviews::insert(&db, &user, job.id, &chat()).unwrap();
                    jobprep_questions::insert(&db, &user, job.id, &question()).unwrap();
                    user
                })
                .collect();
            let mut next = doomed.into_iter();
            warm(&proxy, || jobprep_users::delete(&db, &next.next().unwrap()))
        }),
    ];
    let table: Vec<String> = counts
        .iter()
        .map(|(case, n)| format!("{n:>3}  {case}"))
        .collect();
    println!(
        "cold start (new Db): users::get {cold}, job_infos::insert {cold_enum_write}, \
         users::get with TLS {cold_tls}\n{}",
        table.join("\n")
    );
    // One round trip per warm use case; a transaction of k calls is k + 2 (BEGIN, the
    // calls, COMMIT).
    let expected = [
        ("users::get", 1),
        ("users::upsert", 1),
        ("job_infos::insert", 1),
        ("job_infos::get", 1),
        ("job_infos::list_for_user", 1),
        ("job_infos::list_page_for_user", 1),
        ("job_infos::update", 1),
        ("interviews::insert", 1),
        ("interviews::insert_within_quota", 1),
        ("interviews::update", 1),
        ("interviews::update_within_quota", 1),
        ("interviews::count_for_user", 1),
        ("questions::insert_many", 1),
        ("questions::insert_within_quota", 1),
        ("transaction: job_infos::insert + questions::insert_many", 4),
        ("job_infos::delete", 1),
        ("users::delete", 1),
    ];
    assert_eq!(
        counts.map(|(case, n)| (case, n)),
        expected,
        "{}",
        table.join("\n")
    );
    // Start-up, diesel's two SETs, then the first statement, unprepared: no separate
    // Prepare on a new connection's first checkout.
    assert_eq!((cold, cold_enum_write), (4, 4), "cold starts");
    // TLS adds 3 here: the SSLRequest, the ClientHello, and a second ClientHello after
    // the server's HelloRetryRequest (the client offers a key share the server does not
    // take); the client's Finished travels with the start-up message.
    assert_eq!(cold_tls, 7, "cold start with TLS");
}
