#![doc = include_str!("../README.md")]

use jobprep_repo::{cache_rules, questions as repo, CacheTag, Cached, Entity, Executor, Result};

pub use jobprep_repo::questions::{
    NewQuestion, Question, QuestionChanges, QuestionJobInfo, QuestionKey, QuestionWithJobInfo,
};
pub use jobprep_repo::{JobInfoId, QuestionDifficulty, QuestionId, UserId};

#[cfg(feature = "tokio")]
pub mod asynch;

/// Adds a question under a job info the user owns. Reports `global:questions`,
/// `jobInfo:{jobInfoId}:questions` and `id:{id}:questions`.
pub fn insert(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
    question: &NewQuestion,
) -> Result<QuestionKey> {
    jobprep_repo::span!("questions.insert");
    db.write(|conn, tags| {
        let key = repo::insert(conn, user_id, job_info_id, question)?;
        tags.extend(cache_rules::question_write(&key));
        Ok(key)
    })
}

/// [`insert`], if the user has fewer than `limit` questions (the plan quota, as
/// [`count_for_user`] counts); else `Error::QuotaExceeded { entity: Question, limit }`
/// (not retryable), nothing written and nothing reported. The count and the insert
/// are one atomic step, so concurrent requests of one user never overshoot `limit`.
/// Reports the same tags as [`insert`].
pub fn insert_within_quota(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
    question: &NewQuestion,
    limit: u32,
) -> Result<QuestionKey> {
    jobprep_repo::span!("questions.insert_within_quota");
    db.write(|conn, tags| {
        let key = repo::insert_within_quota(conn, user_id, job_info_id, question, limit)?;
        tags.extend(cache_rules::question_write(&key));
        Ok(key)
    })
}

/// Adds many questions under one job info the user owns, in one statement per 10,000
/// rows. Reports the tags of every question.
pub fn insert_many(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
    questions: &[NewQuestion],
) -> Result<Vec<QuestionKey>> {
    jobprep_repo::span!("questions.insert_many");
    db.write(|conn, tags| {
        let keys = repo::insert_many(conn, user_id, job_info_id, questions)?;
        tags.extend(cache_rules::questions_write(job_info_id, &keys));
        Ok(keys)
    })
}

/// Changes the text or difficulty of the user's question. Reports the same tags as
/// [`insert`].
pub fn update(
    db: &impl Executor,
    id: QuestionId,
    user_id: &UserId,
    changes: &QuestionChanges,
) -> Result<QuestionKey> {
    jobprep_repo::span!("questions.update");
    db.write(|conn, tags| {
        let key = repo::update(conn, id, user_id, changes)?;
        tags.extend(cache_rules::question_write(&key));
        Ok(key)
    })
}

/// Deletes the user's question. Reports the same tags as [`insert`].
pub fn delete(db: &impl Executor, id: QuestionId, user_id: &UserId) -> Result<QuestionKey> {
    jobprep_repo::span!("questions.delete");
    db.write(|conn, tags| {
        let key = repo::delete(conn, id, user_id)?;
        tags.extend(cache_rules::question_write(&key));
        Ok(key)
    })
}

/// The user's question with its job info's id and owner; cache under
/// `id:{id}:questions` and `id:{jobInfoId}:jobInfos`.
pub fn get(
    db: &impl Executor,
    id: QuestionId,
    user_id: &UserId,
) -> Result<Cached<QuestionWithJobInfo>> {
    jobprep_repo::span!("questions.get");
    let found = db.read(|conn| repo::get(conn, id, user_id))?;
    let tags = vec![
        CacheTag::id(id, Entity::Question),
        CacheTag::id(found.job_info.id, Entity::JobInfo),
    ];
    Ok(Cached::new(found, tags))
}

/// The questions under the user's job info, oldest first; cache under
/// `jobInfo:{jobInfoId}:questions`.
pub fn list_for_job_info(
    db: &impl Executor,
    job_info_id: JobInfoId,
    user_id: &UserId,
) -> Result<Cached<Vec<Question>>> {
    jobprep_repo::span!("questions.list_for_job_info");
    let found = db.read(|conn| repo::list_for_job_info(conn, job_info_id, user_id))?;
    Ok(Cached::new(
        found,
        vec![CacheTag::job_info(job_info_id, Entity::Question)],
    ))
}

/// How many questions the user has (the plan quota). It spans all of the user's job
/// infos, so it is cached under `global:questions`, which every question write reports.
pub fn count_for_user(db: &impl Executor, user_id: &UserId) -> Result<Cached<i64>> {
    jobprep_repo::span!("questions.count_for_user");
    let count = db.read(|conn| repo::count_for_user(conn, user_id))?;
    Ok(Cached::new(count, vec![CacheTag::global(Entity::Question)]))
}
