#![doc = include_str!("../README.md")]

mod cascade;
mod config;
mod connection;
mod conninfo;
mod database_url;
mod error;
mod executor;
mod handle;
mod local_feed;
#[cfg(feature = "tracing")]
mod observe;
pub mod page;
mod pool;
mod quota;
mod statements;
mod tags;
mod tenant;
mod types;
mod validate;

pub mod cache_rules;
pub mod feed;
/// The queries on a `&mut Connection`, reporting no cache tags; for a service,
/// `jobprep_interviews` has the use cases of the same names.
pub mod interviews;
/// The queries on a `&mut Connection`, reporting no cache tags; for a service,
/// `jobprep_job_infos` has the use cases of the same names.
pub mod job_infos;
pub mod migrations;
/// The queries on a `&mut Connection`, reporting no cache tags; for a service,
/// `jobprep_questions` has the use cases of the same names.
pub mod questions;
pub mod replicas;
/// The queries on a `&mut Connection`, reporting no cache tags: `users::upsert(conn,
/// ..)` is the query that `jobprep_users::upsert(db, ..)`, the one services call, runs
/// and reports the tags of.
pub mod users;

#[cfg(feature = "tokio")]
pub mod asynch;

pub use config::{default_sqlite_path, env, Backend, DatabaseUrl, DbConfig, PoolOptions};
pub use connection::{ConnectError, Connection};
pub use error::{ConstraintKind, Entity, Error, Result};
pub use executor::{Executor, Tx};
pub use handle::{Db, DbBuilder, PoolState, Session};
pub use replicas::{ReplicaState, RoutingState, WalPosition};
pub use tags::{CacheTag, Cached, NoopSink, RecordingSink, TagSink};
pub use types::{ExperienceLevel, InterviewId, JobInfoId, QuestionDifficulty, QuestionId, UserId};

/// Deserializes a field that may be absent (leave unchanged), `null` (set to NULL) or a
/// value, into `Option<Option<T>>`. Use with `#[serde(default)]`.
pub(crate) fn not_null<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    // A field missing from a change form leaves the column as it is; an explicit null
    // on a column that cannot be NULL is a mistake, not "leave it".
    serde::Deserialize::deserialize(deserializer).map(Some)
}

pub(crate) fn double_option<'de, D, T>(
    deserializer: D,
) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

/// Enters a `tracing` span named after a use case for the rest of the scope (feature
/// `tracing`; its fields are in the `observe` module's docs); expands to nothing
/// without the feature, so the feature crates can use it unconditionally.
#[cfg(feature = "tracing")]
#[macro_export]
macro_rules! span {
    ($name:literal) => {
        let _jobprep_span = $crate::__UseCaseSpan::enter($name);
    };
}

/// Enters a `tracing` span named after a use case (feature `tracing`; here disabled).
#[cfg(not(feature = "tracing"))]
#[macro_export]
macro_rules! span {
    ($name:literal) => {};
}

#[cfg(feature = "tracing")]
#[doc(hidden)]
pub use observe::UseCaseSpan as __UseCaseSpan;
