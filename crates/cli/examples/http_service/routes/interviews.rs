//! Interviews of a job info, and `/interviews/{id}`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobprep_interviews::{asynch as interviews, InterviewChanges, NewInterview};
use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::{InterviewId, JobInfoId};
use serde::Deserialize;

use crate::errors::ApiError;
use crate::extract::{Id, JsonBody, Owner, Paging};
use crate::json::not_null;
use crate::respond::{cached, created};

/// A new interview; the job info comes from the path. As in the library's forms, an
/// unknown field and `null` for the duration (a column that cannot be NULL) are
/// refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct InterviewForm {
    #[serde(default, deserialize_with = "not_null")]
    duration: Option<String>,
    #[serde(default)]
    hume_chat_id: Option<String>,
}

pub(crate) async fn create_interview(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(job_info_id): Id<JobInfoId>,
    JsonBody(form): JsonBody<InterviewForm>,
) -> Result<Response, ApiError> {
    let mut interview = NewInterview::new();
    if let Some(duration) = form.duration {
        interview.duration = duration;
    }
    interview.hume_chat_id = form.hume_chat_id;
    Ok(created(
        interviews::insert(&db, me, job_info_id, interview).await?,
    ))
}

pub(crate) async fn list_interviews(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(job_info_id): Id<JobInfoId>,
    Paging(page): Paging,
) -> Result<Response, ApiError> {
    cached(interviews::list_page_for_job_info(&db, me, job_info_id, page).await?)
}

pub(crate) async fn get_interview(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<InterviewId>,
) -> Result<Response, ApiError> {
    cached(interviews::get(&db, me, id).await?)
}

pub(crate) async fn update_interview(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<InterviewId>,
    JsonBody(changes): JsonBody<InterviewChanges>,
) -> Result<Response, ApiError> {
    Ok(Json(interviews::update(&db, me, id, changes).await?).into_response())
}

pub(crate) async fn delete_interview(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<InterviewId>,
) -> Result<Response, ApiError> {
    Ok(Json(interviews::delete(&db, me, id).await?).into_response())
}
