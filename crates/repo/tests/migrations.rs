//! Migrations on both backends: apply, revert, re-apply, adopt, refuse.

#![allow(clippy::unwrap_used)]

use jobprep_repo::migrations::Drift;
use jobprep_repo::{migrations, Backend, Db, Error};
use jobprep_testing::{backend_tests, TestDb};

/// The migrations of each backend: the app's baseline and jobprep's indexes after it.
const ALL: usize = 7;
const AFTER_BASELINE: usize = ALL - 1;

fn applied(db: &Db) -> Vec<String> {
    db.migration_status()
        .unwrap()
        .into_iter()
        .filter(|m| m.applied)
        .map(|m| m.name)
        .collect()
}

backend_tests! {
    fn migrate_applies_everything_then_is_a_no_op(t) {
        let fresh = TestDb::empty(t.backend()).unwrap();
        let report = fresh.db.migrate().unwrap();
        assert!(!report.adopted);
        assert_eq!(report.applied.len(), ALL, "{report:?}");
        assert!(report.applied[0].ends_with("_existing_app_schema"));
        assert_eq!(applied(&fresh.db).len(), ALL);
        let again = fresh.db.migrate().unwrap();
        assert!(again.applied.is_empty(), "{again:?}");
    }

    fn every_migration_reverts_down_to_the_baseline_and_reapplies_to_an_identical_schema(t) {
        let db = &t.db;
        let full = db.describe_schema().unwrap();
        assert!(full.iter().any(|l| l.contains("job_info_userId_updatedAt_idx")), "{full:#?}");
        let mut shapes = vec![full.clone()];
        let mut names = Vec::new();
        let error = loop {
            match db.revert_last_migration() {
                Ok(Some(name)) => {
                    assert!(!name.is_empty());
                    names.push(name);
                    shapes.push(db.describe_schema().unwrap());
                }
                Ok(None) => panic!("the baseline was reverted: {shapes:#?}"),
                Err(error) => break error,
            }
        };
        assert_eq!(shapes.len(), ALL, "the additive migrations reverted one by one");
        // Each step changed the schema: no migration is a silent no-op, but for the
        // SQLite twin of one that installs PostgreSQL functions.
        for (pair, name) in shapes.windows(2).zip(&names) {
            if t.backend() == Backend::Sqlite && name.ends_with("_jobprep_functions") {
                assert_eq!(pair[0], pair[1], "{name}");
            } else {
                assert_ne!(pair[0], pair[1], "{name}");
            }
        }
        assert_eq!(applied(db), vec![BASELINE.to_string()]);
        db.migrate().unwrap();
        assert_eq!(db.describe_schema().unwrap(), full);
        assert!(matches!(error, Error::Migration(_)), "{error:?}");
    }

    fn revert_stops_at_the_baseline_saying_why_and_keeps_the_app_tables(t) {
        exec(t, ONE_ROW_EACH);
        for _ in 0..AFTER_BASELINE {
            assert!(t.db.revert_last_migration().unwrap().is_some());
        }
        let before = t.db.describe_schema().unwrap();
        for _ in 0..2 {
            let error = t.db.revert_last_migration().unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, Error::Migration(_)), "{error:?}");
            assert!(!error.is_retryable());
            assert!(message.contains("refusing to revert the baseline"), "{message}");
            assert!(message.contains("original app's schema"), "{message}");
            assert!(message.contains("jobprep migrate drop-app-schema"), "{message}");
        }
        assert_eq!(t.db.describe_schema().unwrap(), before, "nothing dropped");
        assert_eq!(applied(&t.db), vec![BASELINE.to_string()]);
        assert_eq!(row_counts(t), [1, 1, 1, 1]);
    }

    fn drop_app_schema_refuses_while_any_table_holds_rows_and_changes_nothing(t) {
        forget_the_journal(t);
        exec(t, ONE_ROW_EACH);
        let before = t.db.describe_schema().unwrap();
        let error = t.db.drop_app_schema().unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Migration(_)), "{error:?}");
        assert!(message.contains("nothing was changed"), "{message}");
        for table in ["users", "job_info", "interviews", "questions"] {
            assert!(message.contains(&format!("table {table} holds rows")), "{message}");
        }
        assert_eq!(t.db.describe_schema().unwrap(), before);
        assert_eq!(applied(&t.db).len(), ALL);
        assert_eq!(row_counts(t), [1, 1, 1, 1]);
        // One row anywhere is enough to refuse.
        exec(t, "DELETE FROM questions; DELETE FROM interviews;");
        let message = t.db.drop_app_schema().unwrap_err().to_string();
        assert!(message.contains("table job_info holds rows"), "{message}");
        assert!(!message.contains("table questions"), "{message}");
        assert_eq!(t.db.describe_schema().unwrap(), before);
    }

    fn drop_app_schema_on_empty_tables_reverts_everything_and_migrate_restores_it(t) {
        let full = t.db.describe_schema().unwrap();
        forget_the_journal(t);
        let dropped = t.db.drop_app_schema().unwrap();
        assert_eq!(dropped.len(), ALL, "{dropped:?}");
        assert_eq!(dropped.last().map(String::as_str), Some(BASELINE));
        assert!(t.db.describe_schema().unwrap().is_empty());
        assert!(applied(&t.db).is_empty());
        assert!(t.db.drop_app_schema().unwrap().is_empty(), "nothing left to drop");
        t.db.migrate().unwrap();
        assert_eq!(t.db.describe_schema().unwrap(), full);
        assert!(t.db.check_schema().unwrap().is_empty());
    }

    fn the_baselines_down_sql_refuses_while_tables_hold_rows_for_any_tool(t) {
        // What `diesel migration revert` runs, bypassing jobprep's own checks.
        exec(t, ONE_ROW_EACH);
        let error = harness(t, |h| {
            for _ in 0..ALL {
                h.revert_last()?;
            }
            Ok(())
        })
        .unwrap_err();
        assert!(error.contains("refusing") && error.contains("rows"), "{error}");
        assert_eq!(applied(&t.db), vec![BASELINE.to_string()]);
        assert_eq!(row_counts(t), [1, 1, 1, 1]);
        // Without rows the same tool reverts and re-applies everything (`redo --all`).
        exec(t, "DELETE FROM users;");
        harness(t, |h| h.revert_last()).unwrap();
        assert!(t.db.describe_schema().unwrap().is_empty());
        if t.backend() == Backend::Postgres {
            // Its journal entries went with the tables, so the app's migrate would
            // create them again; nothing else was in drizzle's schema, so it went too.
            assert!(!schema_exists(t, "drizzle"));
        }
        harness(t, |h| h.run_pending()).unwrap();
        assert!(t.db.check_schema().unwrap().is_empty(), "{:?}", t.db.check_schema());
    }

    fn the_expected_schema_files_are_what_a_fresh_migration_makes(t) {
        let expected = match t.backend() {
            Backend::Postgres => migrations::POSTGRES_EXPECTED,
            Backend::Sqlite => migrations::SQLITE_EXPECTED,
        };
        let expected: Vec<&str> = expected.lines().collect();
        assert_eq!(
            t.db.describe_schema().unwrap(),
            expected,
            "after changing migrations, write `jobprep migrate schema` of a fresh database \
             to migrations/<backend>/expected.schema"
        );
        assert_eq!(t.db.check_schema().unwrap(), Vec::new());
    }

    fn check_names_each_drift_and_migrate_repairs_what_is_ours(t) {
        exec(t, ONE_ROW_EACH);
        assert_eq!(t.db.check_schema().unwrap(), Vec::new());
        exec(
            t,
            r#"DROP INDEX "job_info_userId_updatedAt_idx";
               DROP INDEX "questions_jobInfoId_createdAt_idx";
               ALTER TABLE "users" ADD COLUMN "nickname" TEXT;"#,
        );
        let drift = t.db.check_schema().unwrap();
        let (indexes, others): (Vec<&Drift>, Vec<&Drift>) = drift
            .iter()
            .partition(|d| matches!(d, Drift::Missing(line) if line.starts_with("index ")));
        assert_eq!(indexes.len(), 2, "{drift:#?}");
        assert!(indexes.iter().all(|d| d.repaired_by_migrate()));
        assert!(indexes.iter().any(|d| d.to_string().contains("job_info_userId_updatedAt_idx")));
        assert!(indexes.iter().any(|d| d.to_string().contains("questions_jobInfoId_createdAt_idx")));
        // The changed table: a new column line (PostgreSQL), or the table's CREATE line
        // expected and found changed (SQLite). The app's schema: never repaired.
        assert!(others.iter().any(|d| matches!(d, Drift::Unexpected(l) if l.contains("nickname"))), "{drift:#?}");
        assert!(others.iter().all(|d| d.to_string().contains("users") && !d.repaired_by_migrate()), "{drift:#?}");

        let report = t.db.migrate().unwrap();
        assert!(report.applied.is_empty() && !report.adopted, "{report:?}");
        let mut repaired = report.repaired.clone();
        repaired.sort();
        assert_eq!(repaired, vec!["job_info_userId_updatedAt_idx", "questions_jobInfoId_createdAt_idx"]);
        let after = t.db.check_schema().unwrap();
        assert_eq!(after.len(), others.len(), "only the changed table is left: {after:#?}");
        assert!(after.iter().all(|d| !d.repaired_by_migrate()), "{after:#?}");
        assert_eq!(row_counts(t), [1, 1, 1, 1], "no row touched");
        assert!(t.db.migrate().unwrap().repaired.is_empty(), "repairs once");
    }

    fn every_migration_after_the_baseline_runs_again_over_what_it_made(t) {
        // The rule restore_indexes and adoption rely on (migrations/README.md).
        let full = t.db.describe_schema().unwrap();
        exec(t, r#"DELETE FROM __diesel_schema_migrations WHERE version <> '20261125000001'"#);
        let report = t.db.migrate().unwrap();
        assert_eq!(report.applied.len(), AFTER_BASELINE, "{report:?}");
        assert!(!report.adopted && report.repaired.is_empty(), "{report:?}");
        assert_eq!(t.db.describe_schema().unwrap(), full);
        assert_eq!(t.db.check_schema().unwrap(), Vec::new());
    }

    fn check_reports_an_index_of_ours_redefined_under_its_name_and_migrate_rebuilds_it(t) {
        // As `drizzle-kit push` does from a schema declaring the index otherwise (a
        // plain `.desc()` gives DESC NULLS LAST): the same name, another definition.
        let full = t.db.describe_schema().unwrap();
        exec(t, ONE_ROW_EACH);
        exec(
            t,
            r#"DROP INDEX "job_info_userId_updatedAt_idx";
               CREATE INDEX "job_info_userId_updatedAt_idx" ON "job_info" ("userId", "createdAt");"#,
        );
        let drift = t.db.check_schema().unwrap();
        assert_eq!(drift.len(), 1, "{drift:#?}");
        let Drift::Changed { expected, found } = &drift[0] else {
            panic!("{drift:#?}");
        };
        assert!(expected.contains("job_info_userId_updatedAt_idx") && found.contains("createdAt"), "{drift:#?}");
        assert!(drift[0].repaired_by_migrate(), "our index is ours to rebuild");
        assert!(drift[0].to_string().starts_with("changed: expected index "), "{}", drift[0]);
        let report = t.db.migrate().unwrap();
        assert!(report.applied.is_empty(), "{report:?}");
        assert_eq!(report.repaired, vec!["job_info_userId_updatedAt_idx"]);
        assert_eq!(t.db.describe_schema().unwrap(), full);
        assert_eq!(t.db.check_schema().unwrap(), Vec::new());
        assert_eq!(row_counts(t), [1, 1, 1, 1], "no row touched");
        assert!(t.db.migrate().unwrap().repaired.is_empty(), "repairs once");
    }

    fn adopts_when_our_indexes_are_present_without_bookkeeping(t) {
        let full = t.db.describe_schema().unwrap();
        exec(t, ONE_ROW_EACH);
        exec(t, r#"DROP TABLE "__diesel_schema_migrations";"#);
        let report = t.db.migrate().unwrap();
        assert!(report.adopted && report.applied.len() == AFTER_BASELINE, "{report:?}");
        assert!(report.repaired.is_empty(), "{report:?}");
        assert_eq!(t.db.describe_schema().unwrap(), full);
        assert_eq!(t.db.check_schema().unwrap(), Vec::new());
        assert_eq!(row_counts(t), [1, 1, 1, 1]);
    }

    fn adopts_after_a_failed_diesel_migration_run_left_empty_bookkeeping(t) {
        let full = t.db.describe_schema().unwrap();
        exec(t, ONE_ROW_EACH);
        exec(t, r#"DROP TABLE "__diesel_schema_migrations";"#);
        // diesel's harness (the diesel CLI) creates its table, then fails on the baseline.
        assert!(harness(t, |h| h.run_pending()).is_err());
        assert_eq!(applied(&t.db), Vec::<String>::new(), "an empty bookkeeping table");
        let report = t.db.migrate().unwrap();
        assert!(report.adopted && report.applied.len() == AFTER_BASELINE, "{report:?}");
        assert_eq!(t.db.describe_schema().unwrap(), full);
        assert_eq!(t.db.check_schema().unwrap(), Vec::new());
        assert_eq!(row_counts(t), [1, 1, 1, 1]);
    }

    fn adoption_refuses_a_changed_app_table_and_changes_nothing(t) {
        exec(t, r#"DROP TABLE "__diesel_schema_migrations"; ALTER TABLE "users" ADD COLUMN "nickname" TEXT;"#);
        let before = t.db.describe_schema().unwrap();
        let error = t.db.migrate().unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, Error::Migration(_)), "{error:?}");
        assert!(message.contains("does not match the original app's schema; nothing was changed"), "{message}");
        assert!(message.contains("found, not expected:") && message.contains("nickname"), "{message}");
        assert_eq!(t.db.describe_schema().unwrap(), before);
        assert!(applied(&t.db).is_empty());
    }

    fn check_reports_missing_bookkeeping_and_pending_migrations(t) {
        exec(t, r#"DELETE FROM __diesel_schema_migrations WHERE version <> '20261125000001'"#);
        let drift = t.db.check_schema().unwrap();
        let pending: Vec<&Drift> = drift.iter().filter(|d| matches!(d, Drift::Pending(_))).collect();
        assert_eq!(pending.len(), AFTER_BASELINE, "{drift:#?}");
        assert!(drift.iter().all(Drift::repaired_by_migrate), "{drift:#?}");
        exec(t, "DROP TABLE __diesel_schema_migrations;");
        let drift = t.db.check_schema().unwrap();
        assert!(drift.contains(&Drift::Bookkeeping("__diesel_schema_migrations is missing".into())), "{drift:#?}");
        assert_eq!(drift.iter().filter(|d| matches!(d, Drift::Pending(_))).count(), ALL);
        assert!(drift.iter().all(Drift::repaired_by_migrate), "{drift:#?}");
        assert!(t.db.migrate().unwrap().adopted);
        assert_eq!(t.db.check_schema().unwrap(), Vec::new());
    }
}

/// The baseline's name, the original app's schema.
const BASELINE: &str = "2026-11-25-000001_existing_app_schema";

/// One row in each of the app's four tables, in SQL both backends take.
const ONE_ROW_EACH: &str = r#"
    INSERT INTO users (id, name, email) VALUES ('user_kept', 'Kept', 'kept@example.com');
    INSERT INTO job_info (id, name, "experienceLevel", description, "userId")
        VALUES ('0190b6a4-0000-7000-8000-000000000001', 'Kept', 'senior', 'd', 'user_kept');
    INSERT INTO interviews (id, "jobInfoId", duration)
        VALUES ('0190b6a4-0000-7000-8000-000000000002', '0190b6a4-0000-7000-8000-000000000001', '00:01:00');
    INSERT INTO questions (id, "jobInfoId", text, difficulty)
        VALUES ('0190b6a4-0000-7000-8000-000000000003', '0190b6a4-0000-7000-8000-000000000001', 'q', 'easy');
"#;

/// Runs SQL on a connection of its own, outside jobprep.
fn exec(t: &TestDb, sql: &str) {
    t.execute_sql(sql).unwrap();
}

/// Whether PostgreSQL has a schema (namespace) of this name.
fn schema_exists(t: &TestDb, name: &str) -> bool {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::PgConnection::establish(&t.url).unwrap();
    diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS value")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Flag>(&mut conn)
        .unwrap()
        .value
}

/// Rows in users, job_info, interviews, questions.
fn row_counts(t: &TestDb) -> [i64; 4] {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    ["users", "job_info", "interviews", "questions"].map(|table| {
        let query = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"));
        let count: Count = match t.backend() {
            Backend::Postgres => {
                query.get_result(&mut diesel::PgConnection::establish(&t.url).unwrap())
            }
            Backend::Sqlite => {
                query.get_result(&mut diesel::SqliteConnection::establish(&t.url).unwrap())
            }
        }
        .unwrap();
        count.n
    })
}

/// On PostgreSQL, drops drizzle's journal the baseline wrote, as an operator does once
/// the original app is gone for good (SQLite has none).
fn forget_the_journal(t: &TestDb) {
    if t.backend() == Backend::Postgres {
        exec(t, "DROP SCHEMA drizzle CASCADE;");
    }
}

/// diesel's own migration harness on a connection of its own: what the diesel CLI does
/// with our folders (`diesel migration run/revert --migration-dir migrations/<backend>`).
struct Harness<'a> {
    conn: HarnessConn<'a>,
}

enum HarnessConn<'a> {
    Postgres(&'a mut diesel::PgConnection),
    Sqlite(&'a mut diesel::SqliteConnection),
}

impl Harness<'_> {
    fn revert_last(&mut self) -> Result<(), String> {
        use diesel_migrations::MigrationHarness;
        match &mut self.conn {
            HarnessConn::Postgres(c) => c.revert_last_migration(migrations::POSTGRES).map(drop),
            HarnessConn::Sqlite(c) => c.revert_last_migration(migrations::SQLITE).map(drop),
        }
        .map_err(|e| e.to_string())
    }

    fn run_pending(&mut self) -> Result<(), String> {
        use diesel_migrations::MigrationHarness;
        match &mut self.conn {
            HarnessConn::Postgres(c) => c.run_pending_migrations(migrations::POSTGRES).map(drop),
            HarnessConn::Sqlite(c) => c.run_pending_migrations(migrations::SQLITE).map(drop),
        }
        .map_err(|e| e.to_string())
    }
}

fn harness<T>(
    t: &TestDb,
    f: impl FnOnce(&mut Harness<'_>) -> Result<T, String>,
) -> Result<T, String> {
    use diesel::Connection;
    match t.backend() {
        Backend::Postgres => {
            let mut c = diesel::PgConnection::establish(&t.url).unwrap();
            f(&mut Harness {
                conn: HarnessConn::Postgres(&mut c),
            })
        }
        Backend::Sqlite => {
            let mut c = diesel::SqliteConnection::establish(&t.url).unwrap();
            f(&mut Harness {
                conn: HarnessConn::Sqlite(&mut c),
            })
        }
    }
}

/// The original app's schema, kept in this repository (see the file's header).
const ORIGINAL_APP_SCHEMA: &str = include_str!("fixtures/original_app_schema.sql");

/// A database that looks like one the original app created.
fn original_app_database() -> Option<TestDb> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let t = TestDb::empty(Backend::Postgres)?;
    let mut conn = diesel::PgConnection::establish(&t.url).unwrap();
    conn.batch_execute(ORIGINAL_APP_SCHEMA).unwrap();
    Some(t)
}

#[test]
fn postgres_fresh_migration_is_the_original_apps_schema_plus_indexes_and_our_functions() {
    let (Some(ours), Some(theirs)) = (TestDb::new(Backend::Postgres), original_app_database())
    else {
        return;
    };
    let ours = ours.db.describe_schema().unwrap();
    let theirs = theirs.db.describe_schema().unwrap();
    let extra: Vec<&String> = ours.iter().filter(|l| !theirs.contains(l)).collect();
    let missing: Vec<&String> = theirs.iter().filter(|l| !ours.contains(l)).collect();
    assert!(missing.is_empty(), "missing from ours: {missing:#?}");
    // Five indexes on the app's tables, four functions in jobprep's own schema.
    let (indexes, others): (Vec<&String>, Vec<&String>) =
        extra.iter().partition(|l| l.starts_with("index "));
    assert_eq!(indexes.len(), 5, "{extra:#?}");
    assert_eq!(others.len(), 4, "{extra:#?}");
    assert!(
        others.iter().all(|l| l.starts_with("function jobprep.")),
        "only indexes and jobprep's functions are added: {extra:#?}"
    );
    let baseline: Vec<&str> = migrations::POSTGRES_BASELINE.lines().collect();
    for line in &baseline {
        assert!(
            theirs.iter().any(|l| l == line),
            "baseline line not in the app's schema: {line}"
        );
    }
}

#[test]
fn postgres_adopts_the_original_apps_database_then_is_a_no_op() {
    let Some(t) = original_app_database() else {
        return;
    };
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::PgConnection::establish(&t.url).unwrap();
    conn.batch_execute(
        r#"INSERT INTO users (id, name, email) VALUES ('user_old', 'Old', 'old@example.com');
           INSERT INTO job_info (name, "experienceLevel", description, "userId")
               VALUES ('Existing', 'senior', 'kept through adoption', 'user_old');"#,
    )
    .unwrap();
    let report = t.db.migrate().unwrap();
    assert!(report.adopted);
    assert_eq!(
        report.applied.len(),
        AFTER_BASELINE,
        "the baseline is recorded, the indexes applied: {report:?}"
    );
    assert_eq!(applied(&t.db).len(), ALL);
    let again = t.db.migrate().unwrap();
    assert!(!again.adopted && again.applied.is_empty(), "{again:?}");
    // The original app's rows (v4 ids from gen_random_uuid) read fine.
    let owner = jobprep_repo::UserId::new("user_old").unwrap();
    use jobprep_repo::Executor;
    let jobs =
        t.db.read(|c| jobprep_repo::job_infos::list_for_user(c, &owner))
            .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id.as_uuid().get_version_num(), 4);
}

#[test]
fn postgres_refuses_a_database_whose_shape_differs_and_changes_nothing() {
    let Some(t) = original_app_database() else {
        return;
    };
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::PgConnection::establish(&t.url).unwrap();
    conn.batch_execute(r#"ALTER TABLE "job_info" DROP COLUMN "title"; ALTER TABLE "users" ADD COLUMN "nickname" text;"#)
        .unwrap();
    let before = t.db.describe_schema().unwrap();
    let error = t.db.migrate().unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Migration(_)), "{error:?}");
    assert!(
        message.contains("expected, not found: column job_info.title"),
        "{message}"
    );
    assert!(
        message.contains("found, not expected: column users.nickname"),
        "{message}"
    );
    assert_eq!(t.db.describe_schema().unwrap(), before, "nothing changed");
    assert!(applied(&t.db).is_empty());
}

/// A chat id no index entry can hold (32 kB of md5 hex, which does not compress).
const LONG_CHAT_ID: &str = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 1000) i)";

/// Builds our chat-id index as migration 000006 first defined it, chat id included,
/// `CONCURRENTLY` as a migration does: over a long chat id the build fails and leaves
/// the index behind, invalid. Returns the build's error.
fn fail_to_build_the_old_chat_index(t: &TestDb) -> String {
    exec(
        t,
        &format!(
            r#"UPDATE interviews SET "humeChatId" = {LONG_CHAT_ID};
               DROP INDEX "interviews_jobInfoId_humeChatId_idx";"#
        ),
    );
    t.execute_sql(
        r#"CREATE INDEX CONCURRENTLY "interviews_jobInfoId_humeChatId_idx" ON "interviews" ("jobInfoId", "humeChatId")"#,
    )
    .unwrap_err()
}

/// A migrated PostgreSQL test database holding one row in each table, and its schema
/// as `describe_schema` reads it; `None` without PostgreSQL.
fn postgres_with_one_row_each() -> Option<(TestDb, Vec<String>)> {
    let t = TestDb::new(Backend::Postgres)?;
    let full = t.db.describe_schema().unwrap();
    exec(&t, ONE_ROW_EACH);
    Some((t, full))
}

#[test]
fn postgres_an_index_left_invalid_by_a_failed_build_is_named_and_rebuilt() {
    let Some((t, full)) = postgres_with_one_row_each() else {
        return;
    };
    let error = fail_to_build_the_old_chat_index(&t);
    assert!(error.contains("index row"), "{error}");
    let drift = t.db.check_schema().unwrap();
    assert_eq!(drift.len(), 1, "{drift:#?}");
    let Drift::Changed { found, .. } = &drift[0] else {
        panic!("{drift:#?}");
    };
    assert!(
        found.contains("interviews_jobInfoId_humeChatId_idx") && found.ends_with("(invalid)"),
        "{found}"
    );
    assert!(drift[0].repaired_by_migrate());
    let report = t.db.migrate().unwrap();
    assert_eq!(
        report.repaired,
        vec!["interviews_jobInfoId_humeChatId_idx"],
        "{report:?}"
    );
    assert_eq!(t.db.describe_schema().unwrap(), full);
    assert_eq!(t.db.check_schema().unwrap(), Vec::new());
    assert_eq!(row_counts(&t), [1, 1, 1, 1], "the long chat id is kept");
}

#[test]
fn postgres_a_migration_whose_index_build_failed_is_not_recorded_as_applied() {
    // The first run of 000006 failed, leaving its index invalid and itself unrecorded;
    // the next run must build the index, not take the invalid one for done.
    let Some((t, full)) = postgres_with_one_row_each() else {
        return;
    };
    fail_to_build_the_old_chat_index(&t);
    exec(
        &t,
        "DELETE FROM __diesel_schema_migrations WHERE version = '20261126000006'",
    );
    let report = t.db.migrate().unwrap();
    assert_eq!(
        report.applied,
        vec!["2026-11-26-000006_interviews_job_info_chat_idx"],
        "{report:?}"
    );
    assert_eq!(t.db.describe_schema().unwrap(), full, "the index is valid");
    assert_eq!(t.db.check_schema().unwrap(), Vec::new());
}

#[test]
fn postgres_adopts_an_app_database_holding_a_chat_id_no_index_entry_could_hold() {
    let Some(t) = original_app_database() else {
        return;
    };
    exec(&t, ONE_ROW_EACH);
    exec(
        &t,
        &format!(r#"UPDATE interviews SET "humeChatId" = {LONG_CHAT_ID}"#),
    );
    let report = t.db.migrate().unwrap();
    assert!(
        report.adopted && report.applied.len() == AFTER_BASELINE,
        "{report:?}"
    );
    assert_eq!(t.db.check_schema().unwrap(), Vec::new());
    // The app keeps writing long chat ids after jobprep's indexes are in.
    exec(
        &t,
        &format!(
            r#"INSERT INTO interviews (id, "jobInfoId", duration, "humeChatId")
               VALUES ('0190b6a4-0000-7000-8000-0000000000a2', '0190b6a4-0000-7000-8000-000000000001', '00:02:00', {LONG_CHAT_ID})"#
        ),
    );
}

#[test]
fn postgres_migrators_running_at_once_take_turns() {
    let Some(t) = TestDb::empty(Backend::Postgres) else {
        return;
    };
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let db = t.db.clone();
            std::thread::spawn(move || db.migrate().map(|r| r.applied.len()))
        })
        .collect();
    let mut counts: Vec<usize> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![0, 0, ALL],
        "exactly one migrator applied the migrations"
    );
}

/// drizzle's journal as (hash, created_at), oldest first.
fn drizzle_journal(url: &str) -> Vec<(String, i64)> {
    use diesel::{Connection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Entry {
        #[diesel(sql_type = diesel::sql_types::Text)]
        hash: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        created_at: i64,
    }
    let mut conn = diesel::PgConnection::establish(url).unwrap();
    diesel::sql_query(
        "SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY created_at, id",
    )
    .load::<Entry>(&mut conn)
    .unwrap()
    .into_iter()
    .map(|e| (e.hash, e.created_at))
    .collect()
}

fn the_apps_history() -> Vec<(String, i64)> {
    migrations::DRIZZLE_JOURNAL
        .iter()
        .map(|m| (m.hash.to_string(), m.when))
        .collect()
}

#[test]
fn postgres_a_fresh_database_carries_drizzles_journal_of_the_apps_history() {
    let Some(t) = TestDb::empty(Backend::Postgres) else {
        return;
    };
    t.db.migrate().unwrap();
    assert_eq!(drizzle_journal(&t.url), the_apps_history());
    // drizzle's migrator applies what is newer than the newest created_at: nothing of the
    // app's history (its last `when`).
    assert_eq!(
        migrations::DRIZZLE_JOURNAL.last().unwrap().when,
        1_758_289_962_544
    );
    t.db.migrate().unwrap();
    assert_eq!(drizzle_journal(&t.url), the_apps_history(), "written once");
}

#[test]
fn postgres_the_journal_is_written_in_the_baselines_transaction() {
    // A baseline that fails part way (here: a table in its way) leaves no journal behind.
    let Some(t) = TestDb::empty(Backend::Postgres) else {
        return;
    };
    exec(&t, r#"CREATE TABLE "questions" (x int);"#);
    assert!(t.db.migrate().is_err());
    exec(&t, r#"DROP TABLE "questions";"#);
    use diesel::Connection;
    let mut conn = diesel::PgConnection::establish(&t.url).unwrap();
    let journal: Flag = diesel::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS value",
        ),
        &mut conn,
    )
    .unwrap();
    assert!(!journal.value, "no journal without the baseline");
    t.db.migrate().unwrap();
    assert_eq!(drizzle_journal(&t.url), the_apps_history());
}

#[derive(diesel::QueryableByName)]
struct Flag {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    value: bool,
}

#[test]
fn postgres_drop_app_schema_refuses_while_drizzles_journal_exists() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let before = t.db.describe_schema().unwrap();
    let message = t.db.drop_app_schema().unwrap_err().to_string();
    assert!(
        message.contains("drizzle.\"__drizzle_migrations\" exists")
            || message.contains("__drizzle_migrations\" exists"),
        "{message}"
    );
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(t.db.describe_schema().unwrap(), before);
    assert_eq!(applied(&t.db).len(), ALL);
    assert_eq!(drizzle_journal(&t.url), the_apps_history());
}

#[test]
fn postgres_revert_never_drops_an_adopted_apps_tables() {
    let Some(t) = original_app_database() else {
        return;
    };
    exec(&t, ONE_ROW_EACH);
    assert!(t.db.migrate().unwrap().adopted);
    let mut reverted = 0;
    while let Ok(Some(_)) = t.db.revert_last_migration() {
        reverted += 1;
        assert!(reverted <= AFTER_BASELINE, "reverted past the baseline");
    }
    assert_eq!(reverted, AFTER_BASELINE);
    assert!(t.db.revert_last_migration().is_err());
    let message = t.db.drop_app_schema().unwrap_err().to_string();
    assert!(message.contains("table users holds rows"), "{message}");
    assert!(
        message.contains("__drizzle_migrations\" exists"),
        "{message}"
    );
    assert_eq!(row_counts(&t), [1, 1, 1, 1]);
    assert_eq!(applied(&t.db), vec![BASELINE.to_string()]);
}

#[test]
fn postgres_adopts_after_a_failed_diesel_migration_run_left_empty_bookkeeping() {
    let Some(t) = original_app_database() else {
        return;
    };
    exec(&t, ONE_ROW_EACH);
    // What a Rust user tries first: `diesel migration run --migration-dir migrations/postgres`.
    let error = harness(&t, |h| h.run_pending()).unwrap_err();
    assert!(
        error.contains("run `jobprep migrate`, which adopts them"),
        "{error}"
    );
    let drift = t.db.check_schema().unwrap();
    assert!(
        drift.contains(&Drift::Bookkeeping(
            "__diesel_schema_migrations does not record the baseline".into()
        )),
        "the bookkeeping table is there and empty: {drift:#?}"
    );
    let report = t.db.migrate().unwrap();
    assert!(report.adopted, "{report:?}");
    assert_eq!(report.applied.len(), AFTER_BASELINE, "{report:?}");
    assert_eq!(applied(&t.db).len(), ALL);
    assert_eq!(t.db.check_schema().unwrap(), Vec::new());
    assert_eq!(row_counts(&t), [1, 1, 1, 1]);
}

#[test]
fn postgres_adopts_again_when_push_force_dropped_bookkeeping_and_indexes() {
    let Some((t, full)) = postgres_with_one_row_each() else {
        return;
    };
    // What `drizzle-kit push --force` runs when the app's config neither declares our
    // indexes nor filters our table.
    exec(
        &t,
        r#"DROP TABLE "__diesel_schema_migrations" CASCADE;
           DROP INDEX "job_info_userId_updatedAt_idx";
           DROP INDEX "interviews_jobInfoId_updatedAt_idx";
           DROP INDEX "questions_jobInfoId_createdAt_idx";"#,
    );
    let report = t.db.migrate().unwrap();
    assert!(report.adopted, "{report:?}");
    assert_eq!(report.applied.len(), AFTER_BASELINE, "{report:?}");
    assert_eq!(t.db.describe_schema().unwrap(), full);
    assert_eq!(t.db.check_schema().unwrap(), Vec::new());
    assert_eq!(row_counts(&t), [1, 1, 1, 1]);
}

#[test]
fn postgres_adoption_fills_in_drizzles_journal() {
    // The fixture's journal is empty; one made by `drizzle-kit push` alone has none.
    for drop_it in [false, true] {
        let Some(t) = original_app_database() else {
            return;
        };
        if drop_it {
            exec(&t, "DROP SCHEMA drizzle CASCADE;");
        }
        let drift = t.db.check_schema().unwrap();
        assert!(
            drift.iter().any(|d| matches!(d, Drift::Journal(_))),
            "{drift:#?}"
        );
        assert!(t.db.migrate().unwrap().adopted);
        assert_eq!(drizzle_journal(&t.url), the_apps_history());
        assert_eq!(t.db.check_schema().unwrap(), Vec::new());
    }
}

#[test]
fn postgres_migrate_restores_a_dropped_journal_and_check_names_it() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    exec(
        &t,
        "DELETE FROM drizzle.__drizzle_migrations WHERE created_at = 1758231465703;",
    );
    let drift = t.db.check_schema().unwrap();
    assert_eq!(
        drift,
        vec![Drift::Journal(
            "\"drizzle\".\"__drizzle_migrations\" lacks the app's migration 0001_complex_silvermane".into()
        )]
    );
    assert!(drift[0].repaired_by_migrate());
    exec(&t, "DROP SCHEMA drizzle CASCADE;");
    let drift = t.db.check_schema().unwrap();
    assert_eq!(
        drift,
        vec![Drift::Journal(
            "\"drizzle\".\"__drizzle_migrations\" is missing".into()
        )]
    );
    let report = t.db.migrate().unwrap();
    assert_eq!(
        report.repaired,
        vec!["drizzle journal".to_string()],
        "{report:?}"
    );
    assert_eq!(drizzle_journal(&t.url), the_apps_history());
    assert_eq!(t.db.check_schema().unwrap(), Vec::new());
}

/// A database not yet migrated to this version (no `jobprep` schema): the use cases
/// that call its functions take the statement-by-statement way and still answer the
/// same, outside a transaction; inside one, where the failed call aborted the
/// transaction, they say to run `jobprep migrate`.
#[test]
fn postgres_without_jobprep_functions_the_locking_use_cases_still_work() {
    use jobprep_interviews::{InterviewChanges, NewInterview};
    use jobprep_questions::{NewQuestion, QuestionDifficulty};
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let owner = jobprep_testing::user(&t.db, "user_unmigrated");
    let job = jobprep_job_infos::insert(&t.db, &owner, &jobprep_testing::job_form("Old")).unwrap();
    exec(&t, "DROP SCHEMA jobprep CASCADE");
    let question = || NewQuestion::new("Why?", QuestionDifficulty::Easy);
    let asked =
        jobprep_questions::insert_within_quota(&t.db, &owner, job.id, &question(), 1).unwrap();
    let refused = jobprep_questions::insert_within_quota(&t.db, &owner, job.id, &question(), 1);
    assert!(
        matches!(refused, Err(Error::QuotaExceeded { limit: 1, .. })),
        "{refused:?}"
    );
    let chat = NewInterview::new().with_hume_chat_id("chat");
    let interview =
        jobprep_interviews::insert_within_quota(&t.db, &owner, job.id, &chat, 1).unwrap();
    let plain = jobprep_interviews::insert(&t.db, &owner, job.id, &NewInterview::new()).unwrap();
    let second_chat = InterviewChanges {
        hume_chat_id: Some(Some("second".into())),
        ..Default::default()
    };
    let refused = jobprep_interviews::update_within_quota(&t.db, &owner, plain.id, &second_chat, 1);
    assert!(
        matches!(refused, Err(Error::QuotaExceeded { limit: 1, .. })),
        "{refused:?}"
    );

    let in_transaction = t.db.transaction(|tx| {
        jobprep_questions::insert_within_quota(tx, &owner, job.id, &question(), 10)
    });
    match in_transaction {
        Err(Error::Config(message)) => assert!(message.contains("jobprep migrate"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }

    let removed = jobprep_job_infos::delete(&t.db, &owner, job.id).unwrap();
    assert_eq!(removed.questions.len(), 1, "{removed:?}");
    assert_eq!(removed.questions[0].id, asked.id);
    assert_eq!(removed.interviews.len(), 2, "{removed:?}");
    assert!(removed.interviews.iter().any(|i| i.id == interview.id));
    let gone = jobprep_users::delete(&t.db, &owner).unwrap();
    assert_eq!(gone.id, owner);

    // `jobprep migrate` puts the functions back.
    let report = t.db.migrate().unwrap();
    assert_eq!(report.repaired.len(), 4, "{report:?}");
    assert!(t.db.check_schema().unwrap().is_empty());
}
