//! Support for `jobprep bench` (feature `bench`): a scratch database, and the raw
//! baseline, which sends the same SQL as the repositories through a bare diesel
//! connection (no pool, no validation, no executor, no cache tags), so the benchmark
//! measures exactly what the layer costs.

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Nullable, Varchar};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection as _, QueryableByName, RunQueryDsl};
use jobprep_schema::sql_types::{
    ExperienceLevel as SqlLevel, QuestionDifficulty as SqlDifficulty, TimestampWithTimeZone, Uuid,
};

use crate::config::{Backend, DbConfig};
use crate::error::{Error, Result};
use crate::questions::NewQuestion;
use crate::types::{ExperienceLevel, InterviewId, JobInfoId, QuestionId, Timestamp, UserId};

/// A database of the benchmark's own, dropped (PostgreSQL) or deleted (SQLite) on drop.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// The scratch database's URL (may contain the password of the base URL).
    pub url: String,
    cleanup: ScratchCleanup,
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

/// The columns every row read returns, decoded as the repositories decode them.
#[derive(Debug, QueryableByName)]
pub struct RawJobInfo {
    #[diesel(sql_type = Uuid)]
    pub id: JobInfoId,
    #[diesel(sql_type = Nullable<Varchar>)]
    pub title: Option<String>,
    #[diesel(sql_type = Varchar)]
    pub name: String,
    #[diesel(sql_type = SqlLevel, column_name = "experienceLevel")]
    pub experience_level: ExperienceLevel,
    #[diesel(sql_type = Varchar)]
    pub description: String,
    #[diesel(sql_type = Varchar, column_name = "userId")]
    pub user_id: UserId,
    #[diesel(sql_type = TimestampWithTimeZone, column_name = "createdAt")]
    pub created_at: Timestamp,
    #[diesel(sql_type = TimestampWithTimeZone, column_name = "updatedAt")]
    pub updated_at: Timestamp,
}

#[derive(Debug, QueryableByName)]
pub struct RawInterview {
    #[diesel(sql_type = Uuid)]
    pub id: InterviewId,
    #[diesel(sql_type = Uuid, column_name = "jobInfoId")]
    pub job_info_id: JobInfoId,
    #[diesel(sql_type = Varchar)]
    pub duration: String,
    #[diesel(sql_type = Nullable<Varchar>, column_name = "humeChatId")]
    pub hume_chat_id: Option<String>,
    #[diesel(sql_type = Nullable<Varchar>)]
    pub feedback: Option<String>,
    #[diesel(sql_type = TimestampWithTimeZone, column_name = "createdAt")]
    pub created_at: Timestamp,
    #[diesel(sql_type = TimestampWithTimeZone, column_name = "updatedAt")]
    pub updated_at: Timestamp,
}

#[derive(Debug, QueryableByName)]
pub struct RawUser {
    #[diesel(sql_type = Varchar)]
    pub id: UserId,
    #[diesel(sql_type = Varchar)]
    pub name: String,
    #[diesel(sql_type = Varchar)]
    pub email: String,
    #[diesel(sql_type = Nullable<Varchar>, column_name = "imageUrl")]
    pub image_url: Option<String>,
    #[diesel(sql_type = TimestampWithTimeZone, column_name = "createdAt")]
    pub created_at: Timestamp,
    #[diesel(sql_type = TimestampWithTimeZone, column_name = "updatedAt")]
    pub updated_at: Timestamp,
}

#[derive(Debug, QueryableByName)]
pub struct RawJobInfoKey {
    #[diesel(sql_type = Uuid)]
    pub id: JobInfoId,
    #[diesel(sql_type = Varchar, column_name = "userId")]
    pub user_id: UserId,
}

#[derive(Debug, QueryableByName)]
pub struct RawQuestionKey {
    #[diesel(sql_type = Uuid)]
    pub id: QuestionId,
    #[diesel(sql_type = Uuid, column_name = "jobInfoId")]
    pub job_info_id: JobInfoId,
}

#[derive(Debug, QueryableByName)]
struct RawCount {
    #[diesel(sql_type = BigInt)]
    count: i64,
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

const UPSERT_USER: &str = r#"INSERT INTO "users" ("id", "name", "email", "imageUrl", "createdAt", "updatedAt") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name", "email" = excluded."email", "imageUrl" = excluded."imageUrl", "updatedAt" = CASE WHEN (excluded."updatedAt" > "users"."updatedAt") THEN excluded."updatedAt" ELSE "users"."updatedAt" END RETURNING "users"."id", "users"."name", "users"."email", "users"."imageUrl", "users"."createdAt", "users"."updatedAt""#;
const INSERT_JOB_INFO: &str = r#"INSERT INTO "job_info" ("id", "title", "name", "experienceLevel", "description", "userId", "createdAt", "updatedAt") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING "job_info"."id", "job_info"."userId""#;
const GET_JOB_INFO: &str = r#"SELECT "job_info"."id", "job_info"."title", "job_info"."name", "job_info"."experienceLevel", "job_info"."description", "job_info"."userId", "job_info"."createdAt", "job_info"."updatedAt" FROM "job_info" WHERE (("job_info"."id" = $1) AND ("job_info"."userId" = $2)) LIMIT $3"#;
const LIST_JOB_INFOS: &str = r#"SELECT "job_info"."id", "job_info"."title", "job_info"."name", "job_info"."experienceLevel", "job_info"."description", "job_info"."userId", "job_info"."createdAt", "job_info"."updatedAt" FROM "job_info" WHERE ("job_info"."userId" = $1) ORDER BY "job_info"."updatedAt" DESC, "job_info"."id" DESC"#;
const LIST_INTERVIEWS: &str = r#"SELECT "interviews"."id", "interviews"."jobInfoId", "interviews"."duration", "interviews"."humeChatId", "interviews"."feedback", "interviews"."createdAt", "interviews"."updatedAt" FROM ("interviews" INNER JOIN "job_info" ON ("interviews"."jobInfoId" = "job_info"."id")) WHERE ((("job_info"."id" = $1) AND ("job_info"."userId" = $2)) AND ("interviews"."humeChatId" IS NOT NULL)) ORDER BY "interviews"."updatedAt" DESC, "interviews"."id" DESC"#;
const INSERT_QUESTION: &str = r#"INSERT INTO "questions" ("id", "jobInfoId", "text", "difficulty", "createdAt", "updatedAt") SELECT $1, "job_info"."id", $2, $3, $4, $5 FROM "job_info" WHERE (("job_info"."id" = $6) AND ("job_info"."userId" = $7)) RETURNING "questions"."id", "questions"."jobInfoId""#;
const COUNT_INTERVIEWS: &str = r#"SELECT COUNT(*) AS count FROM ("interviews" INNER JOIN "job_info" ON ("interviews"."jobInfoId" = "job_info"."id")) WHERE (("job_info"."userId" = $1) AND ("interviews"."humeChatId" IS NOT NULL))"#;

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
    pub fn upsert_user(&mut self, id: &UserId, name: &str, email: &str) -> Result<RawUser> {
        let now = Timestamp::now();
        let sql = placeholders(UPSERT_USER, self.backend());
        let rows: Vec<RawUser> = on_bare!(self, c => diesel::sql_query(&sql)
            .bind::<Varchar, _>(id)
            .bind::<Varchar, _>(name)
            .bind::<Varchar, _>(email)
            .bind::<Nullable<Varchar>, _>(None::<&str>)
            .bind::<TimestampWithTimeZone, _>(now)
            .bind::<TimestampWithTimeZone, _>(now)
            .load(c))?;
        rows.into_iter()
            .next()
            .ok_or(Error::not_found(crate::Entity::User))
    }

    /// The insert of `jobprep_repo::job_infos::insert`, returning `{id, userId}`.
    pub fn insert_job_info(
        &mut self,
        user_id: &UserId,
        level: ExperienceLevel,
    ) -> Result<RawJobInfoKey> {
        let now = Timestamp::now();
        let sql = placeholders(INSERT_JOB_INFO, self.backend());
        let rows: Vec<RawJobInfoKey> = on_bare!(self, c => diesel::sql_query(&sql)
            .bind::<Uuid, _>(JobInfoId::generate())
            .bind::<Nullable<Varchar>, _>(Some("Bench title"))
            .bind::<Varchar, _>("Bench job")
            .bind::<SqlLevel, _>(level)
            .bind::<Varchar, _>("A job for the benchmark")
            .bind::<Varchar, _>(user_id)
            .bind::<TimestampWithTimeZone, _>(now)
            .bind::<TimestampWithTimeZone, _>(now)
            .load(c))?;
        rows.into_iter()
            .next()
            .ok_or(Error::not_found(crate::Entity::User))
    }

    /// The owner-scoped read of `jobprep_repo::job_infos::get`.
    pub fn get_job_info(&mut self, id: JobInfoId, user_id: &UserId) -> Result<RawJobInfo> {
        let sql = placeholders(GET_JOB_INFO, self.backend());
        let rows: Vec<RawJobInfo> = on_bare!(self, c => diesel::sql_query(&sql)
            .bind::<Uuid, _>(id)
            .bind::<Varchar, _>(user_id)
            .bind::<BigInt, _>(1_i64)
            .load(c))?;
        rows.into_iter()
            .next()
            .ok_or(Error::not_found(crate::Entity::JobInfo))
    }

    /// `jobprep_repo::job_infos::list_for_user`.
    pub fn list_job_infos(&mut self, user_id: &UserId) -> Result<Vec<RawJobInfo>> {
        let sql = placeholders(LIST_JOB_INFOS, self.backend());
        Ok(on_bare!(self, c => diesel::sql_query(&sql).bind::<Varchar, _>(user_id).load(c))?)
    }

    /// `jobprep_repo::interviews::list_for_job_info`.
    pub fn list_interviews(
        &mut self,
        job_info_id: JobInfoId,
        user_id: &UserId,
    ) -> Result<Vec<RawInterview>> {
        let sql = placeholders(LIST_INTERVIEWS, self.backend());
        Ok(on_bare!(self, c => diesel::sql_query(&sql)
            .bind::<Uuid, _>(job_info_id)
            .bind::<Varchar, _>(user_id)
            .load(c))?)
    }

    /// The one-statement owner-checked insert of `jobprep_repo::questions::insert`.
    pub fn insert_question(
        &mut self,
        user_id: &UserId,
        job_info_id: JobInfoId,
        question: &NewQuestion,
    ) -> Result<RawQuestionKey> {
        let now = Timestamp::now();
        let sql = placeholders(INSERT_QUESTION, self.backend());
        let rows: Vec<RawQuestionKey> = on_bare!(self, c => diesel::sql_query(&sql)
            .bind::<Uuid, _>(QuestionId::generate())
            .bind::<Varchar, _>(question.text.as_str())
            .bind::<SqlDifficulty, _>(question.difficulty)
            .bind::<TimestampWithTimeZone, _>(now)
            .bind::<TimestampWithTimeZone, _>(now)
            .bind::<Uuid, _>(job_info_id)
            .bind::<Varchar, _>(user_id)
            .load(c))?;
        rows.into_iter()
            .next()
            .ok_or(Error::not_found(crate::Entity::JobInfo))
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
        let sql = placeholders(COUNT_INTERVIEWS, self.backend());
        let rows: Vec<RawCount> =
            on_bare!(self, c => diesel::sql_query(&sql).bind::<Varchar, _>(user_id).load(c))?;
        Ok(rows.into_iter().next().map_or(0, |r| r.count))
    }
}
