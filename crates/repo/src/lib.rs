#![doc = include_str!("../README.md")]

mod cache;
mod config;
mod db;
mod error;
mod types;
mod validate;

pub mod interviews;
pub mod job_infos;
pub mod migrations;
pub mod questions;
pub mod users;

#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "testing")]
pub mod testing;

pub use cache::{rules as cache_rules, CacheTag, Cached, NoopSink, RecordingSink, TagSink};
pub use config::{default_sqlite_path, env, Backend, DatabaseUrl, DbConfig, PoolOptions};
pub use db::{ConnectError, Connection, Db, DbBuilder, Executor, PoolState, Tx};
pub use error::{ConstraintKind, Entity, Error, Result};
pub use types::{ExperienceLevel, InterviewId, JobInfoId, QuestionDifficulty, QuestionId, UserId};

/// Deserializes a field that may be absent (leave unchanged), `null` (set to NULL) or a
/// value, into `Option<Option<T>>`. Use with `#[serde(default)]`.
pub(crate) fn double_option<'de, D, T>(
    deserializer: D,
) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}
