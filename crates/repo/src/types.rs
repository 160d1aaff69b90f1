//! Typed ids, enums and timestamps, and how each is stored on both backends.
//!
//! PostgreSQL gets its native binary formats; SQLite gets TEXT (hyphenated UUIDs,
//! enum labels, fixed-width RFC 3339 UTC timestamps with microseconds, so that text
//! order is time order). A value the database holds but jobprep does not know (an enum
//! label added by another app, a malformed id) is a deserialization error, never a panic.

use std::fmt;
use std::io::Write as _;

use chrono::{DateTime, SubsecRound, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::{Sqlite, SqliteValue};
use jobprep_schema::sql_types;

use crate::error::{Error, Result};
use crate::validate;

/// The id the auth provider issued for a user (for example `user_2abc`): 1 to 255
/// characters, no NUL.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    AsExpression,
    FromSqlRow,
    serde::Serialize,
    serde::Deserialize,
)]
#[diesel(sql_type = Text)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// Checks and wraps an id.
    ///
    /// ```
    /// use jobprep_repo::UserId;
    /// assert_eq!(UserId::new("user_2abc")?.as_str(), "user_2abc");
    /// assert!(UserId::new("").is_err());
    /// # Ok::<(), jobprep_repo::Error>(())
    /// ```
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        validate::required_text("userId", &id, 255)?;
        Ok(UserId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for UserId {
    type Error = Error;
    fn try_from(id: String) -> Result<Self> {
        UserId::new(id)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}

impl std::str::FromStr for UserId {
    type Err = Error;
    fn from_str(id: &str) -> Result<Self> {
        UserId::new(id)
    }
}

impl<DB: diesel::backend::Backend> ToSql<Text, DB> for UserId
where
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.as_str().to_sql(out)
    }
}

impl<DB: diesel::backend::Backend> FromSql<Text, DB> for UserId
where
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        // Rows written by the original app are trusted as they are; only new ids
        // coming from callers are validated.
        Ok(UserId(String::from_sql(bytes)?))
    }
}

/// Declares a UUID id type stored as `uuid` on PostgreSQL and TEXT on SQLite.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow,
            serde::Serialize, serde::Deserialize,
        )]
        #[diesel(sql_type = sql_types::Uuid)]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new time-ordered id (UUIDv7), made in Rust so that both backends agree.
            pub fn generate() -> Self {
                $name(uuid::Uuid::now_v7())
            }

            /// Wraps an existing UUID (any version: the original app wrote v4 ids).
            pub fn from_uuid(id: uuid::Uuid) -> Self {
                $name(id)
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(text: &str) -> Result<Self> {
                uuid::Uuid::parse_str(text.trim()).map($name).map_err(|_| {
                    Error::invalid($field, "must be a UUID like 0192f0c1-8d2e-7c3a-9b4f-1e2d3c4b5a69")
                })
            }
        }

        impl ToSql<sql_types::Uuid, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                out.write_all(self.0.as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl FromSql<sql_types::Uuid, Pg> for $name {
            fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
                Ok($name(uuid::Uuid::from_slice(value.as_bytes())?))
            }
        }

        impl ToSql<sql_types::Uuid, Sqlite> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                out.set_value(self.0.hyphenated().to_string());
                Ok(IsNull::No)
            }
        }

        impl FromSql<sql_types::Uuid, Sqlite> for $name {
            fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
                Ok($name(uuid::Uuid::parse_str(&text)?))
            }
        }
    };
}

uuid_id!(
    /// Id of a job info.
    JobInfoId,
    "jobInfoId"
);
uuid_id!(
    /// Id of an interview.
    InterviewId,
    "interviewId"
);
uuid_id!(
    /// Id of a question.
    QuestionId,
    "questionId"
);

/// Declares a Rust enum for a PostgreSQL enum type (TEXT with CHECK on SQLite).
macro_rules! db_enum {
    ($(#[$doc:meta])* $name:ident, $sql:ty, $field:literal, { $($variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow,
            serde::Serialize, serde::Deserialize,
        )]
        #[diesel(sql_type = $sql)]
        pub enum $name {
            $(#[serde(rename = $label)] $variant,)+
        }

        impl $name {
            /// Every value, in the database's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label the database and the JSON use.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(label: &str) -> Result<Self> {
                match label {
                    $($label => Ok($name::$variant),)+
                    _ => Err(Error::invalid(
                        $field,
                        format!("must be one of {}", [$($label),+].join(", ")),
                    )),
                }
            }
        }

        impl ToSql<$sql, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                out.write_all(self.as_str().as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl FromSql<$sql, Pg> for $name {
            fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
                let label = std::str::from_utf8(value.as_bytes())?;
                Ok(label.parse::<$name>()?)
            }
        }

        impl ToSql<$sql, Sqlite> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                out.set_value(self.as_str());
                Ok(IsNull::No)
            }
        }

        impl FromSql<$sql, Sqlite> for $name {
            fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
                let label = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
                Ok(label.parse::<$name>()?)
            }
        }
    };
}

db_enum!(
    /// How senior the job is: `junior`, `mid-level` or `senior`.
    ExperienceLevel, sql_types::ExperienceLevel, "experienceLevel", {
        Junior => "junior",
        MidLevel => "mid-level",
        Senior => "senior",
    }
);

db_enum!(
    /// How hard a question is: `easy`, `medium` or `hard`.
    QuestionDifficulty, sql_types::QuestionDifficulty, "difficulty", {
        Easy => "easy",
        Medium => "medium",
        Hard => "hard",
    }
);

/// A `timestamp with time zone` value; rows expose it as `DateTime<Utc>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = sql_types::TimestampWithTimeZone)]
#[doc(hidden)]
pub struct Timestamp(pub(crate) DateTime<Utc>);

impl Timestamp {
    /// Now, at the microsecond precision both backends store, so a value written and
    /// read back compares equal.
    pub(crate) fn now() -> Self {
        Timestamp::truncated(Utc::now())
    }

    /// `at` at the microsecond precision both backends store.
    pub(crate) fn truncated(at: DateTime<Utc>) -> Self {
        Timestamp(at.trunc_subsecs(6))
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(value: Timestamp) -> Self {
        value.0
    }
}

impl ToSql<sql_types::TimestampWithTimeZone, Pg> for Timestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        ToSql::<diesel::sql_types::Timestamptz, Pg>::to_sql(&self.0, &mut out.reborrow())
    }
}

impl FromSql<sql_types::TimestampWithTimeZone, Pg> for Timestamp {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let at = <DateTime<Utc> as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(value)?;
        Ok(Timestamp(at))
    }
}

impl ToSql<sql_types::TimestampWithTimeZone, Sqlite> for Timestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<sql_types::TimestampWithTimeZone, Sqlite> for Timestamp {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        let at = DateTime::parse_from_rfc3339(&text)?;
        Ok(Timestamp(at.with_timezone(&Utc)))
    }
}
