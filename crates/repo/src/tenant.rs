//! The tenant rule, in one place: a job info belongs to the user in its `userId`, and
//! interviews and questions belong to whoever owns their job info. Every scoped query
//! takes its owner filter from here, so the invariant has one home.

use diesel::dsl::{Eq, Filter, Select};
use diesel::prelude::*;
use jobprep_schema::job_info;

use crate::connection::Connection;
use crate::error::{ConstraintKind, Entity, Error, Result};
use crate::types::UserId;

/// `job_info."userId" = $user`: the owner filter, for queries on `job_info` or joined
/// to it.
pub(crate) type OwnedBy<'a> = Eq<job_info::user_id, &'a UserId>;

pub(crate) fn owned_by(user_id: &UserId) -> OwnedBy<'_> {
    job_info::user_id.eq(user_id)
}

/// The user's job infos.
pub(crate) type OwnedJobInfos<'a> = Filter<job_info::table, OwnedBy<'a>>;

pub(crate) fn owned_job_infos(user_id: &UserId) -> OwnedJobInfos<'_> {
    job_info::table.filter(owned_by(user_id))
}

/// The ids of the user's job infos, for `job_info_id.eq_any(..)` on child tables.
pub(crate) type OwnedJobInfoIds<'a> = Select<OwnedJobInfos<'a>, job_info::id>;

pub(crate) fn owned_job_info_ids(user_id: &UserId) -> OwnedJobInfoIds<'_> {
    owned_job_infos(user_id).select(job_info::id)
}

/// Runs `insert`: one statement that writes its row only where the parent row is there
/// and the user's (`INSERT ... SELECT` from the parent) and does nothing when a row with
/// its id exists (`ON CONFLICT (id) DO NOTHING`). So a refusal writes nothing and fails
/// nothing, and inside a caller's transaction the statement needs no savepoint (two
/// round trips each on PostgreSQL). When it wrote no row, `existing` reads the row with
/// its id, and whether the user owns it: the user's, an earlier run of the same insert
/// committed it (see [`Executor::write_idempotent`](crate::Executor::write_idempotent));
/// another user's, a `Conflict` on `primary_key` (only a caller choosing ids can make
/// one); none, the parent is missing or another user's: `NotFound` for `parent`. A
/// foreign-key
/// failure means another transaction deleted the parent after this statement found it:
/// outside a transaction that is `NotFound` too (see [`Connection::in_one_statement`]
/// for inside one).
pub(crate) fn insert_once<T>(
    conn: &mut Connection,
    parent: Entity,
    primary_key: &str,
    insert: impl FnOnce(&mut Connection) -> Result<Option<T>>,
    existing: impl FnOnce(&mut Connection) -> Result<Option<(T, bool)>>,
) -> Result<T> {
    let inserted = conn
        .in_one_statement(insert)
        .map_err(|error| error.parent_missing(parent))?;
    if let Some(row) = inserted {
        return Ok(row);
    }
    match existing(conn)? {
        Some((row, true)) => Ok(row),
        Some((_, false)) => Err(Error::Conflict {
            kind: ConstraintKind::Unique,
            constraint: Some(primary_key.to_owned()),
        }),
        None => Err(Error::not_found(parent)),
    }
}
