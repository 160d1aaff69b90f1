//! Job infos: a job a user prepares for. Every query is scoped to the owning user.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Varchar};
use jobprep_schema::{interviews, job_info, questions, sql_types, users};

use crate::cascade;
use crate::connection::{on_backend, Connection};
use crate::error::{Entity, Error, Result};
use crate::interviews::InterviewKey;
use crate::page::{paged, Cursor, Page, PageRequest};
use crate::questions::QuestionKey;
use crate::statements::{ColumnChange, ColumnValue, StableUpdate};
use crate::tenant::{self, owned_by, owned_job_infos};
use crate::types::{ExperienceLevel, JobInfoId, Timestamp, UserId};
use crate::validate;

/// A job info row.
#[derive(
    Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = job_info)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    pub id: JobInfoId,
    pub title: Option<String>,
    pub name: String,
    pub experience_level: ExperienceLevel,
    pub description: String,
    pub user_id: UserId,
    #[diesel(deserialize_as = Timestamp)]
    pub created_at: DateTime<Utc>,
    #[diesel(deserialize_as = Timestamp)]
    pub updated_at: DateTime<Utc>,
}

/// What an insert writes; the owner is passed separately.
///
/// Text rules, checked by [`validate`](Self::validate) before anything is written,
/// each failure an [`Error::InvalidInput`] naming the field in its JSON spelling:
/// required text must hold something other than whitespace (`"  "` counts as empty),
/// no text may contain NUL (PostgreSQL cannot store it), and lengths count characters,
/// not bytes, as PostgreSQL's `varchar(n)` does.
///
/// - `name`, `description`: required, no length limit.
/// - `title`: optional; when set, required text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewJobInfo {
    #[serde(default)]
    pub title: Option<String>,
    pub name: String,
    pub experience_level: ExperienceLevel,
    pub description: String,
}

impl NewJobInfo {
    pub fn new(
        name: impl Into<String>,
        experience_level: ExperienceLevel,
        description: impl Into<String>,
    ) -> Self {
        NewJobInfo {
            title: None,
            name: name.into(),
            experience_level,
            description: description.into(),
        }
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Name and description present; title absent or present.
    pub fn validate(&self) -> Result<()> {
        validate::required_text("name", &self.name, validate::UNBOUNDED)?;
        validate::required_text("description", &self.description, validate::UNBOUNDED)?;
        if let Some(title) = &self.title {
            validate::required_text("title", title, validate::UNBOUNDED)?;
        }
        Ok(())
    }
}

/// Changes to a job info: `None` leaves a column as it is; for `title`, `Some(None)`
/// sets it to NULL. A value that is set follows the rules of [`NewJobInfo`]. From
/// JSON, a field left out is `None`; an unknown field, and `null` for a column that
/// cannot be NULL, fail to deserialize. A change of no field is refused (see
/// [`validate`](Self::validate)).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobInfoChanges {
    #[serde(default, deserialize_with = "crate::double_option")]
    pub title: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::not_null")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::not_null")]
    pub experience_level: Option<ExperienceLevel>,
    #[serde(default, deserialize_with = "crate::not_null")]
    pub description: Option<String>,
}

impl JobInfoChanges {
    /// The values that are set follow the rules of [`NewJobInfo`]; at least one field
    /// is set (otherwise `InvalidInput` for `changes`: an update of nothing would only
    /// move `updatedAt` and invalidate caches).
    pub fn validate(&self) -> Result<()> {
        if self == &Self::default() {
            return Err(Error::nothing_to_change());
        }
        if let Some(name) = &self.name {
            validate::required_text("name", name, validate::UNBOUNDED)?;
        }
        if let Some(description) = &self.description {
            validate::required_text("description", description, validate::UNBOUNDED)?;
        }
        if let Some(Some(title)) = &self.title {
            validate::required_text("title", title, validate::UNBOUNDED)?;
        }
        Ok(())
    }
}

/// What writes return: enough to invalidate caches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = job_info)]
#[serde(rename_all = "camelCase")]
pub struct JobInfoKey {
    pub id: JobInfoId,
    pub user_id: UserId,
}

/// What deleting a job info removed: the job info and the rows its cascade took along.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedJobInfo {
    #[serde(flatten)]
    pub key: JobInfoKey,
    pub interviews: Vec<InterviewKey>,
    pub questions: Vec<QuestionKey>,
}

/// Inserts a job info for `user_id`, who must exist ([`Error::NotFound`] otherwise).
pub fn insert(conn: &mut Connection, user_id: &UserId, job: &NewJobInfo) -> Result<JobInfoKey> {
    insert_with_id(conn, JobInfoId::generate(), user_id, job)
}

/// [`insert`] with the id chosen before, so that running it twice inserts once: when
/// the user already has a job info with `id` (an earlier run committed), it answers
/// that row's key. What [`Executor::write_idempotent`](crate::Executor::write_idempotent)
/// needs to settle an insert whose outcome a lost connection left unknown.
pub fn insert_with_id(
    conn: &mut Connection,
    id: JobInfoId,
    user_id: &UserId,
    job: &NewJobInfo,
) -> Result<JobInfoKey> {
    job.validate()?;
    let now = Timestamp::now();
    tenant::insert_once(
        conn,
        Entity::User,
        "job_info_pkey",
        |conn| {
            Ok(on_backend!(conn, c => diesel::insert_into(job_info::table)
                .values(users::table.filter(users::id.eq(user_id)).select((
                    id.into_sql::<sql_types::Uuid>(),
                    job.title.as_deref().into_sql::<Nullable<Varchar>>(),
                    job.name.as_str().into_sql::<Varchar>(),
                    job.experience_level.into_sql::<sql_types::ExperienceLevel>(),
                    job.description.as_str().into_sql::<Varchar>(),
                    users::id,
                    now.into_sql::<sql_types::TimestampWithTimeZone>(),
                    now.into_sql::<sql_types::TimestampWithTimeZone>(),
                )))
                .into_columns((
                    job_info::id,
                    job_info::title,
                    job_info::name,
                    job_info::experience_level,
                    job_info::description,
                    job_info::user_id,
                    job_info::created_at,
                    job_info::updated_at,
                ))
                .on_conflict(job_info::id)
                .do_nothing()
                .returning(JobInfoKey::as_returning())
                .get_result(c)
                .optional())?)
        },
        |conn| {
            Ok(on_backend!(conn, c => job_info::table
                .filter(job_info::id.eq(id))
                .select((JobInfoKey::as_select(), owned_by(user_id)))
                .first(c)
                .optional())?)
        },
    )
}

/// Applies `changes` to the user's job info and refreshes `updatedAt`.
pub fn update(
    conn: &mut Connection,
    user_id: &UserId,
    id: JobInfoId,
    changes: &JobInfoChanges,
) -> Result<JobInfoKey> {
    changes.validate()?;
    // One statement text whichever fields change (see the `statements` module).
    let update = StableUpdate {
        table: job_info::table,
        set: (
            ColumnChange::nullable(
                job_info::title,
                changes.title.as_ref().map(|t| t.as_deref()),
            ),
            ColumnChange::new(job_info::name, changes.name.as_deref()),
            ColumnChange::new(job_info::experience_level, changes.experience_level),
            ColumnChange::new(job_info::description, changes.description.as_deref()),
            ColumnValue::new(job_info::updated_at, Timestamp::now()),
        ),
        filter: job_info::id.eq(id).and(owned_by(user_id)),
        returning: (job_info::id, job_info::user_id),
    };
    on_backend!(conn, c => update.get_result(c).optional())?
        .ok_or(Error::not_found(Entity::JobInfo))
}

/// The user's job info.
pub fn get(conn: &mut Connection, user_id: &UserId, id: JobInfoId) -> Result<JobInfo> {
    on_backend!(conn, c => owned_job_infos(user_id)
        .filter(job_info::id.eq(id))
        .select(JobInfo::as_select())
        .get_result(c)
        .optional())?
    .ok_or(Error::not_found(Entity::JobInfo))
}

/// The user's job infos, most recently updated first.
pub fn list_for_user(conn: &mut Connection, user_id: &UserId) -> Result<Vec<JobInfo>> {
    list(conn, user_id, None)
}

/// A page of [`list_for_user`], in its order (see [`crate::page`]).
pub fn list_page_for_user(
    conn: &mut Connection,
    user_id: &UserId,
    page: &PageRequest,
) -> Result<Page<JobInfo>> {
    let rows = list(conn, user_id, Some(page))?;
    Ok(Page::from_rows(rows, page, |j| {
        Cursor::new(j.updated_at, j.id.as_uuid())
    }))
}

fn list(
    conn: &mut Connection,
    user_id: &UserId,
    page: Option<&PageRequest>,
) -> Result<Vec<JobInfo>> {
    let rows = page.map(PageRequest::rows_to_load).transpose()?;
    Ok(on_backend!(conn, c => {
        let query = owned_job_infos(user_id)
            .order((job_info::updated_at.desc(), job_info::id.desc()))
            .select(JobInfo::as_select())
            .into_boxed();
        paged!(query, page, rows, job_info::updated_at, job_info::id, JobInfoId, desc).load(c)
    })?)
}

/// Whether the user has any job info left.
pub fn user_has_any(conn: &mut Connection, user_id: &UserId) -> Result<bool> {
    Ok(
        on_backend!(conn, c => diesel::select(diesel::dsl::exists(owned_job_infos(user_id)))
        .get_result(c))?,
    )
}

/// Deletes the user's job info and, by cascade, its interviews and questions.
pub fn delete(conn: &mut Connection, user_id: &UserId, id: JobInfoId) -> Result<RemovedJobInfo> {
    // PostgreSQL: one statement (see the `cascade` module).
    let statement = cascade::DeleteJobInfo { user_id, id };
    if let Some(rows) = conn.in_one_postgres_statement(|c| statement.load(c)) {
        let removed = cascade::Removed::sort(rows?)?;
        if removed.job_infos.is_empty() {
            return Err(Error::not_found(Entity::JobInfo));
        }
        return Ok(RemovedJobInfo {
            key: JobInfoKey {
                id,
                user_id: user_id.clone(),
            },
            interviews: removed.interviews.into_iter().map(Into::into).collect(),
            questions: removed.questions.into_iter().map(Into::into).collect(),
        });
    }
    // Statement by statement: SQLite, or PostgreSQL without jobprep's functions.
    conn.transaction(|conn| {
        // Lock the job info first on PostgreSQL, so no interview or question can be
        // added between listing the cascade and deleting (SQLite's BEGIN IMMEDIATE
        // already keeps other writers out).
        if let Some(c) = conn.as_postgres() {
            owned_job_infos(user_id)
                .filter(job_info::id.eq(id))
                .select(job_info::id)
                .for_update()
                .execute(c)?;
        }
        let interviews = on_backend!(conn, c => interviews::table
            .filter(interviews::job_info_id.eq(id))
            .select(InterviewKey::as_select())
            .load(c))?;
        let questions = on_backend!(conn, c => questions::table
            .filter(questions::job_info_id.eq(id))
            .select(QuestionKey::as_select())
            .load(c))?;
        let key = on_backend!(conn, c => diesel::delete(owned_job_infos(user_id).filter(job_info::id.eq(id)))
            .returning(JobInfoKey::as_returning())
            .get_result(c)
            .optional())?
        .ok_or(Error::not_found(Entity::JobInfo))?;
        Ok(RemovedJobInfo {
            key,
            interviews,
            questions,
        })
    })
}
