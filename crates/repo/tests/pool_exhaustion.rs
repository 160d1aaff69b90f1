//! Pool exhaustion, on both backends: a retryable `Unavailable` after the connection
//! timeout, never a deadlock, and the pool serves again afterwards. Every wait is
//! bounded.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use jobprep_repo::{users, Error, Executor, Result};
use jobprep_testing::{backend_tests, job_form as new_job, join_within, user};

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
        let db = t.pool_of(2, POOL_TIMEOUT);
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
        let db = t.pool_of(1, Duration::from_secs(10));
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
        let db = t.pool_of(1, POOL_TIMEOUT);
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
