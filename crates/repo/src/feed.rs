//! The change feed of cache tags: every committed write, whoever made it, as the tags
//! it invalidates, delivered to every process that listens.
//!
//! - **PostgreSQL**: `AFTER` triggers on `users`, `job_info`, `interviews` and
//!   `questions` (installed by [`Db::install_cache_feed`], removed by
//!   [`Db::remove_cache_feed`]) record, in the writer's own transaction, one row per
//!   insert or delete statement, and per updated row that changed, in the unlogged
//!   table [`CHANGES`]: the table, the ids it changed and their parents. The row commits with the write or not at all, so
//!   nothing is seen before COMMIT and nothing after a rollback. Rows removed by a
//!   cascade fire the child tables' triggers, so their tags come too. Writes by the
//!   original app, by `psql` and by jobprep are recorded alike. Each listener polls
//!   the table and turns the rows of each newly committed transaction into the tags
//!   of [`crate::cache_rules`]. Writers never `NOTIFY`, because PostgreSQL commits
//!   notifying transactions one at a time.
//! - **SQLite**: no server to record changes for other processes. The listener receives the commits made
//!   through any [`Db`] of *this process* on the same file (hooked on the tags the
//!   `Db` reports after COMMIT); other processes writing the file are not seen.
//!
//! A [`Listener`] holds one dedicated session connection (never one of the pool's, and
//! never through a transaction-mode pooler, which would hide a server restart from
//! it), reconnects by itself, and yields [`FeedEvent::Reset`] after any gap
//! (reconnect, a full queue, a `TRUNCATE`, a listener that fell more than 30 s
//! behind the table's trimming), because what committed while it was away is not
//! looked for. Delivery is therefore *at most once per connection*, with a reset
//! after every gap: a consumer that flushes everything on a reset never keeps a
//! stale entry.
//!
//! ```
//! # fn main() -> jobprep_repo::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let db = jobprep_repo::Db::connect(&dir.path().join("feed.sqlite3").display().to_string())?;
//! # db.migrate()?;
//! use std::time::Duration;
//! use jobprep_repo::feed::{FeedEvent, FeedOptions, Listener};
//! use jobprep_users::{NewUser, UserId};
//!
//! let mut listener = Listener::start(&db, FeedOptions::default())?;
//! let me = UserId::new("user_feed")?;
//! jobprep_users::upsert(&db, &NewUser::new(me, "Ada", "ada@feed.example"))?;
//! match listener.recv_timeout(Duration::from_secs(5)) {
//!     Some(FeedEvent::Tags(tags)) => assert!(tags.iter().any(|t| t.as_str() == "id:user_feed:users")),
//!     other => panic!("expected the user's tags, got {other:?}"),
//! }
//! listener.stop();
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::{Connection as _, RunQueryDsl as _};

use crate::config::{Backend, DatabaseUrl};
use crate::error::{Entity, Error, Result};
use crate::handle::Db;
use crate::local_feed;
use crate::tags::CacheTag;

/// The schema that holds the feed: its functions, the [`CHANGES`] table and the
/// [`TRIMMED`] horizon. Dropping it removes the whole feed.
pub const SCHEMA: &str = "jobprep_cache_feed";

/// The table the triggers write to, `jobprep_cache_feed.changes`: one row per insert
/// or delete statement and per changed row of an update, `(xid, source, ids, scopes)`, with the top-level transaction's id, the
/// table written, the ids of the rows it changed and their scope column (`userId`
/// or `jobInfoId`), or `ids` NULL after a `TRUNCATE`. Unlogged: it costs the writers
/// no WAL, and a crash empties it (every listener reconnects and resets then).
pub const CHANGES: &str = "jobprep_cache_feed.changes";

/// The one-row table that records how far [`CHANGES`] has been trimmed.
pub const TRIMMED: &str = "jobprep_cache_feed.trimmed";

/// How long the changes of a finished transaction are kept at least, for listeners
/// that are slow to poll; one that falls further behind gets a reset.
const KEEP: &str = "30 seconds";

/// The parent a row's scope tag names (`user:{userId}:jobInfos`, `jobInfo:{jobInfoId}:questions`).
#[derive(Clone, Copy)]
enum Owner {
    User,
    JobInfo,
}

/// A scope tag: the column it is made from, and the parent it names.
type Scope = Option<(&'static str, Owner)>;

/// The watched tables: name, entity, and scope tag.
const WATCHED: [(&str, Entity, Scope); 4] = [
    ("users", Entity::User, None),
    ("job_info", Entity::JobInfo, Some(("userId", Owner::User))),
    (
        "interviews",
        Entity::Interview,
        Some(("jobInfoId", Owner::JobInfo)),
    ),
    (
        "questions",
        Entity::Question,
        Some(("jobInfoId", Owner::JobInfo)),
    ),
];

/// One trigger per event, with how it fires. Inserts and deletes fire once per
/// statement and read its rows from a transition table, so a bulk insert is one
/// recorded change. Updates fire per row, and only for a row the update changed
/// (compared as text, which every column type has): a no-op update, such as the lock a
/// quota-checked write takes on its user, then costs no function call at all, where a
/// statement trigger would capture both versions and compare them in SQL. `TRUNCATE`
/// has no rows.
const EVENTS: [(&str, &str); 4] = [
    (
        "insert",
        "AFTER INSERT ON {t} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
    ),
    (
        "update",
        "AFTER UPDATE ON {t} FOR EACH ROW WHEN (OLD::text IS DISTINCT FROM NEW::text)",
    ),
    (
        "delete",
        "AFTER DELETE ON {t} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
    ),
    ("truncate", "AFTER TRUNCATE ON {t} FOR EACH STATEMENT"),
];

fn trigger_name(event: &str) -> String {
    format!("{SCHEMA}_{event}")
}

/// The installation script: idempotent, in one transaction. It starts from an empty
/// schema, so an install over an older version leaves nothing of it behind.
///
/// The trigger functions run inside every write, so each is one `INSERT` of one row
/// (see BENCHMARKS.md); the tags are computed by the listener. Writers never
/// `NOTIFY`: PostgreSQL commits notifying transactions one at a time.
fn install_sql() -> String {
    let mut sql = format!(
        r#"
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
COMMENT ON SCHEMA {SCHEMA} IS 'jobprep cache feed v3: triggers record the rows each statement changed in {CHANGES}, listeners read them; remove with DROP SCHEMA {SCHEMA} CASCADE';

CREATE UNLOGGED TABLE {CHANGES} (
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  source text NOT NULL,
  ids text[],
  scopes text[]
);
CREATE INDEX changes_xid ON {CHANGES} (xid);

-- Rows of transactions older than `below` may be gone; `horizon` is the next
-- `below`, taken {KEEP} before it is used.
CREATE TABLE {TRIMMED} (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  below xid8 NOT NULL,
  horizon xid8 NOT NULL,
  horizon_at timestamptz NOT NULL
);
INSERT INTO {TRIMMED} (below, horizon, horizon_at)
  VALUES ('0', pg_snapshot_xmin(pg_current_snapshot()), now());

-- Whoever writes the four tables runs the triggers, so any role may add a change.
GRANT USAGE ON SCHEMA {SCHEMA} TO PUBLIC;
GRANT INSERT ON {CHANGES} TO PUBLIC;

CREATE FUNCTION {SCHEMA}.truncated() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO {CHANGES} (source) VALUES (TG_TABLE_NAME);
  RETURN NULL;
END
$fn$;
"#
    );
    for (table, _, scope) in WATCHED {
        for (event, clause) in EVENTS {
            let name = trigger_name(event);
            let function = if event == "truncate" {
                "truncated".to_string()
            } else {
                let function = format!("{table}_{event}");
                sql.push_str(&record_function(&function, table, scope, event));
                function
            };
            let clause = clause.replace("{t}", &format!("\"{table}\""));
            sql.push_str(&format!(
                "CREATE TRIGGER {name} {clause} EXECUTE FUNCTION {SCHEMA}.{function}();\n"
            ));
        }
    }
    sql
}

/// A trigger function that records one row of [`CHANGES`]: for an insert or a
/// delete statement, the ids and parents of its rows, read with two array
/// subqueries (the cheapest form measured; a statement that touched no row records
/// empty arrays, which listeners skip); for an updated row, its old and new version
/// (a new `userId` moves a job info between two users' lists).
fn record_function(function: &str, table: &str, scope: Scope, event: &str) -> String {
    let rows = if event == "insert" {
        "new_rows"
    } else {
        "old_rows"
    };
    let body = match (event, scope) {
        ("update", Some((column, _))) => format!(
            "INSERT INTO {CHANGES} (source, ids, scopes) VALUES ('{table}', \
             ARRAY[OLD.\"id\"::text, NEW.\"id\"::text], \
             ARRAY[OLD.\"{column}\"::text, NEW.\"{column}\"::text]);"
        ),
        ("update", None) => format!(
            "INSERT INTO {CHANGES} (source, ids) VALUES ('{table}', \
             ARRAY[OLD.\"id\"::text, NEW.\"id\"::text]);"
        ),
        (_, Some((column, _))) => format!(
            "INSERT INTO {CHANGES} (source, ids, scopes) VALUES ('{table}', \
             ARRAY(SELECT \"id\"::text FROM {rows}), ARRAY(SELECT \"{column}\"::text FROM {rows}));"
        ),
        (_, None) => format!(
            "INSERT INTO {CHANGES} (source, ids) VALUES ('{table}', ARRAY(SELECT \"id\"::text FROM {rows}));"
        ),
    };
    format!(
        r#"
CREATE FUNCTION {SCHEMA}.{function}() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  {body}
  RETURN NULL;
END
$fn$;
"#
    )
}

/// Whether the feed is in place, from [`Db::cache_feed_status`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum FeedInstallation {
    /// Every trigger is present and enabled, and both tables are there.
    Installed,
    /// Some parts are missing or disabled (a trigger as `table.trigger`, a table as
    /// [`CHANGES`] or [`TRIMMED`]): run the install again.
    Partial { missing: Vec<String> },
    /// Nothing of the feed is in this database.
    Absent,
    /// SQLite: nothing to install; listeners see this process's own commits.
    InProcess,
}

/// The feed's parts as [`Db::cache_feed_status`] names them: its two tables, and
/// `table.trigger` for each trigger.
fn expected_parts() -> Vec<String> {
    let triggers = WATCHED.iter().flat_map(|(table, _, _)| {
        EVENTS
            .iter()
            .map(move |(event, _)| format!("{table}.{}", trigger_name(event)))
    });
    [CHANGES, TRIMMED]
        .map(String::from)
        .into_iter()
        .chain(triggers)
        .collect()
}

#[derive(diesel::QueryableByName)]
struct TriggerRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

impl Db {
    /// Installs the PostgreSQL triggers of the cache feed (see the [module](self)
    /// docs). Idempotent: running it again replaces the functions and triggers with
    /// the current version. Needs the right to create triggers on the four tables
    /// (their owner). Briefly locks each table against writes while its triggers are
    /// replaced, waiting at most 10 s for running writes (then it fails and changes
    /// nothing). SQLite needs nothing installed: a configuration error says so.
    ///
    /// Cost: every insert or delete statement on the four tables, and every updated
    /// row that changed, then runs a trigger function that inserts one row into an
    /// unlogged table (no WAL); each listener runs one
    /// prepared, indexed query every 20 to 200 ms, and the listeners between them
    /// trim the table every 30 s. README ("Cost") has the measurements.
    pub fn install_cache_feed(&self) -> Result<()> {
        // Replacing a trigger waits for the table's running writes; give up rather
        // than queue every later write behind a long transaction.
        let sql = format!("SET LOCAL lock_timeout = '10s';\n{}", install_sql());
        self.feed_admin(|c| c.transaction(|c| c.batch_execute(&sql)))
    }

    /// Removes the feed: the schema [`SCHEMA`] with its functions, and with them the
    /// triggers. The tables and their data are untouched. Idempotent.
    pub fn remove_cache_feed(&self) -> Result<()> {
        self.feed_admin(|c| c.batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")))
    }

    /// Deletes the rows of [`CHANGES`] that every listener still polling has read,
    /// and returns how many. Listeners call it every 10 s; it does anything at most
    /// once per 30 s, deleting what had committed before its previous run, so a
    /// listener that polled in between has seen it and one that did not is reset.
    /// With no listener running nobody trims: schedule `jobprep cache-feed trim`
    /// then, or remove the feed.
    pub fn trim_cache_feed(&self) -> Result<usize> {
        self.feed_admin(|c| diesel::sql_query(trim_sql()).execute(c))
    }

    /// Whether the feed's triggers are in place.
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
        let present: BTreeSet<String> = present.into_iter().map(|row| row.name).collect();
        if present.is_empty() {
            return Ok(FeedInstallation::Absent);
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

/// What a [`Listener`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// The tags of one committed transaction, each once, in one batch.
    Tags(Vec<CacheTag>),
    /// Changes may have been missed (reconnect, full queue, `TRUNCATE`, an
    /// unreadable recorded change, a trim of changes not yet read): flush everything
    /// cached. See [`reset_tags`] for the tags that stand for
    /// "everything" in the app's rules.
    Reset,
}

/// The tags a reset maps to when the consumer only knows tags: `global:*` of every kind.
pub fn reset_tags() -> Vec<CacheTag> {
    [
        Entity::User,
        Entity::JobInfo,
        Entity::Interview,
        Entity::Question,
    ]
    .into_iter()
    .map(CacheTag::global)
    .collect()
}

/// Settings of a [`Listener`]. The defaults suit a service.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// How often the listener reads what committed since its last look while
    /// changes keep coming (default 20 ms): one prepared, indexed query each time. A
    /// failed poll is how a lost connection is noticed.
    pub poll_interval: Duration,
    /// The longest wait between polls (default 200 ms): after each poll that found
    /// nothing the wait doubles, up to this, so an idle listener costs the server
    /// about five queries a second; a poll that finds changes returns to
    /// `poll_interval`. Together they bound the added delivery latency.
    pub idle_poll_interval: Duration,
    /// Events queued for the consumer before a full queue turns into a reset
    /// (default 1024).
    pub capacity: usize,
    /// The first wait before reconnecting, doubled after each failure (default 100 ms).
    pub min_backoff: Duration,
    /// The longest wait between reconnection attempts (default 5 s).
    pub max_backoff: Duration,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            poll_interval: Duration::from_millis(20),
            idle_poll_interval: Duration::from_millis(200),
            capacity: 1024,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// The listener's connection, as last seen; from [`Listener::status`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeedStatus {
    /// Whether the session connection is up (always true on SQLite).
    pub connected: bool,
    /// The server process of the session connection (PostgreSQL).
    pub backend_pid: Option<i32>,
    /// Reconnections so far.
    pub reconnects: u64,
    /// Polls of the recorded changes so far (PostgreSQL); a growing count shows the
    /// listener alive.
    pub polls: u64,
    /// Resets yielded so far.
    pub resets: u64,
    /// The latest failure: a lost connection, a failed reconnect, an unreadable
    /// recorded change, a failed trim.
    pub last_error: Option<String>,
}

struct Shared {
    stop: AtomicBool,
    /// Set when an event could not be queued; the consumer sees a reset first.
    gap: AtomicBool,
    status: Mutex<FeedStatus>,
    /// The in-process subscription (SQLite), removed on stop.
    local_id: Option<u64>,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, FeedStatus> {
        // Plain data: a panic elsewhere cannot leave it half-written in a harmful way.
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(id) = self.local_id {
            local_feed::unsubscribe(id);
        }
    }
}

/// The sending half: never blocks; a full queue becomes a gap.
#[derive(Clone)]
struct Queue {
    tx: SyncSender<FeedEvent>,
    shared: Arc<Shared>,
}

impl Queue {
    /// Queues `event`; false once the listener is gone.
    fn send(&self, event: FeedEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.shared.gap.store(true, Ordering::SeqCst);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// Stops a [`Listener`] from any thread; cheap to clone.
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>);

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("stopped", &self.0.stop.load(Ordering::SeqCst))
            .finish()
    }
}

impl StopHandle {
    /// Asks the listener to stop: its iterator ends once the queued events are
    /// drained, within about 50 ms on PostgreSQL (a poll under way finishes first).
    pub fn stop(&self) {
        self.0.stop();
    }
}

/// Receives the cache tags of committed writes; see the [module](self) docs.
///
/// Use it as an iterator (blocks until an event arrives or the listener is stopped
/// through a [`StopHandle`]) or with [`Listener::recv_timeout`] (bounded).
pub struct Listener {
    events: Receiver<FeedEvent>,
    shared: Arc<Shared>,
    /// An event held back behind a reset.
    held: Option<FeedEvent>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("status", &*self.shared.status())
            .finish()
    }
}

impl Listener {
    /// Starts listening on `db`'s primary. On PostgreSQL this opens a dedicated
    /// session connection and fails when it cannot (retryable), when the URL is a
    /// transaction-mode pooler, or when the feed is not installed (configuration
    /// errors). Later connection losses are not errors: the listener reconnects and
    /// yields [`FeedEvent::Reset`].
    pub fn start(db: &Db, options: FeedOptions) -> Result<Listener> {
        if options.capacity == 0 || options.poll_interval.is_zero() {
            return Err(Error::Config(
                "cache feed: capacity and poll_interval must be positive".into(),
            ));
        }
        if options.idle_poll_interval < options.poll_interval {
            return Err(Error::Config(
                "cache feed: idle_poll_interval must not be shorter than poll_interval".into(),
            ));
        }
        let (tx, events) = mpsc::sync_channel(options.capacity);
        match db.backend() {
            Backend::Sqlite => {
                let id = local_feed::next_id();
                let shared = Arc::new(Shared {
                    stop: AtomicBool::new(false),
                    gap: AtomicBool::new(false),
                    status: Mutex::new(FeedStatus {
                        connected: true,
                        ..FeedStatus::default()
                    }),
                    local_id: Some(id),
                });
                let queue = Queue {
                    tx,
                    shared: shared.clone(),
                };
                local_feed::subscribe(
                    &db.config().url,
                    id,
                    Box::new(move |tags| queue.send(FeedEvent::Tags(tags.to_vec()))),
                );
                Ok(Listener {
                    events,
                    shared,
                    held: None,
                    worker: None,
                })
            }
            Backend::Postgres => {
                if db.config().pooler_safe {
                    return Err(Error::Config(
                        "the cache feed listener needs a session connection of its own, and this \
                         URL is a transaction-mode pooler (pooler-safe mode is on): a pooler \
                         reconnects to a restarted server without telling the listener, which \
                         would then miss the reset it owes its consumer. Start the listener \
                         with the database's direct URL"
                            .into(),
                    ));
                }
                match db.cache_feed_status()? {
                    FeedInstallation::Installed => {}
                    other => {
                        return Err(Error::Config(format!(
                            "the cache feed is not installed in this database ({other:?}): run \
                             `jobprep cache-feed install`"
                        )))
                    }
                }
                let url = db.config().url.clone();
                let (conn, pid, snapshot) = connect(&url)?;
                let shared = Arc::new(Shared {
                    stop: AtomicBool::new(false),
                    gap: AtomicBool::new(false),
                    status: Mutex::new(FeedStatus {
                        connected: true,
                        backend_pid: Some(pid),
                        ..FeedStatus::default()
                    }),
                    local_id: None,
                });
                let queue = Queue {
                    tx,
                    shared: shared.clone(),
                };
                let worker = std::thread::Builder::new()
                    .name("jobprep-cache-feed".into())
                    .spawn(move || Worker::new(url, options, queue, snapshot).run(conn))
                    .map_err(|e| {
                        Error::unavailable(format!("cannot start the cache feed thread: {e}"))
                    })?;
                Ok(Listener {
                    events,
                    shared,
                    held: None,
                    worker: Some(worker),
                })
            }
        }
    }

    /// The next event, waiting at most `timeout`; `None` when none came in time or the
    /// listener is stopped.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<FeedEvent> {
        if let Some(event) = self.held.take() {
            return Some(event);
        }
        if self.take_gap() {
            return Some(FeedEvent::Reset);
        }
        let event = match self.events.recv_timeout(timeout) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => {
                // The source is gone (stopped, or its thread ended): so is the listener.
                self.shared.stop.store(true, Ordering::SeqCst);
                return None;
            }
        };
        // Whatever was dropped happened before this event was taken: reset first.
        if event != FeedEvent::Reset && self.take_gap() {
            self.held = Some(event);
            return Some(FeedEvent::Reset);
        }
        if event == FeedEvent::Reset {
            self.take_gap();
            self.shared.status().resets += 1;
        }
        Some(event)
    }

    fn take_gap(&self) -> bool {
        let gap = self.shared.gap.swap(false, Ordering::SeqCst);
        if gap {
            self.shared.status().resets += 1;
        }
        gap
    }

    /// A handle that stops this listener from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shared.clone())
    }

    /// Whether the listener was stopped.
    pub fn is_stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// The connection as last seen.
    pub fn status(&self) -> FeedStatus {
        self.shared.status().clone()
    }

    /// Stops listening and waits for the connection to close (within about 50 ms
    /// after a poll under way, or the connect timeout while reconnecting).
    pub fn stop(mut self) {
        self.shared.stop();
        if let Some(worker) = self.worker.take() {
            // The worker only exits; a panic in it has nothing left to report.
            let _ = worker.join();
        }
    }
}

impl Iterator for Listener {
    type Item = FeedEvent;

    /// Blocks until the next event; `None` once stopped.
    fn next(&mut self) -> Option<FeedEvent> {
        loop {
            if let Some(event) = self.recv_timeout(Duration::from_millis(100)) {
                return Some(event);
            }
            if self.is_stopped() {
                return None;
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // The worker notices within 50 ms and closes its connection.
        self.shared.stop();
    }
}

/// libpq settings that bound every wait of the session connection, unless the URL
/// sets them already: a dead peer is noticed by keepalives and `tcp_user_timeout`.
fn session_target(url: &DatabaseUrl) -> String {
    let mut target = url.expose_secret().to_string();
    for (key, value) in [
        ("connect_timeout", "5"),
        ("keepalives", "1"),
        ("keepalives_idle", "10"),
        ("keepalives_interval", "5"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "20000"),
        ("application_name", "jobprep-cache-feed"),
    ] {
        if !target.contains(&format!("{key}=")) {
            target.push(if target.contains('?') { '&' } else { '?' });
            target.push_str(&format!("{key}={value}"));
        }
    }
    target
}

#[derive(diesel::QueryableByName)]
struct Start {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    snapshot: String,
}

/// Opens the session connection and prepares the poll on it; returns it with its
/// server pid and the snapshot that later polls start from (what committed before
/// it is not delivered).
fn connect(url: &DatabaseUrl) -> Result<(PgConnection, i32, String)> {
    let mut conn =
        PgConnection::establish(&session_target(url)).map_err(|e| lost(url, &e, false))?;
    // Prepared once: planning the poll anew cost the server more than running it.
    conn.batch_execute(&format!("PREPARE {POLL}(text) AS {}", poll_sql()))
        .map_err(|e| lost(url, &e, false))?;
    let start: Start = diesel::sql_query(
        "SELECT pg_backend_pid() AS pid, pg_current_snapshot()::text AS snapshot",
    )
    .get_result(&mut conn)
    .map_err(|e| lost(url, &e, false))?;
    Ok((conn, start.pid, start.snapshot))
}

/// The name of the prepared poll on the listener's connection.
const POLL: &str = "jobprep_cache_feed_poll";

fn lost(url: &DatabaseUrl, error: &dyn std::fmt::Display, connection_lost: bool) -> Error {
    Error::Unavailable {
        reason: format!("cache feed connection: {}", url.scrub(&error.to_string())),
        connection_lost,
    }
}

/// One poll, in one statement and so in one snapshot: the snapshot itself, whether
/// changes the last poll had not seen may have been trimmed, and the changes of every
/// transaction that committed between the last poll's snapshot (`$1`) and this one:
/// those that were running then (its `xip`) or started after (from its `xmax` on).
/// Transactions commit out of id order, so a plain "xid greater than the last one
/// seen" would miss the slow ones.
fn poll_sql() -> String {
    format!(
        "WITH head AS MATERIALIZED ( \
           SELECT pg_current_snapshot()::text AS snapshot, \
             coalesce((SELECT below FROM {TRIMMED}) > pg_snapshot_xmin($1::text::pg_snapshot), \
                      true) AS gap) \
         SELECT head.snapshot, head.gap, c.xid::text AS xid, c.source, c.ids, c.scopes \
         FROM head LEFT JOIN {CHANGES} c \
           ON c.xid >= pg_snapshot_xmax($1::text::pg_snapshot) \
           OR c.xid = ANY(ARRAY(SELECT pg_snapshot_xip($1::text::pg_snapshot))) \
         ORDER BY c.xid"
    )
}

/// A row of the poll: the snapshot and gap on every row, and one recorded change
/// (none on the single row of a poll that found nothing).
#[derive(diesel::QueryableByName)]
struct Polled {
    #[diesel(sql_type = diesel::sql_types::Text)]
    snapshot: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    gap: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    xid: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    source: Option<String>,
    #[diesel(sql_type = Ids)]
    ids: Option<Vec<Option<String>>>,
    #[diesel(sql_type = Ids)]
    scopes: Option<Vec<Option<String>>>,
}

/// `text[]`, read without trusting that neither it nor its elements are NULL: the
/// table takes any role's inserts, and a row that cannot be read is a reset, not a
/// failed poll.
type Ids = diesel::sql_types::Nullable<
    diesel::sql_types::Array<diesel::sql_types::Nullable<diesel::sql_types::Text>>,
>;

/// Trims [`CHANGES`], at most once per [`KEEP`] whoever runs it: rows of
/// transactions that had finished when the previous trim ran are deleted, and that
/// trim's horizon becomes `below`. A listener that polled since then has seen them.
/// A trim already under way elsewhere is skipped, not waited for, so no listener's
/// polling stalls behind another's delete.
fn trim_sql() -> String {
    format!(
        "WITH due AS ( \
           SELECT one FROM {TRIMMED} WHERE horizon_at < now() - interval '{KEEP}' \
           FOR UPDATE SKIP LOCKED), \
         round AS ( \
           UPDATE {TRIMMED} t SET below = horizon, \
             horizon = pg_snapshot_xmin(pg_current_snapshot()), horizon_at = now() \
           FROM due WHERE t.one = due.one RETURNING t.below) \
         DELETE FROM {CHANGES} WHERE xid < (SELECT below FROM round)"
    )
}

/// How often a listener offers to trim; the trim itself runs at most once per [`KEEP`].
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// The PostgreSQL side: one thread, one session connection.
struct Worker {
    url: DatabaseUrl,
    options: FeedOptions,
    queue: Queue,
    /// The snapshot of the last poll, as text.
    snapshot: String,
    /// The wait before the next poll.
    wait: Duration,
    last_trim: Instant,
}

impl Worker {
    fn new(url: DatabaseUrl, options: FeedOptions, queue: Queue, snapshot: String) -> Self {
        Worker {
            wait: options.poll_interval,
            url,
            options,
            queue,
            snapshot,
            last_trim: Instant::now(),
        }
    }

    fn stopped(&self) -> bool {
        self.queue.shared.stop.load(Ordering::SeqCst)
    }

    fn run(mut self, first: PgConnection) {
        let mut conn = Some(first);
        let mut backoff = self.options.min_backoff;
        while !self.stopped() {
            let Some(c) = conn.as_mut() else {
                match connect(&self.url) {
                    Ok((c, pid, snapshot)) => {
                        conn = Some(c);
                        self.snapshot = snapshot;
                        self.wait = self.options.poll_interval;
                        backoff = self.options.min_backoff;
                        {
                            let mut status = self.queue.shared.status();
                            status.connected = true;
                            status.backend_pid = Some(pid);
                            status.reconnects += 1;
                        }
                        // What committed while away is not looked for: reset first.
                        if !self.queue.send(FeedEvent::Reset) {
                            return;
                        }
                    }
                    Err(error) => {
                        self.queue.shared.status().last_error = Some(error.to_string());
                        self.sleep(backoff);
                        backoff = backoff.saturating_mul(2).min(self.options.max_backoff);
                    }
                }
                continue;
            };
            match self.poll(c) {
                Ok(true) => self.sleep(self.wait),
                Ok(false) => return,
                Err(error) => {
                    conn = None;
                    let mut status = self.queue.shared.status();
                    status.connected = false;
                    status.backend_pid = None;
                    status.last_error = Some(error.to_string());
                }
            }
        }
    }

    /// Sleeps up to `wait`, waking early when stopped.
    fn sleep(&self, wait: Duration) {
        let started = Instant::now();
        while !self.stopped() {
            let left = wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Reads what committed since the last poll and hands it over, one event per
    /// transaction; trims now and then. `Ok(false)` when the consumer is gone.
    fn poll(&mut self, conn: &mut PgConnection) -> Result<bool> {
        // EXECUTE takes no bind parameters: the snapshot goes in as a literal, and
        // it is the server's own text of digits, colons and commas.
        if !self
            .snapshot
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b',')
        {
            return Err(lost(
                &self.url,
                &format!("unexpected snapshot {:?}", self.snapshot),
                true,
            ));
        }
        let polled: Vec<Polled> = diesel::sql_query(format!("EXECUTE {POLL}('{}')", self.snapshot))
            .load(conn)
            .map_err(|e| lost(&self.url, &e, true))?;
        let Some(head) = polled.first() else {
            return Err(lost(&self.url, &"the poll returned no row", true));
        };
        self.snapshot.clone_from(&head.snapshot);
        self.queue.shared.status().polls += 1;
        let found = head.gap || head.xid.is_some();
        self.wait = if found {
            self.options.poll_interval
        } else {
            self.wait
                .saturating_mul(2)
                .min(self.options.idle_poll_interval)
        };
        if head.gap && !self.queue.send(FeedEvent::Reset) {
            return Ok(false);
        }
        let mut rest = polled.as_slice();
        while let Some(first) = rest.first().filter(|row| row.xid.is_some()) {
            let end = rest
                .iter()
                .position(|row| row.xid != first.xid)
                .unwrap_or(rest.len());
            let (transaction, later) = rest.split_at(end);
            rest = later;
            let event = match transaction_tags(transaction) {
                Ok(tags) if tags.is_empty() => continue,
                Ok(tags) => FeedEvent::Tags(tags),
                Err(unreadable) => {
                    if let Some(reason) = unreadable {
                        self.queue.shared.status().last_error =
                            Some(format!("a row of {CHANGES} {reason}"));
                    }
                    FeedEvent::Reset
                }
            };
            if !self.queue.send(event) {
                return Ok(false);
            }
        }
        if self.last_trim.elapsed() >= TRIM_EVERY {
            self.last_trim = Instant::now();
            // A trim that fails (no right to delete, say) leaves the rows in place:
            // nothing is lost, and the status tells why the table grows.
            if let Err(error) = diesel::sql_query(trim_sql()).execute(conn) {
                self.queue.shared.status().last_error = Some(format!(
                    "cannot trim {CHANGES}: {}",
                    self.url.scrub(&error.to_string())
                ));
            }
        }
        Ok(!self.stopped())
    }
}

/// The tags of one transaction's changes, each once, in order (none when its
/// statements changed no row); `Err` when they stand for "everything": a `TRUNCATE`
/// (`Err(None)`), or a row the feed's triggers cannot have written (`Err(Some(why))`).
fn transaction_tags(changes: &[Polled]) -> std::result::Result<Vec<CacheTag>, Option<String>> {
    let mut tags = BTreeSet::new();
    for change in changes {
        let source = change.source.as_deref().unwrap_or_default();
        let Some((_, entity, scope)) = WATCHED.iter().find(|(table, _, _)| *table == source) else {
            return Err(Some(format!("names an unknown table {source:?}")));
        };
        let Some(ids) = &change.ids else {
            return Err(None);
        };
        if ids.is_empty() {
            continue;
        }
        tags.insert(CacheTag::global(*entity).as_str().to_string());
        for id in ids {
            let Some(id) = id else {
                return Err(Some(format!("of {source} holds a NULL id")));
            };
            tags.insert(CacheTag::id(id, *entity).as_str().to_string());
        }
        if let Some((_, owner)) = scope {
            for parent in change.scopes.iter().flatten() {
                let Some(parent) = parent else {
                    return Err(Some(format!("of {source} holds a NULL parent id")));
                };
                let tag = match owner {
                    Owner::User => CacheTag::user(parent, *entity),
                    Owner::JobInfo => CacheTag::job_info(parent, *entity),
                };
                tags.insert(tag.as_str().to_string());
            }
        }
    }
    Ok(tags.into_iter().map(CacheTag::from_raw).collect())
}
