#![doc = include_str!("../README.md")]

use jobprep_repo::{cache_rules, questions as repo, Cached, Entity, Executor, Result};

pub use jobprep_repo::questions::{
    NewQuestion, Question, QuestionChanges, QuestionJobInfo, QuestionKey, QuestionWithJobInfo,
};
pub use jobprep_repo::{JobInfoId, QuestionDifficulty, QuestionId, UserId};

pub use jobprep_repo::page::{Cursor, Page, PageRequest};

#[cfg(feature = "tokio")]
pub mod asynch;

/// Adds a question under a job info the user owns. Reports the tags in
/// [the crate's table](crate#cache-tags).
pub fn insert(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
    question: &NewQuestion,
) -> Result<QuestionKey> {
    jobprep_repo::span!("questions.insert");
    // The id is chosen here, so that a run again after a lost answer inserts once.
    let id = QuestionId::generate();
    db.write_tagged_idempotent(
        |conn| repo::insert_with_id(conn, id, user_id, job_info_id, question),
        cache_rules::question_write,
    )
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
    db.write_tagged(
        |conn| repo::insert_within_quota(conn, user_id, job_info_id, question, limit),
        cache_rules::question_write,
    )
}

/// Adds many questions under one job info the user owns, in one statement per 10,000
/// rows. Reports the shared tags once and each question's `id:` tag.
pub fn insert_many(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
    questions: &[NewQuestion],
) -> Result<Vec<QuestionKey>> {
    jobprep_repo::span!("questions.insert_many");
    db.write_tagged(
        |conn| repo::insert_many(conn, user_id, job_info_id, questions),
        |keys| cache_rules::questions_write(job_info_id, keys),
    )
}

/// Changes the text or difficulty of the user's question. Reports the same tags as
/// [`insert`].
pub fn update(
    db: &impl Executor,
    user_id: &UserId,
    id: QuestionId,
    changes: &QuestionChanges,
) -> Result<QuestionKey> {
    jobprep_repo::span!("questions.update");
    db.write_tagged_idempotent(
        |conn| repo::update(conn, user_id, id, changes),
        cache_rules::question_write,
    )
}

/// Deletes the user's question. Reports the same tags as [`insert`].
pub fn delete(db: &impl Executor, user_id: &UserId, id: QuestionId) -> Result<QuestionKey> {
    jobprep_repo::span!("questions.delete");
    db.write_tagged(
        |conn| repo::delete(conn, user_id, id),
        cache_rules::question_write,
    )
}

/// The user's question with its job info's id and owner; cache it under the tags it
/// returns (the question's and its job info's, [the crate's table](crate#cache-tags)).
pub fn get(
    db: &impl Executor,
    user_id: &UserId,
    id: QuestionId,
) -> Result<Cached<QuestionWithJobInfo>> {
    jobprep_repo::span!("questions.get");
    db.read_cached(
        |conn| repo::get(conn, user_id, id),
        cache_rules::question_read,
    )
}

/// The questions under the user's job info, oldest first; cache them under the tags
/// it returns ([the crate's table](crate#cache-tags)). Another user's job info gives an empty list, as
/// a missing one does.
pub fn list_for_job_info(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
) -> Result<Cached<Vec<Question>>> {
    jobprep_repo::span!("questions.list_for_job_info");
    db.read_cached(
        |conn| repo::list_for_job_info(conn, user_id, job_info_id),
        |_| cache_rules::questions_read(job_info_id),
    )
}

/// A page of [`list_for_job_info`], in its order: at most `page.limit` questions after
/// `page.after`, and the cursor of the next page (see [`jobprep_repo::page`]); the same
/// tags.
pub fn list_page_for_job_info(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
    page: &PageRequest,
) -> Result<Cached<Page<Question>>> {
    jobprep_repo::span!("questions.list_page_for_job_info");
    db.read_cached(
        |conn| repo::list_page_for_job_info(conn, user_id, job_info_id, page),
        |_| cache_rules::questions_read(job_info_id),
    )
}

/// How many questions the user has (the plan quota). It spans all of the user's job
/// infos, so it is cached under the tag of all questions, which every question write
/// reports ([the crate's table](crate#cache-tags)).
pub fn count_for_user(db: &impl Executor, user_id: &UserId) -> Result<Cached<i64>> {
    jobprep_repo::span!("questions.count_for_user");
    db.read_cached(
        |conn| repo::count_for_user(conn, user_id),
        |_| cache_rules::count_read(Entity::Question),
    )
}
