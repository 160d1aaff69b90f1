//! The use cases of this crate as `async fn`s over an [`AsyncDb`] (feature `tokio`).
//! Each takes owned arguments and runs its synchronous twin on a worker thread of the
//! `AsyncDb` (see [`jobprep_repo::asynch`]); cache tags and errors are the same.

pub use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::Cached;

use crate::{
    Interview, InterviewChanges, InterviewId, InterviewKey, InterviewWithJobInfo, JobInfoId,
    NewInterview, Page, PageRequest, UserId,
};

jobprep_repo::async_twins! {
    insert(user_id: &UserId, job_info_id: JobInfoId, interview: &NewInterview) -> InterviewKey;
    insert_within_quota(user_id: &UserId, job_info_id: JobInfoId, interview: &NewInterview, limit: u32) -> InterviewKey;
    update(user_id: &UserId, id: InterviewId, changes: &InterviewChanges) -> InterviewKey;
    update_within_quota(user_id: &UserId, id: InterviewId, changes: &InterviewChanges, limit: u32) -> InterviewKey;
    delete(user_id: &UserId, id: InterviewId) -> InterviewKey;
    get(user_id: &UserId, id: InterviewId) -> Cached<InterviewWithJobInfo>;
    list_for_job_info(user_id: &UserId, job_info_id: JobInfoId) -> Cached<Vec<Interview>>;
    list_all_for_job_info(user_id: &UserId, job_info_id: JobInfoId) -> Cached<Vec<Interview>>;
    list_page_for_job_info(user_id: &UserId, job_info_id: JobInfoId, page: &PageRequest) -> Cached<Page<Interview>>;
    list_all_page_for_job_info(user_id: &UserId, job_info_id: JobInfoId, page: &PageRequest) -> Cached<Page<Interview>>;
    count_for_user(user_id: &UserId) -> Cached<i64>;
}
