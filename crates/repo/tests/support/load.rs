//! What the tests that take a server away under write load share (`fault_restart.rs`,
//! `failover.rs`): the load's size and limits, timed call records, and the checks both
//! make on them.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobprep_repo::feed::{FeedOptions, Listener};
use jobprep_repo::{Db, Error};

pub const WRITERS: usize = 4;
/// The pool's wait for a connection; every call during an outage is bounded by it.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// What a call may take beyond the connection timeout (one statement on loopback, a
/// loaded 2-core CI machine).
pub const MARGIN: Duration = Duration::from_millis(1500);
/// Load before the first fault and after each recovery.
pub const STEADY: Duration = Duration::from_secs(2);

/// The environment variable `name`, which `script` sets; a clear panic without it.
pub fn required_var(name: &str, script: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set: this test takes PostgreSQL servers away and runs only \
                 against the servers `bash {script}` starts"
            )
        })
}

/// Runs `program` with `args` and panics, with its output, unless it succeeded.
pub fn run_checked(program: &str, args: &[&str]) {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A name for this run's rows, unique across runs on the same servers.
pub fn run_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{prefix}-{nanos}")
}

/// A failed call, as the checks need it.
#[derive(Debug)]
pub struct Failure {
    pub kind: &'static str,
    pub retryable: bool,
    pub connection_lost: bool,
    pub message: String,
}

impl Failure {
    pub fn of(error: &Error) -> Failure {
        let kind = match error {
            Error::NotFound { .. } => "NotFound",
            Error::Conflict { .. } => "Conflict",
            Error::InvalidInput { .. } => "InvalidInput",
            Error::Unavailable { .. } => "Unavailable",
            Error::OutcomeUnknown { .. } => "OutcomeUnknown",
            Error::Migration(_) => "Migration",
            Error::Config(_) => "Config",
            Error::Database(_) => "Database",
            _ => "other",
        };
        Failure {
            kind,
            retryable: error.is_retryable(),
            connection_lost: matches!(
                error,
                Error::Unavailable {
                    connection_lost: true,
                    ..
                }
            ),
            message: error.to_string(),
        }
    }
}

/// One call: what it was (`what`: an operation, a writer), when it ran, how it ended.
#[derive(Debug)]
pub struct Call<K, T> {
    pub what: K,
    pub start: Duration,
    pub end: Duration,
    pub outcome: Result<T, Failure>,
}

/// What the writer threads and the test's own thread share.
pub struct Shared {
    pub epoch: Instant,
    pub stop: AtomicBool,
    /// Per writer: when its latest successful call ended, in microseconds since `epoch`.
    last_ok: Vec<AtomicU64>,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            epoch: Instant::now(),
            stop: AtomicBool::new(false),
            last_ok: (0..WRITERS).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    pub fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Runs `f` as writer `w`'s call and records it.
    pub fn call<K, T>(
        &self,
        w: usize,
        what: K,
        f: impl FnOnce() -> Result<T, Error>,
    ) -> Call<K, T> {
        let start = self.epoch.elapsed();
        let result = f();
        let end = self.epoch.elapsed();
        if result.is_ok() {
            self.last_ok[w].store(end.as_micros() as u64, Ordering::Relaxed);
        }
        Call {
            what,
            start,
            end,
            outcome: result.map_err(|e| Failure::of(&e)),
        }
    }

    /// Whether every writer has succeeded after `t` (since `epoch`).
    pub fn all_succeeded_after(&self, t: Duration) -> bool {
        self.last_ok
            .iter()
            .all(|ok| Duration::from_micros(ok.load(Ordering::Relaxed)) > t)
    }
}

/// A cache-feed listener on `db` that retries its connection every 50 to 500 ms, so
/// that it comes back soon after the server does.
pub fn quick_listener(db: &Db) -> Listener {
    Listener::start(
        db,
        FeedOptions {
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            ..FeedOptions::default()
        },
    )
    .expect("start a cache-feed listener")
}

/// Polls `ok` every 20 ms for up to `limit`; whether it held.
pub fn eventually(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

pub fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// A message's first line with its numbers blanked, so that the same failure counts once.
pub fn shape(message: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for ch in message.lines().next().unwrap_or("").chars() {
        if ch.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(ch);
        }
    }
    out
}

/// Check (c): no call blocked longer than the connection timeout plus a margin.
/// Prints the durations; pushes a failure when the check fails.
pub fn check_no_call_blocked<K, T>(calls: &[&Call<K, T>], failures: &mut Vec<String>) {
    let mut durations: Vec<Duration> = calls.iter().map(|c| c.end - c.start).collect();
    durations.sort();
    let longest = durations.last().copied().unwrap_or_default();
    let p99 = durations
        .get(durations.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    let longest_failed = calls
        .iter()
        .filter(|c| c.outcome.is_err())
        .map(|c| c.end - c.start)
        .max()
        .unwrap_or_default();
    println!(
        "  call duration: p99 {}, longest {}, longest failed call {}",
        secs(p99),
        secs(longest),
        secs(longest_failed)
    );
    let limit = CONNECTION_TIMEOUT + MARGIN;
    if longest > limit {
        failures.push(format!(
            "(c) a call blocked for {} (limit {} = connection timeout {} + margin {})",
            secs(longest),
            secs(limit),
            secs(CONNECTION_TIMEOUT),
            secs(MARGIN)
        ));
    } else {
        println!(
            "check (c) no call blocked longer than {} + {}: ok (longest {})",
            secs(CONNECTION_TIMEOUT),
            secs(MARGIN),
            secs(longest)
        );
    }
}

/// Prints the failures and fails the test if there are any.
pub fn report(failures: &[String]) {
    for failure in failures {
        println!("check FAILED {failure}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
