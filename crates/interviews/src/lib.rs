#![doc = include_str!("../README.md")]

use jobprep_repo::{cache_rules, interviews as repo, Cached, Entity, Executor, Result};

pub use jobprep_repo::interviews::{
    Interview, InterviewChanges, InterviewJobInfo, InterviewKey, InterviewWithJobInfo, NewInterview,
};
pub use jobprep_repo::{InterviewId, JobInfoId, UserId};

pub use jobprep_repo::page::{Cursor, Page, PageRequest};

#[cfg(feature = "tokio")]
pub mod asynch;

/// Starts an interview under a job info the user owns. Reports the tags in
/// [the crate's table](crate#cache-tags).
pub fn insert(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
    interview: &NewInterview,
) -> Result<InterviewKey> {
    jobprep_repo::span!("interviews.insert");
    // The id is chosen here, so that a run again after a lost answer inserts once.
    let id = InterviewId::generate();
    db.write_tagged_idempotent(
        |conn| repo::insert_with_id(conn, id, user_id, job_info_id, interview),
        cache_rules::interview_write,
    )
}

/// [`insert`], checked against the plan quota: an interview counts once it has a chat
/// id (as [`count_for_user`] counts), so inserting one with a chat id when the user
/// has `limit` already is `Error::QuotaExceeded { entity: Interview, limit }` (not
/// retryable), nothing written and nothing reported. One without a chat id does not
/// count; [`update_within_quota`] checks the write that gives it one. The count and the
/// write are one atomic step, so concurrent requests of one user never overshoot
/// `limit`. Reports the same tags as [`insert`].
pub fn insert_within_quota(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
    interview: &NewInterview,
    limit: u32,
) -> Result<InterviewKey> {
    jobprep_repo::span!("interviews.insert_within_quota");
    db.write_tagged(
        |conn| repo::insert_within_quota(conn, user_id, job_info_id, interview, limit),
        cache_rules::interview_write,
    )
}

/// [`update`], checked against the plan quota when it gives the interview its first
/// chat id (the write that makes it count): with `limit` counted interviews already,
/// that is `Error::QuotaExceeded { entity: Interview, limit }`, nothing written and
/// nothing reported. Other changes are applied as [`update`] applies them. Atomic like
/// [`insert_within_quota`]. Reports the same tags as [`insert`].
pub fn update_within_quota(
    db: &impl Executor,
    user_id: &UserId,
    id: InterviewId,
    changes: &InterviewChanges,
    limit: u32,
) -> Result<InterviewKey> {
    jobprep_repo::span!("interviews.update_within_quota");
    db.write_tagged(
        |conn| repo::update_within_quota(conn, user_id, id, changes, limit),
        cache_rules::interview_write,
    )
}

/// Records the chat id, duration or feedback of the user's interview. Reports the same
/// tags as [`insert`].
pub fn update(
    db: &impl Executor,
    user_id: &UserId,
    id: InterviewId,
    changes: &InterviewChanges,
) -> Result<InterviewKey> {
    jobprep_repo::span!("interviews.update");
    db.write_tagged_idempotent(
        |conn| repo::update(conn, user_id, id, changes),
        cache_rules::interview_write,
    )
}

/// Deletes the user's interview. Reports the same tags as [`insert`].
pub fn delete(db: &impl Executor, user_id: &UserId, id: InterviewId) -> Result<InterviewKey> {
    jobprep_repo::span!("interviews.delete");
    db.write_tagged(
        |conn| repo::delete(conn, user_id, id),
        cache_rules::interview_write,
    )
}

/// The user's interview with its job info; cache it under the tags it returns (the
/// interview's and its job info's, [the crate's table](crate#cache-tags)).
pub fn get(
    db: &impl Executor,
    user_id: &UserId,
    id: InterviewId,
) -> Result<Cached<InterviewWithJobInfo>> {
    jobprep_repo::span!("interviews.get");
    db.read_cached(
        |conn| repo::get(conn, user_id, id),
        cache_rules::interview_read,
    )
}

/// The interviews with a chat id (those held) under the user's job info, most
/// recently updated first; cache it under the tags it returns ([the crate's table](crate#cache-tags)),
/// which include the job info's (the list is empty once the job info is gone). Another
/// user's job info gives an empty list, as a missing one does.
pub fn list_for_job_info(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
) -> Result<Cached<Vec<Interview>>> {
    jobprep_repo::span!("interviews.list_for_job_info");
    db.read_cached(
        |conn| repo::list_for_job_info(conn, user_id, job_info_id),
        |_| cache_rules::interviews_read(job_info_id),
    )
}

/// Every interview under the user's job info, held or not, most recently updated
/// first; cached under the same tags as [`list_for_job_info`].
pub fn list_all_for_job_info(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
) -> Result<Cached<Vec<Interview>>> {
    jobprep_repo::span!("interviews.list_all_for_job_info");
    db.read_cached(
        |conn| repo::list_all_for_job_info(conn, user_id, job_info_id),
        |_| cache_rules::interviews_read(job_info_id),
    )
}

/// A page of [`list_for_job_info`], in its order: at most `page.limit` interviews after
/// `page.after`, and the cursor of the next page (see [`jobprep_repo::page`]); the same
/// tags.
pub fn list_page_for_job_info(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
    page: &PageRequest,
) -> Result<Cached<Page<Interview>>> {
    jobprep_repo::span!("interviews.list_page_for_job_info");
    db.read_cached(
        |conn| repo::list_page_for_job_info(conn, user_id, job_info_id, page),
        |_| cache_rules::interviews_read(job_info_id),
    )
}

/// A page of [`list_all_for_job_info`], as [`list_page_for_job_info`] pages its list.
pub fn list_all_page_for_job_info(
    db: &impl Executor,
    user_id: &UserId,
    job_info_id: JobInfoId,
    page: &PageRequest,
) -> Result<Cached<Page<Interview>>> {
    jobprep_repo::span!("interviews.list_all_page_for_job_info");
    db.read_cached(
        |conn| repo::list_all_page_for_job_info(conn, user_id, job_info_id, page),
        |_| cache_rules::interviews_read(job_info_id),
    )
}

/// How many of the user's interviews have a chat id (the plan quota). It spans all of
/// the user's job infos, so it is cached under the tag of all interviews, which every
/// interview write reports ([the crate's table](crate#cache-tags)).
pub fn count_for_user(db: &impl Executor, user_id: &UserId) -> Result<Cached<i64>> {
    jobprep_repo::span!("interviews.count_for_user");
    db.read_cached(
        |conn| repo::count_for_user(conn, user_id),
        |_| cache_rules::count_read(Entity::Interview),
    )
}
