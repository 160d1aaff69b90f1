//! The tenant rule, in one place: a job info belongs to the user in its `userId`, and
//! interviews and questions belong to whoever owns their job info. Every scoped query
//! takes its owner filter from here, so the invariant has one home.

use diesel::dsl::{Eq, Filter, Select};
use diesel::prelude::*;
use jobprep_schema::job_info;

use crate::connection::Connection;
use crate::error::{Entity, Error, Result};
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

/// Runs `insert`, an `INSERT ... SELECT` of a child row (interview, question) from the
/// user's job info, and says why nothing was written: `None` (the select found no job
/// info of the user's) and a foreign-key failure (the job info was deleted by another
/// transaction after the statement found it) are both the documented `NotFound` for
/// the job info. Inside a caller's transaction the statement gets a savepoint, so a
/// refusal leaves that transaction usable.
pub(crate) fn insert_child<T>(
    conn: &mut Connection,
    insert: impl FnOnce(&mut Connection) -> Result<Option<T>>,
) -> Result<T> {
    conn.guarded(|conn| insert(conn)?.ok_or(Error::not_found(Entity::JobInfo)))
        .map_err(|error| error.parent_missing(Entity::JobInfo))
}

/// For an insert of a row whose id was chosen before it ran: a conflict on the table's
/// primary key means an earlier run of the same insert committed (the ids are random,
/// so no other row can hold it). `existing` reads that row's key where `user_id` owns
/// it: found, the insert is done and answers the key; not found, the conflict stands.
pub(crate) fn done_before<T>(
    conn: &mut Connection,
    error: Error,
    primary_key: &str,
    existing: impl FnOnce(&mut Connection) -> Result<Option<T>>,
) -> Result<T> {
    if !error.breaks(primary_key) {
        return Err(error);
    }
    existing(conn)?.ok_or(error)
}
