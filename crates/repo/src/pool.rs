//! The primary's connection pool: a few r2d2 pools ("shards") that together hold at
//! most `max_size` connections.
//!
//! Why shards: one r2d2 pool is one mutex taken twice per call. When client threads
//! outnumber cores, a thread preempted while holding it parks every other caller; on a
//! 2-core machine with 4 clients that cost reads about a fifth of their throughput
//! (see BENCHMARKS.md). Each thread therefore has a home shard; it takes a connection
//! from home when one is idle, else from any other shard, and only when none is idle
//! anywhere does it wait, in short slices, so a connection returned to any shard is
//! found quickly. The pool's promises are unchanged: at most `max_size` connections,
//! lazily opened (a cold start opens one), and `Unavailable` after the connection
//! timeout, or as soon as an attempt made during the wait is refused.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::{DatabaseUrl, DbConfig};
use std::sync::Arc;

use crate::connection::{build_pool, ConnectOutcomes, ConnectionManager};
use crate::error::{Error, Result};

pub(crate) type Pooled = r2d2::PooledConnection<ConnectionManager>;

/// How long a waiter blocks on its home shard before looking at the others again.
const SLICE: Duration = Duration::from_millis(5);

/// How long a waiter blocks on a connection being opened before it checks whether the
/// attempt failed for good (see `ConnectOutcomes`).
const OPEN_SLICE: Duration = Duration::from_millis(20);

pub(crate) struct ShardedPool {
    shards: Vec<r2d2::Pool<ConnectionManager>>,
    timeout: Duration,
    outcomes: Arc<ConnectOutcomes>,
}

/// Spreads threads over shards: each thread keeps the index it drew first.
static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static HOME: Cell<Option<usize>> = const { Cell::new(None) };
}

fn home_index() -> usize {
    HOME.with(|home| match home.get() {
        Some(index) => index,
        None => {
            let index = NEXT_HOME.fetch_add(1, Ordering::Relaxed);
            home.set(Some(index));
            index
        }
    })
}

impl ShardedPool {
    /// Up to two shards per core, never more shards than connections.
    pub(crate) fn new(url: &DatabaseUrl, config: &DbConfig) -> Self {
        let max_size = config.pool.max_size.max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let count = (max_size as usize).min(cores * 2).max(1) as u32;
        let share = |total: u32, index: u32| total / count + u32::from(index < total % count);
        let outcomes = Arc::new(ConnectOutcomes::default());
        let shards = (0..count)
            .map(|index| {
                let mut options = config.pool.clone();
                options.max_size = share(max_size, index);
                options.min_idle = share(config.pool.min_idle, index).min(options.max_size);
                build_pool(url, config, &options, outcomes.clone())
            })
            .collect();
        ShardedPool {
            shards,
            timeout: config.pool.connection_timeout,
            outcomes,
        }
    }

    fn home(&self) -> usize {
        home_index() % self.shards.len()
    }

    /// An idle connection from the home shard, else from any other; never waits.
    /// Connections the server closed while they sat idle are dropped on the way (see
    /// `Connection::found_closed`), so no caller is handed one.
    pub(crate) fn try_get(&self) -> Option<Pooled> {
        let home = self.home();
        (0..self.shards.len()).find_map(|offset| {
            let shard = &self.shards[(home + offset) % self.shards.len()];
            std::iter::from_fn(|| shard.try_get()).find_map(live)
        })
    }

    /// A connection, waiting up to the connection timeout.
    pub(crate) fn get(&self) -> Result<Pooled> {
        self.get_within(self.timeout)
    }

    /// A connection, waiting up to `timeout`.
    pub(crate) fn get_within(&self, timeout: Duration) -> Result<Pooled> {
        let started = Instant::now();
        let home = self.home();
        let count = self.shards.len();
        // Each waiter asks for at most one new connection (so a cold start opens exactly
        // one), then watches for it in short slices, so that an attempt that failed
        // for good ends the wait at once.
        let mut asked_to_open = false;
        for attempt in 0.. {
            let remaining = timeout.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            let with_room = (0..count)
                .map(|offset| (home + offset) % count)
                .find(|&index| has_room(&self.shards[index]));
            let waited = match with_room {
                // r2d2 opens a connection for a caller that finds room.
                Some(index) if !asked_to_open => {
                    asked_to_open = true;
                    self.shards[index]
                        .get_timeout(remaining.min(OPEN_SLICE))
                        .ok()
                }
                // Our connection is being opened: asking again would open another.
                // (`try_get` hands out a checked-out connection: not one for `live`.)
                Some(_) => {
                    std::thread::sleep(remaining.min(SLICE));
                    if let Some(conn) = self.try_get() {
                        return Ok(conn);
                    }
                    None
                }
                // Every shard full: wait for a connection to come back, going round.
                None => self.shards[(home + attempt) % count]
                    .get_timeout(remaining.min(SLICE))
                    .ok(),
            };
            if let Some(conn) = waited {
                match live(conn) {
                    Some(conn) => return Ok(conn),
                    // Dropped: its room lets this waiter open a fresh connection.
                    None => asked_to_open = false,
                }
            }
            if let Some(conn) = self.try_get() {
                return Ok(conn);
            }
            if let Some(error) = self.outcomes.permanent() {
                return Err(error);
            }
            // Nothing listens: waiting out the timeout would only delay the caller's
            // retry (the error is retryable).
            if let Some(error) = self.outcomes.refused_since(started) {
                return Err(error);
            }
        }
        Err(Error::unavailable(match self.outcomes.last_error() {
            Some(error) => format!("timed out waiting for a connection: {error}"),
            None => "timed out waiting for a connection".into(),
        }))
    }

    /// (connections open, connections idle, most connections) over all shards.
    pub(crate) fn state(&self) -> (u32, u32, u32) {
        self.shards
            .iter()
            .fold((0, 0, 0), |(open, idle, max), shard| {
                let state = shard.state();
                (
                    open + state.connections,
                    idle + state.idle_connections,
                    max + shard.max_size(),
                )
            })
    }
}

/// `conn`, unless the server closed it while it sat idle (then it is dropped).
fn live(mut conn: Pooled) -> Option<Pooled> {
    if conn.found_closed() {
        return None;
    }
    conn.checked_out();
    Some(conn)
}

fn has_room(shard: &r2d2::Pool<ConnectionManager>) -> bool {
    shard.state().connections < shard.max_size()
}
