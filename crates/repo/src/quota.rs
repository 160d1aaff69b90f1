//! Plan quotas: the count and the write it allows as one atomic step.
//!
//! Counting first and writing afterwards in separate statements lets concurrent
//! requests of one user all see the same count and all write, overshooting the plan.
//! Here the writes of one user are serialized before the count, so each count sees
//! every write that came before.
//!
//! PostgreSQL: one statement, one round trip ([`AfterTurn`]). A function of jobprep's
//! own schema (migration `2026-12-03-000007_jobprep_functions`) takes the user's turn
//! and counts; it must be a function because its count, run after the lock, takes a
//! fresh snapshot, where a plain statement's would predate the lock's previous holder.
//! The write, in the same statement, is filtered by [`WithinQuota`].
//!
//! SQLite, and PostgreSQL without the functions (a database not yet migrated to this
//! version): [`Quota::write_checked`] takes the turn and counts as statements inside a
//! transaction.

use diesel::expression::{is_aggregate, AppearsOnTable, SelectableExpression, ValidGrouping};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::LoadQuery;
use diesel::sql_types::{BigInt, Bool, IntoNullable, Nullable, Text};
use jobprep_schema::{sql_types, users};

use crate::connection::Connection;
use crate::error::{Entity, Error, Result};
use crate::types::{InterviewId, JobInfoId, UserId};

/// `WITH turn AS MATERIALIZED (SELECT <turn> AS used), written AS (<write>)
/// SELECT turn.used, written.* FROM turn LEFT JOIN written ON true`: the turn is taken
/// (and the count made) exactly once, whether or not the write finds its row, so the
/// quota is checked first; `write` returns one column and filters by [`WithinQuota`].
/// Loads `(used, written)`: `used` is NULL when the write uses no quota.
#[derive(QueryId)]
pub(crate) struct AfterTurn<T, W> {
    pub(crate) turn: T,
    pub(crate) write: W,
}

impl<T: QueryFragment<Pg>, W: QueryFragment<Pg>> QueryFragment<Pg> for AfterTurn<T, W> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH turn AS MATERIALIZED (SELECT ");
        self.turn.walk_ast(out.reborrow())?;
        out.push_sql(" AS used), written AS (");
        self.write.walk_ast(out.reborrow())?;
        out.push_sql(") SELECT turn.used, written.* FROM turn LEFT JOIN written ON true");
        Ok(())
    }
}

impl<T, W: Query> Query for AfterTurn<T, W>
where
    W::SqlType: IntoNullable,
{
    type SqlType = (Nullable<BigInt>, <W::SqlType as IntoNullable>::Nullable);
}

impl<T, W, Conn> RunQueryDsl<Conn> for AfterTurn<T, W> {}

/// `jobprep.questions_used_after_turn($user)`: the user's turn, then their questions.
pub(crate) struct QuestionsTurn<'a> {
    pub(crate) user_id: &'a UserId,
}

impl QueryId for QuestionsTurn<'_> {
    type QueryId = QuestionsTurn<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for QuestionsTurn<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("jobprep.questions_used_after_turn(");
        out.push_bind_param::<Text, _>(self.user_id)?;
        out.push_sql(")");
        Ok(())
    }
}

/// `jobprep.interviews_used_after_turn($user, $interview)`: the user's turn, then
/// their interviews with a chat id; NULL when `interview` already counts or is not the
/// user's.
pub(crate) struct InterviewsTurn<'a> {
    pub(crate) user_id: &'a UserId,
    pub(crate) interview: Option<InterviewId>,
}

impl QueryId for InterviewsTurn<'_> {
    type QueryId = InterviewsTurn<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for InterviewsTurn<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("jobprep.interviews_used_after_turn(");
        out.push_bind_param::<Text, _>(self.user_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<sql_types::Uuid>, _>(&self.interview)?;
        out.push_sql(")");
        Ok(())
    }
}

/// `COALESCE((SELECT used FROM turn) < $limit, true)`: the filter of an
/// [`AfterTurn`]'s write.
#[derive(Debug, Clone, Copy, QueryId)]
pub(crate) struct WithinQuota {
    limit: i64,
}

impl WithinQuota {
    pub(crate) fn new(limit: u32) -> Self {
        WithinQuota {
            limit: i64::from(limit),
        }
    }
}

impl Expression for WithinQuota {
    type SqlType = Bool;
}

impl<QS> AppearsOnTable<QS> for WithinQuota {}

impl<QS> SelectableExpression<QS> for WithinQuota {}

impl<GB> ValidGrouping<GB> for WithinQuota {
    type IsAggregate = is_aggregate::Never;
}

impl QueryFragment<Pg> for WithinQuota {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("COALESCE((SELECT used FROM turn) < ");
        out.push_bind_param::<BigInt, _>(&self.limit)?;
        out.push_sql(", true)");
        Ok(())
    }
}

/// One user's plan quota for one kind of row: what a quota-checked write is checked
/// against.
pub(crate) struct Quota<'a> {
    pub(crate) user_id: &'a UserId,
    pub(crate) entity: Entity,
    pub(crate) limit: u32,
}

impl Quota<'_> {
    /// Runs a quota-checked write: `statement` (an [`AfterTurn`] whose write returns
    /// the row's job info) in one statement on PostgreSQL; else statement by
    /// statement (SQLite, or the functions missing; see
    /// [`Connection::in_one_postgres_statement`]), where `count` gives what the user
    /// already has (`None`: this write uses no quota) and `write` writes. Answers the
    /// written row's job info; [`Error::QuotaExceeded`] when the count was at the
    /// limit; else `NotFound` for `missing`, also when a concurrent delete removed it
    /// (a foreign-key failure).
    pub(crate) fn write_checked<'q, S>(
        &self,
        conn: &mut Connection,
        statement: S,
        missing: Entity,
        count: impl FnOnce(&mut Connection) -> Result<Option<i64>>,
        write: impl FnOnce(&mut Connection) -> Result<JobInfoId>,
    ) -> Result<JobInfoId>
    where
        S: LoadQuery<'q, PgConnection, (Option<i64>, Option<JobInfoId>)>,
    {
        let Some(loaded) = conn.in_one_postgres_statement(|c| statement.get_result(c)) else {
            return self.statement_by_statement(conn, count, write);
        };
        let (used, written) = loaded.map_err(|error| error.parent_missing(missing))?;
        match written {
            Some(job_info_id) => Ok(job_info_id),
            None if used.is_some_and(|used| self.reached(used)) => Err(self.exceeded()),
            None => Err(Error::not_found(missing)),
        }
    }

    /// Runs `write` if `count` is below the limit, else fails with
    /// [`Error::QuotaExceeded`] without writing. In a transaction (a savepoint within a
    /// caller's): SQLite's way, and PostgreSQL's where jobprep's functions are missing
    /// (a database not yet migrated to this version).
    fn statement_by_statement<T>(
        &self,
        conn: &mut Connection,
        count: impl FnOnce(&mut Connection) -> Result<Option<i64>>,
        write: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        conn.transaction(|conn| {
            serialize_user(conn, self.user_id)?;
            if count(conn)?.is_some_and(|used| self.reached(used)) {
                return Err(self.exceeded());
            }
            write(conn)
        })
    }

    fn reached(&self, used: i64) -> bool {
        used >= i64::from(self.limit)
    }

    fn exceeded(&self) -> Error {
        Error::QuotaExceeded {
            entity: self.entity,
            limit: self.limit,
        }
    }
}

/// Makes the user's quota-checked writes take turns until the transaction ends.
///
/// SQLite: nothing to do; the outermost transaction began with `BEGIN IMMEDIATE`, so
/// it already holds the database's only write lock, and its reads see every commit.
///
/// PostgreSQL: what `jobprep.*_used_after_turn` does (see migration 000007 for why an
/// update), as a statement of its own: at READ COMMITTED the count that follows takes
/// a fresh snapshot.
fn serialize_user(conn: &mut Connection, user_id: &UserId) -> Result<()> {
    if let Some(c) = conn.as_postgres() {
        diesel::update(users::table.find(user_id))
            .set(users::updated_at.eq(users::updated_at))
            .execute(c)?;
    }
    Ok(())
}
