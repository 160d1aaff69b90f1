//! The cache tags of every write and read, in one place: the product's cache rules.
//! Writes report the tags they invalidate (cascades reuse the rules of the rows they
//! removed); reads return the tags their result depends on. Tag formats are
//! `global:{t}`, `user:{userId}:{t}`, `jobInfo:{jobInfoId}:{t}` and `id:{id}:{t}`.

use crate::error::Entity;
use crate::interviews::{InterviewKey, InterviewWithJobInfo};
use crate::job_infos::{JobInfoKey, RemovedJobInfo};
use crate::questions::{QuestionKey, QuestionWithJobInfo};
use crate::tags::CacheTag;
use crate::types::{JobInfoId, UserId};
use crate::users::RemovedUser;

/// A user write: `global:users`, `id:{userId}:users`.
pub fn user_write(id: &UserId) -> Vec<CacheTag> {
    vec![
        CacheTag::global(Entity::User),
        CacheTag::id(id, Entity::User),
    ]
}

/// A job info write: `global:jobInfos`, `user:{userId}:jobInfos`, `id:{id}:jobInfos`.
pub fn job_info_write(key: &JobInfoKey) -> Vec<CacheTag> {
    vec![
        CacheTag::global(Entity::JobInfo),
        CacheTag::user(&key.user_id, Entity::JobInfo),
        CacheTag::id(key.id, Entity::JobInfo),
    ]
}

/// An interview write: `global:interviews`, `jobInfo:{jobInfoId}:interviews`,
/// `id:{id}:interviews`.
pub fn interview_write(key: &InterviewKey) -> Vec<CacheTag> {
    vec![
        CacheTag::global(Entity::Interview),
        CacheTag::job_info(key.job_info_id, Entity::Interview),
        CacheTag::id(key.id, Entity::Interview),
    ]
}

/// A question write: `global:questions`, `jobInfo:{jobInfoId}:questions`,
/// `id:{id}:questions`.
pub fn question_write(key: &QuestionKey) -> Vec<CacheTag> {
    vec![
        CacheTag::global(Entity::Question),
        CacheTag::job_info(key.job_info_id, Entity::Question),
        CacheTag::id(key.id, Entity::Question),
    ]
}

/// Questions written together under one job info: the shared tags once, then each
/// question's `id:` tag. Nothing written, nothing reported.
pub fn questions_write(job_info_id: JobInfoId, keys: &[QuestionKey]) -> Vec<CacheTag> {
    if keys.is_empty() {
        return Vec::new();
    }
    let mut tags = Vec::with_capacity(keys.len() + 2);
    tags.push(CacheTag::global(Entity::Question));
    tags.push(CacheTag::job_info(job_info_id, Entity::Question));
    tags.extend(
        keys.iter()
            .map(|key| CacheTag::id(key.id, Entity::Question)),
    );
    tags
}

// Reads: the tags a result depends on, for caching it.

/// A user: `id:{userId}:users`.
pub fn user_read(id: &UserId) -> Vec<CacheTag> {
    vec![CacheTag::id(id, Entity::User)]
}

/// A job info: `id:{id}:jobInfos`.
pub fn job_info_read(id: JobInfoId) -> Vec<CacheTag> {
    vec![CacheTag::id(id, Entity::JobInfo)]
}

/// Anything about a user's job infos as a whole (their list, whether there is one):
/// `user:{userId}:jobInfos`.
pub fn job_infos_read(user_id: &UserId) -> Vec<CacheTag> {
    vec![CacheTag::user(user_id, Entity::JobInfo)]
}

/// An interview with its job info: `id:{id}:interviews`, `id:{jobInfoId}:jobInfos`.
pub fn interview_read(found: &InterviewWithJobInfo) -> Vec<CacheTag> {
    vec![
        CacheTag::id(found.interview.id, Entity::Interview),
        CacheTag::id(found.job_info.id, Entity::JobInfo),
    ]
}

/// A count that spans all of a user's job infos: `global:{t}`, which every write of
/// the kind reports (there is no per-user tag for interviews or questions).
pub fn count_read(entity: Entity) -> Vec<CacheTag> {
    vec![CacheTag::global(entity)]
}

/// A question with its job info: `id:{id}:questions`, `id:{jobInfoId}:jobInfos`.
pub fn question_read(found: &QuestionWithJobInfo) -> Vec<CacheTag> {
    vec![
        CacheTag::id(found.question.id, Entity::Question),
        CacheTag::id(found.job_info.id, Entity::JobInfo),
    ]
}

/// The questions of a job info: `jobInfo:{jobInfoId}:questions`.
pub fn questions_read(job_info_id: JobInfoId) -> Vec<CacheTag> {
    vec![CacheTag::job_info(job_info_id, Entity::Question)]
}

/// What a list of a job info's interviews depends on: the interviews under it
/// (`jobInfo:{jobInfoId}:interviews`) and the job info itself
/// (`id:{jobInfoId}:jobInfos`), as the original app caches it.
pub fn interviews_read(job_info_id: JobInfoId) -> Vec<CacheTag> {
    vec![
        CacheTag::job_info(job_info_id, Entity::Interview),
        CacheTag::id(job_info_id, Entity::JobInfo),
    ]
}

/// A job info delete: its own tags and those of every interview and question the
/// cascade removed.
pub fn job_info_removed(removed: &RemovedJobInfo) -> Vec<CacheTag> {
    let mut tags = job_info_write(&removed.key);
    tags.extend(removed.interviews.iter().flat_map(interview_write));
    tags.extend(removed.questions.iter().flat_map(question_write));
    tags
}

/// A user delete: the user's tags and those of every row the cascade removed.
pub fn user_removed(removed: &RemovedUser) -> Vec<CacheTag> {
    let mut tags = user_write(&removed.id);
    tags.extend(removed.job_infos.iter().flat_map(job_info_write));
    tags.extend(removed.interviews.iter().flat_map(interview_write));
    tags.extend(removed.questions.iter().flat_map(question_write));
    tags
}
