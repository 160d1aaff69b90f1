//! The PostgreSQL side of a listener: one thread and one session connection that
//! polls the recorded changes by snapshot, reconnects after a loss and trims now and
//! then.

use std::collections::BTreeSet;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::{Connection as _, RunQueryDsl as _};

use super::admin::FeedInstallation;
use super::events::{FeedEvent, FeedOptions, FeedStatus, Queue, Shared};
use super::sql::{poll_sql, trim_sql, Owner, CHANGES, TRIMMED, WATCHED};
use crate::config::DatabaseUrl;
use crate::error::{Error, Result};
use crate::handle::Db;
use crate::tags::CacheTag;

/// Checks that `db` can carry a listener, opens its session connection and starts the
/// thread that polls on it.
pub(super) fn start(
    db: &Db,
    options: FeedOptions,
    tx: SyncSender<FeedEvent>,
) -> Result<(Arc<Shared>, JoinHandle<()>)> {
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
                "the cache feed is not installed in this database ({other}): run \
                 `jobprep cache-feed install`"
            )))
        }
    }
    let url = db.config().url.clone();
    let (
        conn,
        Start {
            pid,
            snapshot,
            server_started,
        },
    ) = connect(&url)?;
    let shared = Shared::new(
        FeedStatus {
            connected: true,
            backend_pid: Some(pid),
            ..FeedStatus::default()
        },
        None,
    );
    let queue = Queue::new(tx, &shared);
    let worker = std::thread::Builder::new()
        .name("jobprep-cache-feed".into())
        .spawn(move || Worker::new(url, options, queue, snapshot, server_started).run(conn))
        .map_err(|e| Error::unavailable(format!("cannot start the cache feed thread: {e}")))?;
    Ok((shared, worker))
}

/// libpq settings that bound every wait of the session connection, unless the URL
/// sets them already: a dead peer is noticed by keepalives and `tcp_user_timeout`.
fn session_target(url: &DatabaseUrl) -> String {
    url.with_defaults(&[
        ("connect_timeout", "5"),
        ("keepalives", "1"),
        ("keepalives_idle", "10"),
        ("keepalives_interval", "5"),
        ("keepalives_count", "3"),
        ("tcp_user_timeout", "20000"),
        ("application_name", "jobprep-cache-feed"),
    ])
}

#[derive(diesel::QueryableByName)]
struct Start {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    snapshot: String,
    /// When the server started: another value after a reconnect means a restart or
    /// another server, where the changes recorded meanwhile may be gone.
    #[diesel(sql_type = diesel::sql_types::Text)]
    server_started: String,
}

/// Opens the session connection and prepares the poll on it; returns it with its
/// server pid, the snapshot that later polls start from (what committed before it is
/// not delivered) and when the server started.
fn connect(url: &DatabaseUrl) -> Result<(PgConnection, Start)> {
    let mut conn =
        PgConnection::establish(&session_target(url)).map_err(|e| lost(url, &e, false))?;
    // Prepared once: planning the poll anew cost the server more than running it.
    conn.batch_execute(&format!("PREPARE {POLL}(text) AS {}", poll_sql()))
        .map_err(|e| lost(url, &e, false))?;
    let start: Start = diesel::sql_query(
        "SELECT pg_backend_pid() AS pid, pg_current_snapshot()::text AS snapshot, \
                pg_postmaster_start_time()::text AS server_started",
    )
    .get_result(&mut conn)
    .map_err(|e| lost(url, &e, false))?;
    Ok((conn, start))
}

/// The name of the prepared poll on the listener's connection.
const POLL: &str = "jobprep_cache_feed_poll";

fn lost(url: &DatabaseUrl, error: &dyn std::fmt::Display, connection_lost: bool) -> Error {
    Error::Unavailable {
        reason: format!("cache feed connection: {}", url.scrub(&error.to_string())),
        connection_lost,
    }
}

/// A row of the poll: the snapshot and gap on every row, and one recorded change
/// (none on the single row of a poll that found nothing).
#[derive(diesel::QueryableByName)]
struct Polled {
    #[diesel(sql_type = diesel::sql_types::Text)]
    snapshot: String,
    /// NULL when the horizon row of [`TRIMMED`] is gone.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bool>)]
    gap: Option<bool>,
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

/// How often a listener offers to trim; the trim itself runs at most once per 30 s.
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
    /// The last poll found the horizon row of [`TRIMMED`] gone.
    horizon_missing: bool,
    /// The last event sent was a reset: another before any batch would say nothing
    /// new (a poll that waited out an install can find two reasons for one gap).
    just_reset: bool,
    /// When the server of the connection started (see [`Start`]).
    server_started: String,
    /// When a poll last found a change (or the listener woke up).
    last_found: Instant,
    /// Woken from a sleep: the next connection resumes from `snapshot`, and an empty
    /// poll sends it back to sleep.
    waking: bool,
}

impl Worker {
    fn new(
        url: DatabaseUrl,
        options: FeedOptions,
        queue: Queue,
        snapshot: String,
        server_started: String,
    ) -> Self {
        Worker {
            wait: options.poll_interval,
            url,
            options,
            queue,
            snapshot,
            last_trim: Instant::now(),
            horizon_missing: false,
            just_reset: false,
            server_started,
            last_found: Instant::now(),
            waking: false,
        }
    }

    /// Hands `event` to the consumer, skipping a reset right after a reset; false
    /// once the consumer is gone.
    fn emit(&mut self, event: FeedEvent) -> bool {
        let reset = event == FeedEvent::Reset;
        if reset && self.just_reset {
            return true;
        }
        self.just_reset = reset;
        self.queue.send(event)
    }

    fn stopped(&self) -> bool {
        self.queue.shared.stopped()
    }

    fn run(mut self, first: PgConnection) {
        let mut conn = Some(first);
        let mut backoff = self.options.min_backoff;
        while !self.stopped() {
            let Some(c) = conn.as_mut() else {
                match connect(&self.url) {
                    Ok((c, start)) => {
                        conn = Some(c);
                        self.wait = self.options.poll_interval;
                        backoff = self.options.min_backoff;
                        {
                            let mut status = self.queue.shared.status();
                            status.connected = true;
                            status.backend_pid = Some(start.pid);
                            status.asleep = false;
                            status.reconnects += u64::from(!self.waking);
                        }
                        // After a sleep, what committed meanwhile is read from where
                        // the listener stopped, unless the server restarted: a crash
                        // empties the unlogged table of changes, and a promoted
                        // standby never had it.
                        let resume = self.waking && start.server_started == self.server_started;
                        self.server_started = start.server_started;
                        if resume {
                            continue;
                        }
                        self.waking = false;
                        self.snapshot = start.snapshot;
                        // What committed while away is not looked for: reset first.
                        if !self.emit(FeedEvent::Reset) {
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
                Ok(true) if self.drowsy() => {
                    // Closing the connection is what lets the server sleep.
                    conn = None;
                    self.fall_asleep();
                }
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

    /// Whether the listener should close its connection and sleep: nothing found for
    /// `sleep_after`, or nothing found on waking up.
    fn drowsy(&self) -> bool {
        self.options
            .sleep_after
            .is_some_and(|after| self.waking || self.last_found.elapsed() >= after)
    }

    /// Sleeps `wake_every` with the connection closed (waking early when stopped);
    /// the next connection resumes where the last poll stopped.
    fn fall_asleep(&mut self) {
        {
            let mut status = self.queue.shared.status();
            status.connected = false;
            status.backend_pid = None;
            status.asleep = true;
            status.sleeps += 1;
        }
        self.sleep(self.options.wake_every);
        self.waking = true;
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
        let gap = match head.gap {
            Some(gap) => {
                self.horizon_missing = false;
                gap
            }
            // Without its row nobody can know what was trimmed before it went, so
            // once is a reset; after that nothing trims (the trim needs the row),
            // and no further change can be lost until an install puts it back.
            None => {
                let first = !self.horizon_missing;
                self.horizon_missing = true;
                self.queue.shared.status().last_error = Some(format!(
                    "the row of {TRIMMED} is gone, so nothing is trimmed: run \
                     `jobprep cache-feed install`"
                ));
                first
            }
        };
        let found = gap || head.xid.is_some();
        if found {
            self.last_found = Instant::now();
            self.waking = false;
        }
        self.wait = if found {
            self.options.poll_interval
        } else {
            self.wait
                .saturating_mul(2)
                .min(self.options.idle_poll_interval)
        };
        if gap && !self.emit(FeedEvent::Reset) {
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
            if !self.emit(event) {
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
