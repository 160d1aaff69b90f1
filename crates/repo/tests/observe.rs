//! Query timing with `tracing` (feature `tracing`), on both backends.
#![cfg(feature = "tracing")]
#![allow(clippy::unwrap_used)]

#[path = "support/logs.rs"]
mod logs;

use jobprep_repo::{job_infos, users, Db, Executor, ExperienceLevel, UserId};
use jobprep_testing::backend_tests;
use logs::logs_of;

fn with_option(url: &str, option: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{option}")
}

backend_tests! {
    fn slow_queries_are_warned_with_their_sql_but_no_bind_values(t) {
        let db = Db::connect(&with_option(&t.url, "jobprep_slow_query_ms=0")).unwrap();
        let owner = UserId::new("user_traced").unwrap();
        let logs = logs_of(|| {
            db.write(|conn, _| users::upsert(conn, &users::NewUser::new(owner.clone(), "Traced", "secret-email@example.com")))
                .unwrap();
            db.read(|conn| job_infos::list_for_user(conn, &owner)).unwrap();
        });
        assert!(logs.contains("WARN") && logs.contains("slow query"), "{logs}");
        assert!(logs.contains("job_info") && logs.contains("WHERE"), "the SQL is logged: {logs}");
        assert!(!logs.contains("secret-email@example.com"), "bind values must not be logged: {logs}");
    }

    fn fast_queries_are_debug_events_and_use_cases_are_spans(t) {
        let db = Db::connect(&t.url).unwrap();
        let owner = UserId::new("user_spans").unwrap();
        db.write(|conn, _| users::upsert(conn, &users::NewUser::new(owner.clone(), "Spans", "spans@example.com")))
            .unwrap();
        let logs = logs_of(|| {
            jobprep_repo::span!("job_infos.insert");
            db.write(|conn, _| {
                job_infos::insert(conn, &owner, &job_infos::NewJobInfo::new("SRE", ExperienceLevel::Junior, "pager"))
            })
            .unwrap();
        });
        assert!(logs.contains("DEBUG") && logs.contains("jobprep::query"), "{logs}");
        assert!(logs.contains("op=\"job_infos.insert\""), "{logs}");
        assert!(!logs.contains("slow query"), "{logs}");
    }
}

backend_tests! {
    fn each_use_case_span_reports_its_statements_under_opentelemetry_names(t) {
        let owner = UserId::new("user_counted").unwrap();
        let new = users::NewUser::new(owner.clone(), "Counted", "counted@example.com");
        let system = match t.backend() {
            jobprep_repo::Backend::Postgres => "postgresql",
            jobprep_repo::Backend::Sqlite => "sqlite",
        };
        let upsert = logs_of(|| {
            jobprep_users::upsert(&t.db, &new).unwrap();
        });
        let closed = |logs: &str, op: &str| -> String {
            logs.lines()
                .find(|line| line.contains("close") && line.contains(&format!("db.operation.name=\"{op}\"")))
                .unwrap_or_else(|| panic!("no closed span for {op}: {logs}"))
                .to_owned()
        };
        let line = closed(&upsert, "users.upsert");
        assert!(line.contains("db.collection.name=\"users\""), "{line}");
        assert!(line.contains(&format!("db.system.name=\"{system}\"")), "{line}");
        // One statement: the upsert is one INSERT ... ON CONFLICT.
        assert!(line.contains("jobprep.statements=1"), "{line}");

        let parent = jobprep_job_infos::insert(&t.db, &owner, &jobprep_testing::job_form("Quota")).unwrap().id;
        let quota = logs_of(|| {
            let question = jobprep_questions::NewQuestion::new("Why?", jobprep_questions::QuestionDifficulty::Easy);
            jobprep_questions::insert_within_quota(&t.db, &owner, parent, &question, 10).unwrap();
        });
        let line = closed(&quota, "questions.insert_within_quota");
        assert!(line.contains("db.collection.name=\"questions\""), "{line}");
        // PostgreSQL: one statement (the turn, the count and the insert). SQLite: its own
        // transaction, BEGIN, the count, the insert, COMMIT.
        let sent: u64 = line
            .split("jobprep.statements=")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no statement count: {line}"));
        match t.backend() {
            jobprep_repo::Backend::Postgres => assert_eq!(sent, 1, "{line}"),
            jobprep_repo::Backend::Sqlite => {
                assert!(sent >= 4, "BEGIN, a count, the insert, COMMIT at least: {line}")
            }
        }
    }
}

#[test]
fn connection_urls_and_passwords_are_never_logged() {
    let logs = logs_of(|| {
        let db = Db::builder("postgres://app:Pa55-w0rd@127.0.0.1:1/db?jobprep_slow_query_ms=0")
            .connection_timeout(std::time::Duration::from_millis(200))
            .build()
            .unwrap();
        let error = db
            .read(|conn| users::get(conn, &UserId::new("u").unwrap()))
            .unwrap_err();
        assert!(!error.to_string().contains("Pa55-w0rd"));
    });
    assert!(!logs.contains("Pa55-w0rd"), "{logs}");
}
