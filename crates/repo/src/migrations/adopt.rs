//! Adoption: a database the original app created (or a SQLite file whose bookkeeping
//! was lost) is checked against the baseline and recorded as migrated.

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::drift::describe_schema;
use super::embedded::{baseline_version, expected_schema, query_flag, POSTGRES_BASELINE};
use super::journal::write_journal;
use crate::config::Backend;
use crate::connection::{on_backend, Connection};
use crate::error::{Error, Result};

/// The tables and types the original app owns.
pub(super) const APP_TABLES: &[&str] = &["users", "job_info", "interviews", "questions"];

/// Checks an existing app database against the baseline and records the baseline as
/// applied. Changes nothing when the shapes differ.
pub(super) fn adopt(conn: &mut Connection) -> Result<()> {
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
        let record = match conn.backend() {
            Backend::Postgres => {
                "INSERT INTO __diesel_schema_migrations (version) VALUES ($1) \
                 ON CONFLICT (version) DO NOTHING"
            }
            Backend::Sqlite => {
                "INSERT INTO __diesel_schema_migrations (version) VALUES (?) \
                 ON CONFLICT (version) DO NOTHING"
            }
        };
        on_backend!(conn, c => diesel::sql_query(record)
            .bind::<Text, _>(&baseline)
            .execute(c))?;
        // The schema is the app's four migrations' result: say so to its migrator too.
        write_journal(conn)
    })
}

pub(super) fn app_tables_present(conn: &mut Connection) -> Result<bool> {
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

/// The original app's part of the schema: its two enum types and four tables, indexes
/// other than those backing constraints left out (extra indexes are allowed).
pub(super) fn describe_app_schema(conn: &mut Connection) -> Result<Vec<String>> {
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
pub(super) fn is_app_table_line(line: &str) -> bool {
    APP_TABLES
        .iter()
        .any(|table| line.starts_with(&format!("table {table}:")))
}
