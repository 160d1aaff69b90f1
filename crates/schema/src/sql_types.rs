//! SQL types shared by every table, defined once for both backends.
//!
//! PostgreSQL uses its native types (`uuid`, `timestamptz`, the app's enum types);
//! SQLite stores each of them as TEXT (ids hyphenated, timestamps as fixed-width
//! RFC 3339 in UTC so that text order is time order, enums as their PostgreSQL labels
//! guarded by CHECK constraints).

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

/// `job_info."experienceLevel"`: `junior`, `mid-level`, `senior`.
#[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
#[diesel(postgres_type(name = "job_infos_experience_level"))]
#[diesel(sqlite_type(name = "Text"))]
pub struct ExperienceLevel;

/// `questions.difficulty`: `easy`, `medium`, `hard`.
#[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
#[diesel(postgres_type(name = "questions_question_difficulty"))]
#[diesel(sqlite_type(name = "Text"))]
pub struct QuestionDifficulty;
