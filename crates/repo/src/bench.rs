//! Support for `jobprep bench` (feature `bench`): a scratch database, and the raw
//! baseline: the repositories' queries, written again with diesel's query builder (so
//! the SQL text is the same and is prepared and cached the same way) and run on a bare
//! connection: no pool, no validation, no executor, no cache tags. The benchmark
//! then measures exactly what the layer costs.

use diesel::connection::SimpleConnection;
use diesel::dsl::case_when;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::Varchar;
use diesel::sqlite::SqliteConnection;
use diesel::upsert::excluded;
use jobprep_schema::sql_types::{QuestionDifficulty as SqlDifficulty, TimestampWithTimeZone, Uuid};
use jobprep_schema::{interviews, job_info, questions, users};

use crate::config::{Backend, DbConfig};
use crate::error::{Error, Result};
use crate::interviews::Interview;
use crate::job_infos::{JobInfo, JobInfoKey, NewJobInfo};
use crate::questions::{NewQuestion, QuestionKey};
use crate::types::{JobInfoId, QuestionId, Timestamp, UserId};
use crate::users::User;

/// A database of the benchmark's own, dropped (PostgreSQL) or deleted (SQLite) on drop.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// The scratch database's URL (may contain the password of the base URL).
    pub url: String,
    cleanup: ScratchCleanup,
}

impl ScratchDatabase {
    /// The scratch database on another server of the same cluster, e.g. a streaming
    /// replica, which receives it by replication.
    pub fn on_server(&self, server_url: &str) -> String {
        match &self.cleanup {
            ScratchCleanup::Postgres { name, .. } => replace_database(server_url, name),
            ScratchCleanup::Sqlite { .. } => server_url.to_owned(),
        }
    }
}

#[derive(Debug)]
enum ScratchCleanup {
    Postgres { admin_url: String, name: String },
    Sqlite { path: std::path::PathBuf },
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            ScratchCleanup::Postgres { admin_url, name } => {
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    // Best effort: a failure leaves a database named jobprep_bench_<pid>.
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
                }
            }
            ScratchCleanup::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
    }
}

/// Creates an empty database next to the one `base` names: a new database on the same
/// PostgreSQL server (needs CREATEDB), or a new SQLite file in the temporary folder.
pub fn scratch_database(base: &DbConfig) -> Result<ScratchDatabase> {
    let name = format!("jobprep_bench_{}", std::process::id());
    match base.url.backend() {
        Backend::Postgres => {
            let admin_url = base.url.expose().to_owned();
            let mut admin =
                PgConnection::establish(&admin_url).map_err(|e| Error::Unavailable {
                    reason: base.url.scrub(&e.to_string()),
                })?;
            // Two statements: neither may run inside a (multi-statement) transaction.
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
            admin.batch_execute(&format!("CREATE DATABASE \"{name}\""))?;
            let url = replace_database(&admin_url, &name);
            Ok(ScratchDatabase {
                url,
                cleanup: ScratchCleanup::Postgres { admin_url, name },
            })
        }
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{name}.sqlite3"));
            let cleanup = ScratchCleanup::Sqlite { path: path.clone() };
            let scratch = ScratchDatabase {
                url: path.display().to_string(),
                cleanup,
            };
            drop(std::fs::remove_file(&path));
            Ok(scratch)
        }
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host = base[scheme_end..]
        .find('/')
        .map_or(base, |i| &base[..scheme_end + i]);
    match query {
        Some(query) => format!("{host}/{name}?{query}"),
        None => format!("{host}/{name}"),
    }
}

enum Bare {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// A bare diesel connection running hand-written SQL: the benchmark's baseline.
pub struct RawConnection {
    conn: Bare,
}

impl std::fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawConnection")
    }
}

/// `$n` placeholders as PostgreSQL takes them, `?n` as SQLite does.
fn placeholders(sql: &str, backend: Backend) -> String {
    match backend {
        Backend::Postgres => sql.to_owned(),
        Backend::Sqlite => sql.replace('$', "?"),
    }
}

/// Runs `$body` with `$c` bound to the bare connection of either backend.
macro_rules! on_bare {
    ($self:ident, $c:ident => $body:expr) => {
        match &mut $self.conn {
            Bare::Postgres($c) => $body,
            Bare::Sqlite($c) => $body,
        }
    };
}

impl RawConnection {
    /// Opens a bare connection with the same per-connection settings as the pool's.
    pub fn connect(config: &DbConfig) -> Result<Self> {
        let url = config.url.expose();
        let fail = |e: diesel::ConnectionError| Error::Unavailable {
            reason: config.url.scrub(&e.to_string()),
        };
        let conn = match config.url.backend() {
            Backend::Postgres => Bare::Postgres(PgConnection::establish(url).map_err(fail)?),
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(url).map_err(fail)?;
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )?;
                Bare::Sqlite(conn)
            }
        };
        Ok(RawConnection { conn })
    }

    fn backend(&self) -> Backend {
        match self.conn {
            Bare::Postgres(_) => Backend::Postgres,
            Bare::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The upsert of `jobprep_repo::users::upsert`, returning the row.
    pub fn upsert_user(&mut self, id: &UserId, name: &str, email: &str) -> Result<User> {
        let now = Timestamp::now();
        let updated_at = case_when(
            excluded(users::updated_at).gt(users::updated_at),
            excluded(users::updated_at),
        )
        .otherwise(users::updated_at);
        Ok(on_bare!(self, c => diesel::insert_into(users::table)
            .values((
                users::id.eq(id),
                users::name.eq(name),
                users::email.eq(email),
                users::image_url.eq(None::<&str>),
                users::created_at.eq(now),
                users::updated_at.eq(now),
            ))
            .on_conflict(users::id)
            .do_update()
            .set((
                users::name.eq(excluded(users::name)),
                users::email.eq(excluded(users::email)),
                users::image_url.eq(excluded(users::image_url)),
                users::updated_at.eq(updated_at),
            ))
            .returning(User::as_returning())
            .get_result(c))?)
    }

    /// The insert of `jobprep_repo::job_infos::insert`, returning `{id, userId}`.
    pub fn insert_job_info(&mut self, user_id: &UserId, job: &NewJobInfo) -> Result<JobInfoKey> {
        let now = Timestamp::now();
        Ok(on_bare!(self, c => diesel::insert_into(job_info::table)
            .values((
                job_info::id.eq(JobInfoId::generate()),
                job_info::title.eq(job.title.as_deref()),
                job_info::name.eq(&job.name),
                job_info::experience_level.eq(job.experience_level),
                job_info::description.eq(&job.description),
                job_info::user_id.eq(user_id),
                job_info::created_at.eq(now),
                job_info::updated_at.eq(now),
            ))
            .returning(JobInfoKey::as_returning())
            .get_result(c))?)
    }

    /// The owner-scoped read of `jobprep_repo::job_infos::get`.
    pub fn get_job_info(&mut self, id: JobInfoId, user_id: &UserId) -> Result<JobInfo> {
        Ok(on_bare!(self, c => job_info::table
            .filter(job_info::id.eq(id))
            .filter(job_info::user_id.eq(user_id))
            .select(JobInfo::as_select())
            .get_result(c))?)
    }

    /// `jobprep_repo::job_infos::list_for_user`.
    pub fn list_job_infos(&mut self, user_id: &UserId) -> Result<Vec<JobInfo>> {
        Ok(on_bare!(self, c => job_info::table
            .filter(job_info::user_id.eq(user_id))
            .order((job_info::updated_at.desc(), job_info::id.desc()))
            .select(JobInfo::as_select())
            .load(c))?)
    }

    /// `jobprep_repo::interviews::list_for_job_info`.
    pub fn list_interviews(
        &mut self,
        job_info_id: JobInfoId,
        user_id: &UserId,
    ) -> Result<Vec<Interview>> {
        Ok(on_bare!(self, c => interviews::table
            .inner_join(job_info::table)
            .filter(job_info::id.eq(job_info_id))
            .filter(job_info::user_id.eq(user_id))
            .filter(interviews::hume_chat_id.is_not_null())
            .order((interviews::updated_at.desc(), interviews::id.desc()))
            .select(Interview::as_select())
            .load(c))?)
    }

    /// The one-statement owner-checked insert of `jobprep_repo::questions::insert`.
    pub fn insert_question(
        &mut self,
        user_id: &UserId,
        job_info_id: JobInfoId,
        question: &NewQuestion,
    ) -> Result<QuestionKey> {
        let now = Timestamp::now();
        let id = QuestionId::generate();
        Ok(on_bare!(self, c => diesel::insert_into(questions::table)
            .values(
                job_info::table
                    .filter(job_info::id.eq(job_info_id))
                    .filter(job_info::user_id.eq(user_id))
                    .select((
                        id.into_sql::<Uuid>(),
                        job_info::id,
                        question.text.as_str().into_sql::<Varchar>(),
                        question.difficulty.into_sql::<SqlDifficulty>(),
                        now.into_sql::<TimestampWithTimeZone>(),
                        now.into_sql::<TimestampWithTimeZone>(),
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
            .returning(QuestionKey::as_returning())
            .get_result(c))?)
    }

    /// The bulk insert of `jobprep_repo::questions::insert_many`: one statement with the
    /// ownership check, `(VALUES ...)` joined to the owned job info.
    pub fn bulk_insert_questions(
        &mut self,
        user_id: &UserId,
        job_info_id: JobInfoId,
        questions: &[NewQuestion],
    ) -> Result<usize> {
        let backend = self.backend();
        let mut sql = String::from(
            r#"INSERT INTO "questions" ("id", "text", "difficulty", "jobInfoId", "createdAt", "updatedAt") SELECT v.column1, v.column2, v.column3, j."id", $1, $2 FROM (VALUES "#,
        );
        let mut n = 2;
        for index in 0..questions.len() {
            if index > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("(${}, ${}, ${})", n + 1, n + 2, n + 3));
            n += 3;
        }
        sql.push_str(&format!(
            r#") AS v JOIN "job_info" j ON j."id" = ${} AND j."userId" = ${}"#,
            n + 1,
            n + 2
        ));
        let sql = placeholders(&sql, backend);
        let now = Timestamp::now();
        let ids: Vec<QuestionId> = questions.iter().map(|_| QuestionId::generate()).collect();
        let inserted = on_bare!(self, c => {
            let mut query = diesel::sql_query(sql.as_str())
                .into_boxed()
                .bind::<TimestampWithTimeZone, _>(now)
                .bind::<TimestampWithTimeZone, _>(now);
            for (question, id) in questions.iter().zip(&ids) {
                query = query
                    .bind::<Uuid, _>(*id)
                    .bind::<Varchar, _>(question.text.as_str())
                    .bind::<SqlDifficulty, _>(question.difficulty);
            }
            query.bind::<Uuid, _>(job_info_id).bind::<Varchar, _>(user_id).execute(c)
        })?;
        Ok(inserted)
    }

    /// `jobprep_repo::interviews::count_for_user`.
    pub fn count_interviews_for_user(&mut self, user_id: &UserId) -> Result<i64> {
        Ok(on_bare!(self, c => interviews::table
            .inner_join(job_info::table)
            .filter(job_info::user_id.eq(user_id))
            .filter(interviews::hume_chat_id.is_not_null())
            .count()
            .get_result(c))?)
    }
}
