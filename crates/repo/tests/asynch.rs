//! The async facade (feature `tokio`) on both backends: calls reach the database from
//! the handle's worker threads, panics become errors, and the runtime is never blocked.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::future::Future as _;

use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::{users, Db, Error, Executor, Result, UserId};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The caller's own reason to roll a transaction back.
#[derive(Debug)]
enum RolledBack {
    OnPurpose,
    Database(#[allow(dead_code)] Error),
}

impl From<Error> for RolledBack {
    fn from(error: Error) -> Self {
        RolledBack::Database(error)
    }
}

fn new_user(id: &str) -> users::NewUser {
    users::NewUser::new(UserId::new(id).unwrap(), id, format!("{id}@example.com"))
}

jobprep_testing::backend_tests! {
    fn run_and_transaction_reach_the_database(t) {
        let db = AsyncDb::from(t.db.clone());
        runtime().block_on(async {
            let ada = new_user("user_ada");
            db.run(move |db| db.write(|conn, _| users::upsert(conn, &ada)))
                .await
                .unwrap();

            // Rolled back: the second upsert is not there, the first still is.
            let bob = new_user("user_bob");
            let rolled_back: std::result::Result<(), RolledBack> = db
                .transaction_with_error(move |tx| {
                    tx.write(|conn, _| users::upsert(conn, &bob))?;
                    Err(RolledBack::OnPurpose)
                })
                .await;
            assert!(matches!(rolled_back, Err(RolledBack::OnPurpose)));
            let bob = UserId::new("user_bob").unwrap();
            let read = db.run(move |db| db.read(|conn| users::get(conn, &bob))).await;
            assert!(matches!(read, Err(Error::NotFound { .. })), "{read:?}");

            let carl = new_user("user_carl");
            let id = db
                .transaction(move |tx| tx.write(|conn, _| users::upsert(conn, &carl)))
                .await
                .unwrap()
                .id;
            let read = db.run(move |db| db.read(|conn| users::get(conn, &id))).await;
            assert_eq!(read.unwrap().name, "user_carl");
        });
    }

    fn a_panic_becomes_an_error_and_the_pool_recovers(t) {
        let db = AsyncDb::new(t.db.clone());
        runtime().block_on(async {
            let panicked: Result<()> = db.run(|_| panic!("boom")).await;
            match panicked {
                Err(Error::Unavailable { reason, .. }) => assert!(reason.contains("boom"), "{reason}"),
                other => panic!("expected Unavailable, got {other:?}"),
            }
            // A panic in the middle of a transaction: its connection is dropped,
            // nothing it wrote is committed.
            let ada = new_user("user_ada");
            let panicked: Result<()> = db
                .transaction(move |tx| {
                    tx.write(|conn, _| users::upsert(conn, &ada))?;
                    panic!("in a transaction")
                })
                .await;
            assert!(matches!(panicked, Err(Error::Unavailable { .. })));
            let ada = UserId::new("user_ada").unwrap();
            let read = db.run(move |db| db.read(|conn| users::get(conn, &ada))).await;
            assert!(matches!(read, Err(Error::NotFound { .. })), "{read:?}");
        });
    }

    fn a_running_call_does_not_block_the_runtime(t) {
        // One runtime thread: if the call ran on it, the task that unblocks the
        // call could never run.
        let db = AsyncDb::new(t.db.clone());
        runtime().block_on(async {
            let (sender, receiver) = std::sync::mpsc::channel::<()>();
            let call = db.run(move |_| {
                receiver
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .map_err(|_| Error::Misuse("the runtime was blocked".into()))
            });
            let unblock = tokio::spawn(async move { sender.send(()) });
            call.await.unwrap();
            unblock.await.unwrap().unwrap();
        });
    }
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db =
        AsyncDb::new(Db::connect(&dir.path().join("x.sqlite3").display().to_string()).unwrap());
    // Poll the future by hand, with no tokio runtime around.
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    let mut call = std::pin::pin!(db.run(|_| Ok(())));
    match call.as_mut().poll(&mut context) {
        std::task::Poll::Ready(Err(Error::Misuse(message))) => {
            assert!(message.contains("tokio runtime"), "{message}")
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}
