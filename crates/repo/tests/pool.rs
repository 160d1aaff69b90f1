//! The pool: lazy, reused, observable; on both backends.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use jobprep_repo::{users, Db, Error, Executor, UserId};
use jobprep_testing::backend_tests;

backend_tests! {
    fn a_cold_start_opens_one_connection(t) {
        let db = Db::builder(&t.url).max_size(8).build().unwrap();
        assert_eq!(db.pool_state().connections, 0, "building the handle opens nothing");
        let missing = db.read(|conn| users::get(conn, &UserId::new("user_none").unwrap()));
        assert!(matches!(missing, Err(Error::NotFound { .. })));
        let state = db.pool_state();
        assert_eq!(state.connections, 1, "{state:?}");
        assert_eq!(state.max_size, 8);
        for _ in 0..20 {
            db.read(|conn| users::get(conn, &UserId::new("user_none").unwrap())).unwrap_err();
        }
        assert_eq!(db.pool_state().connections, 1, "sequential calls reuse the one connection");
    }

    fn clones_share_one_pool(t) {
        let db = Db::connect(&t.url).unwrap();
        let clone = db.clone();
        clone.read(|conn| users::get(conn, &UserId::new("user_none").unwrap())).unwrap_err();
        assert_eq!(db.pool_state().connections, 1);
    }

    fn migrations_refuse_to_run_through_a_transaction_pooler(t) {
        let applied = || t.db.migration_status().unwrap().iter().filter(|m| m.applied).count();
        let before = applied();
        assert!(before > 1, "a migrated database");
        let db = Db::builder(&t.url).pooler_safe(true).build().unwrap();
        for error in [db.migrate().unwrap_err(), db.revert_last_migration().unwrap_err()] {
            assert!(matches!(error, Error::Config(_)), "{error:?}");
            assert!(error.to_string().contains("direct URL"), "{error}");
        }
        assert_eq!(applied(), before, "nothing reverted");
    }

    fn waits_and_timeouts_are_counted(t) {
        let db = t.pool_of(1, Duration::from_millis(200));
        db.read(|conn| users::get(conn, &UserId::new("user_none").unwrap())).unwrap_err();
        let before = db.pool_state();
        let inner = db.transaction(|_tx| Ok(db.read(|conn| users::get(conn, &UserId::new("u").unwrap()))));
        let blocked = inner.unwrap().unwrap_err();
        assert!(blocked.is_retryable(), "{blocked:?}");
        let after = db.pool_state();
        assert_eq!(after.timeouts, before.timeouts + 1, "{after:?}");
        assert!(after.waits > before.waits, "{after:?}");
    }
}
