//! Connections of either backend, and how the pool opens them.
//!
//! Queries are written once and compiled for both backends by [`on_backend!`], which
//! expands the same diesel code for the PostgreSQL and the SQLite variant of a
//! [`Connection`] (the approach of Vaultwarden's `db_run!`). Repository functions take a
//! `&mut Connection`; callers reach them through an [`Executor`](crate::Executor).

use std::sync::Arc;

use diesel::connection::{AnsiTransactionManager, CacheSize, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection as _;

use crate::config::{Backend, DatabaseUrl, DbConfig, PoolOptions};
use crate::error::{Error, Result};

/// A database connection of either backend. Opaque outside this crate: only the
/// repository functions run queries on it. Services reach it through a
/// [`Db`](crate::Db); [`Connection::establish`] opens one outside any pool.
pub struct Connection {
    pub(crate) inner: BackendConnection,
    /// Set when an error showed the connection is gone, so the pool drops it.
    lost: bool,
    /// Set when the current write's transaction ended without a commit: what it wrote
    /// is gone even if the connection broke, so its outcome is known.
    nothing_committed: bool,
    /// The statement timeout in milliseconds, when it is set per transaction (`SET
    /// LOCAL`, through a transaction-mode pooler) rather than as a start-up option.
    local_timeout_ms: Option<u128>,
    /// How this connection uses diesel's prepared statement cache (PostgreSQL).
    statements: Statements,
}

/// A cached statement costs two round trips the first time (Prepare, then Execute) and
/// one after; an uncached one is always one (parse, bind and execute sent together), but
/// planned each time. A new connection serves its first checkout uncached, so that a
/// cold start's first result needs no separate Prepare; from its second checkout on,
/// statements are cached, for as long as the connection lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Statements {
    /// Uncached until the first checkout is over.
    FirstCheckoutUncached { checked_out: bool },
    /// As set when the connection was opened: cached, or never (pooler-safe mode).
    Settled,
}

pub(crate) enum BackendConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.backend())
    }
}

/// Runs `$body` with `$c` bound to the backend's diesel connection. The body is
/// compiled once per backend, so one query text serves both.
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match &mut $conn.inner {
            $crate::connection::BackendConnection::Postgres($c) => $body,
            $crate::connection::BackendConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

impl Connection {
    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self.inner {
            BackendConnection::Postgres(_) => Backend::Postgres,
            BackendConnection::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs `f` in a transaction: a real one at the outermost level (`BEGIN IMMEDIATE`
    /// on SQLite, so that writers queue on the busy timeout instead of failing on lock
    /// upgrade), a savepoint when already inside one. Commits if `f` returns `Ok`.
    pub(crate) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        self.transaction_with_error(f)
    }

    /// [`Connection::transaction`] for a closure with the caller's own error type: any
    /// `Err` rolls back. jobprep's own failures (begin, commit) convert into it.
    pub(crate) fn transaction_with_error<T, E: From<Error>>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let outermost = self.transaction_depth()?.is_none();
        // A connection found gone at BEGIN must not go back to the pool.
        let begun = self.begin();
        self.note_outcome(&begun);
        if begun.is_err() && outermost {
            self.nothing_committed = true;
        }
        begun?;
        match f(self) {
            Ok(value) => {
                let committed: Result<()> =
                    on_backend!(self, c => AnsiTransactionManager::commit_transaction(c))
                        .map_err(Error::from);
                // The COMMIT was sent: if its answer never came, it may have committed.
                let committed = committed.map_err(|e| if outermost { e.in_doubt() } else { e });
                self.note_outcome(&committed);
                committed?;
                Ok(value)
            }
            Err(error) => {
                if outermost {
                    // The server rolls back a transaction whose connection is gone.
                    self.nothing_committed = true;
                }
                match on_backend!(self, c => AnsiTransactionManager::rollback_transaction(c)) {
                    // The caller's error explains what happened; a rollback that found
                    // the transaction already gone adds nothing.
                    Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
                    Err(rollback_error) => {
                        let rollback_error = Error::from(rollback_error);
                        self.note_error(&rollback_error);
                        Err(rollback_error.into())
                    }
                }
            }
        }
    }

    /// Runs a statement whose failure the caller may handle (a constraint violation)
    /// so that the failure cannot poison an enclosing transaction: PostgreSQL aborts a
    /// transaction on any error, so inside one the statement gets a savepoint. Outside a
    /// transaction nothing is added; a failed autocommit statement leaves nothing behind.
    pub(crate) fn guarded<T>(&mut self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        if self.transaction_depth()?.is_some() {
            self.transaction(f)
        } else {
            f(self)
        }
    }

    /// Runs one statement that refuses by writing no row rather than by failing, with
    /// no savepoint. It can still fail when a concurrent transaction changes a row it
    /// needs between its snapshot and its constraint check (a parent deleted): inside
    /// a caller's transaction PostgreSQL has then aborted that transaction, so the
    /// error is a retryable [`Error::Unavailable`] (retried, the transaction finds the
    /// parent gone and says so); on SQLite, or outside a transaction, it is as it is.
    pub(crate) fn in_one_statement<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        match f(self) {
            Err(error @ Error::Conflict { .. })
                if self.backend() == Backend::Postgres && self.transaction_depth()?.is_some() =>
            {
                Err(Error::unavailable(format!(
                    "{error}: a concurrent transaction changed a row this statement needed, \
                     which aborted the transaction; retry it"
                )))
            }
            other => other,
        }
    }

    /// [`Connection::in_one_statement`] for a statement only PostgreSQL has, a call of
    /// jobprep's functions. `None` means: take the statement-by-statement way. That is
    /// SQLite's, and PostgreSQL's where the functions are missing outside a transaction
    /// (a database not yet migrated to this version: the failed autocommit statement
    /// left nothing behind). Inside a transaction the failure has aborted it, so it is
    /// returned, a configuration error naming `jobprep migrate`.
    pub(crate) fn in_one_postgres_statement<T>(
        &mut self,
        f: impl FnOnce(&mut PgConnection) -> diesel::QueryResult<T>,
    ) -> Option<Result<T>> {
        let c = self.as_postgres()?;
        match f(c) {
            Err(error) if crate::error::is_missing_functions(&error) => {
                match self.transaction_depth() {
                    Ok(None) => None,
                    Ok(Some(_)) => Some(Err(error.into())),
                    Err(depth_error) => Some(Err(depth_error)),
                }
            }
            outcome => Some(self.in_one_statement(|_| Ok(outcome?))),
        }
    }

    fn transaction_depth(&mut self) -> Result<Option<std::num::NonZeroU32>> {
        Ok(
            on_backend!(self, c => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth())?,
        )
    }

    fn begin(&mut self) -> Result<()> {
        let depth = self.transaction_depth()?;
        let local_timeout = self.local_timeout_ms;
        match &mut self.inner {
            // One round trip: a simple query may hold several statements.
            BackendConnection::Postgres(c) if depth.is_none() && local_timeout.is_some() => {
                let ms = local_timeout.unwrap_or_default();
                AnsiTransactionManager::begin_transaction_sql(
                    c,
                    &format!("BEGIN; SET LOCAL statement_timeout = {ms}"),
                )?
            }
            BackendConnection::Sqlite(c) if depth.is_none() => {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
            }
            BackendConnection::Sqlite(c) => AnsiTransactionManager::begin_transaction(c)?,
            BackendConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
        }
        Ok(())
    }

    /// The PostgreSQL connection, for the few statements only PostgreSQL has (row
    /// locks, WAL positions); `None` on SQLite. Backend-specific code asks here instead
    /// of matching on the connection's variants.
    pub(crate) fn as_postgres(&mut self) -> Option<&mut PgConnection> {
        match &mut self.inner {
            BackendConnection::Postgres(c) => Some(c),
            BackendConnection::Sqlite(_) => None,
        }
    }

    /// The statements this connection has prepared and keeps (PostgreSQL's
    /// `pg_prepared_statements`; SQLite keeps its own, which it does not list): for
    /// tests and diagnostics of statement caching.
    #[doc(hidden)]
    pub fn prepared_statements(&mut self) -> Result<Vec<String>> {
        #[derive(diesel::QueryableByName)]
        struct Statement {
            #[diesel(sql_type = diesel::sql_types::Text)]
            statement: String,
        }
        let Some(c) = self.as_postgres() else {
            return Ok(Vec::new());
        };
        let rows: Vec<Statement> = diesel::RunQueryDsl::load(
            diesel::sql_query("SELECT statement FROM pg_prepared_statements ORDER BY statement"),
            c,
        )?;
        Ok(rows.into_iter().map(|row| row.statement).collect())
    }

    pub(crate) fn batch_execute(&mut self, sql: &str) -> Result<()> {
        on_backend!(self, c => c.batch_execute(sql))?;
        Ok(())
    }

    /// Called as the pool hands the connection out: from its second checkout on, a
    /// new connection caches its prepared statements (see [`Statements`]).
    pub(crate) fn checked_out(&mut self) {
        match self.statements {
            Statements::FirstCheckoutUncached { checked_out: false } => {
                self.statements = Statements::FirstCheckoutUncached { checked_out: true };
            }
            Statements::FirstCheckoutUncached { checked_out: true } => self.cache_statements(),
            Statements::Settled => {}
        }
    }

    fn cache_statements(&mut self) {
        if let Statements::FirstCheckoutUncached { .. } = self.statements {
            if let BackendConnection::Postgres(c) = &mut self.inner {
                c.set_prepared_statement_cache_size(CacheSize::Unbounded);
            }
            self.statements = Statements::Settled;
        }
    }

    /// Whether the server closed this connection while it sat idle in the pool (an idle
    /// timeout, a suspended compute, `pg_terminate_backend`, a restart), found without
    /// a round trip: the server's last message and the end of the stream are already
    /// waiting on the socket, and libpq reads them without blocking. Nothing has been
    /// sent on it, so the caller can take another connection and lose nothing. A
    /// connection found closed is marked for the pool to drop.
    pub(crate) fn found_closed(&mut self) -> bool {
        let Some(c) = self.as_postgres() else {
            return false;
        };
        // Twice: one read may return the server's last message, the next its end.
        let closed = (0..2).any(|_| c.notifications_iter().any(|event| event.is_err()));
        if closed {
            self.lost = true;
        }
        closed
    }

    /// Runs `f` where the statement timeout applies. Through a transaction-mode pooler
    /// it is set per transaction (a pooler does not forward start-up options, and a
    /// session setting would stay on a server connection other clients share), so a
    /// call outside a transaction runs in one of its own: two round trips more.
    pub(crate) fn with_deadline<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        if self.local_timeout_ms.is_some() && self.transaction_depth()?.is_none() {
            self.transaction(f)
        } else {
            f(self)
        }
    }

    /// Runs `f` with `ms` as the statement timeout of the transactions it begins
    /// (`SET LOCAL`), whatever the connection's own setting, which is restored after.
    pub(crate) fn with_local_timeout<T>(
        &mut self,
        ms: u128,
        f: impl FnOnce(&mut Connection) -> T,
    ) -> T {
        let saved = self.local_timeout_ms.replace(ms);
        let result = f(self);
        self.local_timeout_ms = saved;
        result
    }

    /// Starts a write on a connection of the pool's own (no caller's transaction).
    pub(crate) fn start_write(&mut self) {
        self.nothing_committed = false;
    }

    /// A write's result as its caller must read it: a connection lost while an
    /// autocommit statement ran leaves the write's outcome unknown
    /// ([`Error::OutcomeUnknown`]); one lost inside a transaction that did not commit
    /// leaves nothing written, a plain retryable [`Error::Unavailable`].
    pub(crate) fn settle_write<T>(&mut self, result: Result<T>) -> Result<T> {
        match result {
            Err(error) if !self.nothing_committed => Err(error.in_doubt()),
            other => other,
        }
    }

    /// Marks the connection for the pool to drop when `result` shows it is gone.
    pub(crate) fn note_outcome<T>(&mut self, result: &Result<T>) {
        if let Err(error) = result {
            self.note_error(error);
        }
    }

    fn note_error(&mut self, error: &Error) {
        if error.is_connection_lost() {
            self.lost = true;
        }
    }
}

/// Opens connections for the pool, chosen by the URL's backend.
#[derive(Debug)]
pub(crate) struct ConnectionManager {
    url: DatabaseUrl,
    pooler_safe: bool,
    local_timeout_ms: Option<u128>,
    /// Shared by the pool's shards.
    outcomes: Arc<ConnectOutcomes>,
    slow_query: std::time::Duration,
}

/// Why a connection could not be opened; the message never contains the password.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    message: String,
}

/// What the pool's connection attempts found, shared by its shards. Waiters for a
/// connection read it: a failure no retry can fix (a bad option, a database or role
/// that does not exist, a file that cannot be opened) reaches the caller at once as
/// [`Error::Config`] instead of after the pool's full connection timeout; a refused
/// connection (nothing listens) reaches the waiters whose wait it happened in as a
/// retryable [`Error::Unavailable`], also without waiting out the timeout; and a timeout
/// names the last failure. A successful connection clears all three.
#[derive(Debug, Default)]
pub(crate) struct ConnectOutcomes(std::sync::Mutex<Outcomes>);

#[derive(Debug, Default)]
struct Outcomes {
    last_error: Option<String>,
    permanent: Option<String>,
    /// When the latest attempt was refused, if it was.
    refused_at: Option<std::time::Instant>,
}

impl ConnectOutcomes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outcomes> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, result: &std::result::Result<Connection, ConnectError>) {
        let mut outcomes = self.lock();
        match result {
            Ok(_) => *outcomes = Outcomes::default(),
            Err(error) => {
                outcomes.last_error = Some(error.message.clone());
                outcomes.permanent = crate::error::is_permanent_connect_failure(&error.message)
                    .then(|| error.message.clone());
                outcomes.refused_at = crate::error::is_refused_connection(&error.message)
                    .then(std::time::Instant::now);
            }
        }
    }

    /// A refusal of an attempt made since `since`, while no connection has succeeded
    /// since. Only attempts within the caller's own wait count: r2d2 retries in the
    /// background, so an older refusal says nothing about a server that is back.
    pub(crate) fn refused_since(&self, since: std::time::Instant) -> Option<Error> {
        let outcomes = self.lock();
        match (outcomes.refused_at, &outcomes.last_error) {
            (Some(at), Some(message)) if at >= since => Some(Error::Unavailable {
                reason: message.clone(),
                connection_lost: true,
            }),
            _ => None,
        }
    }

    /// The failure no retry can fix, while no connection has succeeded since.
    pub(crate) fn permanent(&self) -> Option<Error> {
        self.lock()
            .permanent
            .as_ref()
            .map(|message| Error::Config(format!("cannot connect to the database: {message}")))
    }

    /// Why the latest attempt failed, if it did.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = Connection;
    type Error = ConnectError;

    fn connect(&self) -> std::result::Result<Connection, ConnectError> {
        let result = self.open();
        self.outcomes.record(&result);
        result
    }

    fn is_valid(&self, conn: &mut Connection) -> std::result::Result<(), ConnectError> {
        on_backend!(conn, c => c.ping()).map_err(|e| ConnectError {
            message: crate::error::one_line(&self.url.scrub(&e.to_string())),
        })
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.lost || on_backend!(conn, c => c.is_broken())
    }
}

impl ConnectionManager {
    fn open(&self) -> std::result::Result<Connection, ConnectError> {
        open(
            &self.url,
            self.pooler_safe,
            self.local_timeout_ms,
            self.slow_query,
        )
    }
}

/// Opens one connection with the per-connection settings every jobprep connection
/// gets: pooler-safe statement caching on PostgreSQL, the pragmas on SQLite, query
/// timing with the `tracing` feature.
fn open(
    url: &DatabaseUrl,
    pooler_safe: bool,
    local_timeout_ms: Option<u128>,
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))] slow_query: std::time::Duration,
) -> std::result::Result<Connection, ConnectError> {
    let scrubbed = |e: &dyn std::fmt::Display| ConnectError {
        message: crate::error::one_line(&url.scrub(&e.to_string())),
    };
    let mut statements = Statements::Settled;
    let inner = match url.backend() {
        Backend::Postgres => {
            let mut conn =
                PgConnection::establish(url.expose_secret()).map_err(|e| scrubbed(&e))?;
            // Uncached at first (see `Statements`). In pooler-safe mode for good:
            // transaction-mode poolers move a session between server connections, so
            // named prepared statements cannot be reused.
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
            if !pooler_safe {
                statements = Statements::FirstCheckoutUncached { checked_out: false };
            }
            BackendConnection::Postgres(conn)
        }
        Backend::Sqlite => {
            let mut conn = SqliteConnection::establish(url.expose_secret())
                .map_err(|e| sqlite_open_error(url.expose_secret(), &e))?;
            // busy_timeout first: switching to WAL needs a lock another connection
            // may hold. foreign_keys makes cascades behave as on PostgreSQL.
            conn.batch_execute(
                "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .map_err(|e| scrubbed(&e))?;
            BackendConnection::Sqlite(conn)
        }
    };
    #[cfg(feature = "tracing")]
    let inner = {
        let mut inner = inner;
        let timer = crate::observe::QueryTimer::new(slow_query, url.backend());
        match &mut inner {
            BackendConnection::Postgres(c) => c.set_instrumentation(timer),
            BackendConnection::Sqlite(c) => c.set_instrumentation(timer),
        }
        inner
    };
    Ok(Connection {
        inner,
        lost: false,
        nothing_committed: false,
        local_timeout_ms,
        statements,
    })
}

/// SQLite's "unable to open database file" names no file: name it, and the folder
/// when that is what is missing (SQLite creates the file, never its folder).
fn sqlite_open_error(path: &str, error: &dyn std::fmt::Display) -> ConnectError {
    let file = std::path::Path::new(path);
    let missing_folder = file
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty() && !folder.exists());
    ConnectError {
        message: match missing_folder {
            Some(folder) => format!(
                "{}: {path} (the folder {} does not exist)",
                crate::error::one_line(&error.to_string()),
                folder.display()
            ),
            None => format!("{}: {path}", crate::error::one_line(&error.to_string())),
        },
    }
}

impl Connection {
    /// One connection of its own, outside any pool, with the settings pooled
    /// connections get (see [`DbConfig`]). For tools that must measure or drive a
    /// single connection, such as `jobprep bench`'s baseline, which runs the
    /// repository functions on it directly. Services use a [`Db`](crate::Db). It
    /// caches its prepared statements from its first call.
    pub fn establish(config: &DbConfig) -> Result<Connection> {
        let local_timeout = config.local_timeout_ms();
        let mut conn = open(
            &config.url,
            config.pooler_safe,
            local_timeout,
            config.slow_query_threshold,
        )
        .map_err(|error| {
            if crate::error::is_permanent_connect_failure(&error.message) {
                Error::Config(format!("cannot connect to the database: {}", error.message))
            } else {
                Error::unavailable(error.message)
            }
        })?;
        conn.cache_statements();
        Ok(conn)
    }
}

pub(crate) type Pool = r2d2::Pool<ConnectionManager>;

/// See `build_pool`: r2d2's backoff between attempts is then 0.2 s.
const R2D2_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(400);

pub(crate) fn build_pool(
    url: &DatabaseUrl,
    config: &DbConfig,
    options: &PoolOptions,
    outcomes: Arc<ConnectOutcomes>,
) -> Pool {
    let manager = ConnectionManager {
        url: url.clone(),
        pooler_safe: config.pooler_safe,
        local_timeout_ms: config.local_timeout_ms(),
        outcomes,
        slow_query: config.slow_query_threshold,
    };
    r2d2::Pool::builder()
        .max_size(options.max_size)
        .min_idle(Some(options.min_idle))
        // r2d2 retries a failed attempt to open a connection after a backoff capped at
        // half of its own timeout; callers wait with `ShardedPool`'s (the configured
        // one). Kept short, a server that refuses is tried again every 0.2 s: a caller
        // waits at most that long for an attempt made during its call (then fails, see
        // `ConnectOutcomes`), and a server that is back is found as soon.
        .connection_timeout(options.connection_timeout.min(R2D2_TIMEOUT))
        .idle_timeout(options.idle_timeout)
        .max_lifetime(options.max_lifetime)
        // A broken connection is detected by the errors it causes (see
        // `Connection::note_outcome`), so checkouts skip the extra ping round trip.
        .test_on_check_out(false)
        // r2d2 would log connection errors itself; ours reach the caller instead.
        .error_handler(Box::new(r2d2::NopErrorHandler))
        // Lazy: nothing is opened until the first query (a cold start opens one).
        .build_unchecked(manager)
}
