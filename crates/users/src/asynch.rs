//! The use cases of this crate as `async fn`s over an [`AsyncDb`] (feature `tokio`).
//! Each takes owned arguments and runs its synchronous twin on tokio's blocking pool
//! (see [`jobprep_repo::asynch`]); cache tags and errors are the same.

pub use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::{Cached, Result};

use crate::{NewUser, RemovedUser, User, UserId};

/// [`crate::upsert`] on the blocking pool.
pub async fn upsert(db: &AsyncDb, user: NewUser) -> Result<User> {
    db.run(move |db| crate::upsert(db, &user)).await
}

/// [`crate::get`] on the blocking pool.
pub async fn get(db: &AsyncDb, id: UserId) -> Result<Cached<User>> {
    db.run(move |db| crate::get(db, &id)).await
}

/// [`crate::delete`] on the blocking pool.
pub async fn delete(db: &AsyncDb, id: UserId) -> Result<Option<RemovedUser>> {
    db.run(move |db| crate::delete(db, &id)).await
}
