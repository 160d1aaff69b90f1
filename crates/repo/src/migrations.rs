//! Versioned migrations, embedded in the binary, for both backends.
//!
//! `migrations/postgres` and `migrations/sqlite` hold the same migration names. The
//! first PostgreSQL migration is the original app's schema, unchanged; later ones only
//! add. A PostgreSQL database that the original app created (its tables present, no
//! bookkeeping of ours) is *adopted*: its schema is compared with the baseline, the
//! baseline is recorded as applied, and the additive migrations run. A database whose
//! shape differs is refused with the differences named, and left untouched.

use std::time::{Duration, Instant};

use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::Backend;
use crate::connection::{BackendConnection, Connection};
use crate::handle::Db;
use crate::error::{Error, Result};

/// The PostgreSQL migrations, embedded at build time.
pub const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// The SQLite migrations, embedded at build time.
pub const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// The baseline schema as PostgreSQL's catalog describes it (see [`Db::describe_schema`]),
/// for the original app's tables and types. Adoption compares against it; the tests
/// check that both `existing_app_schema.sql` and our first migration produce exactly it.
pub const POSTGRES_BASELINE: &str = include_str!("../../../migrations/postgres/baseline.schema");

/// The tables and types the original app owns.
const APP_TABLES: &[&str] = &["users", "job_info", "interviews", "questions"];

/// What [`Db::migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MigrationReport {
    /// Whether an existing database of the original app was adopted.
    pub adopted: bool,
    /// The migrations applied, oldest first.
    pub applied: Vec<String>,
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

    /// Reverts the most recent migration; `None` when nothing is applied. Reverting the
    /// first migration drops every table, data included.
    pub fn revert_last_migration(&self) -> Result<Option<String>> {
        self.refuse_through_a_pooler()?;
        self.with_connection(|conn| {
            with_migration_lock(conn, |conn| {
                if applied_versions(conn)?.is_empty() {
                    return Ok(None);
                }
                let version = match &mut conn.inner {
                    BackendConnection::Postgres(c) => c.revert_last_migration(POSTGRES),
                    BackendConnection::Sqlite(c) => c.revert_last_migration(SQLITE),
                }
                .map_err(migration_error)?;
                let version = version.to_string();
                Ok(migration_names(conn.backend())?
                    .into_iter()
                    .find(|name| version_of(name) == version)
                    .or(Some(version)))
            })
        })
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
    let adopted = conn.backend() == Backend::Postgres
        && !bookkeeping_exists(conn)?
        && app_tables_present(conn)?;
    if adopted {
        adopt(conn)?;
    }
    let applied: Vec<String> = match &mut conn.inner {
        BackendConnection::Postgres(c) => c
            .run_pending_migrations(POSTGRES)
            .map(|done| done.iter().map(ToString::to_string).collect()),
        BackendConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE)
            .map(|done| done.iter().map(ToString::to_string).collect()),
    }
    .map_err(migration_error)?;
    let names = migration_names(conn.backend())?;
    let applied = applied
        .into_iter()
        .map(|version| {
            names
                .iter()
                .find(|name| version_of(name) == version)
                .cloned()
                .unwrap_or(version)
        })
        .collect();
    Ok(MigrationReport { adopted, applied })
}

/// Checks an existing app database against the baseline and records the baseline as
/// applied. Changes nothing when the shapes differ.
fn adopt(conn: &mut Connection) -> Result<()> {
    let found = describe_app_schema(conn)?;
    let expected: Vec<&str> = POSTGRES_BASELINE
        .lines()
        .filter(|l| !l.is_empty())
        .collect();
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
    let baseline = migration_names(Backend::Postgres)?
        .into_iter()
        .next()
        .map(|name| version_of(&name))
        .ok_or_else(|| Error::Migration("no baseline migration is embedded".into()))?;
    conn.transaction(|conn| {
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
                 version VARCHAR(50) PRIMARY KEY NOT NULL,
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
             )",
        )?;
        if let BackendConnection::Postgres(c) = &mut conn.inner {
            diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ($1)")
                .bind::<Text, _>(&baseline)
                .execute(c)?;
        }
        Ok(())
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
    query_flag(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind = 'r' \
         AND c.relname IN ('users', 'job_info', 'interviews', 'questions')) AS value",
    )
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
        let got: Flag = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS value")
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
                .map(|_| ())
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
