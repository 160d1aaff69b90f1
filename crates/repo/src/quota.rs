//! Plan quotas: the count and the write it allows as one atomic step.
//!
//! Counting first and writing afterwards in separate statements lets concurrent
//! requests of one user all see the same count and all write, overshooting the plan.
//! Here the writes of one user are serialized before the count, inside a transaction
//! (a savepoint within a caller's), so each count sees every write that came before.

use diesel::prelude::*;
use jobprep_schema::users;

use crate::connection::Connection;
use crate::error::{Entity, Error, Result};
use crate::types::UserId;

/// Runs `write` if the count of what the user already has is below `limit`, else fails
/// with [`Error::QuotaExceeded`] without writing; the user's other quota-checked writes
/// wait meanwhile. `count` gives `None` when this particular write uses no quota.
pub(crate) fn within<T>(
    conn: &mut Connection,
    user_id: &UserId,
    entity: Entity,
    limit: u32,
    count: impl FnOnce(&mut Connection) -> Result<Option<i64>>,
    write: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    conn.transaction(|conn| {
        serialize_user(conn, user_id)?;
        if count(conn)?.is_some_and(|used| used >= i64::from(limit)) {
            return Err(Error::QuotaExceeded { entity, limit });
        }
        write(conn)
    })
}

/// Makes the user's quota-checked writes take turns until the transaction ends.
///
/// SQLite: nothing to do; the outermost transaction began with `BEGIN IMMEDIATE`, so
/// it already holds the database's only write lock, and its reads see every commit.
///
/// PostgreSQL: a no-op `UPDATE` of the user's row. It waits for the transaction that
/// last locked the row. At READ COMMITTED (the default, and how jobprep begins
/// transactions) each later statement takes a fresh snapshot, so the count that
/// follows sees what the previous holder committed. A `SELECT ... FOR UPDATE` would do
/// as much there, but at REPEATABLE READ or SERIALIZABLE (a server or role default,
/// or a caller's choice) the snapshot may predate the previous holder's commit and
/// the count would be stale; updating the row makes PostgreSQL refuse that case with
/// a serialization failure instead, which is `Error::Unavailable` and retried safely.
/// The row lock is the weaker `FOR NO KEY UPDATE` kind (no key column changes), so
/// foreign-key checks of concurrent job info inserts are not blocked. A missing user
/// locks nothing and owns nothing, so the count is 0 and the write finds no job info.
fn serialize_user(conn: &mut Connection, user_id: &UserId) -> Result<()> {
    if let Some(c) = conn.as_postgres() {
        diesel::update(users::table.find(user_id))
            .set(users::updated_at.eq(users::updated_at))
            .execute(c)?;
    }
    Ok(())
}
