//! Query timing through diesel's instrumentation hook, reported with `tracing`
//! (feature `tracing`).
//!
//! - Every statement: a `DEBUG` event on target `jobprep::query` with its SQL (bind
//!   values left out: they carry user data) and duration.
//! - A statement slower than the threshold (default 200 ms, `JOBPREP_SLOW_QUERY_MS`):
//!   a `WARN` event on target `jobprep::slow_query`.
//! - Each use case of the feature crates runs in a span named after it (see
//!   [`crate::span!`]), target `jobprep`, with OpenTelemetry's database attributes:
//!   `db.operation.name` (the use case, `questions.insert_within_quota`),
//!   `db.collection.name` (its table), `db.system.name` (`postgresql` or `sqlite`, when
//!   a statement ran), and `jobprep.statements`, the statements it sent, BEGIN and
//!   COMMIT included: over a network each costs a round trip (a statement's first run
//!   on a connection one more, to prepare it). Connection URLs are never logged.

use std::cell::Cell;
use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent};

use crate::database_url::Backend;

thread_local! {
    /// Statements started on this thread: a use case runs on one thread, so the
    /// difference across its span is what it sent.
    static STATEMENTS: Cell<u64> = const { Cell::new(0) };
    /// The backend of the latest statement on this thread, for `db.system.name`.
    static SYSTEM: Cell<&'static str> = const { Cell::new("") };
}

/// Times each statement on one connection.
pub(crate) struct QueryTimer {
    slow: Duration,
    started: Option<Instant>,
    system: &'static str,
}

impl QueryTimer {
    pub(crate) fn new(slow: Duration, backend: Backend) -> Self {
        QueryTimer {
            slow,
            started: None,
            system: match backend {
                Backend::Postgres => "postgresql",
                Backend::Sqlite => "sqlite",
            },
        }
    }
}

/// The span of one use case (see the module docs); [`crate::span!`] makes it.
#[doc(hidden)]
#[derive(Debug)]
pub struct UseCaseSpan {
    span: tracing::span::EnteredSpan,
    statements_before: u64,
}

impl UseCaseSpan {
    pub fn enter(operation: &'static str) -> Self {
        let span = tracing::info_span!(
            target: "jobprep",
            "jobprep",
            op = operation,
            db.operation.name = operation,
            db.collection.name = collection(operation),
            db.system.name = tracing::field::Empty,
            jobprep.statements = tracing::field::Empty,
        );
        UseCaseSpan {
            span: span.entered(),
            statements_before: STATEMENTS.with(Cell::get),
        }
    }
}

impl Drop for UseCaseSpan {
    fn drop(&mut self) {
        let sent = STATEMENTS
            .with(Cell::get)
            .saturating_sub(self.statements_before);
        self.span.record("jobprep.statements", sent);
        if sent > 0 {
            self.span.record("db.system.name", SYSTEM.with(Cell::get));
        }
    }
}

/// The table a use case is named after (`job_infos.insert` writes `job_info`).
fn collection(operation: &str) -> &'static str {
    match operation.split('.').next() {
        Some("users") => "users",
        Some("job_infos") => "job_info",
        Some("interviews") => "interviews",
        Some("questions") => "questions",
        _ => "",
    }
}

/// The statement's SQL without the bind values diesel appends (`-- binds: [...]`).
fn sql_only(query: &dyn std::fmt::Display) -> String {
    let text = query.to_string();
    match text.find(" -- binds: ") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

impl Instrumentation for QueryTimer {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => {
                STATEMENTS.with(|n| n.set(n.get() + 1));
                SYSTEM.with(|system| system.set(self.system));
                self.started = Some(Instant::now());
            }
            InstrumentationEvent::FinishQuery { query, error, .. } => {
                let elapsed = self.started.take().map(|t| t.elapsed()).unwrap_or_default();
                let elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                if elapsed >= self.slow {
                    tracing::warn!(
                        target: "jobprep::slow_query",
                        elapsed_us,
                        threshold_ms = u64::try_from(self.slow.as_millis()).unwrap_or(u64::MAX),
                        failed = error.is_some(),
                        sql = %sql_only(query),
                        "slow query"
                    );
                } else if tracing::enabled!(target: "jobprep::query", tracing::Level::DEBUG) {
                    tracing::debug!(
                        target: "jobprep::query",
                        elapsed_us,
                        failed = error.is_some(),
                        sql = %sql_only(query),
                        "query"
                    );
                }
            }
            _ => {}
        }
    }
}
