//! The async facade for tokio services (feature `tokio`).
//!
//! jobprep is synchronous: a call holds a pooled connection and blocks its thread until
//! the database answers. [`AsyncDb`] lets an async service (axum, actix-web, a lambda)
//! use it without stalling the runtime: every call runs on one of the handle's worker
//! threads (one per connection the pool may open) and the caller's task simply awaits
//! it, waiting in a queue, not on a thread, while every worker is busy. The feature
//! crates (`jobprep-users`, ...) have a `tokio` feature with an `asynch` module holding
//! the same use cases as `async fn`s over an [`AsyncDb`].
//!
//! ```
//! # fn main() -> jobprep_repo::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let url = dir.path().join("async.sqlite3").display().to_string();
//! use jobprep_repo::asynch::AsyncDb;
//! use jobprep_repo::{cache_rules, users, Db, Error, Executor, UserId};
//!
//! let runtime = tokio::runtime::Builder::new_current_thread()
//!     .enable_all()
//!     .build()
//!     .expect("a tokio runtime");
//! runtime.block_on(async {
//!     let db = AsyncDb::new(Db::connect(&url)?); // cheap to clone, like `Db`
//!     db.migrate().await?;
//!
//!     let ada = UserId::new("user_ada")?;
//!     let new = users::NewUser::new(ada.clone(), "Ada", "ada@example.com");
//!     // The closure runs on a worker thread with the synchronous `Db`; the write
//!     // reports its cache tags (a feature crate's use case does this for you).
//!     db.run(move |db| {
//!         db.write(|conn, tags| {
//!             let user = users::upsert(conn, &new)?;
//!             tags.extend(cache_rules::user_write(&user.id));
//!             Ok(user)
//!         })
//!     })
//!     .await?;
//!
//!     // A transaction with your own error type: everything inside commits together,
//!     // and any `Err` rolls it all back.
//!     #[derive(Debug)]
//!     enum Refused {
//!         Database(Error),
//!         ChangedMyMind,
//!     }
//!     impl From<Error> for Refused {
//!         fn from(error: Error) -> Self {
//!             Refused::Database(error)
//!         }
//!     }
//!     let id = ada.clone();
//!     let outcome = db
//!         .transaction_with_error(move |tx| {
//!             tx.write_tagged(|conn| users::delete(conn, &id), cache_rules::user_removed)?;
//!             Err::<(), _>(Refused::ChangedMyMind) // rolls the delete back
//!         })
//!         .await;
//!     assert!(matches!(outcome, Err(Refused::ChangedMyMind)));
//!
//!     let user = db.run(move |db| db.read(|conn| users::get(conn, &ada))).await?;
//!     assert_eq!(user.name, "Ada");
//!     Ok(())
//! })
//! # }
//! ```
//!
//! Things to know:
//!
//! - **Dropping the future does not cancel the call.** A database call cannot be
//!   interrupted once it started, so a call whose caller went away (a client that
//!   disconnected, a `select!` that took another branch, a timeout) still runs to its
//!   end, and a write still commits; only its result is discarded.
//! - **Concurrency.** A call first waits its turn asynchronously: at most the pool's
//!   `max_size` calls run at once, each on one blocking-pool thread, so a thousand
//!   concurrent calls on a pool of ten use about ten threads, not a thousand parked
//!   ones. A call that waited longer than the pool's connection timeout for its turn
//!   fails with the retryable [`Error::Unavailable`] without running, as a synchronous
//!   checkout would. Turns are given in arrival order.
//! - **Errors.** Everything arrives as [`Error`]: a closure that panicked, and a call the
//!   runtime dropped before running it (it is shutting down), are
//!   [`Error::Unavailable`]; an `AsyncDb` awaited outside a tokio runtime is
//!   [`Error::Misuse`]. No panic reaches the caller.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::executor::Tx;
use crate::handle::Db;
use crate::migrations::MigrationReport;
use crate::Backend;

/// A [`Db`] for async code: the same handle (cheap to clone, one pool inside), with
/// every call run on one of its worker threads. Build one with [`AsyncDb::new`] or
/// `db.into()`; [`AsyncDb::sync`] gives the [`Db`] back.
#[derive(Clone, Debug)]
pub struct AsyncDb {
    db: Db,
    /// The threads that run the calls, one per connection the pool may open.
    workers: Arc<Workers>,
}

impl From<Db> for AsyncDb {
    fn from(db: Db) -> Self {
        AsyncDb::new(db)
    }
}

impl From<AsyncDb> for Db {
    fn from(db: AsyncDb) -> Self {
        db.db
    }
}

impl AsyncDb {
    /// Wraps a handle; opens no connection.
    pub fn new(db: Db) -> Self {
        let workers = Arc::new(Workers::new(db.pool_state().max_size as usize));
        AsyncDb { db, workers }
    }

    /// The synchronous handle, for code that already runs off the runtime (inside
    /// [`AsyncDb::run`], or on a thread of its own). Calling it from async code blocks
    /// the runtime's thread.
    pub fn sync(&self) -> &Db {
        &self.db
    }

    /// The backend this handle talks to (no I/O).
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Runs `f` with the synchronous [`Db`] on a worker thread and awaits it. Use
    /// it for any synchronous jobprep call, e.g. a feature crate's use case:
    /// `db.run(move |db| jobprep_users::get(db, &id)).await`.
    ///
    /// A panic in `f` is caught and returned as [`Error::Unavailable`]; see the module
    /// docs for cancellation.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Db) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.db.clone();
        self.spawn(move || f(&db)).await
    }

    /// Runs `f` in one transaction (see [`Db::transaction`]) on a worker thread: every
    /// write inside commits together or not at all, and cache tags reach the sink only
    /// after COMMIT. The transaction lives on one worker thread from BEGIN to COMMIT,
    /// so `f` is synchronous: it cannot await.
    pub async fn transaction<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.db.clone();
        self.spawn(move || db.transaction(f)).await
    }

    /// [`AsyncDb::transaction`] for a closure with your own error type `E` (see
    /// [`Db::transaction_with_error`]).
    pub async fn transaction_with_error<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let db = self.db.clone();
        match self.spawn(move || Ok(db.transaction_with_error(f))).await {
            Ok(outcome) => outcome,
            Err(error) => Err(error.into()),
        }
    }

    /// Applies every pending migration (see [`Db::migrate`]).
    pub async fn migrate(&self) -> Result<MigrationReport> {
        self.run(|db| db.migrate()).await
    }

    async fn spawn<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        // The facade is documented for tokio services: say so when it is used elsewhere.
        tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Misuse(
                "jobprep's AsyncDb was used outside a tokio runtime (call it from a task \
                 of a tokio runtime)"
                    .into(),
            )
        })?;
        #[cfg(feature = "tracing")]
        let f = {
            // Keep the caller's span (a request's, say) around the blocking work.
            let span = tracing::Span::current();
            move || span.in_scope(f)
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let arrived = Instant::now();
        let timeout = self.db.config().pool.connection_timeout;
        let url = self.db.config().url.clone();
        let job: Job = Box::new(move || {
            // A call that waited past the pool's timeout for a worker is the timeout a
            // synchronous checkout would have met: it does not run.
            let outcome = if arrived.elapsed() > timeout {
                Err(Error::unavailable(format!(
                    "timed out waiting for a connection: every connection was busy for \
                     {timeout:?}"
                )))
            } else {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(
                    |payload| {
                        Err(Error::unavailable(format!(
                            "the blocking database call panicked: {}",
                            url.scrub(&panic_message(payload))
                        )))
                    },
                )
            };
            // The caller may have gone away; the call ran all the same.
            let _ = reply.send(outcome);
        });
        self.workers.submit(job)?;
        answer.await.unwrap_or_else(|_| {
            Err(Error::unavailable(
                "the database call was dropped before it ran: its worker stopped",
            ))
        })
    }
}

/// A call handed to the workers.
type Job = Box<dyn FnOnce() + Send>;

/// The threads that run an [`AsyncDb`]'s calls: as many as the pool has connections,
/// started on the first call, fed in arrival order through one queue. A call waits in
/// the queue, not on a thread of its own, so threads never outnumber connections; the
/// workers finish the queued calls and end when the last clone of the handle is dropped.
#[derive(Debug)]
struct Workers {
    count: usize,
    /// The queue, once the workers are started.
    queue: OnceLock<std::result::Result<Arc<Queue>, String>>,
}

/// The calls waiting for a worker. Each idle worker sleeps on the condition variable
/// and a new call wakes exactly one of them: one thread wake-up per call (a channel
/// behind a mutex woke a second worker each time the mutex changed hands).
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl std::fmt::Debug for QueueState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueState")
            .field("jobs", &self.jobs.len())
            .field("closed", &self.closed)
            .finish()
    }
}

impl Queue {
    /// The state; a worker never panics while holding the lock (calls run outside it,
    /// and catch their own panics), so a poisoned lock still holds consistent data.
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, job: Job) {
        self.lock().jobs.push_back(job);
        self.ready.notify_one();
    }

    /// The next call, waiting for one; `None` once closed and drained.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self.ready.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

impl Workers {
    fn new(count: usize) -> Self {
        Workers {
            count: count.max(1),
            queue: OnceLock::new(),
        }
    }

    fn submit(&self, job: Job) -> Result<()> {
        match self.queue.get_or_init(|| self.start()) {
            Ok(queue) => {
                queue.push(job);
                Ok(())
            }
            Err(reason) => Err(Error::unavailable(reason.clone())),
        }
    }

    fn start(&self) -> std::result::Result<Arc<Queue>, String> {
        let queue = Arc::new(Queue::default());
        for n in 0..self.count {
            let worker_queue = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("jobprep-async-{n}"))
                .spawn(move || {
                    while let Some(job) = worker_queue.next() {
                        job();
                    }
                });
            if let Err(e) = started {
                // The workers already running end with the queue.
                queue.close();
                return Err(format!("cannot start the async handle's workers: {e}"));
            }
        }
        Ok(queue)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if let Some(Ok(queue)) = self.queue.get() {
            queue.close();
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "(a panic without a message)".to_owned(),
        },
    }
}

/// Defines, in a feature crate's `asynch` module, the `async fn` twin of each listed
/// use case of the crate: the same name and arguments, `&AsyncDb` first, borrowed
/// arguments taken owned (`user_id: &UserId` becomes `user_id: UserId`; list a slice
/// argument as `&Vec<T>` to take a `Vec<T>`), run on a worker thread by
/// [`AsyncDb::run`]. One definition per use case: the twin calls it.
///
/// ```text
/// jobprep_repo::async_twins! {
///     insert(user_id: &UserId, job: &NewJobInfo) -> JobInfoKey;
///     get(user_id: &UserId, id: JobInfoId) -> Cached<JobInfo>;
/// }
/// ```
#[macro_export]
// `crate::$name` is deliberate: the twin calls the use case of the crate that invokes
// the macro, not one of this crate.
#[allow(clippy::crate_in_macro_def)]
macro_rules! async_twins {
    ($($name:ident($($params:tt)*) -> $ret:ty;)*) => {
        $($crate::async_twins!(@twin $name [] [] $($params)* ,; $ret);)*
    };
    (@twin $name:ident [$($owned:tt)*] [$($args:tt)*] $(,)? ; $ret:ty) => {
        #[doc = concat!("[`crate::", stringify!($name), "`], awaited: it runs on a worker thread of the `AsyncDb`.")]
        pub async fn $name(
            db: &$crate::asynch::AsyncDb,
            $($owned)*
        ) -> $crate::Result<$ret> {
            db.run(move |db| crate::$name(db, $($args)*)).await
        }
    };
    (@twin $name:ident [$($owned:tt)*] [$($args:tt)*] $param:ident: &$ty:ty, $($rest:tt)*) => {
        $crate::async_twins!(@twin $name [$($owned)* $param: $ty,] [$($args)* &$param,] $($rest)*);
    };
    (@twin $name:ident [$($owned:tt)*] [$($args:tt)*] $param:ident: $ty:ty, $($rest:tt)*) => {
        $crate::async_twins!(@twin $name [$($owned)* $param: $ty,] [$($args)* $param,] $($rest)*);
    };
}
