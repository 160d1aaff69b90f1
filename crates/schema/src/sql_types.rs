//! SQL types shared by every table, defined once for both backends.
//!
//! PostgreSQL uses its native types (`uuid`, `timestamptz`, the app's enum types);
//! SQLite stores each of them as TEXT (ids hyphenated, timestamps as fixed-width
//! RFC 3339 in UTC so that text order is time order, enums as their PostgreSQL labels
//! guarded by CHECK constraints).
//!
//! The two enum types are declared with OID 0, "unspecified": PostgreSQL infers a
//! parameter's type from where it stands (`"experienceLevel" = $1`, an insert's
//! column) and reads the label, the binary form of an enum value. Declared by name
//! instead, diesel would look each type's OID up in `pg_type` on every new
//! connection: one more round trip on a cold start, and a lookup that fails on a
//! connection the server has closed. An enum parameter must therefore stand where its
//! type follows from the statement (never `$1 IS NULL` alone); the tests cover every
//! statement jobprep sends.

use diesel::query_builder::QueryId;
use diesel::sql_types::SqlType;

/// Primary and foreign keys of job infos, interviews and questions.
#[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
#[diesel(postgres_type(oid = 2950, array_oid = 2951))]
#[diesel(sqlite_type(name = "Text"))]
pub struct Uuid;

/// `createdAt` / `updatedAt`: `timestamp with time zone`.
#[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
#[diesel(postgres_type(oid = 1184, array_oid = 1185))]
#[diesel(sqlite_type(name = "Text"))]
pub struct TimestampWithTimeZone;

/// `job_info."experienceLevel"` (`job_infos_experience_level`): `junior`,
/// `mid-level`, `senior`.
#[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
#[diesel(postgres_type(oid = 0, array_oid = 0))]
#[diesel(sqlite_type(name = "Text"))]
pub struct ExperienceLevel;

/// `questions.difficulty` (`questions_question_difficulty`): `easy`, `medium`,
/// `hard`.
#[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
#[diesel(postgres_type(oid = 0, array_oid = 0))]
#[diesel(sqlite_type(name = "Text"))]
pub struct QuestionDifficulty;
