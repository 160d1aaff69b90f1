//! Pooled connections the server closed while they sat idle (what an idle timeout, a
//! suspended Neon compute or `pg_terminate_backend` does) never fail a call: the pool
//! finds them closed before sending anything and opens fresh ones. PostgreSQL only:
//! SQLite has no server to close a connection.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use jobprep_interviews::NewInterview;
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::{Backend, Db};
use jobprep_testing::{job_form, user, TestDb};
use jobprep_users::NewUser;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Opens `n` connections in `db`'s pool and leaves them idle.
fn warm(db: &Db, n: usize) {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                db.transaction(|_| {
                    barrier.wait();
                    Ok(())
                })
                .unwrap()
            });
        }
    });
    assert!(db.pool_state().idle >= n as u32, "{:?}", db.pool_state());
}

/// Ends every other session on the test database, as a server that closes idle
/// connections does, and waits until they are gone.
fn close_every_connection(t: &TestDb) {
    let mut admin = diesel::PgConnection::establish(&t.url).unwrap();
    let others =
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    diesel::sql_query(format!(
        "SELECT count(pg_terminate_backend(pid)) AS n {others}"
    ))
    .get_result::<Count>(&mut admin)
    .unwrap();
    let started = Instant::now();
    while diesel::sql_query(format!("SELECT count(*) AS n {others}"))
        .get_result::<Count>(&mut admin)
        .unwrap()
        .n
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sessions still there"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn postgres_every_call_after_the_server_closed_the_pooled_connections_succeeds() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let me = user(&t.db, "user_closed");
    // Each round closes the pool's connections, then makes one kind of call first:
    // a read, a write, a transaction, the async facade.
    warm(&t.db, 4);
    close_every_connection(&t);
    assert_eq!(jobprep_users::get(&t.db, &me).unwrap().value.id, me);

    warm(&t.db, 4);
    close_every_connection(&t);
    let job = jobprep_job_infos::insert(&t.db, &me, &job_form("After a suspend")).unwrap();

    warm(&t.db, 4);
    close_every_connection(&t);
    t.db.transaction(|tx| {
        jobprep_interviews::insert(tx, &me, job.id, &NewInterview::new().with_hume_chat_id("c"))?;
        let asked = [NewQuestion::new("Why?", QuestionDifficulty::Hard)];
        jobprep_questions::insert_many(tx, &me, job.id, &asked)
    })
    .unwrap();

    #[cfg(feature = "tokio")]
    {
        warm(&t.db, 4);
        close_every_connection(&t);
        let facade = jobprep_repo::asynch::AsyncDb::from(t.db.clone());
        let owner = me.clone();
        let listed = jobprep_testing::block_on(
            facade.run(move |db| jobprep_job_infos::list_for_user(db, &owner)),
        )
        .unwrap();
        assert_eq!(listed.value.len(), 1);
    }

    // Every use case in a row, each on a connection closed since its last use, the
    // enum-typed writes included (they once looked types up on the dead connection).
    let upsert = NewUser::new(me.clone(), "Renamed", "closed@example.com");
    let calls: Vec<Box<dyn Fn() -> jobprep_repo::Result<()>>> = vec![
        Box::new(|| jobprep_users::upsert(&t.db, &upsert).map(drop)),
        Box::new(|| jobprep_job_infos::insert(&t.db, &me, &job_form("Enum")).map(drop)),
        Box::new(|| {
            jobprep_questions::insert(
                &t.db,
                &me,
                job.id,
                &NewQuestion::new("q", QuestionDifficulty::Easy),
            )
            .map(drop)
        }),
        Box::new(|| {
            jobprep_interviews::insert_within_quota(
                &t.db,
                &me,
                job.id,
                &NewInterview::new().with_hume_chat_id("d"),
                10,
            )
            .map(drop)
        }),
        Box::new(|| jobprep_questions::count_for_user(&t.db, &me).map(drop)),
        Box::new(|| jobprep_job_infos::delete(&t.db, &me, job.id).map(drop)),
    ];
    for call in &calls {
        close_every_connection(&t);
        call().unwrap();
    }
    assert_eq!(t.db.pool_state().timeouts, 0);
}
