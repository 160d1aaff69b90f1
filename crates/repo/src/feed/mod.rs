//! The change feed of cache tags: every committed write, whoever made it, as the tags
//! it invalidates, delivered to every process that listens.
//!
//! - **PostgreSQL**: `AFTER` triggers on `users`, `job_info`, `interviews` and
//!   `questions` (installed by [`Db::install_cache_feed`](crate::Db::install_cache_feed), removed by
//!   [`Db::remove_cache_feed`](crate::Db::remove_cache_feed)) record, in the writer's own transaction, one row per
//!   inserted row (per insert statement on `questions`, the table written in bulk),
//!   per delete statement, and per updated row that changed, in the unlogged table
//!   [`CHANGES`]: the table, the ids it changed and their parents. The row commits with the write or not at all, so
//!   nothing is seen before COMMIT and nothing after a rollback. Rows removed by a
//!   cascade fire the child tables' triggers, so their tags come too. Writes by the
//!   original app, by `psql` and by jobprep are recorded alike. Each listener polls
//!   the table and turns the rows of each newly committed transaction into the tags
//!   of [`crate::cache_rules`]. Writers never `NOTIFY`, because PostgreSQL commits
//!   notifying transactions one at a time.
//! - **SQLite**: no server to record changes for other processes. The listener receives the commits made
//!   through any [`Db`](crate::Db) of *this process* on the same file (hooked on the tags the
//!   `Db` reports after COMMIT); other processes writing the file are not seen.
//!
//! A [`Listener`] holds one dedicated session connection (never one of the pool's, and
//! never through a transaction-mode pooler, which would hide a server restart from
//! it), reconnects by itself, and yields [`FeedEvent::Reset`] after any gap
//! (reconnect, a full queue, a `TRUNCATE`, a listener that fell more than 30 s
//! behind the table's trimming), because what committed while it was away is not
//! looked for. Delivery is therefore *at most once per connection*, with a reset
//! after every gap: a consumer that flushes everything on a reset never keeps a
//! stale entry.
//!
//! ```
//! # fn main() -> jobprep_repo::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let db = jobprep_repo::Db::connect(&dir.path().join("feed.sqlite3").display().to_string())?;
//! # db.migrate()?;
//! use std::time::Duration;
//! use jobprep_repo::feed::{FeedEvent, FeedOptions, Listener};
//! use jobprep_users::{NewUser, UserId};
//!
//! let mut listener = Listener::start(&db, FeedOptions::default())?;
//! let me = UserId::new("user_feed")?;
//! jobprep_users::upsert(&db, &NewUser::new(me, "Ada", "ada@feed.example"))?;
//! match listener.recv_timeout(Duration::from_secs(5)) {
//!     Some(FeedEvent::Tags(tags)) => assert!(tags.iter().any(|t| t.as_str() == "id:user_feed:users")),
//!     other => panic!("expected the user's tags, got {other:?}"),
//! }
//! listener.stop();
//! # Ok(())
//! # }
//! ```

mod admin;
mod events;
mod listener;
mod poller;
mod sql;
mod subscription;

pub use admin::FeedInstallation;
pub use events::{reset_tags, FeedEvent, FeedOptions, FeedStatus};
pub use listener::{Listener, StopHandle};
pub use sql::{CHANGES, SCHEMA, TRIMMED};
