//! `/users/me`: the caller's profile and usage.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobprep_interviews::asynch as interviews;
use jobprep_questions::asynch as questions;
use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::Cached;
use jobprep_users::{asynch as users, NewUser};
use serde::{Deserialize, Serialize};

use crate::errors::ApiError;
use crate::extract::{JsonBody, Owner};
use crate::respond::cached;

/// The profile the auth provider knows; the id is the caller's.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Profile {
    name: String,
    email: String,
    #[serde(default)]
    image_url: Option<String>,
}

pub(crate) async fn put_me(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    JsonBody(profile): JsonBody<Profile>,
) -> Result<Response, ApiError> {
    let user = NewUser {
        image_url: profile.image_url,
        ..NewUser::new(me, profile.name, profile.email)
    };
    Ok(Json(users::upsert(&db, user).await?).into_response())
}

pub(crate) async fn get_me(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
) -> Result<Response, ApiError> {
    cached(users::get(&db, me).await?)
}

pub(crate) async fn delete_me(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
) -> Result<Response, ApiError> {
    Ok(Json(users::delete(&db, me).await?).into_response())
}

#[derive(Debug, Serialize)]
struct Usage {
    interviews: i64,
    questions: i64,
}

pub(crate) async fn usage(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
) -> Result<Response, ApiError> {
    // Two independent reads, in flight at once.
    let (interviews, questions) = tokio::try_join!(
        interviews::count_for_user(&db, me.clone()),
        questions::count_for_user(&db, me),
    )?;
    let tags = [interviews.tags, questions.tags].concat();
    let usage = Usage {
        interviews: interviews.value,
        questions: questions.value,
    };
    cached(Cached::new(usage, tags))
}
