//! The use cases of this crate as `async fn`s over an [`AsyncDb`] (feature `tokio`).
//! Each takes owned arguments and runs its synchronous twin on tokio's blocking pool
//! (see [`jobprep_repo::asynch`]); cache tags and errors are the same.

pub use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::{Cached, Result};

use crate::{
    JobInfoId, NewQuestion, Question, QuestionChanges, QuestionId, QuestionKey,
    QuestionWithJobInfo, UserId,
};

/// [`crate::insert`] on the blocking pool.
pub async fn insert(
    db: &AsyncDb,
    user_id: UserId,
    job_info_id: JobInfoId,
    question: NewQuestion,
) -> Result<QuestionKey> {
    db.run(move |db| crate::insert(db, &user_id, job_info_id, &question))
        .await
}

/// [`crate::insert_within_quota`] on the blocking pool.
pub async fn insert_within_quota(
    db: &AsyncDb,
    user_id: UserId,
    job_info_id: JobInfoId,
    question: NewQuestion,
    limit: u32,
) -> Result<QuestionKey> {
    db.run(move |db| crate::insert_within_quota(db, &user_id, job_info_id, &question, limit))
        .await
}

/// [`crate::insert_many`] on the blocking pool.
pub async fn insert_many(
    db: &AsyncDb,
    user_id: UserId,
    job_info_id: JobInfoId,
    questions: Vec<NewQuestion>,
) -> Result<Vec<QuestionKey>> {
    db.run(move |db| crate::insert_many(db, &user_id, job_info_id, &questions))
        .await
}

/// [`crate::update`] on the blocking pool.
pub async fn update(
    db: &AsyncDb,
    id: QuestionId,
    user_id: UserId,
    changes: QuestionChanges,
) -> Result<QuestionKey> {
    db.run(move |db| crate::update(db, id, &user_id, &changes))
        .await
}

/// [`crate::delete`] on the blocking pool.
pub async fn delete(db: &AsyncDb, id: QuestionId, user_id: UserId) -> Result<QuestionKey> {
    db.run(move |db| crate::delete(db, id, &user_id)).await
}

/// [`crate::get`] on the blocking pool.
pub async fn get(
    db: &AsyncDb,
    id: QuestionId,
    user_id: UserId,
) -> Result<Cached<QuestionWithJobInfo>> {
    db.run(move |db| crate::get(db, id, &user_id)).await
}

/// [`crate::list_for_job_info`] on the blocking pool.
pub async fn list_for_job_info(
    db: &AsyncDb,
    job_info_id: JobInfoId,
    user_id: UserId,
) -> Result<Cached<Vec<Question>>> {
    db.run(move |db| crate::list_for_job_info(db, job_info_id, &user_id))
        .await
}

/// [`crate::count_for_user`] on the blocking pool.
pub async fn count_for_user(db: &AsyncDb, user_id: UserId) -> Result<Cached<i64>> {
    db.run(move |db| crate::count_for_user(db, &user_id)).await
}
