//! Read replicas: routing reads to streaming standbys, with read-your-writes.
//!
//! A [`Db`](crate::Db) built with replica URLs keeps one pool per replica. Reads go to a
//! healthy replica, round-robin; writes, transactions and everything inside
//! `db.transaction(..)` go to the primary.
//!
//! - **Consistency.** A read made on the `Db` itself may be stale by the replica's lag
//!   (at most the configured `max_replica_lag`, default 5 s, or the replica is skipped).
//!   For read-your-writes, read through a [`Session`](crate::Session): its reads go to a
//!   replica only if that replica has replayed past its writes' WAL position
//!   (PostgreSQL LSN, `pg_last_wal_replay_lsn()`), otherwise to the primary. A write
//!   does not read its position (it stays one round trip); the session asks for it
//!   when it is needed (see [`Session`](crate::Session)). The position can be carried across requests
//!   ([`WalPosition`] prints and parses as `16/B374D848`), the way large PostgreSQL
//!   deployments keep sessions sticky by LSN.
//! - **Failures.** A replica that cannot be reached, errors, is not in recovery, or lags
//!   beyond the bound is skipped and retried after a pause; its reads go to the primary.
//!   A read never fails because of a replica while the primary is up.
//! - **State.** [`Db::routing_state`](crate::Db::routing_state) tells, per replica,
//!   whether it is healthy, its lag, its replay position and the reads it served.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::config::DatabaseUrl;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::pool::ShardedPool;

/// How often a replica's health and lag are re-read on the read path.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a failed replica is left alone before it is tried again.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(2);
/// The longest a read waits for a replica connection before using the primary.
pub(crate) const CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);

/// A position in PostgreSQL's write-ahead log (an LSN), e.g. `16/B374D848`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalPosition(u64);

impl WalPosition {
    /// A write whose position could not be read: nothing but the primary is known to
    /// have it.
    pub(crate) const UNKNOWN: WalPosition = WalPosition(u64::MAX);
}

impl fmt::Display for WalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for WalPosition {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || Error::invalid("walPosition", "must look like 16/B374D848");
        let (high, low) = text.trim().split_once('/').ok_or_else(invalid)?;
        let high = u32::from_str_radix(high, 16).map_err(|_| invalid())?;
        let low = u32::from_str_radix(low, 16).map_err(|_| invalid())?;
        Ok(WalPosition((u64::from(high) << 32) | u64::from(low)))
    }
}

impl serde::Serialize for WalPosition {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Where a writer's writes (a `Db`'s or a `Session`'s) are in the WAL, learned lazily. A
/// write only counts itself, so it stays one round trip; the primary is asked for its
/// position when someone needs it. Any position read after a write was acknowledged is
/// at or past that write's commit, so one question covers every write counted before it.
#[derive(Debug, Default)]
pub(crate) struct WriteMark {
    /// At or past the commits of the first `covered` writes (0: none).
    position: AtomicU64,
    /// Writes acknowledged.
    writes: AtomicU64,
    /// Writes that `position` covers.
    covered: AtomicU64,
    /// Reads since the latest write that `position` does not cover yet.
    reads_behind: AtomicU64,
}

impl WriteMark {
    /// A mark that must reach `position` (carried over from an earlier request).
    pub(crate) fn at(position: Option<WalPosition>) -> Self {
        let mark = WriteMark::default();
        if let Some(position) = position {
            mark.position.store(position.0, Ordering::SeqCst);
        }
        mark
    }

    /// Counts a write the primary acknowledged.
    pub(crate) fn note_write(&self) {
        self.reads_behind.store(0, Ordering::SeqCst);
        self.writes.fetch_add(1, Ordering::SeqCst);
    }

    /// The writes counted so far, when `position` does not cover them all.
    fn uncovered(&self) -> Option<u64> {
        let writes = self.writes.load(Ordering::SeqCst);
        (self.covered.load(Ordering::SeqCst) < writes).then_some(writes)
    }

    fn known(&self) -> Option<WalPosition> {
        match self.position.load(Ordering::SeqCst) {
            0 => None,
            position => Some(WalPosition(position)),
        }
    }

    /// The position covering every write counted so far, asked of the primary with
    /// `current` when a write is not covered yet. When it cannot be read, the answer is
    /// [`WalPosition::UNKNOWN`] (only the primary is known to have the writes), and the
    /// next call asks again.
    pub(crate) fn resolve(
        &self,
        current: impl FnOnce() -> Result<WalPosition>,
    ) -> Option<WalPosition> {
        let Some(writes) = self.uncovered() else {
            return self.known();
        };
        match current() {
            Ok(position) => {
                // `position` first: a reader that sees the writes covered sees it too.
                self.position.fetch_max(position.0, Ordering::SeqCst);
                self.covered.fetch_max(writes, Ordering::SeqCst);
                self.known()
            }
            Err(_) => Some(WalPosition::UNKNOWN),
        }
    }

    /// The position a read must reach. The first read after an uncovered write goes to
    /// the primary ([`WalPosition::UNKNOWN`]), which has the write, at no extra cost;
    /// a later one asks for the position once, so that replicas serve again.
    pub(crate) fn read_target(
        &self,
        current: impl FnOnce() -> Result<WalPosition>,
    ) -> Option<WalPosition> {
        if self.uncovered().is_none() {
            return self.known();
        }
        if self.reads_behind.fetch_add(1, Ordering::SeqCst) == 0 {
            return Some(WalPosition::UNKNOWN);
        }
        self.resolve(current)
    }
}

/// What [`Db::routing_state`](crate::Db::routing_state) reports for one replica.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaState {
    /// The replica's URL, password hidden.
    pub url: String,
    /// Reachable, in recovery and within the lag bound at the last check.
    pub healthy: bool,
    /// Replay lag at the last check.
    pub lag_ms: Option<u64>,
    /// WAL replayed at the last check.
    pub replayed: Option<WalPosition>,
    /// Reads this replica served.
    pub reads: u64,
    /// Connections open and idle in its pool.
    pub connections: u32,
    pub idle: u32,
}

/// Routing counters: reads served by the primary, and each replica's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingState {
    pub primary_reads: u64,
    pub replicas: Vec<ReplicaState>,
}

/// One replica: its pool and what the read path last learned about it. Every read
/// consults this, so it is kept in atomics: no lock on the read path.
pub(crate) struct Replica {
    pub(crate) url: DatabaseUrl,
    pool: ShardedPool,
    /// Reachable, in recovery and within the lag bound at the last check.
    healthy: AtomicBool,
    /// Milliseconds since `epoch` when the replica is next checked (or, unhealthy,
    /// tried again).
    next_check_ms: AtomicU64,
    /// Lag at the last check, in ms (`u64::MAX`: not measured yet).
    lag_ms: AtomicU64,
    /// WAL replayed at the last look (0: unknown).
    replayed: AtomicU64,
    epoch: Instant,
    reads: AtomicU64,
}

#[derive(QueryableByName)]
struct Status {
    #[diesel(sql_type = Bool)]
    in_recovery: bool,
    #[diesel(sql_type = Text)]
    replayed: String,
    #[diesel(sql_type = BigInt)]
    lag_ms: i64,
}

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = Text)]
    position: String,
}

/// The primary's current WAL position: at or past every commit made before it.
pub(crate) fn current_position(conn: &mut Connection) -> Result<WalPosition> {
    let Some(c) = conn.as_postgres() else {
        return Err(Error::Config(
            "WAL positions exist only on PostgreSQL".into(),
        ));
    };
    let row: Position =
        diesel::sql_query("SELECT pg_current_wal_lsn()::text AS position").get_result(c)?;
    row.position.parse()
}

fn replay_status(conn: &mut Connection) -> Result<Status> {
    let Some(c) = conn.as_postgres() else {
        return Err(Error::Config("read replicas need PostgreSQL".into()));
    };
    // Caught up (nothing received but not replayed) means no lag, however long ago the
    // last write was; otherwise the lag is the age of the last replayed transaction.
    // Replay can be *ahead* of receipt: a restarted replica replays its own WAL, then
    // streams again from the start of a segment. That is caught up too; comparing
    // for equality judged it lagging until the primary next wrote.
    Ok(diesel::sql_query(
        "SELECT pg_is_in_recovery() AS in_recovery, \
                COALESCE(pg_last_wal_replay_lsn()::text, '0/0') AS replayed, \
                CASE WHEN pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() THEN 0 \
                     ELSE COALESCE((EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint, 0) \
                END AS lag_ms",
    )
    .get_result(c)?)
}

/// Whether the replica behind `conn` has replayed past `position` (asked live).
fn replayed_past(conn: &mut Connection, position: WalPosition) -> Result<(bool, WalPosition)> {
    let status = replay_status(conn)?;
    let replayed: WalPosition = status.replayed.parse()?;
    Ok((replayed >= position, replayed))
}

impl Replica {
    pub(crate) fn new(url: DatabaseUrl, pool: ShardedPool) -> Self {
        Replica {
            url,
            pool,
            healthy: AtomicBool::new(true),
            next_check_ms: AtomicU64::new(0),
            lag_ms: AtomicU64::new(u64::MAX),
            replayed: AtomicU64::new(0),
            epoch: Instant::now(),
            reads: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn millis(duration: Duration) -> u64 {
        u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
    }

    /// The answer of one of the router's own queries on `conn`; on an error, the
    /// connection's outcome is noted (a broken one leaves the pool) and the replica is
    /// marked down.
    fn checked<T>(
        &self,
        conn: &mut Connection,
        query: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Option<T> {
        match query(conn) {
            Ok(answer) => Some(answer),
            Err(error) => {
                conn.note_outcome::<()>(&Err(error));
                self.mark_down();
                None
            }
        }
    }

    fn mark_down(&self) {
        self.healthy.store(false, Ordering::Relaxed);
        self.next_check_ms.store(
            self.now_ms().saturating_add(Self::millis(RETRY_AFTER)),
            Ordering::Relaxed,
        );
    }

    fn replayed(&self) -> Option<WalPosition> {
        match self.replayed.load(Ordering::Relaxed) {
            0 => None,
            position => Some(WalPosition(position)),
        }
    }

    fn note_replayed(&self, position: WalPosition) {
        self.replayed.fetch_max(position.0, Ordering::Relaxed);
    }

    pub(crate) fn state(&self) -> ReplicaState {
        let (connections, idle, _) = self.pool.state();
        ReplicaState {
            url: self.url.to_string(),
            healthy: self.healthy.load(Ordering::Relaxed),
            lag_ms: Some(self.lag_ms.load(Ordering::Relaxed)).filter(|&lag| lag != u64::MAX),
            replayed: self.replayed(),
            reads: self.reads.load(Ordering::Relaxed),
            connections,
            idle,
        }
    }

    /// Runs the read `f` here if this replica is fit for it; `None` means "use
    /// another": unhealthy, unreachable, lagging, behind `position`, or failed with a
    /// retryable error (then marked down).
    pub(crate) fn try_read<T>(
        &self,
        position: Option<WalPosition>,
        max_lag: Duration,
        f: &impl Fn(&mut Connection) -> Result<T>,
    ) -> Option<Result<T>> {
        let now = self.now_ms();
        let next_check = self.next_check_ms.load(Ordering::Relaxed);
        let due = now >= next_check;
        if !due && !self.healthy.load(Ordering::Relaxed) {
            return None;
        }
        // One caller claims a due check; the others go on with the last result.
        let check = due
            && self
                .next_check_ms
                .compare_exchange(
                    next_check,
                    now.saturating_add(Self::millis(CHECK_INTERVAL)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if due && !check && !self.healthy.load(Ordering::Relaxed) {
            return None;
        }
        let Ok(mut conn) = self.pool.get_within(CHECKOUT_TIMEOUT) else {
            self.mark_down();
            return None;
        };
        if check {
            let status = self.checked(&mut conn, replay_status)?;
            let lag = Duration::from_millis(u64::try_from(status.lag_ms).unwrap_or(0));
            self.lag_ms.store(Self::millis(lag), Ordering::Relaxed);
            if let Ok(replayed) = status.replayed.parse() {
                self.note_replayed(replayed);
            }
            let healthy = status.in_recovery && lag <= max_lag;
            self.healthy.store(healthy, Ordering::Relaxed);
            if !healthy {
                return None;
            }
        }
        if let Some(position) = position {
            if self.replayed().is_none_or(|replayed| replayed < position) {
                let (caught_up, replayed) =
                    self.checked(&mut conn, |conn| replayed_past(conn, position))?;
                self.note_replayed(replayed);
                if !caught_up {
                    return None;
                }
            }
        }
        let result = conn.with_deadline(f);
        conn.note_outcome(&result);
        match result {
            Err(error) if error.is_retryable() => {
                self.mark_down();
                None
            }
            other => {
                self.reads.fetch_add(1, Ordering::Relaxed);
                Some(other)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_write_mark_asks_for_the_position_once_per_uncovered_write() {
        let mark = WriteMark::at(None);
        let asked = Cell::new(0);
        let asked = &asked;
        let current = |at: u64| {
            move || {
                asked.set(asked.get() + 1);
                Ok(WalPosition(at))
            }
        };
        assert_eq!(mark.read_target(current(1)), None, "nothing written");
        mark.note_write();
        assert_eq!(
            mark.read_target(current(5)),
            Some(WalPosition::UNKNOWN),
            "the first read after a write: the primary, nothing asked"
        );
        assert_eq!(asked.get(), 0);
        assert_eq!(mark.read_target(current(5)), Some(WalPosition(5)));
        assert_eq!(mark.resolve(current(9)), Some(WalPosition(5)), "covered");
        assert_eq!(asked.get(), 1);
        mark.note_write();
        assert_eq!(mark.resolve(current(7)), Some(WalPosition(7)));
        assert_eq!(asked.get(), 2);
    }

    #[test]
    fn a_position_that_cannot_be_read_sends_reads_to_the_primary_and_is_asked_again() {
        let mark = WriteMark::at(Some(WalPosition(3)));
        assert_eq!(mark.resolve(|| unreachable!()), Some(WalPosition(3)));
        mark.note_write();
        let down = || Err(Error::unavailable("the primary is restarting"));
        assert_eq!(mark.resolve(down), Some(WalPosition::UNKNOWN));
        assert_eq!(mark.read_target(down), Some(WalPosition::UNKNOWN));
        assert_eq!(mark.read_target(down), Some(WalPosition::UNKNOWN));
        assert_eq!(mark.resolve(|| Ok(WalPosition(8))), Some(WalPosition(8)));
    }
}
