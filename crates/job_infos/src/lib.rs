#![doc = include_str!("../README.md")]

use jobprep_repo::{cache_rules, job_infos as repo, CacheTag, Cached, Entity, Executor, Result};

pub use jobprep_repo::job_infos::{
    JobInfo, JobInfoChanges, JobInfoKey, NewJobInfo, RemovedJobInfo,
};
pub use jobprep_repo::{ExperienceLevel, JobInfoId, UserId};

#[cfg(feature = "tokio")]
pub mod asynch;

/// Creates a job info for the user. Reports `global:jobInfos`,
/// `user:{userId}:jobInfos` and `id:{id}:jobInfos`.
pub fn insert(db: &impl Executor, user_id: &UserId, job: &NewJobInfo) -> Result<JobInfoKey> {
    jobprep_repo::span!("job_infos.insert");
    db.write(|conn, tags| {
        let key = repo::insert(conn, user_id, job)?;
        tags.extend(cache_rules::job_info_write(&key));
        Ok(key)
    })
}

/// Changes the user's job info; another user's is not found. Reports the same tags as
/// [`insert`].
pub fn update(
    db: &impl Executor,
    id: JobInfoId,
    user_id: &UserId,
    changes: &JobInfoChanges,
) -> Result<JobInfoKey> {
    jobprep_repo::span!("job_infos.update");
    db.write(|conn, tags| {
        let key = repo::update(conn, id, user_id, changes)?;
        tags.extend(cache_rules::job_info_write(&key));
        Ok(key)
    })
}

/// Deletes the user's job info with its interviews and questions. Reports the job
/// info's tags and those of every removed interview and question.
pub fn delete(db: &impl Executor, id: JobInfoId, user_id: &UserId) -> Result<RemovedJobInfo> {
    jobprep_repo::span!("job_infos.delete");
    db.write(|conn, tags| {
        let removed = repo::delete(conn, id, user_id)?;
        tags.extend(cache_rules::job_info_removed(&removed));
        Ok(removed)
    })
}

/// The user's job info; cache it under `id:{id}:jobInfos`.
pub fn get(db: &impl Executor, id: JobInfoId, user_id: &UserId) -> Result<Cached<JobInfo>> {
    jobprep_repo::span!("job_infos.get");
    let job = db.read(|conn| repo::get(conn, id, user_id))?;
    Ok(Cached::new(job, vec![CacheTag::id(id, Entity::JobInfo)]))
}

/// The user's job infos, most recently updated first; cache under
/// `user:{userId}:jobInfos`.
pub fn list_for_user(db: &impl Executor, user_id: &UserId) -> Result<Cached<Vec<JobInfo>>> {
    jobprep_repo::span!("job_infos.list_for_user");
    let jobs = db.read(|conn| repo::list_for_user(conn, user_id))?;
    Ok(Cached::new(
        jobs,
        vec![CacheTag::user(user_id, Entity::JobInfo)],
    ))
}

/// Whether the user has any job info left; cache under `user:{userId}:jobInfos`.
pub fn user_has_any(db: &impl Executor, user_id: &UserId) -> Result<Cached<bool>> {
    jobprep_repo::span!("job_infos.user_has_any");
    let any = db.read(|conn| repo::user_has_any(conn, user_id))?;
    Ok(Cached::new(
        any,
        vec![CacheTag::user(user_id, Entity::JobInfo)],
    ))
}
