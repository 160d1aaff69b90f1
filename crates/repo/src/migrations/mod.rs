//! Versioned migrations, embedded in the binary, for both backends.
//!
//! `migrations/postgres` and `migrations/sqlite` hold the same migration names. The
//! first PostgreSQL migration is the original app's schema, unchanged; later ones only
//! add. A PostgreSQL database that the original app created (its tables present, no
//! baseline recorded by us) is *adopted*: its schema is compared with the baseline, the
//! baseline is recorded as applied, and the additive migrations run. A database whose
//! shape differs is refused with the differences named, and left untouched. A SQLite
//! file whose bookkeeping was lost is adopted the same way, against its own baseline.
//!
//! The database is shared with the original app and its migrator, drizzle-kit, so:
//!
//! - The baseline is the app's, not ours. [`Db::revert_last_migration`] stops at it;
//!   only [`Db::drop_app_schema`], asked for by name, drops it, and that refuses while
//!   the app's tables hold rows or drizzle's journal exists.
//! - Either migrator can go first. The baseline writes drizzle's journal
//!   ([`DRIZZLE_JOURNAL`]) in its own transaction, so the app's `drizzle-kit migrate`
//!   sees a jobprep-created database as up to date; adoption writes it when missing.
//! - [`Db::migrate`] recovers from what other tools leave behind (an empty bookkeeping
//!   table, bookkeeping dropped by `drizzle-kit push --force`, our indexes dropped,
//!   redefined, or left invalid by a failed build) without touching rows, and
//!   [`Db::check_schema`] names every drift.

mod adopt;
mod drift;
mod embedded;
mod journal;

use std::time::{Duration, Instant};

use diesel::backend::Backend as DieselBackend;
use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationSource};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use adopt::{adopt, app_tables_present, APP_TABLES};
use drift::{check_schema, describe_schema, drop_changed_indexes, restore_indexes};
use embedded::{
    applied_versions, baseline_version, migration_error, migration_names, name_of, query_flag,
    source_of, version_of, Flag,
};
use journal::{journal_exists, journal_missing, write_journal, DRIZZLE_JOURNAL_TABLE};

pub use drift::Drift;
pub use embedded::{POSTGRES, POSTGRES_BASELINE, POSTGRES_EXPECTED, SQLITE, SQLITE_EXPECTED};
pub use journal::{DrizzleMigration, DRIZZLE_JOURNAL};

use crate::config::Backend;
use crate::connection::{on_backend, Connection};
use crate::error::{Error, Result};
use crate::handle::Db;

/// What [`Db::migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MigrationReport {
    /// Whether an existing database of the original app was adopted.
    pub adopted: bool,
    /// The migrations applied, oldest first.
    pub applied: Vec<String>,
    /// What was restored although recorded as applied: our indexes (by name) and
    /// `drizzle journal` (PostgreSQL).
    pub repaired: Vec<String>,
}

/// One migration and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    pub name: String,
    pub applied: bool,
}

impl Db {
    /// Applies every pending migration (adopting an existing app database first, see the
    /// module docs). Safe to run from several processes at once on PostgreSQL: they
    /// take turns on an advisory lock. Running it again is a no-op.
    pub fn migrate(&self) -> Result<MigrationReport> {
        self.refuse_through_a_pooler()?;
        self.with_connection(|conn| with_migration_lock(conn, migrate_locked))
    }

    /// Migrations hold a session-level advisory lock and run `CREATE INDEX
    /// CONCURRENTLY` outside a transaction; a transaction-mode pooler can move either
    /// to another server connection. Use the direct (non-pooler) URL for migrations.
    fn refuse_through_a_pooler(&self) -> Result<()> {
        if self.config().pooler_safe {
            return Err(Error::Config(
                "migrations need a direct connection, not a transaction-mode pooler (pooler-safe \
                 mode is on): run `jobprep migrate` with the database's direct URL"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Every known migration, oldest first, and whether it is applied.
    pub fn migration_status(&self) -> Result<Vec<MigrationStatus>> {
        self.with_connection(|conn| {
            let applied = applied_versions(conn)?;
            Ok(migration_names(conn.backend())?
                .into_iter()
                .map(|name| {
                    let applied = applied.contains(&version_of(&name));
                    MigrationStatus { name, applied }
                })
                .collect())
        })
    }

    /// Reverts the most recent migration; `None` when nothing is applied. Stops at the
    /// baseline: it is the original app's schema and data, so reverting it is an
    /// [`Error::Migration`] that says why; [`Db::drop_app_schema`] is the named way.
    pub fn revert_last_migration(&self) -> Result<Option<String>> {
        self.refuse_through_a_pooler()?;
        self.with_connection(|conn| {
            with_migration_lock(conn, |conn| {
                let mut applied = applied_versions(conn)?;
                applied.sort();
                let Some(last) = applied.last() else {
                    return Ok(None);
                };
                if *last == baseline_version(conn.backend())? {
                    return Err(Error::Migration(
                        "refusing to revert the baseline (2026-11-25-000001_existing_app_schema): \
                         it is the original app's schema, shared with the app and holding its \
                         data. To drop it on purpose, run `jobprep migrate drop-app-schema` \
                         (Db::drop_app_schema), which refuses while its tables hold rows or \
                         drizzle's journal exists"
                            .into(),
                    ));
                }
                let source = source_of(conn.backend());
                let version = on_backend!(conn, c => c.revert_last_migration(source))
                    .map_err(migration_error)?;
                Ok(Some(name_of(conn.backend(), &version.to_string())?))
            })
        })
    }

    /// Reverts every applied migration, the baseline last, dropping the original app's
    /// tables and enum types. Refuses, changing nothing, while any of the four tables
    /// holds a row or (PostgreSQL) drizzle's journal `drizzle.__drizzle_migrations`
    /// exists: the journal means the app's migrator counts the schema as its own. Drop
    /// the journal first (`DROP SCHEMA drizzle CASCADE`) only when the app no longer
    /// uses this database. Returns the reverted migrations, newest first; empty when the
    /// baseline is not recorded.
    pub fn drop_app_schema(&self) -> Result<Vec<String>> {
        self.refuse_through_a_pooler()?;
        self.with_connection(|conn| with_migration_lock(conn, drop_app_schema_locked))
    }

    /// Compares the live database with what jobprep expects after [`Db::migrate`]:
    /// bookkeeping, pending migrations, the schema line by line against
    /// [`POSTGRES_EXPECTED`] / [`SQLITE_EXPECTED`], and (PostgreSQL) drizzle's journal.
    /// Empty when everything matches. Changes nothing.
    pub fn check_schema(&self) -> Result<Vec<Drift>> {
        self.with_connection(check_schema)
    }

    /// The schema as the database's catalog describes it, one sorted line per type,
    /// column, constraint and index (bookkeeping tables left out). Two databases with
    /// equal descriptions have the same shape.
    pub fn describe_schema(&self) -> Result<Vec<String>> {
        self.with_connection(describe_schema)
    }
}

fn migrate_locked(conn: &mut Connection) -> Result<MigrationReport> {
    let backend = conn.backend();
    // Adopt when the app's tables are there but our baseline is not recorded: no
    // bookkeeping at all (the app came first, or `drizzle-kit push --force` dropped it)
    // or an empty one (left by a failed `diesel migration run`).
    let adopted =
        !applied_versions(conn)?.contains(&baseline_version(backend)?) && app_tables_present(conn)?;
    if adopted {
        adopt(conn)?;
    }
    // Before the pending migrations: their `IF NOT EXISTS` would take an invalid index
    // left by a failed run as done, and record the migration as applied.
    drop_changed_indexes(conn)?;
    let source = source_of(backend);
    let applied: Vec<String> = on_backend!(conn, c => c
        .run_pending_migrations(source)
        .map(|done| done.iter().map(ToString::to_string).collect()))
    .map_err(migration_error)?;
    let applied = applied
        .iter()
        .map(|version| name_of(backend, version))
        .collect::<Result<_>>()?;
    let mut repaired = restore_indexes(conn)?;
    if backend == Backend::Postgres && !journal_missing(conn)?.is_empty() {
        conn.transaction(write_journal)?;
        repaired.push("drizzle journal".to_string());
    }
    Ok(MigrationReport {
        adopted,
        applied,
        repaired,
    })
}

fn drop_app_schema_locked(conn: &mut Connection) -> Result<Vec<String>> {
    let backend = conn.backend();
    let baseline = baseline_version(backend)?;
    let mut applied = applied_versions(conn)?;
    if !applied.contains(&baseline) {
        return Ok(Vec::new());
    }
    let mut reasons = Vec::new();
    for table in APP_TABLES {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM \"{table}\") AS value");
        if query_flag(conn, &sql)? {
            reasons.push(format!("table {table} holds rows"));
        }
    }
    if backend == Backend::Postgres && journal_exists(conn)? {
        reasons.push(format!(
            "drizzle's journal {DRIZZLE_JOURNAL_TABLE} exists: the app's migrator counts \
             these tables as its own (drop the journal first, `DROP SCHEMA drizzle CASCADE`, \
             only if the app no longer uses this database)"
        ));
    }
    if !reasons.is_empty() {
        return Err(Error::Migration(format!(
            "refusing to drop the original app's schema; nothing was changed: {}",
            reasons.join("; ")
        )));
    }
    // Newest first, the baseline last; its down.sql checks for rows again under a lock.
    applied.sort();
    applied.reverse();
    revert_each(conn, &applied)
}

fn revert_each(conn: &mut Connection, versions: &[String]) -> Result<Vec<String>> {
    let backend = conn.backend();
    let source = source_of(backend);
    let mut reverted = Vec::new();
    for version in versions {
        on_backend!(conn, c => revert_version(c, &source, version))?;
        reverted.push(name_of(backend, version)?);
    }
    Ok(reverted)
}

fn revert_version<DB, C>(conn: &mut C, source: &EmbeddedMigrations, version: &str) -> Result<()>
where
    DB: DieselBackend,
    C: MigrationHarness<DB>,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let migrations = MigrationSource::<DB>::migrations(source).map_err(migration_error)?;
    let migration = migrations
        .iter()
        .find(|m| m.name().version().to_string() == version)
        .ok_or_else(|| {
            Error::Migration(format!(
                "migration {version} is recorded as applied but not embedded in this build"
            ))
        })?;
    conn.revert_migration(migration.as_ref())
        .map_err(migration_error)?;
    Ok(())
}

/// Serializes migrators on PostgreSQL with a session advisory lock. It is taken with
/// `pg_try_advisory_lock` in a loop rather than a blocking `pg_advisory_lock`, because
/// a session blocked inside a statement would hold a snapshot that
/// `CREATE INDEX CONCURRENTLY` in the lock holder must wait for.
fn with_migration_lock<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    const KEY: i64 = 0x006a_6f62_7072_6570; // "jobprep" in ASCII
    const WAIT: Duration = Duration::from_secs(300);
    let Some(c) = conn.as_postgres() else {
        // SQLite: each migration runs in its own transaction under the file's lock.
        return f(conn);
    };
    let started = Instant::now();
    loop {
        // No statement timeout while migrating: an index build on a large table may
        // take longer than any request should (RESET below restores the pool's).
        let got: Flag = diesel::sql_query(
            "SELECT set_config('statement_timeout', '0', false) AS off, \
             pg_try_advisory_lock($1) AS value",
        )
        .bind::<BigInt, _>(KEY)
        .get_result(c)?;
        if got.value {
            break;
        }
        if started.elapsed() > WAIT {
            return Err(Error::unavailable(
                "another process has been migrating this database for over 5 minutes",
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let result = f(conn);
    let unlocked = match conn.as_postgres() {
        Some(c) => diesel::sql_query("SELECT pg_advisory_unlock($1) AS value")
            .bind::<BigInt, _>(KEY)
            .get_result::<Flag>(c)
            .and_then(|_| c.batch_execute("RESET statement_timeout")),
        None => Ok(()),
    };
    let value = result?;
    unlocked?;
    Ok(value)
}
