//! The use cases of this crate as `async fn`s over an [`AsyncDb`] (feature `tokio`).
//! Each takes owned arguments and runs its synchronous twin on tokio's blocking pool
//! (see [`jobprep_repo::asynch`]); cache tags and errors are the same.

pub use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::{Cached, Result};

use crate::{
    Interview, InterviewChanges, InterviewId, InterviewKey, InterviewWithJobInfo, JobInfoId,
    NewInterview, UserId,
};

/// [`crate::create`] on the blocking pool.
pub async fn create(
    db: &AsyncDb,
    user_id: UserId,
    interview: NewInterview,
) -> Result<InterviewKey> {
    db.run(move |db| crate::create(db, &user_id, &interview))
        .await
}

/// [`crate::create_within_quota`] on the blocking pool.
pub async fn create_within_quota(
    db: &AsyncDb,
    user_id: UserId,
    interview: NewInterview,
    limit: u32,
) -> Result<InterviewKey> {
    db.run(move |db| crate::create_within_quota(db, &user_id, &interview, limit))
        .await
}

/// [`crate::update_within_quota`] on the blocking pool.
pub async fn update_within_quota(
    db: &AsyncDb,
    id: InterviewId,
    user_id: UserId,
    changes: InterviewChanges,
    limit: u32,
) -> Result<InterviewKey> {
    db.run(move |db| crate::update_within_quota(db, id, &user_id, &changes, limit))
        .await
}

/// [`crate::update`] on the blocking pool.
pub async fn update(
    db: &AsyncDb,
    id: InterviewId,
    user_id: UserId,
    changes: InterviewChanges,
) -> Result<InterviewKey> {
    db.run(move |db| crate::update(db, id, &user_id, &changes))
        .await
}

/// [`crate::delete`] on the blocking pool.
pub async fn delete(db: &AsyncDb, id: InterviewId, user_id: UserId) -> Result<InterviewKey> {
    db.run(move |db| crate::delete(db, id, &user_id)).await
}

/// [`crate::get`] on the blocking pool.
pub async fn get(
    db: &AsyncDb,
    id: InterviewId,
    user_id: UserId,
) -> Result<Cached<InterviewWithJobInfo>> {
    db.run(move |db| crate::get(db, id, &user_id)).await
}

/// [`crate::list_for_job_info`] on the blocking pool.
pub async fn list_for_job_info(
    db: &AsyncDb,
    job_info_id: JobInfoId,
    user_id: UserId,
) -> Result<Cached<Vec<Interview>>> {
    db.run(move |db| crate::list_for_job_info(db, job_info_id, &user_id))
        .await
}

/// [`crate::list_all_for_job_info`] on the blocking pool.
pub async fn list_all_for_job_info(
    db: &AsyncDb,
    job_info_id: JobInfoId,
    user_id: UserId,
) -> Result<Cached<Vec<Interview>>> {
    db.run(move |db| crate::list_all_for_job_info(db, job_info_id, &user_id))
        .await
}

/// [`crate::count_for_user`] on the blocking pool.
pub async fn count_for_user(db: &AsyncDb, user_id: UserId) -> Result<Cached<i64>> {
    db.run(move |db| crate::count_for_user(db, &user_id)).await
}
