//! The connection layer: the [`Db`] handle, its pool, and transactions.
//!
//! Queries are written once and compiled for both backends by [`on_backend!`], which
//! expands the same diesel code for the PostgreSQL and the SQLite variant of a
//! [`Connection`] (the approach of Vaultwarden's `db_run!`). Repository functions take a
//! `&mut Connection`; callers reach them through an [`Executor`]: the [`Db`] itself or a
//! [`Tx`] inside [`Db::transaction`].

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use diesel::connection::{AnsiTransactionManager, CacheSize, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection as _;

use crate::cache::{CacheTag, NoopSink, TagSink};
use crate::config::{Backend, DatabaseUrl, DbConfig, PoolOptions};
use crate::error::{Error, Result};
use crate::pool::ShardedPool;
use crate::replicas::{self, Replica, RoutingState, WalPosition};

/// A database connection of either backend. Opaque outside this crate: only the
/// repository modules run queries on it.
pub struct Connection {
    pub(crate) inner: BackendConnection,
    /// Set when an error showed the connection is gone, so the pool drops it.
    lost: bool,
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
            $crate::db::BackendConnection::Postgres($c) => $body,
            $crate::db::BackendConnection::Sqlite($c) => $body,
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
        self.begin()?;
        match f(self) {
            Ok(value) => {
                on_backend!(self, c => AnsiTransactionManager::commit_transaction(c))?;
                Ok(value)
            }
            Err(error) => {
                match on_backend!(self, c => AnsiTransactionManager::rollback_transaction(c)) {
                    // The caller's error explains what happened; a rollback that found
                    // the transaction already gone adds nothing.
                    Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
                    Err(rollback_error) => Err(rollback_error.into()),
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

    fn transaction_depth(&mut self) -> Result<Option<std::num::NonZeroU32>> {
        Ok(
            on_backend!(self, c => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth())?,
        )
    }

    fn begin(&mut self) -> Result<()> {
        let depth = self.transaction_depth()?;
        match &mut self.inner {
            BackendConnection::Sqlite(c) if depth.is_none() => {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
            }
            BackendConnection::Sqlite(c) => AnsiTransactionManager::begin_transaction(c)?,
            BackendConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
        }
        Ok(())
    }

    pub(crate) fn batch_execute(&mut self, sql: &str) -> Result<()> {
        on_backend!(self, c => c.batch_execute(sql))?;
        Ok(())
    }

    pub(crate) fn note_outcome<T>(&mut self, result: &Result<T>) {
        if let Err(error) = result {
            if error.is_connection_lost() {
                self.lost = true;
            }
        }
    }
}

/// Opens connections for the pool, chosen by the URL's backend.
#[derive(Debug)]
pub(crate) struct ConnectionManager {
    url: DatabaseUrl,
    pooler_safe: bool,
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    slow_query: std::time::Duration,
}

/// Why a connection could not be opened; the message never contains the password.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = Connection;
    type Error = ConnectError;

    fn connect(&self) -> std::result::Result<Connection, ConnectError> {
        let scrubbed = |e: &dyn std::fmt::Display| ConnectError(self.url.scrub(&e.to_string()));
        let inner = match self.url.backend() {
            Backend::Postgres => {
                let mut conn =
                    PgConnection::establish(self.url.expose()).map_err(|e| scrubbed(&e))?;
                if self.pooler_safe {
                    // Transaction-mode poolers move a session between server
                    // connections, so named prepared statements cannot be reused.
                    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
                }
                BackendConnection::Postgres(conn)
            }
            Backend::Sqlite => {
                let mut conn =
                    SqliteConnection::establish(self.url.expose()).map_err(|e| scrubbed(&e))?;
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
            let timer = crate::observe::QueryTimer::new(self.slow_query);
            match &mut inner {
                BackendConnection::Postgres(c) => c.set_instrumentation(timer),
                BackendConnection::Sqlite(c) => c.set_instrumentation(timer),
            }
            inner
        };
        Ok(Connection { inner, lost: false })
    }

    fn is_valid(&self, conn: &mut Connection) -> std::result::Result<(), ConnectError> {
        on_backend!(conn, c => c.ping()).map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.lost || on_backend!(conn, c => c.is_broken())
    }
}

pub(crate) type Pool = r2d2::Pool<ConnectionManager>;

pub(crate) fn build_pool(url: &DatabaseUrl, config: &DbConfig, options: &PoolOptions) -> Pool {
    let manager = ConnectionManager {
        url: url.clone(),
        pooler_safe: config.pooler_safe,
        slow_query: config.slow_query_threshold,
    };
    r2d2::Pool::builder()
        .max_size(options.max_size)
        .min_idle(Some(options.min_idle))
        .connection_timeout(options.connection_timeout)
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

/// The handle services keep: cheap to clone (an `Arc`), safe to share across threads,
/// one connection pool inside.
///
/// ```
/// # fn main() -> jobprep_repo::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let url = dir.path().join("doc.sqlite3").display().to_string();
/// use jobprep_repo::{Backend, Db};
/// let db = Db::connect(&url)?; // a file path, sqlite://PATH, or postgres://...
/// db.migrate()?;
/// assert_eq!(db.backend(), Backend::Sqlite);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    config: DbConfig,
    primary: ShardedPool,
    replicas: Vec<Replica>,
    next_replica: AtomicUsize,
    primary_reads: AtomicU64,
    /// The WAL position of the latest write made through this handle (0: none yet).
    last_write: AtomicU64,
    sink: Arc<dyn TagSink>,
    /// Checkouts that found no idle connection and had to wait (or open one).
    waits: AtomicU64,
    /// Checkouts that gave up after the connection timeout.
    timeouts: AtomicU64,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("url", &self.inner.config.url)
            .field("pool", &self.pool_state())
            .finish()
    }
}

/// A snapshot of a pool, from [`Db::pool_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PoolState {
    /// Connections open, in use or idle.
    pub connections: u32,
    /// Connections open and waiting for a caller.
    pub idle: u32,
    /// The most connections the pool will open.
    pub max_size: u32,
    /// Checkouts so far that found no idle connection and waited (or opened one).
    pub waits: u64,
    /// Checkouts so far that gave up after the connection timeout.
    pub timeouts: u64,
}

/// Builds a [`Db`] with settings beyond the URL.
#[derive(Clone)]
pub struct DbBuilder {
    config: Result<DbConfig, String>,
    sink: Option<Arc<dyn TagSink>>,
}

impl std::fmt::Debug for DbBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbBuilder")
            .field("config", &self.config)
            .field("custom_sink", &self.sink.is_some())
            .finish()
    }
}

impl DbBuilder {
    /// Sets every pool option at once.
    pub fn pool(mut self, options: PoolOptions) -> Self {
        if let Ok(config) = &mut self.config {
            config.pool = options;
        }
        self
    }

    /// The most connections the pool opens.
    pub fn max_size(mut self, max_size: u32) -> Self {
        if let Ok(config) = &mut self.config {
            config.pool.max_size = max_size;
        }
        self
    }

    /// How long a caller waits for a free connection.
    pub fn connection_timeout(mut self, timeout: std::time::Duration) -> Self {
        if let Ok(config) = &mut self.config {
            config.pool.connection_timeout = timeout;
        }
        self
    }

    /// Turns prepared-statement caching off for transaction-mode poolers.
    pub fn pooler_safe(mut self, on: bool) -> Self {
        if let Ok(config) = &mut self.config {
            config.pooler_safe = on;
        }
        self
    }

    /// Adds a streaming read replica (PostgreSQL only); reads are spread over the
    /// healthy ones. See [`crate::replicas`] for the consistency each read gets.
    pub fn replica(mut self, url: &str) -> Self {
        if let Ok(config) = &mut self.config {
            match DbConfig::parse(url) {
                Ok(replica) => config.replicas.push(replica.url),
                Err(error) => self.config = Err(format!("replica URL: {error}")),
            }
        }
        self
    }

    /// Replicas further behind than this are skipped (default 5 s).
    pub fn max_replica_lag(mut self, lag: std::time::Duration) -> Self {
        if let Ok(config) = &mut self.config {
            config.max_replica_lag = lag;
        }
        self
    }

    /// Where committed writes report their cache tags (default: nowhere).
    pub fn tag_sink(mut self, sink: Arc<dyn TagSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Validates the settings and builds the handle. Opens no connection.
    pub fn build(self) -> Result<Db> {
        let config = self.config.map_err(Error::Config)?;
        Db::from_parts(config, self.sink.unwrap_or_else(|| Arc::new(NoopSink)))
    }
}

impl Db {
    /// A handle for `url` with default settings and no tag sink.
    pub fn connect(url: &str) -> Result<Db> {
        Db::builder(url).build()
    }

    /// Starts a [`DbBuilder`] for `url`.
    pub fn builder(url: &str) -> DbBuilder {
        DbBuilder {
            config: DbConfig::parse(url).map_err(|e| match e {
                Error::Config(message) => message,
                other => other.to_string(),
            }),
            sink: None,
        }
    }

    /// A handle built from an explicit configuration.
    pub fn from_config(config: DbConfig, sink: Arc<dyn TagSink>) -> Result<Db> {
        Db::from_parts(config, sink)
    }

    /// A handle configured from the environment (see [`DbConfig::from_env`]).
    pub fn from_env() -> Result<Db> {
        Db::from_parts(DbConfig::from_env()?, Arc::new(NoopSink))
    }

    /// The process-wide handle, built from the environment on first use and shared by
    /// every later call, the way a serverless function reuses its connection across
    /// invocations. A failed build is not cached: the next call tries again.
    pub fn global() -> Result<Db> {
        static GLOBAL: OnceLock<Db> = OnceLock::new();
        if let Some(db) = GLOBAL.get() {
            return Ok(db.clone());
        }
        let db = Db::from_env()?;
        Ok(GLOBAL.get_or_init(|| db).clone())
    }

    fn from_parts(config: DbConfig, sink: Arc<dyn TagSink>) -> Result<Db> {
        config.pool.validate()?;
        if !config.replicas.is_empty() && config.url.backend() != Backend::Postgres {
            return Err(Error::Config(
                "read replicas need PostgreSQL: the primary is a SQLite file, which has \
                 no replicas; remove DATABASE_REPLICA_URLS or use a postgres:// URL"
                    .into(),
            ));
        }
        if let Some(replica) = config
            .replicas
            .iter()
            .find(|r| r.backend() != Backend::Postgres)
        {
            return Err(Error::Config(format!(
                "replica {replica} is not a PostgreSQL URL; replicas must be postgres://"
            )));
        }
        let primary = ShardedPool::new(&config.url, &config);
        let replicas = config
            .replicas
            .iter()
            .map(|url| Replica::new(url.clone(), ShardedPool::new(url, &config)))
            .collect();
        Ok(Db {
            inner: Arc::new(DbInner {
                config,
                primary,
                replicas,
                next_replica: AtomicUsize::new(0),
                primary_reads: AtomicU64::new(0),
                last_write: AtomicU64::new(0),
                sink,
                waits: AtomicU64::new(0),
                timeouts: AtomicU64::new(0),
            }),
        })
    }

    /// The backend this handle talks to.
    pub fn backend(&self) -> Backend {
        self.inner.config.url.backend()
    }

    /// The configuration in force (its URL prints without the password).
    pub fn config(&self) -> &DbConfig {
        &self.inner.config
    }

    /// Connections open and idle in the pool right now.
    pub fn pool_state(&self) -> PoolState {
        let (connections, idle, max_size) = self.inner.primary.state();
        PoolState {
            connections,
            idle,
            max_size,
            waits: self.inner.waits.load(Ordering::Relaxed),
            timeouts: self.inner.timeouts.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` in one transaction on the primary: every write inside commits together
    /// or not at all. Cache tags the writes report reach the sink only after COMMIT;
    /// a rolled-back transaction reports nothing.
    ///
    /// ```
    /// # fn main() -> jobprep_repo::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = jobprep_repo::Db::connect(&dir.path().join("tx.sqlite3").display().to_string())?;
    /// # db.migrate()?;
    /// use jobprep_repo::{users, Error, Executor, UserId};
    /// let alice = UserId::new("user_alice")?;
    /// let outcome: Result<(), Error> = db.transaction(|tx| {
    ///     let new = users::NewUser::new(alice.clone(), "Alice", "a@example.com");
    ///     tx.write(|conn, _| users::upsert(conn, &new))?;
    ///     Err(Error::Config("changed my mind".into())) // rolls the upsert back
    /// });
    /// assert!(outcome.is_err());
    /// let read = db.read(|conn| users::get(conn, &alice));
    /// assert!(matches!(read, Err(Error::NotFound { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.transaction_tracked(f).map(|(value, _)| value)
    }

    /// [`Db::transaction`], also returning the WAL position of the commit when the
    /// handle has replicas.
    fn transaction_tracked<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T>,
    ) -> Result<(T, Option<WalPosition>)> {
        let mut conn = self.checkout()?;
        let result = conn.transaction(|c| {
            let tx = Tx {
                backend: c.backend(),
                conn: RefCell::new(c),
                pending: RefCell::new(Vec::new()),
            };
            let value = f(&tx)?;
            Ok((value, tx.pending.into_inner()))
        });
        conn.note_outcome(&result);
        let (value, tags) = result?;
        let position = self.position_after_write(&mut conn);
        self.publish(tags);
        Ok((value, position))
    }

    /// After a committed write, with replicas: the primary's WAL position, which is at
    /// or past the commit. If it cannot be read, the write still stands; the position
    /// is then "unknown", which sends a session's reads to the primary.
    fn position_after_write(&self, conn: &mut Connection) -> Option<WalPosition> {
        if self.inner.replicas.is_empty() {
            return None;
        }
        let position = replicas::current_position(conn);
        conn.note_outcome(&position);
        let position = position.unwrap_or(WalPosition::UNKNOWN);
        self.inner
            .last_write
            .fetch_max(position.as_u64(), Ordering::Relaxed);
        Some(position)
    }

    /// Runs a read on a replica fit for it (round-robin over the healthy ones, caught
    /// up to `position` when given), else on the primary.
    fn read_routed<T>(
        &self,
        position: Option<WalPosition>,
        f: impl Fn(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let replicas = &self.inner.replicas;
        if replicas.is_empty() {
            return self.with_connection(f);
        }
        if position != Some(WalPosition::UNKNOWN) {
            let start = self.inner.next_replica.fetch_add(1, Ordering::Relaxed);
            for offset in 0..replicas.len() {
                let replica = &replicas[(start + offset) % replicas.len()];
                if let Some(result) =
                    replica.try_read(position, self.inner.config.max_replica_lag, &f)
                {
                    return result;
                }
            }
        }
        self.inner.primary_reads.fetch_add(1, Ordering::Relaxed);
        self.with_connection(f)
    }

    fn write_tracked<T>(
        &self,
        f: impl FnOnce(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<(T, Option<WalPosition>)> {
        let mut tags = Vec::new();
        let mut conn = self.checkout()?;
        let result = f(&mut conn, &mut tags);
        conn.note_outcome(&result);
        let value = result?;
        let position = self.position_after_write(&mut conn);
        drop(conn);
        self.publish(tags);
        Ok((value, position))
    }

    /// Reads served by the primary and, per replica, health, lag and reads served.
    pub fn routing_state(&self) -> RoutingState {
        RoutingState {
            primary_reads: self.inner.primary_reads.load(Ordering::Relaxed),
            replicas: self.inner.replicas.iter().map(Replica::state).collect(),
        }
    }

    /// The WAL position of the latest write made through this handle (with replicas).
    pub fn last_write_position(&self) -> Option<WalPosition> {
        match self.inner.last_write.load(Ordering::Relaxed) {
            0 => None,
            position => Some(WalPosition::from_u64(position)),
        }
    }

    /// A session: reads through it see every write made through it (read-your-writes),
    /// even when they are served by replicas. Cheap; make one per request or user.
    pub fn session(&self) -> Session {
        self.session_at(None)
    }

    /// A session that must see everything up to `position` (e.g. carried over from a
    /// previous request), and its own writes from now on.
    pub fn session_at(&self, position: Option<WalPosition>) -> Session {
        Session {
            db: self.clone(),
            position: AtomicU64::new(position.map_or(0, WalPosition::as_u64)),
        }
    }

    fn checkout(&self) -> Result<r2d2::PooledConnection<ConnectionManager>> {
        if let Some(conn) = self.inner.primary.try_get() {
            return Ok(conn);
        }
        self.inner.waits.fetch_add(1, Ordering::Relaxed);
        self.inner.primary.get().inspect_err(|_| {
            self.inner.timeouts.fetch_add(1, Ordering::Relaxed);
        })
    }

    fn publish(&self, mut tags: Vec<CacheTag>) {
        crate::cache::dedup(&mut tags);
        if !tags.is_empty() {
            self.inner.sink.revalidate(&tags);
            crate::feed::publish_local(&self.inner.config.url, &tags);
        }
    }

    /// Runs `f` on a pooled connection of its own; used by migrations and tests that
    /// need the connection itself rather than a repository call.
    pub(crate) fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.checkout()?;
        let result = f(&mut conn);
        conn.note_outcome(&result);
        result
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Db {}
    impl Sealed for super::Tx<'_> {}
    impl Sealed for super::Session {}
}

/// A [`Db`] that remembers the WAL position of its latest write, so that its reads,
/// wherever they are routed, see that write (read-your-writes). Without replicas it
/// behaves exactly like the `Db`. Make one per request or per user; carry
/// [`Session::position`] across requests to keep a user's reads consistent.
#[derive(Debug)]
pub struct Session {
    db: Db,
    /// 0: nothing to wait for.
    position: AtomicU64,
}

impl Session {
    /// The position reads of this session must have reached, if any.
    pub fn position(&self) -> Option<WalPosition> {
        match self.position.load(Ordering::Relaxed) {
            0 => None,
            position => Some(WalPosition::from_u64(position)),
        }
    }

    fn record(&self, position: Option<WalPosition>) {
        if let Some(position) = position {
            self.position
                .fetch_max(position.as_u64(), Ordering::Relaxed);
        }
    }

    /// [`Db::transaction`], remembering the commit's position.
    pub fn transaction<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let (value, position) = self.db.transaction_tracked(f)?;
        self.record(position);
        Ok(value)
    }
}

impl Executor for Session {
    fn read<T>(&self, f: impl Fn(&mut Connection) -> Result<T>) -> Result<T> {
        self.db.read_routed(self.position(), f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        let (value, position) = self.db.write_tracked(f)?;
        self.record(position);
        Ok(value)
    }

    fn backend(&self) -> Backend {
        self.db.backend()
    }
}

/// Where a repository call runs: on the [`Db`] (a pooled connection per call) or inside
/// a caller's transaction ([`Tx`]). Every repository and use-case function takes
/// `&impl Executor`, so the same call works in both places.
pub trait Executor: sealed::Sealed {
    /// Runs a read. On a [`Db`] with read replicas it may run on a replica, and run
    /// again on the primary if the replica fails mid-way: reads must not write.
    fn read<T>(&self, f: impl Fn(&mut Connection) -> Result<T>) -> Result<T>;

    /// Runs a write; the tags `f` pushes are reported once the write has committed.
    /// A write that needs several statements wraps them in its own transaction (a
    /// savepoint inside a [`Tx`]).
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T>;

    /// The backend the calls run on.
    fn backend(&self) -> Backend;
}

impl Executor for Db {
    fn read<T>(&self, f: impl Fn(&mut Connection) -> Result<T>) -> Result<T> {
        self.read_routed(None, f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        self.write_tracked(f).map(|(value, _)| value)
    }

    fn backend(&self) -> Backend {
        Db::backend(self)
    }
}

/// A transaction in progress, handed to the closure of [`Db::transaction`].
pub struct Tx<'c> {
    backend: Backend,
    conn: RefCell<&'c mut Connection>,
    pending: RefCell<Vec<CacheTag>>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("pending_tags", &self.pending.borrow().len())
            .finish()
    }
}

impl Tx<'_> {
    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // Repository closures receive the connection, never the `Tx`, so this borrow
        // cannot be re-entered; the check keeps that a recoverable error regardless.
        let mut conn = self.conn.try_borrow_mut().map_err(|_| {
            Error::Config("a transaction was used from inside one of its own calls".into())
        })?;
        f(&mut conn)
    }
}

impl Executor for Tx<'_> {
    fn read<T>(&self, f: impl Fn(&mut Connection) -> Result<T>) -> Result<T> {
        self.run(f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        let mut tags = Vec::new();
        let value = self.run(|conn| f(conn, &mut tags))?;
        self.pending.borrow_mut().extend(tags);
        Ok(value)
    }

    fn backend(&self) -> Backend {
        self.backend
    }
}
