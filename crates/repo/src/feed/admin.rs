//! Installing, removing, trimming and inspecting the feed on PostgreSQL.

use std::collections::BTreeSet;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::{Connection as _, RunQueryDsl as _};

use super::sql::{expected_parts, horizon_row, install_sql, trim_sql, SCHEMA, TRIMMED};
use crate::config::Backend;
use crate::error::{Error, Result};
use crate::handle::Db;

/// Whether the feed is in place, from [`Db::cache_feed_status`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum FeedInstallation {
    /// Every trigger is present and enabled, and both tables are there (the horizon
    /// table with its one row).
    Installed,
    /// Some parts are missing or disabled (a trigger as `table.trigger`, a table as
    /// [`CHANGES`](super::CHANGES) or [`TRIMMED`](super::TRIMMED), the one row of the
    /// latter as `jobprep_cache_feed.trimmed row`): run the install again.
    Partial { missing: Vec<String> },
    /// Nothing of the feed is in this database.
    Absent,
    /// SQLite: nothing to install; listeners see this process's own commits.
    InProcess,
}

/// In words, as `jobprep cache-feed status` prints it: `installed`, `absent`,
/// `partial: missing a, b` or `in process (SQLite: ...)`.
impl std::fmt::Display for FeedInstallation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedInstallation::Installed => f.write_str("installed"),
            FeedInstallation::Absent => f.write_str("absent"),
            FeedInstallation::Partial { missing } => {
                write!(f, "partial: missing {}", missing.join(", "))
            }
            FeedInstallation::InProcess => f.write_str(
                "in process (SQLite: nothing to install; listeners see this process's commits)",
            ),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct TriggerRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

impl Db {
    /// Installs the PostgreSQL triggers of the cache feed (see the [module](crate::feed)
    /// docs). Idempotent: running it again replaces the functions, triggers and tables
    /// with the current version. Changes recorded before a re-install and not yet read
    /// go with the old tables, so each listener running meanwhile yields one
    /// [`FeedEvent::Reset`](super::FeedEvent::Reset) on its next poll. Needs the right to create triggers on the four tables
    /// (their owner). Briefly locks each table against writes while its triggers are
    /// replaced, waiting at most 10 s for running writes (then it fails and changes
    /// nothing). SQLite needs nothing installed: a configuration error says so.
    ///
    /// Cost: every inserted row (every insert statement on `questions`), every delete
    /// statement, and every updated row that changed then runs a trigger function
    /// that inserts one row into an unlogged table (no WAL); each listener runs one prepared, indexed query every
    /// 20 to 200 ms, and the listeners between them trim the table every 30 s.
    /// docs/cache-feed.md ("Cost") has the measurements.
    pub fn install_cache_feed(&self) -> Result<()> {
        // Replacing a trigger waits for the table's running writes; give up rather
        // than queue every later write behind a long transaction.
        let sql = format!("SET LOCAL lock_timeout = '10s';\n{}", install_sql());
        self.feed_admin(|c| c.transaction(|c| c.batch_execute(&sql)))
    }

    /// Removes the feed: the schema [`SCHEMA`] with its functions and tables, and
    /// with them the triggers. The app's tables and their data are untouched.
    /// Idempotent.
    pub fn remove_cache_feed(&self) -> Result<()> {
        self.feed_admin(|c| c.batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")))
    }

    /// Deletes the rows of [`CHANGES`](super::CHANGES) that every listener still
    /// polling has read, and returns how many. Listeners call it every 10 s; it does anything at most
    /// once per 30 s, deleting what had committed before its previous run, so a
    /// listener that polled in between has seen it and one that did not is reset.
    /// With no listener running nobody trims: schedule `jobprep cache-feed trim`
    /// then, or remove the feed.
    pub fn trim_cache_feed(&self) -> Result<usize> {
        self.feed_admin(|c| diesel::sql_query(trim_sql()).execute(c))
    }

    /// Whether the feed's triggers and tables are in place.
    pub fn cache_feed_status(&self) -> Result<FeedInstallation> {
        if self.backend() == Backend::Sqlite {
            return Ok(FeedInstallation::InProcess);
        }
        let present: Vec<TriggerRow> = self.feed_admin(|c| {
            diesel::sql_query(format!(
                "SELECT c.relname || '.' || t.tgname AS name \
                 FROM pg_trigger t \
                 JOIN pg_class c ON c.oid = t.tgrelid \
                 JOIN pg_proc p ON p.oid = t.tgfoid \
                 JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname = '{SCHEMA}' AND NOT t.tgisinternal AND t.tgenabled <> 'D' \
                 UNION ALL \
                 SELECT n.nspname || '.' || c.relname FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = '{SCHEMA}' AND c.relkind = 'r'"
            ))
            .load(c)
        })?;
        let mut present: BTreeSet<String> = present.into_iter().map(|row| row.name).collect();
        if present.is_empty() {
            return Ok(FeedInstallation::Absent);
        }
        // Without its one row, listeners cannot tell what was trimmed (see `poll_sql`).
        if present.contains(TRIMMED) {
            let rows: Vec<TriggerRow> = self.feed_admin(|c| {
                diesel::sql_query(format!("SELECT '{}' AS name FROM {TRIMMED}", horizon_row()))
                    .load(c)
            })?;
            present.extend(rows.into_iter().map(|row| row.name));
        }
        let missing: Vec<String> = expected_parts()
            .into_iter()
            .filter(|name| !present.contains(name))
            .collect();
        Ok(if missing.is_empty() {
            FeedInstallation::Installed
        } else {
            FeedInstallation::Partial { missing }
        })
    }

    fn feed_admin<T>(
        &self,
        f: impl FnOnce(&mut PgConnection) -> diesel::QueryResult<T>,
    ) -> Result<T> {
        self.with_connection(|conn| match conn.as_postgres() {
            Some(c) => Ok(f(c)?),
            None => Err(Error::Config(
                "the cache feed's triggers are for PostgreSQL; on SQLite a listener sees \
                 this process's commits without installing anything"
                    .into(),
            )),
        })
    }
}
