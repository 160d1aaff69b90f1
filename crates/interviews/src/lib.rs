#![doc = include_str!("../README.md")]

use jobprep_repo::{cache_rules, interviews as repo, CacheTag, Cached, Entity, Executor, Result};

pub use jobprep_repo::interviews::{
    Interview, InterviewChanges, InterviewJobInfo, InterviewKey, InterviewWithJobInfo, NewInterview,
};
pub use jobprep_repo::{InterviewId, JobInfoId, UserId};

#[cfg(feature = "tokio")]
pub mod asynch;

/// Starts an interview under a job info the user owns. Reports `global:interviews`,
/// `jobInfo:{jobInfoId}:interviews` and `id:{id}:interviews`.
pub fn create(
    db: &impl Executor,
    user_id: &UserId,
    interview: &NewInterview,
) -> Result<InterviewKey> {
    jobprep_repo::span!("interviews.create");
    db.write(|conn, tags| {
        let key = repo::insert(conn, user_id, interview)?;
        tags.extend(cache_rules::interview_write(&key));
        Ok(key)
    })
}

/// [`create`], checked against the plan quota: an interview counts once it has a chat
/// id (as [`count_for_user`] counts), so creating one with a chat id when the user has
/// `limit` already is `Error::QuotaExceeded { entity: Interview, limit }` (not
/// retryable), nothing written and nothing reported. One without a chat id does not
/// count; [`update_within_quota`] checks the write that gives it one. The count and the
/// write are one atomic step, so concurrent requests of one user never overshoot
/// `limit`. Reports the same tags as [`create`].
pub fn create_within_quota(
    db: &impl Executor,
    user_id: &UserId,
    interview: &NewInterview,
    limit: u32,
) -> Result<InterviewKey> {
    jobprep_repo::span!("interviews.create_within_quota");
    db.write(|conn, tags| {
        let key = repo::insert_within_quota(conn, user_id, interview, limit)?;
        tags.extend(cache_rules::interview_write(&key));
        Ok(key)
    })
}

/// [`update`], checked against the plan quota when it gives the interview its first
/// chat id (the write that makes it count): with `limit` counted interviews already,
/// that is `Error::QuotaExceeded { entity: Interview, limit }`, nothing written and
/// nothing reported. Other changes are applied as [`update`] applies them. Atomic like
/// [`create_within_quota`]. Reports the same tags as [`create`].
pub fn update_within_quota(
    db: &impl Executor,
    id: InterviewId,
    user_id: &UserId,
    changes: &InterviewChanges,
    limit: u32,
) -> Result<InterviewKey> {
    jobprep_repo::span!("interviews.update_within_quota");
    db.write(|conn, tags| {
        let key = repo::update_within_quota(conn, id, user_id, changes, limit)?;
        tags.extend(cache_rules::interview_write(&key));
        Ok(key)
    })
}

/// Records the chat id, duration or feedback of the user's interview. Reports the same
/// tags as [`create`].
pub fn update(
    db: &impl Executor,
    id: InterviewId,
    user_id: &UserId,
    changes: &InterviewChanges,
) -> Result<InterviewKey> {
    jobprep_repo::span!("interviews.update");
    db.write(|conn, tags| {
        let key = repo::update(conn, id, user_id, changes)?;
        tags.extend(cache_rules::interview_write(&key));
        Ok(key)
    })
}

/// Deletes the user's interview. Reports the same tags as [`create`].
pub fn delete(db: &impl Executor, id: InterviewId, user_id: &UserId) -> Result<InterviewKey> {
    jobprep_repo::span!("interviews.delete");
    db.write(|conn, tags| {
        let key = repo::delete(conn, id, user_id)?;
        tags.extend(cache_rules::interview_write(&key));
        Ok(key)
    })
}

/// The user's interview with its job info; cache under `id:{id}:interviews` and
/// `id:{jobInfoId}:jobInfos`.
pub fn get(
    db: &impl Executor,
    id: InterviewId,
    user_id: &UserId,
) -> Result<Cached<InterviewWithJobInfo>> {
    jobprep_repo::span!("interviews.get");
    let found = db.read(|conn| repo::get(conn, id, user_id))?;
    let tags = vec![
        CacheTag::id(id, Entity::Interview),
        CacheTag::id(found.job_info.id, Entity::JobInfo),
    ];
    Ok(Cached::new(found, tags))
}

/// The interviews with a chat id (those held) under the user's job info, most
/// recently updated first; cache under `jobInfo:{jobInfoId}:interviews` and
/// `id:{jobInfoId}:jobInfos` (the list is empty once the job info is gone). Another
/// user's job info gives an empty list, as a missing one does.
pub fn list_for_job_info(
    db: &impl Executor,
    job_info_id: JobInfoId,
    user_id: &UserId,
) -> Result<Cached<Vec<Interview>>> {
    jobprep_repo::span!("interviews.list_for_job_info");
    let found = db.read(|conn| repo::list_for_job_info(conn, job_info_id, user_id))?;
    Ok(Cached::new(
        found,
        cache_rules::interviews_read(job_info_id),
    ))
}

/// Every interview under the user's job info, held or not, most recently updated
/// first; cached under the same tags as [`list_for_job_info`].
pub fn list_all_for_job_info(
    db: &impl Executor,
    job_info_id: JobInfoId,
    user_id: &UserId,
) -> Result<Cached<Vec<Interview>>> {
    jobprep_repo::span!("interviews.list_all_for_job_info");
    let found = db.read(|conn| repo::list_all_for_job_info(conn, job_info_id, user_id))?;
    Ok(Cached::new(
        found,
        cache_rules::interviews_read(job_info_id),
    ))
}

/// How many of the user's interviews have a chat id (the plan quota). It spans all of
/// the user's job infos, so it is cached under `global:interviews`, which every
/// interview write reports.
pub fn count_for_user(db: &impl Executor, user_id: &UserId) -> Result<Cached<i64>> {
    jobprep_repo::span!("interviews.count_for_user");
    let count = db.read(|conn| repo::count_for_user(conn, user_id))?;
    Ok(Cached::new(
        count,
        vec![CacheTag::global(Entity::Interview)],
    ))
}
