//! The handle services keep: [`Db`], its builder, and read-your-writes [`Session`]s.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::config::{Backend, DbConfig, PoolOptions};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::executor::{sealed, Executor, Tx};
use crate::pool::{Pooled, ShardedPool};
use crate::replicas::{self, Replica, RoutingState, WalPosition, WriteMark};
use crate::tags::{CacheTag, NoopSink, TagSink};

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
    /// Where the writes made through this handle are in the WAL (with replicas).
    written: WriteMark,
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
    /// Checkouts so far that got no connection: after the connection timeout, or at
    /// once when the server refused the connection or the configuration cannot work.
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

    /// How long PostgreSQL lets one statement or lock wait run before it cancels it
    /// (see [`DbConfig::statement_timeout`]).
    pub fn statement_timeout(mut self, timeout: std::time::Duration) -> Self {
        if let Ok(config) = &mut self.config {
            config.statement_timeout = Some(timeout).filter(|t| !t.is_zero());
        }
        self
    }

    /// Where committed writes report their cache tags (default: nowhere).
    pub fn tag_sink(mut self, sink: Arc<dyn TagSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Validates the settings and builds the handle. Opens no connection, so a server
    /// that is down or refuses the credentials is found by the first call, as a
    /// retryable [`Error::Unavailable`] or a [`Error::Config`]. What can be judged
    /// without a server is refused here, at once, as [`Error::Config`] (never
    /// retryable): a URL that does not parse, an unknown scheme, an unknown or
    /// malformed setting.
    ///
    /// ```
    /// use jobprep_repo::{Db, Error};
    ///
    /// let malformed = Db::builder("postgres://app@db.internal:port/app").build();
    /// assert!(matches!(malformed, Err(Error::Config(_))));
    /// // Well formed: built without a connection, though nothing listens there.
    /// assert!(Db::builder("postgres://app@127.0.0.1:1/app").build().is_ok());
    /// ```
    pub fn build(self) -> Result<Db> {
        let config = self.config.map_err(Error::Config)?;
        Db::from_parts(config, self.sink.unwrap_or_else(|| Arc::new(NoopSink)))
    }
}

impl Db {
    /// A handle for `url` with default settings and no tag sink. Despite the name it
    /// opens no connection: see [`DbBuilder::build`].
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
        let primary = ShardedPool::new(&config.connect_url(&config.url)?, &config);
        let replicas = config
            .replicas
            .iter()
            .map(|url| {
                let pool = ShardedPool::new(&config.connect_url(url)?, &config);
                Ok(Replica::new(url.clone(), pool))
            })
            .collect::<Result<_>>()?;
        Ok(Db {
            inner: Arc::new(DbInner {
                config,
                primary,
                replicas,
                next_replica: AtomicUsize::new(0),
                primary_reads: AtomicU64::new(0),
                written: WriteMark::default(),
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
    /// use jobprep_repo::{cache_rules, users, Error, Executor, UserId};
    /// let alice = UserId::new("user_alice")?;
    /// let taken = UserId::new("user_bob")?;
    /// let outcome = db.transaction(|tx| {
    ///     let new = users::NewUser::new(alice.clone(), "Alice", "shared@example.com");
    ///     // Tags are reported only after COMMIT.
    ///     tx.write_tagged(|conn| users::upsert(conn, &new), |u| cache_rules::user_write(&u.id))?;
    ///     let clash = users::NewUser::new(taken.clone(), "Bob", "shared@example.com");
    ///     tx.write_tagged(|conn| users::upsert(conn, &clash), |u| cache_rules::user_write(&u.id))
    /// });
    /// // The second upsert broke `users_email_unique`: the first is rolled back too.
    /// assert!(matches!(outcome, Err(Error::Conflict { .. })));
    /// let read = db.read(|conn| users::get(conn, &alice));
    /// assert!(matches!(read, Err(Error::NotFound { .. })));
    ///
    /// // To roll back for a reason of your own, see [`Db::transaction_with_error`].
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.transaction_on(None, None, f)
    }

    /// [`Db::transaction`] for a closure with your own error type `E`: returning any
    /// `Err` rolls everything back, and jobprep's errors convert into `E` with `?`.
    ///
    /// ```
    /// # fn main() -> jobprep_repo::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = jobprep_repo::Db::connect(&dir.path().join("tx.sqlite3").display().to_string())?;
    /// # db.migrate()?;
    /// use jobprep_repo::{cache_rules, users, Error, Executor, UserId};
    ///
    /// #[derive(Debug)]
    /// enum SignUpError {
    ///     Database(Error),
    ///     NotInvited,
    /// }
    /// impl From<Error> for SignUpError {
    ///     fn from(error: Error) -> Self {
    ///         SignUpError::Database(error)
    ///     }
    /// }
    ///
    /// let eve = UserId::new("user_eve")?;
    /// let outcome = db.transaction_with_error(|tx| {
    ///     let new = users::NewUser::new(eve.clone(), "Eve", "eve@example.com");
    ///     tx.write(|conn, tags| {
    ///         let user = users::upsert(conn, &new)?;
    ///         tags.extend(cache_rules::user_write(&user.id));
    ///         Ok(user)
    ///     })?;
    ///     Err::<(), _>(SignUpError::NotInvited) // rolls the upsert back
    /// });
    /// assert!(matches!(outcome, Err(SignUpError::NotInvited)));
    /// assert!(db.read(|conn| users::get(conn, &eve)).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction_with_error<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.transaction_on(None, None, f)
    }

    /// [`Db::transaction`] with a statement timeout of its own: PostgreSQL cancels any
    /// statement in it (a lock wait included) that runs longer than `timeout`, and the
    /// call fails with a retryable [`Error::Unavailable`] that says it timed out,
    /// nothing of it written. For the one call that must answer sooner than the
    /// handle's own [`DbConfig::statement_timeout`] allows; the connection keeps its
    /// own setting for later calls. Set with the transaction's BEGIN, in the same round
    /// trip; works through a transaction-mode pooler. PostgreSQL only: on SQLite it is
    /// [`Error::Config`], and a zero `timeout` is [`Error::InvalidInput`].
    ///
    /// ```no_run
    /// # fn main() -> jobprep_repo::Result<()> {
    /// use std::time::Duration;
    /// use jobprep_repo::{users, Db, Executor, UserId};
    ///
    /// let db = Db::connect("postgres://app@db.internal/app")?;
    /// let me = UserId::new("user_1")?;
    /// let user = db.transaction_within(Duration::from_millis(300), |tx| {
    ///     tx.read(|conn| users::get(conn, &me))
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn transaction_within<T>(
        &self,
        timeout: std::time::Duration,
        f: impl FnOnce(&Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.transaction_on(None, Some(self.timeout_ms(timeout)?), f)
    }

    /// `timeout` as a transaction's own statement timeout, in ms, where there is one.
    fn timeout_ms(&self, timeout: std::time::Duration) -> Result<u128> {
        if self.backend() == Backend::Sqlite {
            return Err(Error::Config(
                "a statement timeout is PostgreSQL's: SQLite statements wait only for \
                 locks, up to its busy timeout (5 s)"
                    .into(),
            ));
        }
        if timeout.is_zero() {
            return Err(Error::invalid("timeout", "must be positive"));
        }
        Ok(timeout.as_millis().max(1))
    }

    /// Runs the transaction of `f` on a pooled connection, with a statement timeout of
    /// its own when `timeout_ms` is set; once it committed, counts it on the handle and
    /// on `session`'s mark, and publishes its tags.
    fn transaction_on<T, E: From<Error>>(
        &self,
        session: Option<&WriteMark>,
        timeout_ms: Option<u128>,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut conn = self.checkout()?;
        let body = |c: &mut Connection| {
            c.transaction_with_error(|c| {
                let tx = Tx::new(c);
                let value = f(&tx)?;
                Ok::<_, E>((value, tx.into_pending()))
            })
        };
        let (value, tags) = match timeout_ms {
            Some(ms) => conn.with_local_timeout(ms, body),
            None => body(&mut conn),
        }?;
        drop(conn);
        self.note_written(session);
        self.publish(tags);
        Ok(value)
    }

    /// After a committed write, with replicas: counts it on the handle and on the
    /// session's mark. No round trip: the WAL position is asked for when a read or a
    /// caller needs it (see [`WriteMark`]).
    fn note_written(&self, session: Option<&WriteMark>) {
        if self.inner.replicas.is_empty() {
            return;
        }
        self.inner.written.note_write();
        if let Some(mark) = session {
            mark.note_write();
        }
    }

    /// The primary's WAL position now: at or past every write acknowledged before.
    fn current_position(&self) -> Result<WalPosition> {
        self.with_connection(replicas::current_position)
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
            return self.with_connection(|c| c.with_deadline(f));
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
        self.with_connection(|c| c.with_deadline(f))
    }

    /// A write on the primary; once it committed, counts it on the handle and on
    /// `session`'s mark, and publishes its tags.
    fn write_tracked<T>(
        &self,
        session: Option<&WriteMark>,
        f: impl FnOnce(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        let mut tags = Vec::new();
        let mut conn = self.checkout()?;
        conn.start_write();
        let result = conn.with_deadline(|c| f(c, &mut tags));
        let result = conn.settle_write(result);
        conn.note_outcome(&result);
        let value = result?;
        drop(conn);
        self.note_written(session);
        self.publish(tags);
        Ok(value)
    }

    /// [`Db::write_tracked`] for a write that has the same effect when it runs twice:
    /// one whose outcome is unknown runs once more on a fresh connection (see
    /// [`Executor::write_idempotent`]).
    fn write_settled<T>(
        &self,
        session: Option<&WriteMark>,
        f: impl Fn(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        match self.write_tracked(session, &f) {
            Err(Error::OutcomeUnknown { reason }) => match self.write_tracked(session, &f) {
                // The first run's outcome is still unknown.
                Err(again) if again.is_retryable() || again.is_connection_lost() => {
                    Err(Error::OutcomeUnknown { reason })
                }
                settled => settled,
            },
            other => other,
        }
    }

    /// Reads served by the primary and, per replica, health, lag and reads served.
    pub fn routing_state(&self) -> RoutingState {
        RoutingState {
            primary_reads: self.inner.primary_reads.load(Ordering::Relaxed),
            replicas: self.inner.replicas.iter().map(Replica::state).collect(),
        }
    }

    /// A WAL position at or past every write made through this handle, with replicas
    /// (`None` without, or before the first write). The first call after a write asks
    /// the primary (one round trip); when that fails the answer is the highest
    /// position, which only the primary is taken to have reached.
    pub fn last_write_position(&self) -> Option<WalPosition> {
        self.inner.written.resolve(|| self.current_position())
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
            written: WriteMark::at(position),
        }
    }

    fn checkout(&self) -> Result<Pooled> {
        if let Some(conn) = self.inner.primary.try_get() {
            return Ok(conn);
        }
        self.inner.waits.fetch_add(1, Ordering::Relaxed);
        self.inner.primary.get().inspect_err(|_| {
            self.inner.timeouts.fetch_add(1, Ordering::Relaxed);
        })
    }

    fn publish(&self, mut tags: Vec<CacheTag>) {
        crate::tags::dedup(&mut tags);
        if !tags.is_empty() {
            self.inner.sink.revalidate(&tags);
            crate::local_feed::publish(&self.inner.config.url, &tags);
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

impl sealed::Sealed for Db {}
impl sealed::Sealed for Session {}

/// A [`Db`] whose reads, wherever they are routed, see every write made through it
/// (read-your-writes). Without replicas it behaves exactly like the `Db`. Make one per
/// request or per user; carry [`Session::position`] across requests to keep a user's
/// reads consistent.
///
/// A write through a session costs what it costs on the `Db`: its WAL position is not
/// read after it. The session's next read goes to the primary, which has the write; a
/// read after that, or [`Session::position`], asks the primary for its position once
/// (one round trip), and from then on replicas that have replayed past it serve.
#[derive(Debug)]
pub struct Session {
    db: Db,
    written: WriteMark,
}

impl Session {
    /// A WAL position at or past every write this session made or was started at
    /// (`None`: nothing to wait for). The first call after a write asks the primary
    /// (one round trip); when that fails the answer is the highest position, which
    /// sends reads that carry it to the primary.
    pub fn position(&self) -> Option<WalPosition> {
        self.written.resolve(|| self.db.current_position())
    }

    /// [`Db::transaction`], through this session.
    pub fn transaction<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.db.transaction_on(Some(&self.written), None, f)
    }

    /// [`Db::transaction_with_error`], through this session.
    pub fn transaction_with_error<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.db.transaction_on(Some(&self.written), None, f)
    }

    /// [`Db::transaction_within`], through this session.
    pub fn transaction_within<T>(
        &self,
        timeout: std::time::Duration,
        f: impl FnOnce(&Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let ms = self.db.timeout_ms(timeout)?;
        self.db.transaction_on(Some(&self.written), Some(ms), f)
    }
}

impl Executor for Session {
    fn read<T>(&self, f: impl Fn(&mut Connection) -> Result<T>) -> Result<T> {
        let target = self.written.read_target(|| self.db.current_position());
        self.db.read_routed(target, f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        self.db.write_tracked(Some(&self.written), f)
    }

    fn write_idempotent<T>(
        &self,
        f: impl Fn(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        self.db.write_settled(Some(&self.written), f)
    }

    fn backend(&self) -> Backend {
        self.db.backend()
    }
}

impl Executor for Db {
    fn read<T>(&self, f: impl Fn(&mut Connection) -> Result<T>) -> Result<T> {
        self.read_routed(None, f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        self.write_tracked(None, f)
    }

    fn write_idempotent<T>(
        &self,
        f: impl Fn(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        self.write_settled(None, f)
    }

    fn backend(&self) -> Backend {
        Db::backend(self)
    }
}
