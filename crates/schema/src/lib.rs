//! The database schema of jobprep: diesel `table!` definitions and the SQL types they
//! use, nothing else.
//!
//! The same definitions serve PostgreSQL and SQLite. Rust names are snake_case; the
//! database keeps the original app's quoted camelCase names (`"userId"`, `"createdAt"`).
//! Only `jobprep-repo` uses this crate: feature crates never name a table.

pub mod sql_types;

mod tables;

pub use tables::interviews::interviews;
pub use tables::job_info::job_info;
pub use tables::questions::questions;
pub use tables::users::users;

diesel::joinable!(job_info -> users (user_id));
diesel::joinable!(interviews -> job_info (job_info_id));
diesel::joinable!(questions -> job_info (job_info_id));

diesel::allow_tables_to_appear_in_same_query!(users, job_info, interviews, questions);
