//! Query timing through diesel's instrumentation hook, reported with `tracing`
//! (feature `tracing`).
//!
//! - Every statement: a `DEBUG` event on target `jobprep::query` with its SQL (bind
//!   values left out: they carry user data) and duration.
//! - A statement slower than the threshold (default 200 ms, `JOBPREP_SLOW_QUERY_MS`):
//!   a `WARN` event on target `jobprep::slow_query`.
//! - Each use case of the feature crates runs in a span named after it (see
//!   [`crate::span!`]). Connection URLs are never logged.

use std::time::{Duration, Instant};

use diesel::connection::{Instrumentation, InstrumentationEvent};

/// Times each statement on one connection.
pub(crate) struct QueryTimer {
    slow: Duration,
    started: Option<Instant>,
}

impl QueryTimer {
    pub(crate) fn new(slow: Duration) -> Self {
        QueryTimer {
            slow,
            started: None,
        }
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
            InstrumentationEvent::StartQuery { .. } => self.started = Some(Instant::now()),
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
