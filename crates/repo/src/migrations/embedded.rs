//! The embedded migrations and schema descriptions, the migrations' names and
//! versions, what the bookkeeping records as applied, and the small queries the rest
//! of the module shares.

use diesel::migration::{Migration, MigrationSource};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::config::Backend;
use crate::connection::{on_backend, Connection};
use crate::error::{Error, Result};

/// The PostgreSQL migrations, embedded at build time.
pub const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The SQLite migrations, embedded at build time.
pub const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// The baseline schema as PostgreSQL's catalog describes it (see
/// [`Db::describe_schema`](crate::Db::describe_schema)), for the original app's tables and
/// types. Adoption compares against it; the tests check that both `existing_app_schema.sql`
/// and our first migration produce exactly it.
pub const POSTGRES_BASELINE: &str = include_str!("../../../../migrations/postgres/baseline.schema");

/// What a fully migrated PostgreSQL database looks like (see
/// [`Db::describe_schema`](crate::Db::describe_schema)): the baseline plus our indexes.
/// [`Db::check_schema`](crate::Db::check_schema) compares against it; a test checks that a
/// fresh migration produces exactly it.
pub const POSTGRES_EXPECTED: &str = include_str!("../../../../migrations/postgres/expected.schema");

/// What a fully migrated SQLite database looks like, as [`POSTGRES_EXPECTED`].
pub const SQLITE_EXPECTED: &str = include_str!("../../../../migrations/sqlite/expected.schema");

#[derive(QueryableByName)]
pub(super) struct Line {
    #[diesel(sql_type = Text)]
    pub(super) line: String,
}

#[derive(QueryableByName)]
pub(super) struct Flag {
    #[diesel(sql_type = Bool)]
    pub(super) value: bool,
}

pub(super) fn migration_error(error: impl std::fmt::Display) -> Error {
    Error::Migration(error.to_string())
}

/// A migration's version: the part of its folder name before the first `_`.
pub(super) fn version_of(name: &str) -> String {
    name.split('_').next().unwrap_or(name).replace('-', "")
}

/// The migrations embedded for `backend`.
pub(super) fn source_of(backend: Backend) -> EmbeddedMigrations {
    match backend {
        Backend::Postgres => POSTGRES,
        Backend::Sqlite => SQLITE,
    }
}

pub(super) fn migration_names(backend: Backend) -> Result<Vec<String>> {
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
pub(super) fn baseline_version(backend: Backend) -> Result<String> {
    migration_names(backend)?
        .first()
        .map(|name| version_of(name))
        .ok_or_else(|| Error::Migration("no baseline migration is embedded".into()))
}

/// The migration name for a version (the version itself when unknown).
pub(super) fn name_of(backend: Backend, version: &str) -> Result<String> {
    Ok(migration_names(backend)?
        .into_iter()
        .find(|name| version_of(name) == version)
        .unwrap_or_else(|| version.to_string()))
}

pub(super) fn applied_versions(conn: &mut Connection) -> Result<Vec<String>> {
    if !bookkeeping_exists(conn)? {
        return Ok(Vec::new());
    }
    let versions = on_backend!(conn, c => c.applied_migrations()).map_err(migration_error)?;
    Ok(versions.into_iter().map(|v| v.to_string()).collect())
}

pub(super) fn expected_schema(backend: Backend) -> Vec<&'static str> {
    match backend {
        Backend::Postgres => POSTGRES_EXPECTED,
        Backend::Sqlite => SQLITE_EXPECTED,
    }
    .lines()
    .filter(|l| !l.is_empty())
    .collect()
}

pub(super) fn bookkeeping_exists(conn: &mut Connection) -> Result<bool> {
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

pub(super) fn query_flag(conn: &mut Connection, sql: &str) -> Result<bool> {
    let flag: Flag = on_backend!(conn, c => diesel::sql_query(sql).get_result(c))?;
    Ok(flag.value)
}
