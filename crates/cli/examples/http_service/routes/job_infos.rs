//! `/job-infos`: the caller's job infos.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobprep_job_infos::{asynch as job_infos, JobInfoChanges, NewJobInfo};
use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::JobInfoId;

use crate::cache::ReadCache;
use crate::errors::ApiError;
use crate::extract::{Id, JsonBody, Owner, Paging};
use crate::respond::created;

pub(crate) async fn create_job_info(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    JsonBody(job): JsonBody<NewJobInfo>,
) -> Result<Response, ApiError> {
    Ok(created(job_infos::insert(&db, me, job).await?))
}

pub(crate) async fn list_job_infos(
    State(db): State<AsyncDb>,
    State(cache): State<ReadCache>,
    Owner(me): Owner,
    Paging(page): Paging,
) -> Result<Response, ApiError> {
    let after = page.after.map(|c| c.to_string()).unwrap_or_default();
    let key = format!("{me} /job-infos?limit={}&after={after}", page.limit);
    cache
        .serve(key, job_infos::list_page_for_user(&db, me, page))
        .await
}

pub(crate) async fn get_job_info(
    State(db): State<AsyncDb>,
    State(cache): State<ReadCache>,
    Owner(me): Owner,
    Id(id): Id<JobInfoId>,
) -> Result<Response, ApiError> {
    let key = format!("{me} /job-infos/{id}");
    cache.serve(key, job_infos::get(&db, me, id)).await
}

pub(crate) async fn update_job_info(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<JobInfoId>,
    JsonBody(changes): JsonBody<JobInfoChanges>,
) -> Result<Response, ApiError> {
    Ok(Json(job_infos::update(&db, me, id, changes).await?).into_response())
}

pub(crate) async fn delete_job_info(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<JobInfoId>,
) -> Result<Response, ApiError> {
    Ok(Json(job_infos::delete(&db, me, id).await?).into_response())
}
