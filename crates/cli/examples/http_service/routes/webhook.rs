//! `POST /webhooks/auth`: the auth provider's user events, mapped as the original app
//! maps them.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::Error;
use jobprep_users::{asynch as users, NewUser, UserId};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{tag_safe_user_id, Auth};
use crate::errors::ApiError;
use crate::extract::{require_json, RawBody};
use crate::json::{from_object, parse_json};

/// An event of the auth provider: `{"type": "user.created", "data": {...}, ...}`.
#[derive(Debug, Deserialize)]
struct AuthEvent {
    #[serde(rename = "type")]
    kind: String,
    data: Value,
}

/// The provider's user, in its own field names. Email addresses are read one by one
/// (see [`new_user_from_provider`]), so each is refused unless it is an object.
#[derive(Debug, Deserialize)]
struct ProviderUser {
    id: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email_addresses: Vec<Value>,
    #[serde(default)]
    primary_email_address_id: Option<String>,
    #[serde(default)]
    image_url: Option<String>,
    /// Epoch milliseconds.
    created_at: i64,
    /// Epoch milliseconds.
    updated_at: i64,
}

#[derive(Debug, Deserialize)]
struct ProviderEmail {
    id: String,
    email_address: String,
}

/// What `user.deleted` carries: `{"id": ..., "deleted": true, "object": "user"}`.
#[derive(Debug, Deserialize)]
struct ProviderDeletedUser {
    id: String,
}

pub(crate) async fn auth_webhook(
    State(db): State<AsyncDb>,
    State(auth): State<Auth>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    // The signature covers the bytes as received: checked before they are parsed.
    auth.verify_webhook(&headers, &body)?;
    require_json(headers.get(header::CONTENT_TYPE), &body)?;
    let event: AuthEvent = from_object(parse_json(&body)?)?;
    match event.kind.as_str() {
        "user.created" | "user.updated" => {
            let user = new_user_from_provider(event_data(event.data)?)?;
            Ok(Json(users::upsert(&db, user).await?).into_response())
        }
        "user.deleted" => {
            let deleted: ProviderDeletedUser = event_data(event.data)?;
            let id = provider_user_id(&deleted.id)?;
            match users::delete(&db, id).await {
                Ok(removed) => Ok(Json(Some(removed)).into_response()),
                // Already gone: a redelivered event succeeds.
                Err(Error::NotFound { .. }) => Ok(Json(Value::Null).into_response()),
                Err(error) => Err(error.into()),
            }
        }
        // Events this service does not subscribe to: acknowledged, so they are not
        // delivered again.
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The provider's `data.id` as a user id ([`tag_safe_user_id`]).
fn provider_user_id(id: &str) -> Result<UserId, ApiError> {
    tag_safe_user_id(id).map_err(|reason| ApiError::invalid("data.id", reason))
}

/// The provider's user as jobprep's upsert form (see the module docs). Every refusal
/// names the provider's field, as a path into its payload; jobprep's own checks of
/// the form are run here, so their fields can be named so too.
fn new_user_from_provider(user: ProviderUser) -> Result<NewUser, ApiError> {
    let id = provider_user_id(&user.id)?;
    let mut emails = Vec::with_capacity(user.email_addresses.len());
    for (i, email) in user.email_addresses.into_iter().enumerate() {
        let email: ProviderEmail =
            from_object(email).map_err(|e| e.at(&format!("data.email_addresses[{i}]")))?;
        emails.push(email);
    }
    let primary = emails
        .iter()
        .position(|email| Some(&email.id) == user.primary_email_address_id.as_ref())
        .ok_or_else(|| {
            ApiError::invalid(
                "data.primary_email_address_id",
                "no entry of data.email_addresses has this id",
            )
        })?;
    let email = emails.swap_remove(primary).email_address;
    let first_name = user
        .first_name
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    let last_name = user.last_name.as_deref().map(str::trim).unwrap_or_default();
    let name_from = match (first_name.is_empty(), last_name.is_empty()) {
        (false, _) => "data.first_name",
        (true, false) => "data.last_name",
        (true, true) => "email",
    };
    let name = [first_name, last_name]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let name = if name.is_empty() { email.clone() } else { name };
    let time = |field: &str, millis: i64| {
        chrono::DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| ApiError::invalid(field, "not a time in epoch milliseconds"))
    };
    let created_at = time("data.created_at", user.created_at)?;
    let updated_at = time("data.updated_at", user.updated_at)?;
    if user.updated_at < user.created_at {
        return Err(ApiError::invalid(
            "data.updated_at",
            "must not be before data.created_at",
        ));
    }
    let new = NewUser {
        // The provider sends "" for a user without an image; the column holds NULL.
        image_url: user.image_url.filter(|url| !url.trim().is_empty()),
        ..NewUser::new(id, name, email).with_provider_timestamps(created_at, updated_at)
    };
    let email_path = format!("data.email_addresses[{primary}].email_address");
    new.validate().map_err(|error| match error {
        Error::InvalidInput { field, reason } => {
            let path = match field {
                "name" if name_from == "email" => email_path.as_str(),
                "name" => name_from,
                "email" => email_path.as_str(),
                "imageUrl" => "data.image_url",
                "createdAt" => "data.created_at",
                "updatedAt" => "data.updated_at",
                _ => "data",
            };
            ApiError::invalid(path, reason)
        }
        other => other.into(),
    })?;
    Ok(new)
}

/// An event's `data`: an object, with a field that fails to deserialize named as
/// `data.{field}`.
fn event_data<T: DeserializeOwned>(data: Value) -> Result<T, ApiError> {
    from_object(data).map_err(|error| error.at("data"))
}
