//! Users: keyed by the auth provider's id, with a unique email.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Bool, HasSqlType, Nullable, Text};
use jobprep_schema::{interviews, questions, sql_types, users};

use crate::cascade;
use crate::config::Backend;
use crate::connection::{on_backend, Connection};
use crate::error::{ConstraintKind, Entity, Error, Result};
use crate::interviews::InterviewKey;
use crate::job_infos::JobInfoKey;
use crate::questions::QuestionKey;
use crate::statements::sql_name;
use crate::tenant::{owned_job_info_ids, owned_job_infos};
use crate::types::{Timestamp, UserId};
use crate::validate;

/// A user row.
#[derive(
    Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize, serde::Deserialize,
)]
#[diesel(table_name = users)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub image_url: Option<String>,
    #[diesel(deserialize_as = Timestamp)]
    pub created_at: DateTime<Utc>,
    #[diesel(deserialize_as = Timestamp)]
    pub updated_at: DateTime<Utc>,
}

/// What an upsert writes.
///
/// The timestamps are the auth provider's, when it gives them (its webhook carries
/// `created_at` and `updated_at`): set both with [`NewUser::with_provider_timestamps`],
/// or neither, and jobprep's clock is used. They are stored truncated to microseconds,
/// as every timestamp is.
///
/// `image_url` is stored as given: an empty or blank one is refused by
/// [`NewUser::validate`]. A provider that sends `""` for "no image" is mapped to `None`
/// by the webhook handler (see the crate README of `jobprep-users`).
///
/// Text rules, checked by [`validate`](Self::validate) before anything is written,
/// each failure an [`Error::InvalidInput`] naming the field in its JSON spelling:
/// required text must hold something other than whitespace (`"  "` counts as empty),
/// no text may contain NUL (PostgreSQL cannot store it), and lengths count characters,
/// not bytes, as PostgreSQL's `varchar(n)` does.
///
/// - `id`: checked by [`UserId::new`]: 1 to 255 characters.
/// - `name`: required, at most 255 characters.
/// - `email`: required, at most 255 characters, shaped like `local@domain.tld` (one
///   `@`, a dot inside the domain, no whitespace); uniqueness is the database's check.
/// - `imageUrl`: optional; when set, required text of at most 1,000 characters.
/// - `createdAt`, `updatedAt`: both or neither; `updatedAt` not before `createdAt`.
///
/// ```
/// use jobprep_repo::{users::NewUser, Error, UserId};
/// let ada = NewUser::new(UserId::new("user_1")?, "Ada", "ada@example.com");
/// assert!(ada.validate().is_ok());
/// let blank = NewUser::new(UserId::new("user_1")?, "   ", "ada@example.com");
/// assert!(matches!(blank.validate(), Err(Error::InvalidInput { field: "name", .. })));
/// let long = NewUser::new(UserId::new("user_1")?, "é".repeat(256), "ada@example.com");
/// assert!(matches!(long.validate(), Err(Error::InvalidInput { field: "name", .. })));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    pub id: UserId,
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub image_url: Option<String>,
    /// When the provider created the user; it replaces the stored `createdAt`.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// When the provider last changed the user; `updatedAt` becomes the later of this
    /// and the stored one.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl NewUser {
    pub fn new(id: UserId, name: impl Into<String>, email: impl Into<String>) -> Self {
        NewUser {
            id,
            name: name.into(),
            email: email.into(),
            image_url: None,
            created_at: None,
            updated_at: None,
        }
    }

    pub fn with_image_url(mut self, image_url: impl Into<String>) -> Self {
        self.image_url = Some(image_url.into());
        self
    }

    /// The provider's `created_at` and `updated_at` for this user.
    pub fn with_provider_timestamps(
        mut self,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        self.created_at = Some(created_at);
        self.updated_at = Some(updated_at);
        self
    }

    /// Name present, email shaped like one, lengths within the columns' limits; the
    /// provider's timestamps both or neither, within years 1 to 9999, and `updatedAt`
    /// not before `createdAt`.
    pub fn validate(&self) -> Result<()> {
        validate::required_text("name", &self.name, 255)?;
        validate::email(&self.email)?;
        if let Some(url) = &self.image_url {
            validate::required_text("imageUrl", url, 1000)?;
        }
        match (self.created_at, self.updated_at) {
            (None, None) => {}
            (Some(created), Some(updated)) => {
                validate::timestamp("createdAt", &created)?;
                validate::timestamp("updatedAt", &updated)?;
                if Timestamp::truncated(updated).0 < Timestamp::truncated(created).0 {
                    return Err(Error::invalid("updatedAt", "must not be before createdAt"));
                }
            }
            (None, Some(_)) => {
                return Err(Error::invalid("createdAt", "must be given with updatedAt"))
            }
            (Some(_), None) => {
                return Err(Error::invalid("updatedAt", "must be given with createdAt"))
            }
        }
        Ok(())
    }
}

/// What deleting a user removed: the user and every row its cascade took along.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedUser {
    pub id: UserId,
    pub job_infos: Vec<JobInfoKey>,
    pub interviews: Vec<InterviewKey>,
    pub questions: Vec<QuestionKey>,
}

/// Inserts the user, or refreshes name, email, imageUrl and updatedAt of the existing
/// one. `createdAt` is the provider's when the form carries its timestamps (also on an
/// existing row: the provider is the source of truth), else it is written once and
/// never changed. `updatedAt` never goes back: it becomes the later of the stored one
/// and the form's (the provider's, or now). An email that belongs to another user is
/// [`Error::Conflict`] on `users_email_unique`.
pub fn upsert(conn: &mut Connection, user: &NewUser) -> Result<User> {
    user.validate()?;
    // On PostgreSQL, ON CONFLICT arbitrates `users_pkey` only: when two first sign-ups
    // of the same id race, the loser meets the winner's row in `users_email_unique`
    // and fails once the winner commits. Tried again, it finds the row and updates it;
    // a genuine clash with another user's email fails again. `guarded` keeps a failed
    // attempt from aborting a caller's transaction.
    let attempt = |conn: &mut Connection| conn.guarded(|c| upsert_once(c, user));
    match attempt(conn) {
        Err(Error::Conflict {
            kind: ConstraintKind::Unique,
            constraint: Some(name),
        }) if name == "users_email_unique" && conn.backend() == Backend::Postgres => attempt(conn),
        other => other,
    }
}

fn upsert_once(conn: &mut Connection, user: &NewUser) -> Result<User> {
    let now = Timestamp::now();
    let upsert = UpsertUser {
        user,
        created_at: user.created_at.map_or(now, Timestamp::truncated),
        updated_at: user.updated_at.map_or(now, Timestamp::truncated),
        provider_created_at: user.created_at.is_some(),
    };
    Ok(on_backend!(conn, c => upsert.get_result(c))?)
}

/// The user upsert as one statement whose text never changes, so that each connection
/// prepares it once and then only binds (diesel builds `ON CONFLICT ... DO UPDATE`
/// statements that it never caches, since their text may vary; this one's cannot).
///
/// On conflict: name, email and imageUrl are refreshed; `createdAt` becomes the
/// provider's when the form carries it (`provider_created_at`), else it stays; and
/// `updatedAt` becomes the later of the stored and the new one, so it never goes back
/// (`now` is taken before the statement may wait for a concurrent upsert of the same
/// user, and a provider's event may arrive after a newer one). It cannot fall below
/// `createdAt`: the provider's `updatedAt` is not before its `createdAt` (validated).
struct UpsertUser<'a> {
    user: &'a NewUser,
    created_at: Timestamp,
    updated_at: Timestamp,
    provider_created_at: bool,
}

// One text whatever the values (the type has no parameter that shapes it).
impl QueryId for UpsertUser<'_> {
    type QueryId = UpsertUser<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for UpsertUser<'_> {
    type SqlType = users::SqlType;
}

impl<Conn> RunQueryDsl<Conn> for UpsertUser<'_> {}

impl<DB> QueryFragment<DB> for UpsertUser<'_>
where
    DB: diesel::backend::Backend
        + HasSqlType<Text>
        + HasSqlType<sql_types::TimestampWithTimeZone>
        + HasSqlType<Bool>,
    UserId: ToSql<Text, DB>,
    String: ToSql<Text, DB>,
    Option<String>: ToSql<Nullable<Text>, DB>,
    Timestamp: ToSql<sql_types::TimestampWithTimeZone, DB>,
    bool: ToSql<Bool, DB>,
    users::table: QueryFragment<DB>,
    users::created_at: QueryFragment<DB>,
    users::updated_at: QueryFragment<DB>,
    <users::table as diesel::Table>::AllColumns: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let created_at = sql_name(users::created_at);
        let updated_at = sql_name(users::updated_at);
        out.push_sql("INSERT INTO ");
        users::table.walk_ast(out.reborrow())?;
        out.push_sql(" (");
        let inserted = [
            sql_name(users::id),
            sql_name(users::name),
            sql_name(users::email),
            sql_name(users::image_url),
            created_at,
            updated_at,
        ];
        for (n, column) in inserted.into_iter().enumerate() {
            if n > 0 {
                out.push_sql(", ");
            }
            out.push_identifier(column)?;
        }
        out.push_sql(") VALUES (");
        out.push_bind_param::<Text, _>(&self.user.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.user.name)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.user.email)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&self.user.image_url)?;
        out.push_sql(", ");
        out.push_bind_param::<sql_types::TimestampWithTimeZone, _>(&self.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<sql_types::TimestampWithTimeZone, _>(&self.updated_at)?;
        out.push_sql(") ON CONFLICT (");
        out.push_identifier(sql_name(users::id))?;
        out.push_sql(") DO UPDATE SET ");
        let refreshed = [
            sql_name(users::name),
            sql_name(users::email),
            sql_name(users::image_url),
        ];
        for column in refreshed {
            out.push_identifier(column)?;
            out.push_sql(" = excluded.");
            out.push_identifier(column)?;
            out.push_sql(", ");
        }
        out.push_identifier(created_at)?;
        out.push_sql(" = CASE WHEN ");
        out.push_bind_param::<Bool, _>(&self.provider_created_at)?;
        out.push_sql(" THEN excluded.");
        out.push_identifier(created_at)?;
        out.push_sql(" ELSE ");
        users::created_at.walk_ast(out.reborrow())?;
        out.push_sql(" END, ");
        out.push_identifier(updated_at)?;
        out.push_sql(" = CASE WHEN excluded.");
        out.push_identifier(updated_at)?;
        out.push_sql(" > ");
        users::updated_at.walk_ast(out.reborrow())?;
        out.push_sql(" THEN excluded.");
        out.push_identifier(updated_at)?;
        out.push_sql(" ELSE ");
        users::updated_at.walk_ast(out.reborrow())?;
        out.push_sql(" END RETURNING ");
        users::all_columns.walk_ast(out.reborrow())
    }
}

/// The user with this id.
pub fn get(conn: &mut Connection, id: &UserId) -> Result<User> {
    on_backend!(conn, c => users::table
        .find(id)
        .select(User::as_select())
        .get_result(c)
        .optional())?
    .ok_or(Error::not_found(Entity::User))
}

/// Deletes the user and, by cascade, their job infos, interviews and questions.
/// [`Error::NotFound`] when there is no such user, as for every other delete.
pub fn delete(conn: &mut Connection, id: &UserId) -> Result<RemovedUser> {
    // PostgreSQL: one statement (see the `cascade` module).
    let statement = cascade::DeleteUser { user_id: id };
    if let Some(rows) = conn.in_one_postgres_statement(|c| statement.load(c)) {
        let removed = cascade::Removed::sort(rows?)?;
        if !removed.user {
            return Err(Error::not_found(Entity::User));
        }
        return Ok(RemovedUser {
            id: id.clone(),
            job_infos: removed
                .job_infos
                .into_iter()
                .map(|job_info_id| JobInfoKey {
                    id: job_info_id,
                    user_id: id.clone(),
                })
                .collect(),
            interviews: removed.interviews.into_iter().map(Into::into).collect(),
            questions: removed.questions.into_iter().map(Into::into).collect(),
        });
    }
    // Statement by statement: SQLite, or PostgreSQL without jobprep's functions.
    conn.transaction(|conn| {
        // On PostgreSQL, lock the user and their job infos first so no child row can
        // be added between listing the cascade and deleting (SQLite's BEGIN IMMEDIATE
        // already excludes other writers).
        if let Some(c) = conn.as_postgres() {
            users::table
                .find(id)
                .select(users::id)
                .for_update()
                .load::<UserId>(c)?;
            owned_job_info_ids(id).for_update().execute(c)?;
        }
        let job_infos = on_backend!(conn, c => owned_job_infos(id)
            .select(JobInfoKey::as_select())
            .load(c))?;
        let interviews = on_backend!(conn, c => interviews::table
            .filter(interviews::job_info_id.eq_any(owned_job_info_ids(id)))
            .select(InterviewKey::as_select())
            .load(c))?;
        let questions = on_backend!(conn, c => questions::table
            .filter(questions::job_info_id.eq_any(owned_job_info_ids(id)))
            .select(QuestionKey::as_select())
            .load(c))?;
        let id = on_backend!(conn, c => diesel::delete(users::table.find(id))
            .returning(users::id)
            .get_result::<UserId>(c)
            .optional())?
        .ok_or(Error::not_found(Entity::User))?;
        Ok(RemovedUser {
            id,
            job_infos,
            interviews,
            questions,
        })
    })
}
