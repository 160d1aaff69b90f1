//! The use cases of this crate as `async fn`s over an [`AsyncDb`] (feature `tokio`).
//! Each takes owned arguments and runs its synchronous twin on tokio's blocking pool
//! (see [`jobprep_repo::asynch`]); cache tags and errors are the same.

pub use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::{Cached, Result};

use crate::{JobInfo, JobInfoChanges, JobInfoId, JobInfoKey, NewJobInfo, RemovedJobInfo, UserId};

/// [`crate::insert`] on the blocking pool.
pub async fn insert(db: &AsyncDb, user_id: UserId, job: NewJobInfo) -> Result<JobInfoKey> {
    db.run(move |db| crate::insert(db, &user_id, &job)).await
}

/// [`crate::update`] on the blocking pool.
pub async fn update(
    db: &AsyncDb,
    id: JobInfoId,
    user_id: UserId,
    changes: JobInfoChanges,
) -> Result<JobInfoKey> {
    db.run(move |db| crate::update(db, id, &user_id, &changes))
        .await
}

/// [`crate::delete`] on the blocking pool.
pub async fn delete(db: &AsyncDb, id: JobInfoId, user_id: UserId) -> Result<RemovedJobInfo> {
    db.run(move |db| crate::delete(db, id, &user_id)).await
}

/// [`crate::get`] on the blocking pool.
pub async fn get(db: &AsyncDb, id: JobInfoId, user_id: UserId) -> Result<Cached<JobInfo>> {
    db.run(move |db| crate::get(db, id, &user_id)).await
}

/// [`crate::list_for_user`] on the blocking pool.
pub async fn list_for_user(db: &AsyncDb, user_id: UserId) -> Result<Cached<Vec<JobInfo>>> {
    db.run(move |db| crate::list_for_user(db, &user_id)).await
}

/// [`crate::user_has_any`] on the blocking pool.
pub async fn user_has_any(db: &AsyncDb, user_id: UserId) -> Result<Cached<bool>> {
    db.run(move |db| crate::user_has_any(db, &user_id)).await
}
