//! The change feed of cache tags: every committed write, whoever made it, as the tags
//! it invalidates, delivered to every process that listens.
//!
//! - **PostgreSQL**: statement-level `AFTER` triggers with transition tables on `users`,
//!   `job_info`, `interviews` and `questions` (installed by [`Db::install_cache_feed`],
//!   removed by [`Db::remove_cache_feed`]) compute the tags of [`crate::cache_rules`]
//!   for the rows a statement touched and `pg_notify` them on [`CHANNEL`], in chunks
//!   under the 8000-byte payload limit. `NOTIFY` is transactional: nothing is sent
//!   before COMMIT, nothing after a rollback. Rows removed by a cascade fire the child
//!   tables' triggers, so their tags come too. Writes by the original app, by `psql`
//!   and by jobprep are published alike.
//! - **SQLite**: no server to notify through. The listener receives the commits made
//!   through any [`Db`] of *this process* on the same file (hooked on the tags the
//!   `Db` reports after COMMIT); other processes writing the file are not seen.
//!
//! A [`Listener`] holds one dedicated session connection (never one of the pool's, and
//! never through a transaction-mode pooler, which would drop `LISTEN` between
//! transactions), reconnects by itself, and yields [`FeedEvent::Reset`] after any gap
//! (reconnect, a full queue, a `TRUNCATE`, an unreadable payload), because
//! notifications sent while it was away are lost. Delivery is therefore *at most once
//! per connection*, with a reset after every gap: a consumer that flushes everything on
//! a reset never keeps a stale entry.
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

/// The channel the triggers notify on. Its payloads are JSON,
/// `{"tx": "<transaction id>", "tags": ["global:jobInfos", ...]}` (a tag may repeat,
/// within a payload and across the payloads of one transaction), or
/// `{"tx": "...", "reset": true}` after a `TRUNCATE`, so any PostgreSQL client can
/// listen too.
pub const CHANNEL: &str = "jobprep_cache_tags";

/// The schema that holds the feed's functions; dropping it removes the whole feed.
pub const SCHEMA: &str = "jobprep_cache_feed";

/// A scope tag: its prefix and the column it is made from (`user` / `userId`).
type Scope = Option<(&'static str, &'static str)>;

/// The watched tables: name, tag collection, and the scope tag.
const WATCHED: [(&str, &str, Scope); 4] = [
    ("users", "users", None),
    ("job_info", "jobInfos", Some(("user", "userId"))),
    ("interviews", "interviews", Some(("jobInfo", "jobInfoId"))),
    ("questions", "questions", Some(("jobInfo", "jobInfoId"))),
];

/// One trigger per event: transition tables are per event, and `TRUNCATE` has none.
/// Each event's function reads the rows the statement changed from `rows`.
const EVENTS: [(&str, &str, &str); 4] = [
    (
        "insert",
        "AFTER INSERT ON {t} REFERENCING NEW TABLE AS new_rows",
        "new_rows",
    ),
    (
        // Only the rows the update changed, in both versions (a new `userId` moves a
        // job info between two users' lists). An update that changed nothing (a lock
        // taken by a no-op UPDATE, say) has no rows here and sends nothing.
        "update",
        "AFTER UPDATE ON {t} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "((SELECT * FROM new_rows EXCEPT SELECT * FROM old_rows) \
         UNION ALL (SELECT * FROM old_rows EXCEPT SELECT * FROM new_rows)) AS changed",
    ),
    (
        "delete",
        "AFTER DELETE ON {t} REFERENCING OLD TABLE AS old_rows",
        "old_rows",
    ),
    ("truncate", "AFTER TRUNCATE ON {t}", ""),
];

fn trigger_name(event: &str) -> String {
    format!("{SCHEMA}_{event}")
}

/// The installation script: idempotent, in one transaction. It starts from an empty
/// schema, so an install over an older version leaves none of its functions behind.
///
/// The trigger functions run inside every write, so they are kept to one query and
/// a loop (see BENCHMARKS.md): no sorting, no window, no call to another function.
/// Payloads may therefore repeat a tag; a [`Listener`] removes repeats.
fn install_sql() -> String {
    let mut sql = format!(
        r#"
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
COMMENT ON SCHEMA {SCHEMA} IS 'jobprep cache feed v2: triggers that pg_notify cache tags on {CHANNEL}; remove with DROP SCHEMA {SCHEMA} CASCADE';

CREATE FUNCTION {SCHEMA}.truncated() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('{CHANNEL}', '{{"tx":"' || txid_current() || '","reset":true}}');
  RETURN NULL;
END
$fn$;
"#
    );
    for (table, collection, scope) in WATCHED {
        let scope_tag = match scope {
            Some((prefix, column)) => {
                format!("to_json('{prefix}:' || \"{column}\" || ':{collection}')::text")
            }
            None => "NULL::text".to_string(),
        };
        for (event, clause, rows) in EVENTS {
            let name = trigger_name(event);
            let function = if event == "truncate" {
                "truncated".to_string()
            } else {
                let function = format!("{table}_{event}");
                sql.push_str(&publish_function(&function, collection, &scope_tag, rows));
                function
            };
            let clause = clause.replace("{t}", &format!("\"{table}\""));
            sql.push_str(&format!(
                "CREATE TRIGGER {name} {clause} FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.{function}();\n"
            ));
        }
    }
    sql
}

/// A trigger function that notifies the tags of `rows`: each row's `id:` tag and its
/// scope tag (written again only when it differs from the row before, so a bulk
/// insert under one job info names it once per chunk), after the collection's
/// `global:` tag, in chunks under the 8000-byte payload limit.
fn publish_function(function: &str, collection: &str, scope_tag: &str, rows: &str) -> String {
    // A chunk is flushed before it would pass 7800 bytes; the header and the closing
    // `]}` add under 80 more. A row whose tags alone pass 7000 bytes (ids that long
    // are not real ones) cannot be sent: it turns into a reset, never into a failed
    // write.
    format!(
        r#"
CREATE FUNCTION {SCHEMA}.{function}() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  head constant text := '{{"tx":"' || txid_current() || '","tags":["global:{collection}"';
  chunk text := '';
  id_tag text;
  scope_tag text;
  last_scope text;
  too_long boolean := false;
BEGIN
  FOR id_tag, scope_tag IN
    SELECT to_json('id:' || "id" || ':{collection}')::text, {scope_tag} FROM {rows}
  LOOP
    IF octet_length(id_tag) + coalesce(octet_length(scope_tag), 0) > 7000 THEN
      too_long := true;
      CONTINUE;
    END IF;
    IF octet_length(chunk) + octet_length(id_tag) + coalesce(octet_length(scope_tag), 0) > 7798 THEN
      PERFORM pg_notify('{CHANNEL}', head || chunk || ']}}');
      chunk := '';
      last_scope := NULL;
    END IF;
    chunk := chunk || ',' || id_tag;
    IF scope_tag IS DISTINCT FROM last_scope THEN
      chunk := chunk || ',' || scope_tag;
      last_scope := scope_tag;
    END IF;
  END LOOP;
  IF chunk <> '' THEN
    PERFORM pg_notify('{CHANNEL}', head || chunk || ']}}');
  END IF;
  IF too_long THEN
    PERFORM pg_notify('{CHANNEL}', '{{"tx":"' || txid_current() || '","reset":true}}');
  END IF;
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
    /// Every trigger is present and enabled.
    Installed,
    /// Some triggers are missing or disabled (named `table.trigger`): run the install again.
    Partial { missing: Vec<String> },
    /// Nothing of the feed is in this database.
    Absent,
    /// SQLite: nothing to install; listeners see this process's own commits.
    InProcess,
}

fn expected_triggers() -> Vec<String> {
    WATCHED
        .iter()
        .flat_map(|(table, _, _)| {
            EVENTS
                .iter()
                .map(move |(event, _, _)| format!("{table}.{}", trigger_name(event)))
        })
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
    /// Cost: every write statement on the four tables then runs a trigger function,
    /// and PostgreSQL commits the transactions that notified one at a time (a lock on
    /// its notification queue is held through the commit's WAL flush), so concurrent
    /// writers lose group commit. README ("Cost") has the measurements.
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
                 WHERE n.nspname = '{SCHEMA}' AND NOT t.tgisinternal AND t.tgenabled <> 'D'"
            ))
            .load(c)
        })?;
        let present: BTreeSet<String> = present.into_iter().map(|row| row.name).collect();
        if present.is_empty() {
            return Ok(FeedInstallation::Absent);
        }
        let missing: Vec<String> = expected_triggers()
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
    /// The tags of one committed transaction, each once. A very large transaction
    /// may arrive in more than one batch; a tag is then in the first that holds it.
    Tags(Vec<CacheTag>),
    /// Changes may have been missed (reconnect, full queue, `TRUNCATE`, unreadable
    /// payload): flush everything cached. See [`reset_tags`] for the tags that stand for
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
    /// How often the connection is checked for notifications (default 10 ms): libpq
    /// is polled, so this bounds the added delivery latency.
    pub poll_interval: Duration,
    /// A query this often proves the connection alive (default 5 s).
    pub heartbeat: Duration,
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
            poll_interval: Duration::from_millis(10),
            heartbeat: Duration::from_secs(5),
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
    /// Resets yielded so far.
    pub resets: u64,
    /// The latest failure: a lost connection, a failed reconnect, an unreadable payload.
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
struct Outbox {
    tx: SyncSender<FeedEvent>,
    shared: Arc<Shared>,
}

impl Outbox {
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
    /// drained, within one poll interval on PostgreSQL.
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
                let outbox = Outbox {
                    tx,
                    shared: shared.clone(),
                };
                local_feed::subscribe(
                    &db.config().url,
                    id,
                    Box::new(move |tags| outbox.send(FeedEvent::Tags(tags.to_vec()))),
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
                        "the cache feed listener needs a session connection, and this URL is a \
                         transaction-mode pooler (pooler-safe mode is on), which drops LISTEN \
                         between transactions: start the listener with the database's direct URL"
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
                let (conn, pid) = connect(&url)?;
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
                let outbox = Outbox {
                    tx,
                    shared: shared.clone(),
                };
                let worker = std::thread::Builder::new()
                    .name("jobprep-cache-feed".into())
                    .spawn(move || Worker::new(url, options, outbox).run(conn))
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

    /// Stops listening and waits for the connection to close (within one poll
    /// interval, or the connect timeout while reconnecting).
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
        // The worker notices within a poll interval and closes its connection.
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
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// Opens the session connection and subscribes; returns it with its server pid.
fn connect(url: &DatabaseUrl) -> Result<(PgConnection, i32)> {
    let unavailable = |e: &dyn std::fmt::Display| {
        Error::unavailable(format!(
            "cache feed connection: {}",
            url.scrub(&e.to_string())
        ))
    };
    let mut conn = PgConnection::establish(&session_target(url)).map_err(|e| unavailable(&e))?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(|e| unavailable(&e))?;
    let pid: Pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result(&mut conn)
        .map_err(|e| unavailable(&e))?;
    Ok((conn, pid.pid))
}

#[derive(serde::Deserialize)]
struct Payload {
    tx: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    reset: bool,
}

/// The wait after notifications arrived before the batch is considered complete.
const SETTLE: Duration = Duration::from_millis(2);

/// The PostgreSQL side: one thread, one session connection.
struct Worker {
    url: DatabaseUrl,
    options: FeedOptions,
    outbox: Outbox,
    /// The transaction being assembled.
    pending: Option<Assembling>,
}

/// The tags of one transaction as its notifications arrive. Payloads may repeat a
/// tag, and a burst may be handed over in more than one batch: `seen` keeps each tag
/// to the first batch that holds it.
struct Assembling {
    /// The sender's pid and transaction id.
    key: (i32, String),
    seen: BTreeSet<String>,
    unsent: BTreeSet<String>,
}

impl Worker {
    fn new(url: DatabaseUrl, options: FeedOptions, outbox: Outbox) -> Self {
        Worker {
            url,
            options,
            outbox,
            pending: None,
        }
    }

    fn stopped(&self) -> bool {
        self.outbox.shared.stop.load(Ordering::SeqCst)
    }

    fn run(mut self, first: PgConnection) {
        let mut conn = Some(first);
        let mut backoff = self.options.min_backoff;
        while !self.stopped() {
            let Some(c) = conn.as_mut() else {
                match connect(&self.url) {
                    Ok((c, pid)) => {
                        conn = Some(c);
                        backoff = self.options.min_backoff;
                        {
                            let mut status = self.outbox.shared.status();
                            status.connected = true;
                            status.backend_pid = Some(pid);
                            status.reconnects += 1;
                        }
                        // Whatever was committed while away is lost: reset first.
                        if !self.outbox.send(FeedEvent::Reset) {
                            return;
                        }
                    }
                    Err(error) => {
                        self.outbox.shared.status().last_error = Some(error.to_string());
                        self.sleep(backoff);
                        backoff = (backoff * 2).min(self.options.max_backoff);
                    }
                }
                continue;
            };
            match self.poll(c) {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    if !self.flush() {
                        return;
                    }
                    conn = None;
                    let mut status = self.outbox.shared.status();
                    status.connected = false;
                    status.backend_pid = None;
                    status.last_error = Some(error.to_string());
                }
            }
        }
    }

    /// Sleeps up to `wait`, waking early when stopped.
    fn sleep(&self, wait: Duration) {
        let until = Instant::now() + wait;
        while !self.stopped() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Drains the notifications that arrived, proves the connection alive now and
    /// then, and sleeps one poll interval. `Ok(false)` when the consumer is gone.
    fn poll(&mut self, conn: &mut PgConnection) -> Result<bool> {
        let mut last_heartbeat = Instant::now();
        loop {
            let mut arrived = false;
            for notification in conn.notifications_iter() {
                let notification = notification.map_err(|e| Error::Unavailable {
                    reason: format!("cache feed connection lost: {e}"),
                    connection_lost: true,
                })?;
                arrived = true;
                if !self.take(notification.process_id, &notification.payload) {
                    return Ok(false);
                }
            }
            // A quiet poll ends the transaction being assembled.
            if !arrived && !self.flush() {
                return Ok(false);
            }
            if self.stopped() {
                return Ok(false);
            }
            if last_heartbeat.elapsed() >= self.options.heartbeat {
                conn.batch_execute("SELECT 1")
                    .map_err(|e| Error::Unavailable {
                        reason: format!("cache feed connection lost: {e}"),
                        connection_lost: true,
                    })?;
                last_heartbeat = Instant::now();
            }
            // A transaction's notifications come in one burst: after something
            // arrived, a short look settles whether the burst is over.
            std::thread::sleep(if arrived {
                SETTLE.min(self.options.poll_interval)
            } else {
                self.options.poll_interval
            });
        }
    }

    /// Adds one notification to the pending transaction; false once the consumer is gone.
    fn take(&mut self, pid: i32, payload: &str) -> bool {
        let payload: Payload = match serde_json::from_str(payload) {
            Ok(payload) => payload,
            Err(error) => {
                // Someone else notified on the channel: the tags are unknown, so reset.
                self.outbox.shared.status().last_error = Some(format!(
                    "unreadable notification on {CHANNEL} from pid {pid}: {error}"
                ));
                return self.flush() && self.outbox.send(FeedEvent::Reset);
            }
        };
        if payload.reset {
            return self.flush() && self.outbox.send(FeedEvent::Reset);
        }
        let key = (pid, payload.tx);
        if self.pending.as_ref().is_none_or(|p| p.key != key) {
            if !self.flush() {
                return false;
            }
            self.pending = Some(Assembling {
                key,
                seen: BTreeSet::new(),
                unsent: BTreeSet::new(),
            });
        }
        if let Some(assembling) = &mut self.pending {
            for tag in payload.tags {
                if assembling.seen.insert(tag.clone()) {
                    assembling.unsent.insert(tag);
                }
            }
        }
        true
    }

    /// Hands what the pending transaction has not yet sent to the consumer, keeping
    /// the transaction in case more of it arrives; false once the consumer is gone.
    fn flush(&mut self) -> bool {
        match &mut self.pending {
            Some(assembling) if !assembling.unsent.is_empty() => {
                let tags = std::mem::take(&mut assembling.unsent);
                self.outbox.send(FeedEvent::Tags(
                    tags.into_iter().map(CacheTag::from_raw).collect(),
                ))
            }
            _ => true,
        }
    }
}
