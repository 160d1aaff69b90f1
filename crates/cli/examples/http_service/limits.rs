//! The service's limits and settings, which its errors name.

/// The most bytes a request body may hold (axum's default, made explicit so the 413
/// can name it).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The most questions one `POST /job-infos/{id}/questions` may add.
pub const MAX_QUESTIONS_PER_REQUEST: usize = 100;

/// How many questions a user may have when `--question-quota` is not given. This
/// example knows no plans; a real service takes the limit from the user's plan.
pub const DEFAULT_QUESTION_QUOTA: u32 = 1000;

/// The question quota of every user, as handlers take it from the service's state.
#[derive(Debug, Clone, Copy)]
pub struct QuestionQuota(pub u32);
