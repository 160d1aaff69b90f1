//! Cascade deletes on PostgreSQL in one statement: a call of a function of jobprep's own
//! schema (migration `2026-12-03-000007_jobprep_functions`) that locks the row, lists
//! what its cascade removes, and deletes it. Listing after the lock is why it is a
//! function: its statements take fresh snapshots, so a child committed while the lock
//! was awaited is listed; one plain statement would list from the snapshot it started
//! with, and miss it. SQLite runs the same steps as statements in a transaction.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Nullable, Text};
use jobprep_schema::sql_types;

use crate::error::{Error, Result};
use crate::types::{InterviewId, JobInfoId, QuestionId, UserId};

/// One removed row: its kind (`user`, `job_info`, `interview`, `question`), its id
/// (none for the user, whose id the caller gave) and, for a child, its job info.
pub(crate) type RemovedRow = (String, Option<JobInfoId>, Option<JobInfoId>);

/// `SELECT ... FROM jobprep.delete_job_info($user, $id)`.
pub(crate) struct DeleteJobInfo<'a> {
    pub(crate) user_id: &'a UserId,
    pub(crate) id: JobInfoId,
}

/// `SELECT ... FROM jobprep.delete_user($user)`.
pub(crate) struct DeleteUser<'a> {
    pub(crate) user_id: &'a UserId,
}

const COLUMNS: &str = "SELECT removed_kind, removed_id, removed_job_info_id FROM ";

impl QueryFragment<Pg> for DeleteJobInfo<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(COLUMNS);
        out.push_sql("jobprep.delete_job_info(");
        out.push_bind_param::<Text, _>(self.user_id)?;
        out.push_sql(", ");
        out.push_bind_param::<sql_types::Uuid, _>(&self.id)?;
        out.push_sql(")");
        Ok(())
    }
}

impl QueryFragment<Pg> for DeleteUser<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(COLUMNS);
        out.push_sql("jobprep.delete_user(");
        out.push_bind_param::<Text, _>(self.user_id)?;
        out.push_sql(")");
        Ok(())
    }
}

macro_rules! removed_rows_query {
    ($($name:ident),*) => {$(
        impl QueryId for $name<'_> {
            type QueryId = $name<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl Query for $name<'_> {
            type SqlType = (Text, Nullable<sql_types::Uuid>, Nullable<sql_types::Uuid>);
        }

        impl<Conn> RunQueryDsl<Conn> for $name<'_> {}
    )*};
}
removed_rows_query!(DeleteJobInfo, DeleteUser);

/// The removed rows sorted by kind, each list in the function's order; the entity
/// modules make their keys of them.
#[derive(Debug, Default)]
pub(crate) struct Removed {
    pub(crate) user: bool,
    pub(crate) job_infos: Vec<JobInfoId>,
    /// (interview, its job info)
    pub(crate) interviews: Vec<(InterviewId, JobInfoId)>,
    /// (question, its job info)
    pub(crate) questions: Vec<(QuestionId, JobInfoId)>,
}

impl Removed {
    /// Sorts `rows`; a row of another shape is an error (the function in the database
    /// is not the one this version installs).
    pub(crate) fn sort(rows: Vec<RemovedRow>) -> Result<Removed> {
        let mut removed = Removed::default();
        for (kind, id, job_info_id) in rows {
            match (kind.as_str(), id, job_info_id) {
                ("user", None, None) => removed.user = true,
                ("job_info", Some(id), None) => removed.job_infos.push(id),
                ("interview", Some(id), Some(job_info_id)) => removed
                    .interviews
                    .push((InterviewId::from_uuid(id.as_uuid()), job_info_id)),
                ("question", Some(id), Some(job_info_id)) => removed
                    .questions
                    .push((QuestionId::from_uuid(id.as_uuid()), job_info_id)),
                _ => {
                    return Err(Error::Config(format!(
                        "jobprep's delete function answered an unknown row ({kind}); \
                         run `jobprep migrate` to install this version's functions"
                    )))
                }
            }
        }
        Ok(removed)
    }
}
