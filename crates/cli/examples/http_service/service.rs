//! The service: its state, how it opens the database, and the routes.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use axum::Router;
use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::{Db, DbConfig, TagSink};
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::cache::ReadCache;
use crate::errors::ApiError;
use crate::limits::{QuestionQuota, BODY_LIMIT, DEFAULT_QUESTION_QUOTA};
use crate::routes::interviews::{
    create_interview, delete_interview, get_interview, list_interviews, update_interview,
};
use crate::routes::job_infos::{
    create_job_info, delete_job_info, get_job_info, list_job_infos, update_job_info,
};
use crate::routes::questions::{
    create_questions, delete_question, get_question, list_questions, update_question,
};
use crate::routes::users::{delete_me, get_me, put_me, usage};
use crate::routes::webhook::auth_webhook;

/// The service's state: the database, its read cache, how callers are authenticated
/// and the question quota.
#[derive(Clone)]
pub struct Service {
    db: AsyncDb,
    cache: ReadCache,
    auth: Auth,
    question_quota: u32,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("backend", &self.backend())
            .field("caching", &self.caching())
            .field("auth", &self.auth)
            .field("question_quota", &self.question_quota)
            .finish()
    }
}

impl FromRef<Service> for AsyncDb {
    fn from_ref(service: &Service) -> AsyncDb {
        service.db.clone()
    }
}

impl FromRef<Service> for ReadCache {
    fn from_ref(service: &Service) -> ReadCache {
        service.cache.clone()
    }
}

impl FromRef<Service> for QuestionQuota {
    fn from_ref(service: &Service) -> QuestionQuota {
        QuestionQuota(service.question_quota)
    }
}

impl FromRef<Service> for Auth {
    fn from_ref(service: &Service) -> Auth {
        service.auth.clone()
    }
}

impl Service {
    /// The backend the service runs on.
    pub fn backend(&self) -> jobprep_repo::Backend {
        self.db.backend()
    }

    /// Whether reads are cached (a cache-feed listener is running).
    pub fn caching(&self) -> bool {
        self.cache.is_enabled()
    }

    /// The service with `limit` as every user's question quota (default
    /// [`DEFAULT_QUESTION_QUOTA`]).
    pub fn with_question_quota(mut self, limit: u32) -> Service {
        self.question_quota = limit;
        self
    }
}

/// The service for `database_url` (default: `DATABASE_URL`, else the embedded SQLite
/// file), migrated, with its read cache following the cache feed when it can, and its
/// callers authenticated as `auth` says.
pub async fn open(database_url: Option<&str>, auth: Auth) -> jobprep_repo::Result<Service> {
    let cache = ReadCache::default();
    let sink: Arc<dyn TagSink> = Arc::new(cache.clone());
    let config = match database_url.filter(|url| !url.trim().is_empty()) {
        Some(url) => DbConfig::parse(url)?,
        None => DbConfig::from_env()?,
    };
    let db = AsyncDb::new(Db::from_config(config, sink)?);
    db.migrate().await?;
    if let Err(error) = cache.follow(db.sync()) {
        eprintln!("http_service: read cache off: {error}");
    }
    Ok(Service {
        db,
        cache,
        auth,
        question_quota: DEFAULT_QUESTION_QUOTA,
    })
}

/// Serves the API on `listener` until `shutdown` completes, then lets the requests in
/// flight finish.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    service: Service,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Every route, over `service`.
pub fn router(service: Service) -> Router {
    Router::new()
        .route("/users/me", get(get_me).put(put_me).delete(delete_me))
        .route("/users/me/usage", get(usage))
        .route("/job-infos", get(list_job_infos).post(create_job_info))
        .route(
            "/job-infos/{id}",
            get(get_job_info)
                .patch(update_job_info)
                .delete(delete_job_info),
        )
        .route(
            "/job-infos/{id}/interviews",
            get(list_interviews).post(create_interview),
        )
        .route(
            "/job-infos/{id}/questions",
            get(list_questions).post(create_questions),
        )
        .route(
            "/interviews/{id}",
            get(get_interview)
                .patch(update_interview)
                .delete(delete_interview),
        )
        .route(
            "/questions/{id}",
            get(get_question)
                .patch(update_question)
                .delete(delete_question),
        )
        .route("/webhooks/auth", post(auth_webhook))
        // After the routes: it applies to those registered before it.
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NoRoute })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(service)
}
