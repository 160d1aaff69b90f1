//! The use cases of this crate as `async fn`s over an [`AsyncDb`] (feature `tokio`).
//! Each takes owned arguments and runs its synchronous twin on a worker thread of the
//! `AsyncDb` (see [`jobprep_repo::asynch`]); cache tags and errors are the same.

pub use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::Cached;

use crate::{
    JobInfoId, NewQuestion, Page, PageRequest, Question, QuestionChanges, QuestionId, QuestionKey,
    QuestionWithJobInfo, UserId,
};

jobprep_repo::async_twins! {
    insert(user_id: &UserId, job_info_id: JobInfoId, question: &NewQuestion) -> QuestionKey;
    insert_within_quota(user_id: &UserId, job_info_id: JobInfoId, question: &NewQuestion, limit: u32) -> QuestionKey;
    insert_many(user_id: &UserId, job_info_id: JobInfoId, questions: &Vec<NewQuestion>) -> Vec<QuestionKey>;
    update(user_id: &UserId, id: QuestionId, changes: &QuestionChanges) -> QuestionKey;
    delete(user_id: &UserId, id: QuestionId) -> QuestionKey;
    get(user_id: &UserId, id: QuestionId) -> Cached<QuestionWithJobInfo>;
    list_for_job_info(user_id: &UserId, job_info_id: JobInfoId) -> Cached<Vec<Question>>;
    list_page_for_job_info(user_id: &UserId, job_info_id: JobInfoId, page: &PageRequest) -> Cached<Page<Question>>;
    count_for_user(user_id: &UserId) -> Cached<i64>;
}
