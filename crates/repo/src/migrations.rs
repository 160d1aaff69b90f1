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

use std::time::{Duration, Instant};

use diesel::backend::Backend as DieselBackend;
use diesel::migration::{Migration, MigrationSource};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::Backend;
use crate::connection::{BackendConnection, Connection};
use crate::error::{Error, Result};
use crate::handle::Db;

/// The PostgreSQL migrations, embedded at build time.
pub const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// The SQLite migrations, embedded at build time.
pub const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// The baseline schema as PostgreSQL's catalog describes it (see [`Db::describe_schema`]),
/// for the original app's tables and types. Adoption compares against it; the tests
/// check that both `existing_app_schema.sql` and our first migration produce exactly it.
pub const POSTGRES_BASELINE: &str = include_str!("../../../migrations/postgres/baseline.schema");

/// What a fully migrated PostgreSQL database looks like (see [`Db::describe_schema`]):
/// the baseline plus our indexes. [`Db::check_schema`] compares against it; a test
/// checks that a fresh migration produces exactly it.
pub const POSTGRES_EXPECTED: &str = include_str!("../../../migrations/postgres/expected.schema");
/// What a fully migrated SQLite database looks like, as [`POSTGRES_EXPECTED`].
pub const SQLITE_EXPECTED: &str = include_str!("../../../migrations/sqlite/expected.schema");

/// The tables and types the original app owns.
const APP_TABLES: &[&str] = &["users", "job_info", "interviews", "questions"];

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
const DRIZZLE_JOURNAL_TABLE: &str = r#""drizzle"."__drizzle_migrations""#;

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

/// One difference between the live database and what jobprep expects, from
/// [`Db::check_schema`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "item", rename_all = "snake_case")]
pub enum Drift {
    /// `__diesel_schema_migrations` is missing, or does not record the baseline.
    Bookkeeping(String),
    /// A migration that is not applied.
    Pending(String),
    /// A line of the expected schema (see [`Db::describe_schema`]) not found.
    Missing(String),
    /// A line found that the expected schema does not have.
    Unexpected(String),
    /// One of our indexes exists under its name with another definition (for example
    /// rebuilt by `drizzle-kit push` from a schema declaring it differently, or an
    /// earlier version of its migration), or is unusable: a failed `CREATE INDEX
    /// CONCURRENTLY` leaves the index behind marked invalid, and the found line ends in
    /// `(invalid)`. Our indexes are ours to repair: [`Db::migrate`] rebuilds it.
    Changed {
        /// The expected schema line.
        expected: String,
        /// The line found.
        found: String,
    },
    /// drizzle's journal is missing or lacks one of the app's migrations (PostgreSQL).
    Journal(String),
    /// The database holds nothing of the expected schema and does not record the
    /// baseline (a new database, or one whose first migration failed): [`Db::migrate`]
    /// creates all of it, so this one item stands for every missing object. It says
    /// what will be created.
    Empty(String),
}

impl Drift {
    /// Whether `jobprep migrate` ([`Db::migrate`]) repairs it: bookkeeping, pending
    /// migrations, our missing, changed or invalid indexes and the journal. A changed or
    /// missing column, type or constraint, and anything unexpected, is the app's schema:
    /// reported, never touched.
    pub fn repaired_by_migrate(&self) -> bool {
        match self {
            Drift::Bookkeeping(_) | Drift::Pending(_) | Drift::Journal(_) | Drift::Empty(_) => true,
            Drift::Changed { .. } => true,
            Drift::Missing(line) => line.starts_with("index "),
            Drift::Unexpected(_) => false,
        }
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Bookkeeping(what) => write!(f, "bookkeeping: {what}"),
            Drift::Pending(name) => write!(f, "pending migration: {name}"),
            Drift::Missing(line) => write!(f, "expected, not found: {line}"),
            Drift::Unexpected(line) => write!(f, "found, not expected: {line}"),
            Drift::Changed { expected, found } => {
                write!(f, "changed: expected {expected}, found {found}")
            }
            Drift::Journal(what) => write!(f, "drizzle journal: {what}"),
            Drift::Empty(what) => write!(f, "empty database: {what}"),
        }
    }
}

/// One migration and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    pub name: String,
    pub applied: bool,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    value: bool,
}

fn migration_error(error: impl std::fmt::Display) -> Error {
    Error::Migration(error.to_string())
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
                let version = match &mut conn.inner {
                    BackendConnection::Postgres(c) => c.revert_last_migration(POSTGRES),
                    BackendConnection::Sqlite(c) => c.revert_last_migration(SQLITE),
                }
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

/// A migration's version: the part of its folder name before the first `_`.
fn version_of(name: &str) -> String {
    name.split('_').next().unwrap_or(name).replace('-', "")
}

fn migration_names(backend: Backend) -> Result<Vec<String>> {
    let mut names: Vec<String> = match backend {
        Backend::Postgres => MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES)
            .map(|all| all.iter().map(|m| m.name().to_string()).collect()),
        Backend::Sqlite => MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE)
            .map(|all| all.iter().map(|m| m.name().to_string()).collect()),
    }
    .map_err(migration_error)?;
    names.sort();
    Ok(names)
}

/// The version of the first migration, the original app's schema.
fn baseline_version(backend: Backend) -> Result<String> {
    migration_names(backend)?
        .first()
        .map(|name| version_of(name))
        .ok_or_else(|| Error::Migration("no baseline migration is embedded".into()))
}

/// The migration name for a version (the version itself when unknown).
fn name_of(backend: Backend, version: &str) -> Result<String> {
    Ok(migration_names(backend)?
        .into_iter()
        .find(|name| version_of(name) == version)
        .unwrap_or_else(|| version.to_string()))
}

fn applied_versions(conn: &mut Connection) -> Result<Vec<String>> {
    if !bookkeeping_exists(conn)? {
        return Ok(Vec::new());
    }
    let versions = match &mut conn.inner {
        BackendConnection::Postgres(c) => c.applied_migrations(),
        BackendConnection::Sqlite(c) => c.applied_migrations(),
    }
    .map_err(migration_error)?;
    Ok(versions.into_iter().map(|v| v.to_string()).collect())
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
    let applied: Vec<String> = match &mut conn.inner {
        BackendConnection::Postgres(c) => c
            .run_pending_migrations(POSTGRES)
            .map(|done| done.iter().map(ToString::to_string).collect()),
        BackendConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE)
            .map(|done| done.iter().map(ToString::to_string).collect()),
    }
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

fn expected_schema(backend: Backend) -> Vec<&'static str> {
    match backend {
        Backend::Postgres => POSTGRES_EXPECTED,
        Backend::Sqlite => SQLITE_EXPECTED,
    }
    .lines()
    .filter(|l| !l.is_empty())
    .collect()
}

/// The index's name in a schema line: `index job_info.NAME CREATE ...` (PostgreSQL),
/// `index NAME: CREATE ...` (SQLite).
fn index_name(line: &str) -> &str {
    let object = line.split_whitespace().nth(1).unwrap_or(line);
    let object = object.trim_end_matches(':');
    object.rsplit('.').next().unwrap_or(object)
}

/// The object a schema line describes, by name: the table of a column or constraint
/// (`column users.id ...`), the type, the table (SQLite) or the index.
fn object_of(line: &str) -> &str {
    if line.starts_with("index ") {
        return index_name(line);
    }
    let object = line.split_whitespace().nth(1).unwrap_or(line);
    let object = object.trim_end_matches(':');
    object.split('.').next().unwrap_or(object)
}

/// Our indexes (by the expected schema's names) found under their name with another
/// definition, or invalid.
fn changed_indexes(expected: &[&str], found: &[String]) -> Vec<String> {
    expected
        .iter()
        .filter(|line| line.starts_with("index ") && !found.iter().any(|f| f == *line))
        .filter(|line| {
            found
                .iter()
                .any(|f| f.starts_with("index ") && index_name(f) == index_name(line))
        })
        .map(|line| index_name(line).to_string())
        .collect()
}

/// Drops our indexes that are changed or invalid (see [`Drift::Changed`]), so that the
/// migrations build them again as written: the pending ones, and [`restore_indexes`]
/// for the applied ones. The app's indexes are never touched. On PostgreSQL the drop
/// is `CONCURRENTLY`, so the app keeps writing meanwhile.
fn drop_changed_indexes(conn: &mut Connection) -> Result<()> {
    let backend = conn.backend();
    let found = describe_schema(conn)?;
    for name in changed_indexes(&expected_schema(backend), &found) {
        conn.batch_execute(&match backend {
            Backend::Postgres => format!(r#"DROP INDEX CONCURRENTLY IF EXISTS "{name}""#),
            Backend::Sqlite => format!(r#"DROP INDEX IF EXISTS "{name}""#),
        })?;
    }
    Ok(())
}

/// Recreates our indexes that are recorded as applied but gone (`drizzle-kit push`
/// drops indexes its schema does not declare, [`drop_changed_indexes`] those it
/// redefined). Every migration after the baseline is idempotent (`IF NOT EXISTS`, see
/// migrations/README.md), so running the applied ones again restores exactly what is
/// missing. Returns the restored index names.
fn restore_indexes(conn: &mut Connection) -> Result<Vec<String>> {
    let backend = conn.backend();
    let found = describe_schema(conn)?;
    // Only what is gone: an index still found under its name would not change.
    let missing: Vec<&str> = expected_schema(backend)
        .into_iter()
        .filter(|line| line.starts_with("index ") && !found.iter().any(|f| f == line))
        .filter(|line| {
            !found
                .iter()
                .any(|f| f.starts_with("index ") && index_name(f) == index_name(line))
        })
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let mut applied = applied_versions(conn)?;
    let baseline = baseline_version(backend)?;
    applied.retain(|v| *v != baseline);
    match &mut conn.inner {
        BackendConnection::Postgres(c) => run_again(c, &POSTGRES, &applied),
        BackendConnection::Sqlite(c) => run_again(c, &SQLITE, &applied),
    }?;
    let found = describe_schema(conn)?;
    Ok(missing
        .into_iter()
        .filter(|line| found.iter().any(|f| f == line))
        .map(|line| index_name(line).to_string())
        .collect())
}

/// Runs the `up.sql` of the given migrations again, without touching bookkeeping, in a
/// transaction unless the migration says otherwise.
fn run_again<DB, C>(conn: &mut C, source: &EmbeddedMigrations, versions: &[String]) -> Result<()>
where
    DB: DieselBackend,
    C: diesel::Connection<Backend = DB> + 'static,
    EmbeddedMigrations: MigrationSource<DB>,
{
    let migrations = MigrationSource::<DB>::migrations(source).map_err(migration_error)?;
    for migration in migrations {
        if !versions.contains(&migration.name().version().to_string()) {
            continue;
        }
        let outcome = if migration.metadata().run_in_transaction() {
            conn.transaction(|c| migration.run(c))
        } else {
            migration.run(conn)
        };
        outcome.map_err(migration_error)?;
    }
    Ok(())
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
    let mut reverted = Vec::new();
    for version in versions {
        match &mut conn.inner {
            BackendConnection::Postgres(c) => revert_version(c, &POSTGRES, version),
            BackendConnection::Sqlite(c) => revert_version(c, &SQLITE, version),
        }?;
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

fn check_schema(conn: &mut Connection) -> Result<Vec<Drift>> {
    let backend = conn.backend();
    let mut drift = Vec::new();
    let bookkeeping = bookkeeping_exists(conn)?;
    let applied = applied_versions(conn)?;
    if !applied.contains(&baseline_version(backend)?) {
        let expected = expected_schema(backend);
        let found = describe_schema(conn)?;
        // Nothing found that a migration would create or collide with: the pending
        // migrations create every expected object, so one item says so. Objects of
        // others (another tool's tables) stay listed: migrate leaves them alone.
        let ours = |line: &str| expected.iter().any(|e| object_of(e) == object_of(line));
        if !found.iter().any(|line| ours(line)) {
            drift.push(Drift::Empty(match backend {
                Backend::Postgres => "`jobprep migrate` creates the app's schema and jobprep's \
                                      indexes, with their bookkeeping and drizzle's journal"
                    .into(),
                Backend::Sqlite => "`jobprep migrate` creates the app's schema and jobprep's \
                                    indexes, with their bookkeeping"
                    .into(),
            }));
            drift.extend(found.into_iter().map(Drift::Unexpected));
            return Ok(drift);
        }
    }
    if !bookkeeping {
        drift.push(Drift::Bookkeeping(
            "__diesel_schema_migrations is missing".into(),
        ));
    } else if !applied.contains(&baseline_version(backend)?) {
        drift.push(Drift::Bookkeeping(
            "__diesel_schema_migrations does not record the baseline".into(),
        ));
    }
    for name in migration_names(backend)? {
        if !applied.contains(&version_of(&name)) {
            drift.push(Drift::Pending(name));
        }
    }
    let expected = expected_schema(backend);
    let found = describe_schema(conn)?;
    let mut unexpected: Vec<&String> = found
        .iter()
        .filter(|line| !expected.contains(&line.as_str()))
        .collect();
    for line in &expected {
        if found.iter().any(|f| f == line) {
            continue;
        }
        let same_index = line.starts_with("index ").then(|| {
            unexpected
                .iter()
                .position(|f| f.starts_with("index ") && index_name(f) == index_name(line))
        });
        match same_index.flatten() {
            Some(at) => drift.push(Drift::Changed {
                expected: (*line).to_string(),
                found: unexpected.remove(at).clone(),
            }),
            None => drift.push(Drift::Missing((*line).to_string())),
        }
    }
    drift.extend(unexpected.into_iter().cloned().map(Drift::Unexpected));
    if backend == Backend::Postgres {
        if !journal_exists(conn)? {
            drift.push(Drift::Journal(format!(
                "{DRIZZLE_JOURNAL_TABLE} is missing"
            )));
        } else {
            for migration in journal_missing(conn)? {
                drift.push(Drift::Journal(format!(
                    "{DRIZZLE_JOURNAL_TABLE} lacks the app's migration {}",
                    migration.tag
                )));
            }
        }
    }
    Ok(drift)
}

fn journal_exists(conn: &mut Connection) -> Result<bool> {
    query_flag(
        conn,
        r#"SELECT to_regclass('"drizzle"."__drizzle_migrations"') IS NOT NULL AS value"#,
    )
}

/// The app's migrations that drizzle's journal does not list (all when it is missing).
fn journal_missing(conn: &mut Connection) -> Result<Vec<DrizzleMigration>> {
    if !journal_exists(conn)? {
        return Ok(DRIZZLE_JOURNAL.to_vec());
    }
    let BackendConnection::Postgres(c) = &mut conn.inner else {
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
fn write_journal(conn: &mut Connection) -> Result<()> {
    if conn.backend() != Backend::Postgres {
        return Ok(());
    }
    conn.batch_execute(&format!(
        r#"CREATE SCHEMA IF NOT EXISTS "drizzle";
           CREATE TABLE IF NOT EXISTS {DRIZZLE_JOURNAL_TABLE} (
               "id" SERIAL PRIMARY KEY,
               "hash" text NOT NULL,
               "created_at" bigint
           )"#
    ))?;
    let BackendConnection::Postgres(c) = &mut conn.inner else {
        return Ok(());
    };
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

/// Checks an existing app database against the baseline and records the baseline as
/// applied. Changes nothing when the shapes differ.
fn adopt(conn: &mut Connection) -> Result<()> {
    let backend = conn.backend();
    let found = describe_app_schema(conn)?;
    let expected: Vec<&str> = match backend {
        Backend::Postgres => POSTGRES_BASELINE
            .lines()
            .filter(|l| !l.is_empty())
            .collect(),
        // SQLite's description is one CREATE line per object: the four tables' lines.
        Backend::Sqlite => expected_schema(backend)
            .into_iter()
            .filter(|line| is_app_table_line(line))
            .collect(),
    };
    let missing: Vec<&str> = expected
        .iter()
        .filter(|line| !found.iter().any(|f| f == *line))
        .copied()
        .collect();
    let unexpected: Vec<&str> = found
        .iter()
        .filter(|line| !expected.contains(&line.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        let mut message = String::from(
            "the existing database does not match the original app's schema; nothing was \
             changed.",
        );
        for line in &missing {
            message.push_str(&format!("\n  expected, not found: {line}"));
        }
        for line in &unexpected {
            message.push_str(&format!("\n  found, not expected: {line}"));
        }
        return Err(Error::Migration(message));
    }
    let baseline = baseline_version(backend)?;
    conn.transaction(|conn| {
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
                 version VARCHAR(50) PRIMARY KEY NOT NULL,
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
             )",
        )?;
        match &mut conn.inner {
            BackendConnection::Postgres(c) => diesel::sql_query(
                "INSERT INTO __diesel_schema_migrations (version) VALUES ($1) \
                 ON CONFLICT (version) DO NOTHING",
            )
            .bind::<Text, _>(&baseline)
            .execute(c),
            BackendConnection::Sqlite(c) => diesel::sql_query(
                "INSERT INTO __diesel_schema_migrations (version) VALUES (?) \
                 ON CONFLICT (version) DO NOTHING",
            )
            .bind::<Text, _>(&baseline)
            .execute(c),
        }?;
        // The schema is the app's four migrations' result: say so to its migrator too.
        write_journal(conn)
    })
}

fn bookkeeping_exists(conn: &mut Connection) -> Result<bool> {
    let sql = match conn.backend() {
        Backend::Postgres => {
            "SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS value"
        }
        Backend::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
             AND name = '__diesel_schema_migrations') AS value"
        }
    };
    query_flag(conn, sql)
}

fn app_tables_present(conn: &mut Connection) -> Result<bool> {
    let sql = match conn.backend() {
        Backend::Postgres => {
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' \
             AND c.relname IN ('users', 'job_info', 'interviews', 'questions')) AS value"
        }
        Backend::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
             AND name IN ('users', 'job_info', 'interviews', 'questions')) AS value"
        }
    };
    query_flag(conn, sql)
}

fn query_flag(conn: &mut Connection, sql: &str) -> Result<bool> {
    let flag: Flag = match &mut conn.inner {
        BackendConnection::Postgres(c) => diesel::sql_query(sql).get_result(c),
        BackendConnection::Sqlite(c) => diesel::sql_query(sql).get_result(c),
    }?;
    Ok(flag.value)
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
    let BackendConnection::Postgres(c) = &mut conn.inner else {
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
    let unlocked = match &mut conn.inner {
        BackendConnection::Postgres(c) => {
            diesel::sql_query("SELECT pg_advisory_unlock($1) AS value")
                .bind::<BigInt, _>(KEY)
                .get_result::<Flag>(c)
                .and_then(|_| {
                    diesel::connection::SimpleConnection::batch_execute(
                        c,
                        "RESET statement_timeout",
                    )
                })
        }
        BackendConnection::Sqlite(_) => Ok(()),
    };
    let value = result?;
    unlocked?;
    Ok(value)
}

/// The original app's part of the schema: its two enum types and four tables, indexes
/// other than those backing constraints left out (extra indexes are allowed).
fn describe_app_schema(conn: &mut Connection) -> Result<Vec<String>> {
    if conn.backend() == Backend::Sqlite {
        return Ok(describe_schema(conn)?
            .into_iter()
            .filter(|line| is_app_table_line(line))
            .collect());
    }
    Ok(describe_schema(conn)?
        .into_iter()
        .filter(|line| !line.starts_with("index "))
        .filter(|line| {
            APP_TABLES.iter().any(|table| {
                line.starts_with(&format!("column {table}."))
                    || line.starts_with(&format!("constraint {table}."))
            }) || line.starts_with("type ")
        })
        .collect())
}

/// A SQLite description line of one of the app's tables (`table users: CREATE ...`).
fn is_app_table_line(line: &str) -> bool {
    APP_TABLES
        .iter()
        .any(|table| line.starts_with(&format!("table {table}:")))
}

fn describe_schema(conn: &mut Connection) -> Result<Vec<String>> {
    let lines: Vec<Line> = match &mut conn.inner {
        BackendConnection::Postgres(c) => diesel::sql_query(DESCRIBE_POSTGRES).load(c),
        BackendConnection::Sqlite(c) => diesel::sql_query(DESCRIBE_SQLITE).load(c),
    }?;
    // SQLite keeps each object's CREATE text as written: one line per object reads and
    // diffs better.
    Ok(lines
        .into_iter()
        .map(|l| l.line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect())
}

const DESCRIBE_POSTGRES: &str = r#"
SELECT line FROM (
    SELECT 'type ' || t.typname || ' enum(' || string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) || ')' AS line
    FROM pg_type t
    JOIN pg_enum e ON e.enumtypid = t.oid
    JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = current_schema()
    GROUP BY t.typname
  UNION ALL
    SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
        || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
        || COALESCE(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0
      AND NOT a.attisdropped AND c.relname <> '__diesel_schema_migrations'
  UNION ALL
    SELECT 'constraint ' || c.relname || '.' || con.conname || ' ' || pg_get_constraintdef(con.oid)
    FROM pg_constraint con
    JOIN pg_class c ON c.oid = con.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relname <> '__diesel_schema_migrations'
  UNION ALL
    SELECT 'index ' || c.relname || '.' || i.relname || ' ' || pg_get_indexdef(i.oid)
        || CASE WHEN x.indisvalid THEN '' ELSE ' (invalid)' END
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relname <> '__diesel_schema_migrations'
      AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.oid)
) described
ORDER BY line
"#;

const DESCRIBE_SQLITE: &str = r#"
SELECT type || ' ' || name || ': ' || COALESCE(sql, '') AS line
FROM sqlite_master
WHERE name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations'
ORDER BY line
"#;
