//! Migrations on both backends: apply, revert, re-apply, adopt, refuse.

#![allow(clippy::unwrap_used)]

use jobprep_testing::TestDb;
use jobprep_repo::{migrations, Backend, Db, Error};
use jobprep_testing::backend_tests;

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
        assert_eq!(report.applied.len(), 4, "{report:?}");
        assert!(report.applied[0].ends_with("_existing_app_schema"));
        assert_eq!(applied(&fresh.db).len(), 4);
        let again = fresh.db.migrate().unwrap();
        assert!(again.applied.is_empty(), "{again:?}");
    }

    fn every_migration_reverts_and_reapplies_to_an_identical_schema(t) {
        let db = &t.db;
        let full = db.describe_schema().unwrap();
        assert!(full.iter().any(|l| l.contains("job_info_userId_updatedAt_idx")), "{full:#?}");
        let mut shapes = vec![full.clone()];
        while let Some(name) = db.revert_last_migration().unwrap() {
            assert!(!name.is_empty());
            shapes.push(db.describe_schema().unwrap());
        }
        assert_eq!(shapes.len(), 5, "four migrations reverted one by one");
        assert!(shapes.last().unwrap().is_empty(), "{:#?}", shapes.last());
        assert!(applied(db).is_empty());
        // Each step changed the schema: no migration is a silent no-op.
        for pair in shapes.windows(2) {
            assert_ne!(pair[0], pair[1]);
        }
        db.migrate().unwrap();
        assert_eq!(db.describe_schema().unwrap(), full);
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
fn postgres_fresh_migration_is_the_original_apps_schema_plus_indexes() {
    let (Some(ours), Some(theirs)) = (TestDb::new(Backend::Postgres), original_app_database())
    else {
        return;
    };
    let ours = ours.db.describe_schema().unwrap();
    let theirs = theirs.db.describe_schema().unwrap();
    let extra: Vec<&String> = ours.iter().filter(|l| !theirs.contains(l)).collect();
    let missing: Vec<&String> = theirs.iter().filter(|l| !ours.contains(l)).collect();
    assert!(missing.is_empty(), "missing from ours: {missing:#?}");
    assert_eq!(extra.len(), 3, "{extra:#?}");
    assert!(
        extra.iter().all(|l| l.starts_with("index ")),
        "only indexes are added: {extra:#?}"
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
        3,
        "the baseline is recorded, the indexes applied: {report:?}"
    );
    assert_eq!(applied(&t.db).len(), 4);
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
        vec![0, 0, 4],
        "exactly one migrator applied the migrations"
    );
}
