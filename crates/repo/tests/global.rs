//! `Db::global()`: one handle per process, built from the environment on first use.
#![allow(clippy::unwrap_used)]

use jobprep_repo::{users, Backend, Db, Executor, UserId};

#[test]
fn the_global_handle_is_built_once_and_shared() {
    let dir = tempfile::tempdir().unwrap();
    // This test binary holds only this test, so changing the environment is safe.
    std::env::remove_var("DATABASE_URL");
    std::env::set_var("JOBPREP_SQLITE_PATH", dir.path().join("global.sqlite3"));
    let first = Db::global().unwrap();
    assert_eq!(first.backend(), Backend::Sqlite);
    first.migrate().unwrap();
    let second = Db::global().unwrap();
    second
        .read(|conn| users::get(conn, &UserId::new("user_none").unwrap()))
        .unwrap_err();
    // The second call returned the same pool: the first handle sees its connection.
    assert_eq!(
        first.pool_state().connections,
        second.pool_state().connections
    );
    assert!(first.pool_state().connections >= 1);
    assert!(dir.path().join("global.sqlite3").exists());
}
