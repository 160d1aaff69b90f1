//! Questions of a job info, and `/questions/{id}`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobprep_questions::{asynch as questions, NewQuestion, QuestionChanges};
use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::{JobInfoId, QuestionId};
use serde_json::Value;

use crate::errors::ApiError;
use crate::extract::{Id, JsonBody, JsonValue, Owner, Paging};
use crate::json::{from_object, kind};
use crate::limits::{QuestionQuota, MAX_QUESTIONS_PER_REQUEST};
use crate::respond::{cached, created};

/// One question (an object) or a list of 1 to [`MAX_QUESTIONS_PER_REQUEST`], within
/// the user's question quota. A list is written in one transaction, each question
/// through the library's quota-checked insert (it has no quota-checked bulk insert),
/// so a list that would go over the quota is refused as a whole.
pub(crate) async fn create_questions(
    State(db): State<AsyncDb>,
    State(QuestionQuota(quota)): State<QuestionQuota>,
    Owner(me): Owner,
    Id(job_info_id): Id<JobInfoId>,
    JsonValue(body): JsonValue,
) -> Result<Response, ApiError> {
    let items = match body {
        Value::Array(items) => items,
        body @ Value::Object(_) => {
            let one: NewQuestion = from_object(body)?;
            let key = questions::insert_within_quota(&db, me, job_info_id, one, quota);
            return Ok(created(key.await?));
        }
        other => {
            return Err(ApiError::invalid(
                "",
                format!(
                    "expected a question (a JSON object) or a list of them, found {}",
                    kind(&other)
                ),
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::invalid("", "the list of questions is empty"));
    }
    if items.len() > MAX_QUESTIONS_PER_REQUEST {
        return Err(ApiError::TooManyQuestions);
    }
    let at = |i: usize| move |error: ApiError| error.at(&format!("[{i}]"));
    let mut many = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let question: NewQuestion = from_object(item).map_err(at(i))?;
        // The library's checks, before the transaction, with the element's index.
        question.validate().map_err(ApiError::from).map_err(at(i))?;
        many.push(question);
    }
    let keys = db
        .transaction_with_error(move |tx| {
            let mut keys = Vec::with_capacity(many.len());
            for (i, question) in many.iter().enumerate() {
                let key =
                    jobprep_questions::insert_within_quota(tx, &me, job_info_id, question, quota);
                keys.push(key.map_err(ApiError::from).map_err(at(i))?);
            }
            Ok::<_, ApiError>(keys)
        })
        .await?;
    Ok(created(keys))
}

pub(crate) async fn list_questions(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(job_info_id): Id<JobInfoId>,
    Paging(page): Paging,
) -> Result<Response, ApiError> {
    cached(questions::list_page_for_job_info(&db, me, job_info_id, page).await?)
}

pub(crate) async fn get_question(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<QuestionId>,
) -> Result<Response, ApiError> {
    cached(questions::get(&db, me, id).await?)
}

pub(crate) async fn update_question(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<QuestionId>,
    JsonBody(changes): JsonBody<QuestionChanges>,
) -> Result<Response, ApiError> {
    Ok(Json(questions::update(&db, me, id, changes).await?).into_response())
}

pub(crate) async fn delete_question(
    State(db): State<AsyncDb>,
    Owner(me): Owner,
    Id(id): Id<QuestionId>,
) -> Result<Response, ApiError> {
    Ok(Json(questions::delete(&db, me, id).await?).into_response())
}
