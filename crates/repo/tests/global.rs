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

    // Pool settings come from the environment too; URL options override them.
    std::env::set_var("JOBPREP_POOL_MAX_SIZE", "7");
    std::env::set_var("JOBPREP_POOL_TIMEOUT_SECS", "3");
    std::env::set_var("JOBPREP_POOLER_SAFE", "true");
    std::env::set_var(
        "DATABASE_URL",
        "postgres://app:pw@db.internal/app?jobprep_pool_max_size=9",
    );
    let config = jobprep_repo::DbConfig::from_env().unwrap();
    assert_eq!(
        config.pool.max_size, 9,
        "the URL option wins over the environment"
    );
    assert_eq!(
        config.pool.connection_timeout,
        std::time::Duration::from_secs(3)
    );
    assert!(config.pooler_safe);
    std::env::set_var("JOBPREP_POOL_MAX_SIZE", "lots");
    let error = jobprep_repo::DbConfig::from_env().unwrap_err();
    assert!(
        error.to_string().contains("JOBPREP_POOL_MAX_SIZE"),
        "{error}"
    );
}
