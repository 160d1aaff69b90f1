//! Drift: the live schema described line by line, compared with what jobprep expects
//! ([`Db::check_schema`](crate::Db::check_schema)), and the repair of our indexes.

use diesel::backend::Backend as DieselBackend;
use diesel::migration::{Migration, MigrationSource};
use diesel::RunQueryDsl;
use diesel_migrations::EmbeddedMigrations;

use super::embedded::{
    applied_versions, baseline_version, bookkeeping_exists, expected_schema, migration_error,
    migration_names, source_of, version_of, Line,
};
use super::journal::{journal_exists, journal_missing, DRIZZLE_JOURNAL_TABLE};
use crate::config::Backend;
use crate::connection::{on_backend, Connection};
use crate::error::Result;

/// One difference between the live database and what jobprep expects, from
/// [`Db::check_schema`](crate::Db::check_schema).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "item", rename_all = "snake_case")]
pub enum Drift {
    /// `__diesel_schema_migrations` is missing, or does not record the baseline.
    Bookkeeping(String),
    /// A migration that is not applied.
    Pending(String),
    /// A line of the expected schema (see
    /// [`Db::describe_schema`](crate::Db::describe_schema)) not found.
    Missing(String),
    /// A line found that the expected schema does not have.
    Unexpected(String),
    /// One of our indexes exists under its name with another definition (for example
    /// rebuilt by `drizzle-kit push` from a schema declaring it differently, or an earlier
    /// version of its migration), or is unusable: a failed `CREATE INDEX CONCURRENTLY`
    /// leaves the index behind marked invalid, and the found line ends in `(invalid)`. Our
    /// indexes are ours to repair: [`Db::migrate`](crate::Db::migrate) rebuilds it.
    Changed {
        /// The expected schema line.
        expected: String,
        /// The line found.
        found: String,
    },
    /// drizzle's journal is missing or lacks one of the app's migrations (PostgreSQL).
    Journal(String),
    /// The database holds nothing of the expected schema and does not record the baseline
    /// (a new database, or one whose first migration failed):
    /// [`Db::migrate`](crate::Db::migrate) creates all of it, so this one item stands for
    /// every missing object. It says what will be created.
    Empty(String),
}

impl Drift {
    /// Whether `jobprep migrate` ([`Db::migrate`](crate::Db::migrate)) repairs it:
    /// bookkeeping, pending migrations, our missing, changed or invalid indexes, our
    /// missing functions and the journal. A changed or missing column, type or
    /// constraint, and anything unexpected, is the app's schema: reported, never touched.
    pub fn repaired_by_migrate(&self) -> bool {
        match self {
            Drift::Bookkeeping(_) | Drift::Pending(_) | Drift::Journal(_) | Drift::Empty(_) => true,
            Drift::Changed { .. } => true,
            // Our indexes and functions: migrate runs their migrations again.
            Drift::Missing(line) => line.starts_with("index ") || line.starts_with("function "),
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

/// The index's name in a schema line: `index job_info.NAME CREATE ...` (PostgreSQL),
/// `index NAME: CREATE ...` (SQLite).
pub(super) fn index_name(line: &str) -> &str {
    let object = line.split_whitespace().nth(1).unwrap_or(line);
    let object = object.trim_end_matches(':');
    object.rsplit('.').next().unwrap_or(object)
}

/// The object a schema line describes, by name: the table of a column or constraint
/// (`column users.id ...`), the type, the table (SQLite), the index or the function.
pub(super) fn object_of(line: &str) -> &str {
    if line.starts_with("index ") || line.starts_with("function ") {
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
pub(super) fn drop_changed_indexes(conn: &mut Connection) -> Result<()> {
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

/// Recreates our indexes and functions that are recorded as applied but gone
/// (`drizzle-kit push` drops indexes its schema does not declare, [`drop_changed_indexes`]
/// those it redefined; someone may drop the `jobprep` schema). Every migration after the baseline is idempotent (`IF NOT EXISTS`, see
/// migrations/README.md), so running the applied ones again restores exactly what is
/// missing. Returns the restored index names.
pub(super) fn restore_indexes(conn: &mut Connection) -> Result<Vec<String>> {
    let backend = conn.backend();
    let found = describe_schema(conn)?;
    // Only what is gone: an index still found under its name would not change.
    let missing: Vec<&str> = expected_schema(backend)
        .into_iter()
        .filter(|line| {
            (line.starts_with("index ") || line.starts_with("function "))
                && !found.iter().any(|f| f == line)
        })
        // A function is replaced as written (`CREATE OR REPLACE`) even when one of its
        // name is there.
        .filter(|line| {
            line.starts_with("function ")
                || !found
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
    let source = source_of(backend);
    on_backend!(conn, c => run_again(c, &source, &applied))?;
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

pub(super) fn check_schema(conn: &mut Connection) -> Result<Vec<Drift>> {
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
                                      indexes and functions, with their bookkeeping and \
                                      drizzle's journal"
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

pub(super) fn describe_schema(conn: &mut Connection) -> Result<Vec<String>> {
    let describe = match conn.backend() {
        Backend::Postgres => DESCRIBE_POSTGRES,
        Backend::Sqlite => DESCRIBE_SQLITE,
    };
    let lines: Vec<Line> = on_backend!(conn, c => diesel::sql_query(describe).load(c))?;
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
  UNION ALL
    SELECT 'function jobprep.' || p.proname || ': (' || pg_get_function_arguments(p.oid)
        || ') returns ' || pg_get_function_result(p.oid) || ' body md5 ' || md5(p.prosrc)
    FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'jobprep'
) described
ORDER BY line
"#;

const DESCRIBE_SQLITE: &str = r#"
SELECT type || ' ' || name || ': ' || COALESCE(sql, '') AS line
FROM sqlite_master
WHERE name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations'
ORDER BY line
"#;
