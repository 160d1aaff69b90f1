//! drizzle's journal: the original app's migration history, which the baseline stands
//! for, written where drizzle's migrator looks for it (PostgreSQL).

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::embedded::{query_flag, Line};
use crate::connection::Connection;
use crate::error::Result;

/// One of the original app's drizzle-kit migrations as drizzle's journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrizzleMigration {
    /// The migration's file name without `.sql` (its `tag` in `meta/_journal.json`).
    pub tag: &'static str,
    /// Its `when` in `meta/_journal.json`, in milliseconds; drizzle stores it as
    /// `created_at` and applies only migrations whose `when` is later than the newest.
    pub when: i64,
    /// The SHA-256 of the migration file, hex; drizzle stores it as `hash`.
    pub hash: &'static str,
}

/// The original app's migration history, which the baseline stands for. The baseline
/// writes these rows into `drizzle.__drizzle_migrations` (PostgreSQL).
pub const DRIZZLE_JOURNAL: &[DrizzleMigration] = &[
    DrizzleMigration {
        tag: "0000_many_swordsman",
        when: 1_757_715_292_823,
        hash: "ef2c351b1edbcce132176f470772a7389fff874c79cb3f3a908bea5c7e9650e0",
    },
    DrizzleMigration {
        tag: "0001_complex_silvermane",
        when: 1_758_231_465_703,
        hash: "a8f8936401f75840314e86e52b987859fc956ce3c8b5f7fbe679c06f35aec490",
    },
    DrizzleMigration {
        tag: "0002_rainy_dakota_north",
        when: 1_758_289_307_850,
        hash: "793cb6f75c0d0c27be3ec594f90a6a43ea48865bc7bb69ddba21af461a4ab315",
    },
    DrizzleMigration {
        tag: "0003_lush_wolfsbane",
        when: 1_758_289_962_544,
        hash: "2b11a357f24b972bbd3baefd4dad90d8a8d35a8a3449c17a77a50457bfb63e5f",
    },
];

/// Where drizzle's migrator keeps its journal (its defaults).
pub(super) const DRIZZLE_JOURNAL_TABLE: &str = r#""drizzle"."__drizzle_migrations""#;

pub(super) fn journal_exists(conn: &mut Connection) -> Result<bool> {
    query_flag(
        conn,
        r#"SELECT to_regclass('"drizzle"."__drizzle_migrations"') IS NOT NULL AS value"#,
    )
}

/// The app's migrations that drizzle's journal does not list (all when it is missing).
pub(super) fn journal_missing(conn: &mut Connection) -> Result<Vec<DrizzleMigration>> {
    if !journal_exists(conn)? {
        return Ok(DRIZZLE_JOURNAL.to_vec());
    }
    let Some(c) = conn.as_postgres() else {
        return Ok(Vec::new());
    };
    let listed: Vec<Line> =
        diesel::sql_query(format!("SELECT hash AS line FROM {DRIZZLE_JOURNAL_TABLE}")).load(c)?;
    Ok(DRIZZLE_JOURNAL
        .iter()
        .filter(|m| !listed.iter().any(|l| l.line == m.hash))
        .copied()
        .collect())
}

/// Creates drizzle's journal as its migrator does and adds the app's migrations it
/// lacks. Run inside the caller's transaction.
pub(super) fn write_journal(conn: &mut Connection) -> Result<()> {
    let Some(c) = conn.as_postgres() else {
        return Ok(());
    };
    c.batch_execute(&format!(
        r#"CREATE SCHEMA IF NOT EXISTS "drizzle";
           CREATE TABLE IF NOT EXISTS {DRIZZLE_JOURNAL_TABLE} (
               "id" SERIAL PRIMARY KEY,
               "hash" text NOT NULL,
               "created_at" bigint
           )"#
    ))?;
    for migration in DRIZZLE_JOURNAL {
        diesel::sql_query(format!(
            "INSERT INTO {DRIZZLE_JOURNAL_TABLE} (hash, created_at) SELECT $1, $2 \
             WHERE NOT EXISTS (SELECT 1 FROM {DRIZZLE_JOURNAL_TABLE} WHERE hash = $1)"
        ))
        .bind::<Text, _>(migration.hash)
        .bind::<BigInt, _>(migration.when)
        .execute(c)?;
    }
    Ok(())
}
