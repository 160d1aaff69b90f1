#![doc = include_str!("../README.md")]

use jobprep_repo::{cache_rules, job_infos as repo, Cached, Executor, Result};

pub use jobprep_repo::job_infos::{
    JobInfo, JobInfoChanges, JobInfoKey, NewJobInfo, RemovedJobInfo,
};
pub use jobprep_repo::{ExperienceLevel, JobInfoId, UserId};

pub use jobprep_repo::page::{Cursor, Page, PageRequest};

#[cfg(feature = "tokio")]
pub mod asynch;

/// Creates a job info for the user. Reports the tags in [the crate's table](crate#cache-tags).
pub fn insert(db: &impl Executor, user_id: &UserId, job: &NewJobInfo) -> Result<JobInfoKey> {
    jobprep_repo::span!("job_infos.insert");
    // The id is chosen here, so that a run again after a lost answer inserts once.
    let id = JobInfoId::generate();
    db.write_tagged_idempotent(
        |conn| repo::insert_with_id(conn, id, user_id, job),
        cache_rules::job_info_write,
    )
}

/// Changes the user's job info; another user's is not found. Reports the same tags as
/// [`insert`].
pub fn update(
    db: &impl Executor,
    user_id: &UserId,
    id: JobInfoId,
    changes: &JobInfoChanges,
) -> Result<JobInfoKey> {
    jobprep_repo::span!("job_infos.update");
    db.write_tagged_idempotent(
        |conn| repo::update(conn, user_id, id, changes),
        cache_rules::job_info_write,
    )
}

/// Deletes the user's job info with its interviews and questions. Reports the job
/// info's tags and those of every removed interview and question.
pub fn delete(db: &impl Executor, user_id: &UserId, id: JobInfoId) -> Result<RemovedJobInfo> {
    jobprep_repo::span!("job_infos.delete");
    db.write_tagged(
        |conn| repo::delete(conn, user_id, id),
        cache_rules::job_info_removed,
    )
}

/// The user's job info; cache it under the tags it returns ([the crate's table](crate#cache-tags)).
pub fn get(db: &impl Executor, user_id: &UserId, id: JobInfoId) -> Result<Cached<JobInfo>> {
    jobprep_repo::span!("job_infos.get");
    db.read_cached(
        |conn| repo::get(conn, user_id, id),
        |_| cache_rules::job_info_read(id),
    )
}

/// The user's job infos, most recently updated first; cache them under the tags it
/// returns ([the crate's table](crate#cache-tags)).
pub fn list_for_user(db: &impl Executor, user_id: &UserId) -> Result<Cached<Vec<JobInfo>>> {
    jobprep_repo::span!("job_infos.list_for_user");
    db.read_cached(
        |conn| repo::list_for_user(conn, user_id),
        |_| cache_rules::job_infos_read(user_id),
    )
}

/// A page of [`list_for_user`], in its order: at most `page.limit` job infos after
/// `page.after`, and the cursor of the next page (see [`jobprep_repo::page`]); the same
/// tags.
pub fn list_page_for_user(
    db: &impl Executor,
    user_id: &UserId,
    page: &PageRequest,
) -> Result<Cached<Page<JobInfo>>> {
    jobprep_repo::span!("job_infos.list_page_for_user");
    db.read_cached(
        |conn| repo::list_page_for_user(conn, user_id, page),
        |_| cache_rules::job_infos_read(user_id),
    )
}

/// Whether the user has any job info left; cached under the same tags as
/// [`list_for_user`].
pub fn user_has_any(db: &impl Executor, user_id: &UserId) -> Result<Cached<bool>> {
    jobprep_repo::span!("job_infos.user_has_any");
    db.read_cached(
        |conn| repo::user_has_any(conn, user_id),
        |_| cache_rules::job_infos_read(user_id),
    )
}
