//! Interviews: mock interviews under a job info. Ownership goes through the job info:
//! every query takes its owner filter from the `tenant` module.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Varchar};
use jobprep_schema::sql_types;
use jobprep_schema::{interviews, job_info};

use crate::connection::{on_backend, Connection};
use crate::error::{Entity, Error, Result};
use crate::page::{paged, Cursor, Page, PageRequest};
use crate::quota;
use crate::statements::{ColumnChange, ColumnValue, StableUpdate};
use crate::tenant::{self, owned_by, owned_job_info_ids, owned_job_infos};
use crate::types::{ExperienceLevel, InterviewId, JobInfoId, Timestamp, UserId};
use crate::validate;

/// An interview row.
#[derive(
    Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = interviews)]
#[serde(rename_all = "camelCase")]
pub struct Interview {
    pub id: InterviewId,
    pub job_info_id: JobInfoId,
    pub duration: String,
    pub hume_chat_id: Option<String>,
    pub feedback: Option<String>,
    #[diesel(deserialize_as = Timestamp)]
    pub created_at: DateTime<Utc>,
    #[diesel(deserialize_as = Timestamp)]
    pub updated_at: DateTime<Utc>,
}

/// The parts of the job info an interview page shows.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = job_info)]
#[serde(rename_all = "camelCase")]
pub struct InterviewJobInfo {
    pub id: JobInfoId,
    pub user_id: UserId,
    pub title: Option<String>,
    pub description: String,
    pub experience_level: ExperienceLevel,
}

/// An interview with its job info, as the original app's interview page reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterviewWithJobInfo {
    #[serde(flatten)]
    pub interview: Interview,
    pub job_info: InterviewJobInfo,
}

/// What an insert writes; the job info is passed separately.
///
/// Text rules, checked by [`validate`](Self::validate) before anything is written,
/// each failure an [`Error::InvalidInput`] naming the field in its JSON spelling:
/// required text must hold something other than whitespace (`"  "` counts as empty),
/// no text may contain NUL (PostgreSQL cannot store it), and lengths count characters,
/// not bytes, as PostgreSQL's `varchar(n)` does.
///
/// - `duration`: `HH:MM:SS` exactly: hours of 2 to 6 digits, minutes and seconds of
///   2 digits from `00` to `59`, ASCII digits only, nothing around it (`00:12:34`,
///   `123:00:01`; not `1:00:00`, `00:60:00`, `00:12:34.5` or ` 00:12:34`).
/// - `humeChatId`: optional; when set, required text.
///
/// ```
/// use jobprep_repo::{interviews::NewInterview, Error};
/// let mut interview = NewInterview::new();
/// assert_eq!(interview.duration, "00:00:00");
/// for ok in ["00:12:34", "123:00:01"] {
///     interview.duration = ok.into();
///     assert!(interview.validate().is_ok(), "{ok}");
/// }
/// for bad in ["1:00:00", "00:60:00", "00:12:34.5", " 00:12:34"] {
///     interview.duration = bad.into();
///     assert!(matches!(interview.validate(), Err(Error::InvalidInput { field: "duration", .. })));
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewInterview {
    pub duration: String,
    #[serde(default)]
    pub hume_chat_id: Option<String>,
}

impl Default for NewInterview {
    fn default() -> Self {
        NewInterview::new()
    }
}

impl NewInterview {
    /// A new interview that has not started yet (`00:00:00`).
    pub fn new() -> Self {
        NewInterview {
            duration: "00:00:00".into(),
            hume_chat_id: None,
        }
    }

    /// The same interview, already held in the chat with this id.
    pub fn with_hume_chat_id(mut self, hume_chat_id: impl Into<String>) -> Self {
        self.hume_chat_id = Some(hume_chat_id.into());
        self
    }

    pub fn validate(&self) -> Result<()> {
        validate::duration(&self.duration)?;
        if let Some(chat) = &self.hume_chat_id {
            validate::required_text("humeChatId", chat, validate::UNBOUNDED)?;
        }
        Ok(())
    }
}

/// Changes to an interview: `None` leaves a column as it is; for `hume_chat_id` and
/// `feedback`, `Some(None)` sets it to NULL. A value that is set follows the rules of
/// [`NewInterview`]; `feedback`, when set, is required text (not blank, no NUL). From
/// JSON, a field left out is `None`; an unknown field, and `null` for `duration`,
/// fail to deserialize.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterviewChanges {
    #[serde(default, deserialize_with = "crate::not_null")]
    pub duration: Option<String>,
    #[serde(default, deserialize_with = "crate::double_option")]
    pub hume_chat_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::double_option")]
    pub feedback: Option<Option<String>>,
}

impl InterviewChanges {
    /// The values that are set follow the rules of [`NewInterview`]; at least one field
    /// is set (otherwise `InvalidInput` for `changes`).
    pub fn validate(&self) -> Result<()> {
        if self == &Self::default() {
            return Err(Error::nothing_to_change());
        }
        if let Some(duration) = &self.duration {
            validate::duration(duration)?;
        }
        if let Some(Some(chat)) = &self.hume_chat_id {
            validate::required_text("humeChatId", chat, validate::UNBOUNDED)?;
        }
        if let Some(Some(feedback)) = &self.feedback {
            validate::required_text("feedback", feedback, validate::UNBOUNDED)?;
        }
        Ok(())
    }
}

/// What writes return: enough to invalidate caches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = interviews)]
#[serde(rename_all = "camelCase")]
pub struct InterviewKey {
    pub id: InterviewId,
    pub job_info_id: JobInfoId,
}

/// (id, job info): a row the cascade removed (see the `cascade` module).
impl From<(InterviewId, JobInfoId)> for InterviewKey {
    fn from((id, job_info_id): (InterviewId, JobInfoId)) -> Self {
        InterviewKey { id, job_info_id }
    }
}

/// Inserts an interview under a job info the user owns, in one statement
/// (`INSERT ... SELECT` from the owned job info): another user's job info is
/// [`Error::NotFound`].
pub fn insert(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    interview: &NewInterview,
) -> Result<InterviewKey> {
    insert_with_id(
        conn,
        InterviewId::generate(),
        user_id,
        job_info_id,
        interview,
    )
}

/// `INSERT INTO interviews ... SELECT ... FROM <parent> ON CONFLICT (id) DO NOTHING`:
/// the row, under the job info `parent` selects, or nothing.
macro_rules! insert_statement {
    ($parent:expr, $id:expr, $interview:expr, $now:expr) => {
        diesel::insert_into(interviews::table)
            .values(
                $parent.select((
                    $id.into_sql::<sql_types::Uuid>(),
                    job_info::id,
                    $interview.duration.as_str().into_sql::<Varchar>(),
                    $interview
                        .hume_chat_id
                        .as_deref()
                        .into_sql::<Nullable<Varchar>>(),
                    $now.into_sql::<sql_types::TimestampWithTimeZone>(),
                    $now.into_sql::<sql_types::TimestampWithTimeZone>(),
                )),
            )
            .into_columns((
                interviews::id,
                interviews::job_info_id,
                interviews::duration,
                interviews::hume_chat_id,
                interviews::created_at,
                interviews::updated_at,
            ))
            .on_conflict(interviews::id)
            .do_nothing()
    };
}

/// `UPDATE interviews SET <changes> WHERE <filter> RETURNING <returning>`, one text
/// whichever fields change (see the `statements` module).
macro_rules! update_statement {
    ($changes:expr, $filter:expr, $returning:expr) => {
        StableUpdate {
            table: interviews::table,
            set: (
                ColumnChange::new(interviews::duration, $changes.duration.as_deref()),
                ColumnChange::nullable(
                    interviews::hume_chat_id,
                    $changes.hume_chat_id.as_ref().map(|c| c.as_deref()),
                ),
                ColumnChange::nullable(
                    interviews::feedback,
                    $changes.feedback.as_ref().map(|f| f.as_deref()),
                ),
                ColumnValue::new(interviews::updated_at, Timestamp::now()),
            ),
            filter: $filter,
            returning: $returning,
        }
    };
}

/// [`insert`] with the id chosen before, so that running it twice inserts once: when
/// the user already has one with `id` (an earlier run committed), it answers that
/// row's key. What [`Executor::write_idempotent`](crate::Executor::write_idempotent)
/// needs to settle an insert whose outcome a lost connection left unknown.
pub fn insert_with_id(
    conn: &mut Connection,
    id: InterviewId,
    user_id: &UserId,
    job_info_id: JobInfoId,
    interview: &NewInterview,
) -> Result<InterviewKey> {
    interview.validate()?;
    let now = Timestamp::now();
    tenant::insert_once(
        conn,
        Entity::JobInfo,
        "interviews_pkey",
        |conn| {
            Ok(on_backend!(conn, c => insert_statement!(
                owned_job_infos(user_id).filter(job_info::id.eq(job_info_id)),
                id, interview, now
            )
            .returning(InterviewKey::as_returning())
            .get_result(c)
            .optional())?)
        },
        |conn| {
            Ok(on_backend!(conn, c => interviews::table
                .filter(interviews::id.eq(id))
                .select((
                    InterviewKey::as_select(),
                    interviews::job_info_id.eq_any(owned_job_info_ids(user_id)),
                ))
                .first(c)
                .optional())?)
        },
    )
}

/// [`insert`], checked against the plan quota: an interview with a chat id counts
/// (as [`count_for_user`] reports), so inserting one when the user already has `limit`
/// is [`Error::QuotaExceeded`] and writes nothing. One without a chat id does not count
/// and is inserted unchecked; setting its chat id later is the write that
/// [`update_within_quota`] checks. The count and the insert are one atomic step:
/// concurrent quota-checked writes of the same user take turns (see the `quota`
/// module), so they never overshoot `limit`. The quota is checked before the job
/// info's owner.
pub fn insert_within_quota(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    interview: &NewInterview,
    limit: u32,
) -> Result<InterviewKey> {
    interview.validate()?;
    if interview.hume_chat_id.is_none() {
        return insert(conn, user_id, job_info_id, interview);
    }
    let id = InterviewId::generate();
    let now = Timestamp::now();
    let statement = quota::AfterTurn {
        turn: quota::InterviewsTurn {
            user_id,
            interview: None,
        },
        write: insert_statement!(
            owned_job_infos(user_id)
                .filter(job_info::id.eq(job_info_id))
                .filter(quota::WithinQuota::new(limit)),
            id,
            interview,
            now
        )
        .returning(interviews::job_info_id),
    };
    let quota = quota::Quota {
        user_id,
        entity: Entity::Interview,
        limit,
    };
    let job_info_id = quota.write_checked(
        conn,
        statement,
        Entity::JobInfo,
        |c| count_for_user(c, user_id).map(Some),
        |c| insert_with_id(c, id, user_id, job_info_id, interview).map(|key| key.job_info_id),
    )?;
    Ok(InterviewKey { id, job_info_id })
}

/// [`update`], checked against the plan quota when it makes the interview count:
/// setting a chat id on an interview that has none, when the user already has `limit`
/// interviews with one, is [`Error::QuotaExceeded`] and writes nothing. Every other
/// change (no chat id given, a new chat id for an interview that already counts,
/// clearing it) is applied as [`update`] applies it. Atomic like
/// [`insert_within_quota`].
pub fn update_within_quota(
    conn: &mut Connection,
    user_id: &UserId,
    id: InterviewId,
    changes: &InterviewChanges,
    limit: u32,
) -> Result<InterviewKey> {
    changes.validate()?;
    if !matches!(changes.hume_chat_id, Some(Some(_))) {
        return update(conn, user_id, id, changes);
    }
    let statement = quota::AfterTurn {
        turn: quota::InterviewsTurn {
            user_id,
            interview: Some(id),
        },
        write: update_statement!(
            changes,
            interviews::id
                .eq(id)
                .and(interviews::job_info_id.eq_any(owned_job_info_ids(user_id)))
                .and(quota::WithinQuota::new(limit)),
            interviews::job_info_id
        ),
    };
    let quota = quota::Quota {
        user_id,
        entity: Entity::Interview,
        limit,
    };
    let job_info_id = quota.write_checked(
        conn,
        statement,
        Entity::Interview,
        |c| {
            // Checked after the user's turn began, so a concurrent quota-checked write
            // cannot give the interview its chat id in between.
            let current = get(c, user_id, id)?;
            if current.interview.hume_chat_id.is_some() {
                // Already counted: changing its chat id uses no more quota.
                Ok(None)
            } else {
                count_for_user(c, user_id).map(Some)
            }
        },
        |c| update(c, user_id, id, changes).map(|key| key.job_info_id),
    )?;
    Ok(InterviewKey { id, job_info_id })
}

/// Applies `changes` to the user's interview and refreshes `updatedAt`.
pub fn update(
    conn: &mut Connection,
    user_id: &UserId,
    id: InterviewId,
    changes: &InterviewChanges,
) -> Result<InterviewKey> {
    changes.validate()?;
    let update = update_statement!(
        changes,
        interviews::id
            .eq(id)
            .and(interviews::job_info_id.eq_any(owned_job_info_ids(user_id))),
        (interviews::id, interviews::job_info_id)
    );
    on_backend!(conn, c => update.get_result(c).optional())?
        .ok_or(Error::not_found(Entity::Interview))
}

/// The user's interview with its job info, in one query.
pub fn get(
    conn: &mut Connection,
    user_id: &UserId,
    id: InterviewId,
) -> Result<InterviewWithJobInfo> {
    on_backend!(conn, c => interviews::table
        .inner_join(job_info::table)
        .filter(interviews::id.eq(id))
        .filter(owned_by(user_id))
        .select((Interview::as_select(), InterviewJobInfo::as_select()))
        .get_result::<(Interview, InterviewJobInfo)>(c)
        .optional())?
    .map(|(interview, job_info)| InterviewWithJobInfo {
        interview,
        job_info,
    })
    .ok_or(Error::not_found(Entity::Interview))
}

/// The interviews of the user's job info that have a chat id (those held, as the
/// original app lists them), most recently updated first. Someone else's job info
/// gives an empty list, as a missing one does.
pub fn list_for_job_info(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
) -> Result<Vec<Interview>> {
    list(conn, user_id, job_info_id, HeldOnly(true), None)
}

/// A page of [`list_for_job_info`], in its order (see [`crate::page`]).
pub fn list_page_for_job_info(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    page: &PageRequest,
) -> Result<Page<Interview>> {
    let rows = list(conn, user_id, job_info_id, HeldOnly(true), Some(page))?;
    Ok(Page::from_rows(rows, page, cursor_of))
}

/// A page of [`list_all_for_job_info`], in its order (see [`crate::page`]).
pub fn list_all_page_for_job_info(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    page: &PageRequest,
) -> Result<Page<Interview>> {
    let rows = list(conn, user_id, job_info_id, HeldOnly(false), Some(page))?;
    Ok(Page::from_rows(rows, page, cursor_of))
}

fn cursor_of(interview: &Interview) -> Cursor {
    Cursor::new(interview.updated_at, interview.id.as_uuid())
}

/// Every interview of the user's job info, with a chat id or not, most recently
/// updated first. Someone else's job info gives an empty list.
pub fn list_all_for_job_info(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
) -> Result<Vec<Interview>> {
    list(conn, user_id, job_info_id, HeldOnly(false), None)
}

/// Whether a list keeps only interviews that have a chat id.
struct HeldOnly(bool);

fn list(
    conn: &mut Connection,
    user_id: &UserId,
    job_info_id: JobInfoId,
    held_only: HeldOnly,
    page: Option<&PageRequest>,
) -> Result<Vec<Interview>> {
    let rows = page.map(PageRequest::rows_to_load).transpose()?;
    Ok(on_backend!(conn, c => {
        let mut query = interviews::table
            .inner_join(job_info::table)
            .filter(job_info::id.eq(job_info_id))
            .filter(owned_by(user_id))
            .order((interviews::updated_at.desc(), interviews::id.desc()))
            .select(Interview::as_select())
            .into_boxed();
        if held_only.0 {
            query = query.filter(interviews::hume_chat_id.is_not_null());
        }
        paged!(query, page, rows, interviews::updated_at, interviews::id, InterviewId, desc).load(c)
    })?)
}

/// How many of the user's interviews have a chat id (the plan quota counts these).
/// On PostgreSQL this reads two indexes and no table row (an index-only scan of each).
pub fn count_for_user(conn: &mut Connection, user_id: &UserId) -> Result<i64> {
    Ok(on_backend!(conn, c => interviews::table
        .inner_join(job_info::table)
        .filter(owned_by(user_id))
        .filter(interviews::hume_chat_id.is_not_null())
        .count()
        .get_result(c))?)
}

/// Deletes the user's interview.
pub fn delete(conn: &mut Connection, user_id: &UserId, id: InterviewId) -> Result<InterviewKey> {
    on_backend!(conn, c => diesel::delete(interviews::table)
        .filter(interviews::id.eq(id))
        .filter(interviews::job_info_id.eq_any(owned_job_info_ids(user_id)))
        .returning(InterviewKey::as_returning())
        .get_result(c)
        .optional())?
    .ok_or(Error::not_found(Entity::Interview))
}
