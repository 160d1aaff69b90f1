//! The use cases of this crate as `async fn`s over an [`AsyncDb`] (feature `tokio`).
//! Each takes owned arguments and runs its synchronous twin on a worker thread of the
//! `AsyncDb` (see [`jobprep_repo::asynch`]); cache tags and errors are the same.

pub use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::Cached;

use crate::{
    JobInfo, JobInfoChanges, JobInfoId, JobInfoKey, NewJobInfo, Page, PageRequest, RemovedJobInfo,
    UserId,
};

jobprep_repo::async_twins! {
    insert(user_id: &UserId, job: &NewJobInfo) -> JobInfoKey;
    update(user_id: &UserId, id: JobInfoId, changes: &JobInfoChanges) -> JobInfoKey;
    delete(user_id: &UserId, id: JobInfoId) -> RemovedJobInfo;
    get(user_id: &UserId, id: JobInfoId) -> Cached<JobInfo>;
    list_for_user(user_id: &UserId) -> Cached<Vec<JobInfo>>;
    list_page_for_user(user_id: &UserId, page: &PageRequest) -> Cached<Page<JobInfo>>;
    user_has_any(user_id: &UserId) -> Cached<bool>;
}
