//! Questions: practice questions under a job info. Ownership goes through the job
//! info: every query takes its owner filter from the `tenant` module.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Varchar;
use jobprep_schema::sql_types;
use jobprep_schema::{job_info, questions};

use crate::config::Backend;
use crate::connection::{on_backend, Connection};
use crate::error::{Entity, Error, Result};
use crate::page::{paged, Cursor, Page, PageRequest};
use crate::quota;
use crate::statements::{ColumnChange, ColumnValue, StableUpdate};
use crate::tenant::{self, owned_by, owned_job_info_ids, owned_job_infos};
use crate::types::{JobInfoId, QuestionDifficulty, QuestionId, Timestamp, UserId};
use crate::validate;

/// A question row.
#[derive(
    Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = questions)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    pub id: QuestionId,
    pub job_info_id: JobInfoId,
    pub text: String,
    pub difficulty: QuestionDifficulty,
    #[diesel(deserialize_as = Timestamp)]
    pub created_at: DateTime<Utc>,
    #[diesel(deserialize_as = Timestamp)]
    pub updated_at: DateTime<Utc>,
}

/// The owner of a question's job info.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = job_info)]
#[serde(rename_all = "camelCase")]
pub struct QuestionJobInfo {
    pub id: JobInfoId,
    pub user_id: UserId,
}

/// A question with its job info's id and owner.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionWithJobInfo {
    #[serde(flatten)]
    pub question: Question,
    pub job_info: QuestionJobInfo,
}

/// What an insert writes; the job info is passed separately.
///
/// Text rules, checked by [`validate`](Self::validate) before anything is written,
/// each failure an [`Error::InvalidInput`] naming the field in its JSON spelling:
/// required text must hold something other than whitespace (`"  "` counts as empty),
/// no text may contain NUL (PostgreSQL cannot store it), and lengths count characters,
/// not bytes, as PostgreSQL's `varchar(n)` does.
///
/// - `text`: required, no length limit.
/// - `difficulty`: one of `easy`, `medium`, `hard` (checked when deserialized).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewQuestion {
    pub text: String,
    pub difficulty: QuestionDifficulty,
}

impl NewQuestion {
    pub fn new(text: impl Into<String>, difficulty: QuestionDifficulty) -> Self {
        NewQuestion {
            text: text.into(),
            difficulty,
        }
    }

    pub fn validate(&self) -> Result<()> {
        validate::required_text("text", &self.text, validate::UNBOUNDED)
    }
}

/// Changes to a question; `None` leaves a column as it is. A value that is set follows
/// the rules of [`NewQuestion`]. From JSON, a field left out is `None`; an unknown
/// field, and `null` (neither column can be NULL), fail to deserialize.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuestionChanges {
    #[serde(default, deserialize_with = "crate::not_null")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "crate::not_null")]
    pub difficulty: Option<QuestionDifficulty>,
}

impl QuestionChanges {
    /// The values that are set follow the rules of [`NewQuestion`]; at least one field
    /// is set (otherwise `InvalidInput` for `changes`).
    pub fn validate(&self) -> Result<()> {
        if self == &Self::default() {
            return Err(Error::nothing_to_change());
        }
        match &self.text {
            Some(text) => validate::required_text("text", text, validate::UNBOUNDED),
            None => Ok(()),
        }
    }
}

/// What writes return: enough to invalidate caches.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, Queryable, Selectable, QueryableByName, serde::Serialize,
)]
#[diesel(table_name = questions)]
#[serde(rename_all = "camelCase")]
pub struct QuestionKey {
    pub id: QuestionId,
    pub job_info_id: JobInfoId,
}

/// (id, job info): a row the cascade removed (see the `cascade` module).
impl From<(QuestionId, JobInfoId)> for QuestionKey {
    fn from((id, job_info_id): (QuestionId, JobInfoId)) -> Self {
        QuestionKey { id, job_info_id }
    }
}

/// Inserts a question under a job info the user owns, in one statement: another
/// user's job info is [`Error::NotFound`].
pub fn insert(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    question: &NewQuestion,
) -> Result<QuestionKey> {
    insert_with_id(conn, QuestionId::generate(), user_id, job_info_id, question)
}

/// `INSERT INTO questions ... SELECT ... FROM <parent> ON CONFLICT (id) DO NOTHING`:
/// the row, under the job info `parent` selects, or nothing.
macro_rules! insert_statement {
    ($parent:expr, $id:expr, $question:expr, $now:expr) => {
        diesel::insert_into(questions::table)
            .values(
                $parent.select((
                    $id.into_sql::<sql_types::Uuid>(),
                    job_info::id,
                    $question.text.as_str().into_sql::<Varchar>(),
                    $question
                        .difficulty
                        .into_sql::<sql_types::QuestionDifficulty>(),
                    $now.into_sql::<sql_types::TimestampWithTimeZone>(),
                    $now.into_sql::<sql_types::TimestampWithTimeZone>(),
                )),
            )
            .into_columns((
                questions::id,
                questions::job_info_id,
                questions::text,
                questions::difficulty,
                questions::created_at,
                questions::updated_at,
            ))
            .on_conflict(questions::id)
            .do_nothing()
    };
}
/// [`insert`] with the id chosen before, so that running it twice inserts once: when
/// the user already has one with `id` (an earlier run committed), it answers that
/// row's key. What [`Executor::write_idempotent`](crate::Executor::write_idempotent)
/// needs to settle an insert whose outcome a lost connection left unknown.
pub fn insert_with_id(
    conn: &mut Connection,
    id: QuestionId,
    user_id: &UserId,
    job_info_id: JobInfoId,
    question: &NewQuestion,
) -> Result<QuestionKey> {
    question.validate()?;
    let now = Timestamp::now();
    tenant::insert_once(
        conn,
        Entity::JobInfo,
        "questions_pkey",
        |conn| {
            Ok(on_backend!(conn, c => insert_statement!(
                owned_job_infos(user_id).filter(job_info::id.eq(job_info_id)),
                id, question, now
            )
            .returning(QuestionKey::as_returning())
            .get_result(c)
            .optional())?)
        },
        |conn| {
            Ok(on_backend!(conn, c => questions::table
                .filter(questions::id.eq(id))
                .select((
                    QuestionKey::as_select(),
                    questions::job_info_id.eq_any(owned_job_info_ids(user_id)),
                ))
                .first(c)
                .optional())?)
        },
    )
}

/// [`insert`], if the user has fewer than `limit` questions across their job infos
/// (the plan quota [`count_for_user`] reports); else [`Error::QuotaExceeded`] and
/// nothing is written. The count and the insert are one atomic step: concurrent
/// quota-checked writes of the same user take turns (see the `quota` module), so
/// they never overshoot `limit`. The quota is checked before the job info's owner.
/// One statement on PostgreSQL.
pub fn insert_within_quota(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    question: &NewQuestion,
    limit: u32,
) -> Result<QuestionKey> {
    question.validate()?;
    let id = QuestionId::generate();
    let now = Timestamp::now();
    let statement = quota::AfterTurn {
        turn: quota::QuestionsTurn { user_id },
        write: insert_statement!(
            owned_job_infos(user_id)
                .filter(job_info::id.eq(job_info_id))
                .filter(quota::WithinQuota::new(limit)),
            id,
            question,
            now
        )
        .returning(questions::job_info_id),
    };
    let quota = quota::Quota {
        user_id,
        entity: Entity::Question,
        limit,
    };
    let job_info_id = quota.write_checked(
        conn,
        statement,
        Entity::JobInfo,
        |c| count_for_user(c, user_id).map(Some),
        |c| insert_with_id(c, id, user_id, job_info_id, question).map(|key| key.job_info_id),
    )?;
    Ok(QuestionKey { id, job_info_id })
}

/// Rows per statement: 3 parameters a row keeps a chunk under SQLite's 32,766 and
/// PostgreSQL's 65,535 parameter limits.
const BULK_CHUNK: usize = 10_000;

/// Inserts many questions under one job info the user owns: one statement (one round
/// trip) per 10,000 rows, all in one transaction. Returns the keys in input order.
pub fn insert_many(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    new_questions: &[NewQuestion],
) -> Result<Vec<QuestionKey>> {
    for question in new_questions {
        question.validate()?;
    }
    if new_questions.is_empty() {
        // Nothing to write, but another user's job info must still be "not found".
        let owned = on_backend!(conn, c => diesel::select(diesel::dsl::exists(
            owned_job_infos(user_id).filter(job_info::id.eq(job_info_id))
        ))
        .get_result::<bool>(c))?;
        return if owned {
            Ok(Vec::new())
        } else {
            Err(Error::not_found(Entity::JobInfo))
        };
    }
    let now = Timestamp::now();
    let ids: Vec<QuestionId> = new_questions
        .iter()
        .map(|_| QuestionId::generate())
        .collect();
    let run = |conn: &mut Connection| -> Result<()> {
        for (questions, ids) in new_questions.chunks(BULK_CHUNK).zip(ids.chunks(BULK_CHUNK)) {
            let inserted = insert_chunk(conn, user_id, job_info_id, now, questions, ids)?;
            if inserted != questions.len() {
                return Err(Error::not_found(Entity::JobInfo));
            }
        }
        Ok(())
    };
    // One chunk is one statement, which refuses by writing no row: no savepoint.
    let written = if new_questions.len() > BULK_CHUNK {
        conn.transaction(run)
    } else {
        conn.in_one_statement(run)
    };
    written.map_err(|error| error.parent_missing(Entity::JobInfo))?;
    Ok(ids
        .into_iter()
        .map(|id| QuestionKey { id, job_info_id })
        .collect())
}

/// `INSERT INTO questions (...) SELECT v.*, j.id FROM (VALUES ...) v JOIN job_info j
/// ON j.id = ? AND j."userId" = ?`: the ownership check and the insert in one statement.
/// The one query diesel's DSL cannot express (an `INSERT ... SELECT` over `VALUES`), so
/// its owner filter repeats the rule of the `tenant` module in SQL.
fn insert_chunk(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    now: Timestamp,
    questions: &[NewQuestion],
    ids: &[QuestionId],
) -> Result<usize> {
    let backend = conn.backend();
    let mut next = 0;
    let mut placeholder = || {
        next += 1;
        match backend {
            Backend::Postgres => format!("${next}"),
            Backend::Sqlite => "?".to_owned(),
        }
    };
    let mut sql = String::with_capacity(64 + questions.len() * 20);
    sql.push_str(
        r#"INSERT INTO "questions" ("id", "text", "difficulty", "jobInfoId", "createdAt", "updatedAt") SELECT v.column1, v.column2, v.column3, j."id", "#,
    );
    let created = placeholder();
    let updated = placeholder();
    sql.push_str(&format!("{created}, {updated} FROM (VALUES "));
    for index in 0..questions.len() {
        if index > 0 {
            sql.push_str(", ");
        }
        // A `VALUES` list gives its parameters no column type to follow, and the enum's
        // parameter is sent untyped (see `jobprep_schema::sql_types`): name it.
        let cast = match backend {
            Backend::Postgres => "::questions_question_difficulty",
            Backend::Sqlite => "",
        };
        sql.push_str(&format!(
            "({}, {}, {}{cast})",
            placeholder(),
            placeholder(),
            placeholder()
        ));
    }
    sql.push_str(&format!(
        r#") AS v JOIN "job_info" j ON j."id" = {} AND j."userId" = {}"#,
        placeholder(),
        placeholder()
    ));
    let inserted = on_backend!(conn, c => {
        let mut query = diesel::sql_query(sql.as_str())
            .into_boxed()
            .bind::<sql_types::TimestampWithTimeZone, _>(now)
            .bind::<sql_types::TimestampWithTimeZone, _>(now);
        for (question, id) in questions.iter().zip(ids) {
            query = query
                .bind::<sql_types::Uuid, _>(*id)
                .bind::<Varchar, _>(question.text.as_str())
                .bind::<sql_types::QuestionDifficulty, _>(question.difficulty);
        }
        query
            .bind::<sql_types::Uuid, _>(job_info_id)
            .bind::<Varchar, _>(user_id)
            .execute(c)
    })?;
    Ok(inserted)
}

/// The user's question with its job info's id and owner.
pub fn get(conn: &mut Connection, user_id: &UserId, id: QuestionId) -> Result<QuestionWithJobInfo> {
    on_backend!(conn, c => questions::table
        .inner_join(job_info::table)
        .filter(questions::id.eq(id))
        .filter(owned_by(user_id))
        .select((Question::as_select(), QuestionJobInfo::as_select()))
        .get_result::<(Question, QuestionJobInfo)>(c)
        .optional())?
    .map(|(question, job_info)| QuestionWithJobInfo { question, job_info })
    .ok_or(Error::not_found(Entity::Question))
}

/// The questions of the user's job info, oldest first. Someone else's job info gives
/// an empty list, as a missing one does.
pub fn list_for_job_info(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
) -> Result<Vec<Question>> {
    list(conn, user_id, job_info_id, None)
}

/// A page of [`list_for_job_info`], in its order (see [`crate::page`]).
pub fn list_page_for_job_info(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    page: &PageRequest,
) -> Result<Page<Question>> {
    let rows = list(conn, user_id, job_info_id, Some(page))?;
    Ok(Page::from_rows(rows, page, |q| {
        Cursor::new(q.created_at, q.id.as_uuid())
    }))
}

fn list(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    page: Option<&PageRequest>,
) -> Result<Vec<Question>> {
    let rows = page.map(PageRequest::rows_to_load).transpose()?;
    Ok(on_backend!(conn, c => {
        let query = questions::table
            .inner_join(job_info::table)
            .filter(job_info::id.eq(job_info_id))
            .filter(owned_by(user_id))
            .order((questions::created_at.asc(), questions::id.asc()))
            .select(Question::as_select())
            .into_boxed();
        paged!(query, page, rows, questions::created_at, questions::id, QuestionId, asc).load(c)
    })?)
}

/// How many questions the user has across their job infos (the plan quota).
/// On PostgreSQL this reads two indexes and no table row (an index-only scan of each).
pub fn count_for_user(conn: &mut Connection, user_id: &UserId) -> Result<i64> {
    Ok(on_backend!(conn, c => questions::table
        .inner_join(job_info::table)
        .filter(owned_by(user_id))
        .count()
        .get_result(c))?)
}

/// Applies `changes` to the user's question and refreshes `updatedAt`.
pub fn update(
    conn: &mut Connection,
    user_id: &UserId,
    id: QuestionId,
    changes: &QuestionChanges,
) -> Result<QuestionKey> {
    changes.validate()?;
    // One statement text whichever fields change (see the `statements` module).
    let update = StableUpdate {
        table: questions::table,
        set: (
            ColumnChange::new(questions::text, changes.text.as_deref()),
            ColumnChange::new(questions::difficulty, changes.difficulty),
            ColumnValue::new(questions::updated_at, Timestamp::now()),
        ),
        filter: questions::id
            .eq(id)
            .and(questions::job_info_id.eq_any(owned_job_info_ids(user_id))),
        returning: (questions::id, questions::job_info_id),
    };
    on_backend!(conn, c => update.get_result(c).optional())?
        .ok_or(Error::not_found(Entity::Question))
}

/// Deletes the user's question.
pub fn delete(conn: &mut Connection, user_id: &UserId, id: QuestionId) -> Result<QuestionKey> {
    on_backend!(conn, c => diesel::delete(questions::table)
        .filter(questions::id.eq(id))
        .filter(questions::job_info_id.eq_any(owned_job_info_ids(user_id)))
        .returning(QuestionKey::as_returning())
        .get_result(c)
        .optional())?
    .ok_or(Error::not_found(Entity::Question))
}
