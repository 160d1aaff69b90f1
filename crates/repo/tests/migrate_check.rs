//! `check_schema` on a database that migrations have not created yet, or only in part:
//! what it reports is what `migrate` then does.

#![allow(clippy::unwrap_used)]

use jobprep_repo::migrations::Drift;
use jobprep_repo::Backend;
use jobprep_testing::{backend_tests, TestDb};

fn the_empty_item(backend: Backend) -> Drift {
    Drift::Empty(match backend {
        Backend::Postgres => "`jobprep migrate` creates the app's schema and jobprep's indexes \
                              and functions, with their bookkeeping and drizzle's journal"
            .into(),
        Backend::Sqlite => {
            "`jobprep migrate` creates the app's schema and jobprep's indexes, with their \
             bookkeeping"
                .into()
        }
    })
}

backend_tests! {
    fn an_empty_database_is_one_item_that_migrate_repairs(t) {
        let fresh = TestDb::empty(t.backend()).unwrap();
        let drift = fresh.db.check_schema().unwrap();
        assert_eq!(drift, vec![the_empty_item(t.backend())]);
        assert!(drift[0].repaired_by_migrate());
        assert_eq!(drift[0].to_string(), format!("empty database: {}", match &drift[0] {
            Drift::Empty(what) => what,
            other => panic!("{other:?}"),
        }));
        let report = fresh.db.migrate().unwrap();
        assert_eq!(report.applied.len(), 7, "{report:?}");
        assert_eq!(fresh.db.check_schema().unwrap(), Vec::new());
    }

    fn empty_bookkeeping_left_by_a_failed_first_migration_is_still_empty(t) {
        let fresh = TestDb::empty(t.backend()).unwrap();
        fresh.execute_sql(
            "CREATE TABLE __diesel_schema_migrations (
                 version VARCHAR(50) PRIMARY KEY NOT NULL,
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
             )",
        ).unwrap();
        assert_eq!(fresh.db.check_schema().unwrap(), vec![the_empty_item(t.backend())]);
        let report = fresh.db.migrate().unwrap();
        assert!(!report.adopted && report.applied.len() == 7, "{report:?}");
        assert_eq!(fresh.db.check_schema().unwrap(), Vec::new());
    }

    fn another_tools_table_stays_listed_and_untouched(t) {
        let fresh = TestDb::empty(t.backend()).unwrap();
        fresh.execute_sql("CREATE TABLE other_tool (id INTEGER PRIMARY KEY)").unwrap();
        let drift = fresh.db.check_schema().unwrap();
        assert_eq!(drift[0], the_empty_item(t.backend()), "{drift:#?}");
        let others: Vec<&Drift> = drift[1..].iter().collect();
        assert!(!others.is_empty(), "{drift:#?}");
        assert!(others.iter().all(|d| matches!(d, Drift::Unexpected(line) if line.contains("other_tool"))), "{drift:#?}");
        assert!(others.iter().all(|d| !d.repaired_by_migrate()), "{drift:#?}");
        fresh.db.migrate().unwrap();
        let after = fresh.db.check_schema().unwrap();
        assert_eq!(after.iter().collect::<Vec<_>>(), others, "only the other tool's table is left");
    }

    fn a_partly_migrated_database_marks_what_the_pending_migrations_create(t) {
        // 000007 to 000004: three indexes, and PostgreSQL's four functions.
        for _ in 0..4 {
            assert!(t.db.revert_last_migration().unwrap().is_some());
        }
        let drift = t.db.check_schema().unwrap();
        let pending = drift.iter().filter(|d| matches!(d, Drift::Pending(_))).count();
        let missing = drift.iter().filter(|d| matches!(d, Drift::Missing(line) if line.starts_with("index "))).count();
        let functions = drift.iter().filter(|d| matches!(d, Drift::Missing(line) if line.starts_with("function jobprep."))).count();
        let expected_functions = if t.backend() == Backend::Postgres { 4 } else { 0 };
        assert_eq!(
            (pending, missing, functions, drift.len()),
            (4, 3, expected_functions, 7 + expected_functions),
            "{drift:#?}"
        );
        assert!(drift.iter().all(Drift::repaired_by_migrate), "{drift:#?}");
        assert_eq!(t.db.migrate().unwrap().applied.len(), 4);
        assert_eq!(t.db.check_schema().unwrap(), Vec::new());
    }

    fn app_tables_dropped_under_recorded_migrations_are_not_claimed_as_repaired(t) {
        // The baseline is recorded as applied, so migrate does not run it again: the
        // missing tables are reported, unmarked, and the database is not "empty".
        t.execute_sql("DROP TABLE questions").unwrap();
        let drift = t.db.check_schema().unwrap();
        assert!(!drift.iter().any(|d| matches!(d, Drift::Empty(_))), "{drift:#?}");
        assert!(drift.iter().any(|d| matches!(d, Drift::Missing(line) if line.contains("questions") && !line.starts_with("index "))), "{drift:#?}");
        assert!(drift.iter().filter(|d| matches!(d, Drift::Missing(line) if !line.starts_with("index "))).all(|d| !d.repaired_by_migrate()), "{drift:#?}");
    }
}
