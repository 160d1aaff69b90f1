//! The statement timeout: a call stuck behind a lock fails, saying it timed out, instead
//! of holding its caller (a serverless invocation) forever; migrations are exempt.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection as _;
use jobprep_repo::{Backend, Db, Error, UserId};
use jobprep_testing::{backend_tests, user, TestDb};
use jobprep_users::NewUser;

/// A connection of its own that holds `users` locked until it rolls back.
fn lock_users(url: &str) -> diesel::PgConnection {
    let mut holder = diesel::PgConnection::establish(url).unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    holder
}

backend_tests! {
    fn a_statement_timeout_that_cannot_take_effect_is_refused(t) {
        let built = Db::builder(&t.url).statement_timeout(Duration::from_millis(500)).build();
        match t.backend() {
            // SQLite has no statement timeout to set.
            Backend::Sqlite => assert!(matches!(built, Err(Error::Config(_))), "{built:?}"),
            Backend::Postgres => {
                assert!(built.is_ok());
                let options = Db::builder(&format!("{}?options=-c%20work_mem%3D8MB", t.url))
                    .statement_timeout(Duration::from_millis(500))
                    .build()
                    .unwrap_err();
                assert!(options.to_string().contains("statement_timeout"), "{options}");
            }
        }
        // 0 means none, as the URL option does.
        assert!(Db::builder(&t.url).statement_timeout(Duration::ZERO).build().is_ok());
    }
}

#[test]
fn postgres_a_call_stuck_behind_a_lock_times_out_and_writes_nothing() {
    let Some(t) = TestDb::empty(Backend::Postgres) else {
        return;
    };
    let db = Db::connect(&format!("{}?jobprep_statement_timeout_ms=300", t.url)).unwrap();
    // Migrations run without it, and the pool's connections keep it afterwards.
    db.migrate().unwrap();
    let me = user(&t.db, "user_deadline");
    let mut holder = lock_users(&t.url);
    let renamed = NewUser::new(me.clone(), "Renamed", "user_deadline@example.com");
    let error = jobprep_users::upsert(&db, &renamed).unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(error.to_string().contains("timed out"), "{error}");
    holder.batch_execute("ROLLBACK").unwrap();
    // Nothing was written; once the lock is gone the same call goes through.
    let stored = jobprep_users::get(&db, &me).unwrap().value;
    assert_ne!(stored.name, "Renamed");
    jobprep_users::upsert(&db, &renamed).unwrap();
    let id = UserId::new("user_deadline").unwrap();
    assert_eq!(jobprep_users::get(&db, &id).unwrap().value.name, "Renamed");
}

/// In pooler-safe mode the timeout cannot be a start-up option (a transaction-mode
/// pooler does not forward it): each call's transaction sets it (`SET LOCAL`), and a
/// call that is one statement gets a transaction of its own. Through PgBouncer in
/// `tests/pooler.rs`; here the same mode on a direct connection.
#[test]
fn postgres_in_pooler_safe_mode_the_timeout_holds_per_transaction() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let me = user(&t.db, "user_local_deadline");
    let db = Db::builder(&t.url)
        .pooler_safe(true)
        .statement_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut holder = lock_users(&t.url);
    let renamed = NewUser::new(me.clone(), "Renamed", "user_local_deadline@example.com");
    let write = jobprep_users::upsert(&db, &renamed).unwrap_err();
    let read = jobprep_users::get(&db, &me).unwrap_err();
    let in_a_transaction = db
        .transaction(|tx| jobprep_users::get(tx, &me))
        .unwrap_err();
    for error in [&write, &read, &in_a_transaction] {
        assert!(error.is_retryable(), "{error:?}");
        assert!(error.to_string().contains("timed out"), "{error}");
    }
    holder.batch_execute("ROLLBACK").unwrap();
    jobprep_users::upsert(&db, &renamed).unwrap();
    assert_eq!(jobprep_users::get(&db, &me).unwrap().value.name, "Renamed");
}

backend_tests! {
    fn a_transaction_with_a_timeout_of_its_own_is_postgres_only_and_positive(t) {
        let me = user(&t.db, "user_within");
        let within = t.db.transaction_within(Duration::from_millis(500), |tx| {
            jobprep_users::get(tx, &me).map(|u| u.value.id)
        });
        match t.backend() {
            Backend::Sqlite => assert!(matches!(within, Err(Error::Config(_))), "{within:?}"),
            Backend::Postgres => assert_eq!(within.unwrap(), me),
        }
        let zero = t.db.transaction_within(Duration::ZERO, |_| Ok(()));
        assert!(zero.is_err(), "{zero:?}");
    }

    fn a_session_runs_a_transaction_with_a_timeout_of_its_own_as_the_db_does(t) {
        let me = user(&t.db, "user_session_within");
        let session = t.db.session();
        let renamed = NewUser::new(me.clone(), "Within", "user_session_within@example.com");
        let within = session.transaction_within(Duration::from_millis(500), |tx| {
            jobprep_users::upsert(tx, &renamed).map(|u| u.name)
        });
        match t.backend() {
            Backend::Sqlite => assert!(matches!(within, Err(Error::Config(_))), "{within:?}"),
            Backend::Postgres => {
                assert_eq!(within.unwrap(), "Within");
                assert_eq!(jobprep_users::get(&session, &me).unwrap().value.name, "Within");
            }
        }
        let zero = session.transaction_within(Duration::ZERO, |_| Ok(()));
        let expected_zero = match t.backend() {
            Backend::Sqlite => matches!(zero, Err(Error::Config(_))),
            Backend::Postgres => matches!(zero, Err(Error::InvalidInput { .. })),
        };
        assert!(expected_zero, "{zero:?}");
    }
}

/// The per-call timeout bounds its own transaction only: the same connection, used
/// next by a call without one, waits for the lock as long as it takes.
#[test]
fn postgres_a_transaction_with_a_timeout_of_its_own_times_out_and_the_next_call_waits() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let me = user(&t.db, "user_within_lock");
    // One connection, so the second call runs on the connection the first used.
    let db = Db::builder(&t.url).max_size(1).build().unwrap();
    let mut holder = lock_users(&t.url);
    let renamed = NewUser::new(me.clone(), "Renamed", "user_within_lock@example.com");
    let error = db
        .transaction_within(Duration::from_millis(200), |tx| {
            jobprep_users::upsert(tx, &renamed)
        })
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(error.to_string().contains("timed out"), "{error}");

    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        holder.batch_execute("ROLLBACK").unwrap();
    });
    let started = std::time::Instant::now();
    jobprep_users::upsert(&db, &renamed).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    release.join().unwrap();
    assert_eq!(jobprep_users::get(&db, &me).unwrap().value.name, "Renamed");
}
