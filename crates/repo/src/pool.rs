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
//! timeout.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::{DatabaseUrl, DbConfig};
use crate::db::{build_pool, ConnectionManager};
use crate::error::{Error, Result};

type Pooled = r2d2::PooledConnection<ConnectionManager>;

/// How long a waiter blocks on its home shard before looking at the others again.
const SLICE: Duration = Duration::from_millis(5);

pub(crate) struct ShardedPool {
    shards: Vec<r2d2::Pool<ConnectionManager>>,
    timeout: Duration,
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
        let shards = (0..count)
            .map(|index| {
                let mut options = config.pool.clone();
                options.max_size = share(max_size, index);
                options.min_idle = share(config.pool.min_idle, index).min(options.max_size);
                build_pool(url, config, &options)
            })
            .collect();
        ShardedPool {
            shards,
            timeout: config.pool.connection_timeout,
        }
    }

    fn home(&self) -> usize {
        home_index() % self.shards.len()
    }

    /// An idle connection from the home shard, else from any other; never waits.
    pub(crate) fn try_get(&self) -> Option<Pooled> {
        let home = self.home();
        (0..self.shards.len())
            .find_map(|offset| self.shards[(home + offset) % self.shards.len()].try_get())
    }

    /// A connection, waiting up to the connection timeout.
    pub(crate) fn get(&self) -> Result<Pooled> {
        self.get_within(self.timeout)
    }

    /// A connection, waiting up to `timeout`.
    pub(crate) fn get_within(&self, timeout: Duration) -> Result<Pooled> {
        let started = Instant::now();
        let home = self.home();
        // r2d2 attaches the connection error (why nothing could be opened) to one
        // timeout only: keep the most telling one.
        let mut best_error: Option<r2d2::Error> = None;
        for attempt in 0.. {
            let remaining = timeout.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            let count = self.shards.len();
            // A shard with room (home first) opens a connection: wait for that one
            // (so a cold start opens exactly one). With every shard full, wait in
            // slices, going round, until a connection comes back anywhere.
            let with_room = (0..count)
                .map(|offset| (home + offset) % count)
                .find(|&index| has_room(&self.shards[index]));
            let (shard, wait) = match with_room {
                Some(index) => (&self.shards[index], remaining),
                None => (&self.shards[(home + attempt) % count], remaining.min(SLICE)),
            };
            match shard.get_timeout(wait) {
                Ok(conn) => return Ok(conn),
                Err(error) => {
                    let telling = |e: &r2d2::Error| e.to_string().len();
                    if best_error
                        .as_ref()
                        .is_none_or(|best| telling(&error) > telling(best))
                    {
                        best_error = Some(error);
                    }
                }
            }
            if let Some(conn) = self.try_get() {
                return Ok(conn);
            }
        }
        Err(match best_error {
            Some(error) => Error::from(error),
            None => Error::Unavailable {
                reason: "timed out waiting for connection".into(),
            },
        })
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

fn has_room(shard: &r2d2::Pool<ConnectionManager>) -> bool {
    shard.state().connections < shard.max_size()
}
