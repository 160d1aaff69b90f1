//! Replica routing on a real primary + streaming replica pair, started by
//! `scripts/replicas.sh` (these tests are ignored by a plain `cargo test`).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection as _, PgConnection};
use jobprep_repo::{users, Db, Error, Executor, UserId};

#[path = "support/round_trips.rs"]
mod round_trips;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/replicas.sh"))
}

fn db() -> Db {
    let db = Db::builder(&env("JOBPREP_PRIMARY_URL"))
        .replica(&env("JOBPREP_REPLICA_URL"))
        .max_replica_lag(Duration::from_secs(120))
        .build()
        .unwrap();
    db.migrate().unwrap();
    db
}

fn new_user(db: &impl Executor, id: &str) -> UserId {
    let user = UserId::new(id).unwrap();
    let form = users::NewUser::new(
        user.clone(),
        "Replica test",
        format!("{id}@replica.example"),
    );
    db.write(|conn, _| users::upsert(conn, &form)).unwrap();
    user
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid_like())
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn replica_reads(db: &Db) -> u64 {
    db.routing_state().replicas[0].reads
}

/// Polls `ok` for up to `limit`; panics with `what` when it never holds.
fn eventually(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen within {limit:?}");
}

/// A new user written to the primary, once the replica can read it.
fn replicated_user(db: &Db, prefix: &str) -> UserId {
    let user = new_user(db, &unique(prefix));
    eventually(Duration::from_secs(10), "replication", || {
        db.read(|c| users::get(c, &user)).is_ok()
    });
    user
}

fn pg_ctl(args: &[&str]) {
    let status = Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            &env("JOBPREP_PG_CTL"),
            "-D",
            &env("JOBPREP_REPLICA_PGDATA"),
        ])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctl {args:?}");
}

/// Pauses WAL replay on the replica; resumes it when dropped, even if a test fails.
struct ReplayPaused(PgConnection);

impl ReplayPaused {
    fn pause() -> Self {
        let mut conn = PgConnection::establish(&env("JOBPREP_REPLICA_URL")).unwrap();
        conn.batch_execute("SELECT pg_wal_replay_pause()").unwrap();
        ReplayPaused(conn)
    }
}

impl Drop for ReplayPaused {
    fn drop(&mut self) {
        let _ = self.0.batch_execute("SELECT pg_wal_replay_resume()");
    }
}

#[test]
#[ignore = "needs the primary and replica of scripts/replicas.sh"]
fn reads_are_served_by_the_replica() {
    let db = db();
    let user = new_user(&db, &unique("user_routed"));
    eventually(
        Duration::from_secs(10),
        "replication of the new user",
        || db.read(|c| users::get(c, &user)).is_ok(),
    );
    let (replica_before, primary_before) = (replica_reads(&db), db.routing_state().primary_reads);
    for _ in 0..20 {
        db.read(|c| users::get(c, &user)).unwrap();
    }
    let state = db.routing_state();
    assert_eq!(state.replicas[0].reads - replica_before, 20, "{state:?}");
    assert_eq!(state.primary_reads, primary_before, "{state:?}");
    assert!(state.replicas[0].healthy, "{state:?}");
    // Writes and transactions never go to the replica (it would refuse them).
    db.transaction(|tx| {
        tx.write(|c, _| {
            users::upsert(
                c,
                &users::NewUser::new(user.clone(), "Renamed", format!("{user}@replica.example")),
            )
        })
    })
    .unwrap();
}

#[test]
#[ignore = "needs the primary and replica of scripts/replicas.sh"]
fn with_replay_paused_sessions_read_their_writes_and_plain_reads_are_stale() {
    let db = db();
    // Let the replica be checked once while healthy.
    replicated_user(&db, "user_warm");

    let paused = ReplayPaused::pause();
    let session = db.session();
    let fresh = new_user(&session, &unique("user_fresh"));
    let position = session
        .position()
        .expect("a write through a session records its position");

    let (replica_before, primary_before) = (replica_reads(&db), db.routing_state().primary_reads);
    let read = session.read(|c| users::get(c, &fresh));
    assert!(read.is_ok(), "the session sees its own write: {read:?}");
    assert_eq!(
        db.routing_state().primary_reads,
        primary_before + 1,
        "served by the primary"
    );

    let stale = db.read(|c| users::get(c, &fresh));
    assert!(
        matches!(stale, Err(Error::NotFound { .. })),
        "a read without a position is stale: {stale:?}"
    );
    assert_eq!(
        replica_reads(&db),
        replica_before + 1,
        "served by the paused replica"
    );

    // The position travels, e.g. to the user's next request.
    let next_request = db.session_at(Some(position));
    assert!(next_request.read(|c| users::get(c, &fresh)).is_ok());
    assert_eq!(
        position
            .to_string()
            .parse::<jobprep_repo::WalPosition>()
            .unwrap(),
        position
    );

    drop(paused);
    eventually(
        Duration::from_secs(10),
        "the session's read moving back to the replica",
        || {
            let before = replica_reads(&db);
            session.read(|c| users::get(c, &fresh)).is_ok() && replica_reads(&db) == before + 1
        },
    );
}

/// What `call` answers, and the round trips it made through `proxy`.
fn trips<T>(proxy: &round_trips::RoundTripProxy, call: impl FnOnce() -> T) -> (u64, T) {
    let before = proxy.round_trips();
    let value = call();
    (proxy.round_trips() - before, value)
}

/// Round trips to the primary, counted by a proxy in front of it (the replica is reached
/// directly). A write stays one round trip with replicas: its WAL position is asked for
/// only when a read or a caller needs it, and then once.
#[test]
#[ignore = "needs the primary and replica of scripts/replicas.sh"]
fn with_replicas_a_write_is_one_round_trip_and_its_position_is_asked_once() {
    let primary = url::Url::parse(&env("JOBPREP_PRIMARY_URL")).unwrap();
    let proxy =
        round_trips::RoundTripProxy::start(round_trips::upstream_of(&primary), Duration::ZERO);
    let via = round_trips::via_port(
        &primary,
        proxy.port(),
        "sslmode=disable&jobprep_pool_max_size=1",
    );
    let db = Db::builder(via.as_str())
        .replica(&env("JOBPREP_REPLICA_URL"))
        .max_replica_lag(Duration::from_secs(120))
        .build()
        .unwrap();
    db.migrate().unwrap();
    let user = replicated_user(&db, "user_trips");
    let renamed =
        |name: &str| users::NewUser::new(user.clone(), name, format!("{user}@replica.example"));

    // Warm: the primary's connection has prepared the upsert and the read.
    let warm = db.session();
    warm.write(|c, _| users::upsert(c, &renamed("Warm")))
        .unwrap();
    warm.read(|c| users::get(c, &user)).unwrap();

    // Through the Db: the write is one; its position is asked once, when wanted.
    let (sent, _) = trips(&proxy, || {
        db.write(|c, _| users::upsert(c, &renamed("Through the Db")))
            .unwrap()
    });
    assert_eq!(sent, 1, "a write through the Db");
    let (sent, position) = trips(&proxy, || db.last_write_position());
    assert_eq!(sent, 1, "the handle's position, asked");
    assert!(position.is_some());
    let (sent, again) = trips(&proxy, || db.last_write_position());
    assert_eq!((sent, again), (0, position), "and known from then on");

    // Through a session, with replay paused so that only the primary has the write.
    let paused = ReplayPaused::pause();
    let session = db.session();
    let read = || session.read(|c| users::get(c, &user)).unwrap().name;
    let (sent, _) = trips(&proxy, || {
        session
            .write(|c, _| users::upsert(c, &renamed("Through a session")))
            .unwrap()
    });
    assert_eq!(sent, 1, "a write through a session");
    let primary_before = db.routing_state().primary_reads;
    let (sent, name) = trips(&proxy, read);
    assert_eq!(
        (sent, name.as_str()),
        (1, "Through a session"),
        "its next read: on the primary, which has the write"
    );
    let (sent, name) = trips(&proxy, read);
    assert_eq!(
        (sent, name.as_str()),
        (2, "Through a session"),
        "the read after: the position once, then the primary (the replica is behind)"
    );
    assert_eq!(db.routing_state().primary_reads, primary_before + 2);
    let (sent, carried) = trips(&proxy, || session.position());
    assert_eq!(sent, 0, "the session's position is known now");
    assert!(carried > position, "{carried:?} after {position:?}");

    drop(paused);
    eventually(
        Duration::from_secs(10),
        "the session's reads served by the replica, nothing sent to the primary",
        || trips(&proxy, read) == (0, "Through a session".to_string()),
    );
}

#[test]
#[ignore = "needs the primary and replica of scripts/replicas.sh"]
fn with_the_replica_stopped_reads_use_the_primary_then_return() {
    let db = db();
    let user = replicated_user(&db, "user_failover");

    pg_ctl(&["-m", "fast", "stop"]);
    let outage = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..30 {
            let started = Instant::now();
            db.read(|c| users::get(c, &user))
                .expect("reads keep succeeding on the primary");
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "a read took {:?}",
                started.elapsed()
            );
        }
        assert!(!db.routing_state().replicas[0].healthy);
    }));
    pg_ctl(&["-w", "-l", &env("JOBPREP_REPLICA_LOG"), "start"]);
    if let Err(panic) = outage {
        std::panic::resume_unwind(panic);
    }
    let started = Instant::now();
    eventually(
        Duration::from_secs(30),
        "routing returning to the restarted replica",
        || {
            let before = replica_reads(&db);
            db.read(|c| users::get(c, &user)).unwrap();
            replica_reads(&db) > before
        },
    );
    println!(
        "reads returned to the replica {:?} after its restart",
        started.elapsed()
    );
    assert!(db.routing_state().replicas[0].healthy);
}

#[test]
#[ignore = "needs the primary and replica of scripts/replicas.sh"]
fn a_restarted_replica_serves_reads_again_while_the_primary_is_idle() {
    let db = db();
    let user = new_user(&db, &unique("user_idle_primary"));
    eventually(Duration::from_secs(10), "replication", || {
        let before = replica_reads(&db);
        db.read(|c| users::get(c, &user)).is_ok() && replica_reads(&db) > before
    });
    // Nothing is written to the primary from here on: after its restart the replica
    // has replayed past what it has received, and is caught up all the same.
    pg_ctl(&["-m", "immediate", "stop"]);
    pg_ctl(&["-w", "-l", &env("JOBPREP_REPLICA_LOG"), "start"]);
    // Until its WAL receiver streams again the replica reports no received position,
    // and its lag is the age of the last replayed write; then it is caught up.
    eventually(
        Duration::from_secs(15),
        "reads on the restarted replica, caught up",
        || {
            let before = replica_reads(&db);
            db.read(|c| users::get(c, &user)).is_ok()
                && replica_reads(&db) > before
                && db.routing_state().replicas[0].lag_ms == Some(0)
        },
    );
    let state = &db.routing_state().replicas[0];
    assert!(state.healthy, "{state:?}");
    assert_eq!(state.lag_ms, Some(0), "{state:?}");
}

#[test]
fn sqlite_with_replicas_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sqlite3").display().to_string();
    let error = Db::builder(&path)
        .replica("postgres://u@127.0.0.1/db")
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(
        error.to_string().contains("read replicas need PostgreSQL"),
        "{error}"
    );
    let error = Db::builder("postgres://u@127.0.0.1/db")
        .replica(&path)
        .build()
        .unwrap_err();
    assert!(
        error.to_string().contains("replicas must be postgres://"),
        "{error}"
    );
}
