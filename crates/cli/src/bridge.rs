//! `jobprep cache-bridge`: forwards the cache feed to an HTTP endpoint (the app's
//! revalidation route), so a cache in another process hears of every committed write.
//!
//! Each request is `POST {endpoint}` with `content-type: application/json`, the
//! shared secret in the `x-jobprep-secret` header, and `{"tags": ["global:jobInfos",
//! ...]}` as body. A 2xx response acknowledges it; anything else (refused connection,
//! timeout, 5xx, 401) is retried with exponential backoff, and the tags stay queued
//! until acknowledged. Batches that queue up meanwhile are sent together. A reset (a
//! reconnect, and the bridge's own start, since it cannot know what happened while it
//! was not running) is sent as the `global:*` tags.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use jobprep_repo::feed::{self, FeedEvent, FeedOptions, Listener};
use jobprep_repo::{Backend, Db};

use crate::error::CliError;

/// The header that carries the shared secret.
pub const SECRET_HEADER: &str = "x-jobprep-secret";
/// Most tags in one request; more queued tags go in the next one.
const MAX_TAGS_PER_REQUEST: usize = 2000;
/// Past this many queued tags (an endpoint down for long under heavy writes), the
/// queue is replaced by a reset, which covers all of it.
const MAX_QUEUED_TAGS: usize = 200_000;

#[derive(Debug, clap::Args)]
pub struct BridgeArgs {
    /// Where to POST the tags: the app's revalidation route, an http or https URL.
    #[arg(long, env = "JOBPREP_BRIDGE_ENDPOINT")]
    endpoint: String,
    /// The shared secret sent in the x-jobprep-secret header (prefer the environment
    /// variable: arguments show in the process list).
    #[arg(long, env = "JOBPREP_BRIDGE_SECRET", hide_env_values = true)]
    secret: String,
    /// Give up on one request after this many seconds, then retry it.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// The longest wait between two attempts, in seconds.
    #[arg(long, default_value_t = 30)]
    max_backoff_secs: u64,
}

/// Runs until killed; returns only on a configuration error or when the listener
/// cannot go on.
pub fn run(db: &Db, args: BridgeArgs) -> Result<(), CliError> {
    if args.secret.trim().is_empty() {
        return Err(CliError::Refused("the secret is empty".into()));
    }
    if !(args.endpoint.starts_with("http://") || args.endpoint.starts_with("https://")) {
        return Err(CliError::Refused(format!(
            "the endpoint must be an http:// or https:// URL, not `{}`",
            args.endpoint
        )));
    }
    if db.backend() != Backend::Postgres {
        return Err(CliError::Refused(
            "cache-bridge needs PostgreSQL: on SQLite the feed carries only the commits of \
             the process that listens, and the bridge writes nothing"
                .into(),
        ));
    }
    let mut listener = Listener::start(db, FeedOptions::default())?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(args.timeout_secs.max(1))))
        .http_status_as_error(false)
        .build()
        .into();
    let max_backoff = Duration::from_secs(args.max_backoff_secs.max(1));
    let mut queue = Queue::default();
    // What happened before the bridge started is unknown to the app: reset first.
    queue.push(FeedEvent::Reset);
    eprintln!(
        "jobprep cache-bridge: forwarding the changes in {} to {}",
        feed::CHANGES,
        args.endpoint
    );
    let mut backoff = Duration::from_millis(100);
    let mut retry_at: Option<Instant> = None;
    loop {
        // Wait for events only when there is nothing to send (or a retry is not due).
        let wait = match (queue.is_empty(), retry_at) {
            (true, _) => Duration::from_secs(1),
            (false, Some(at)) => at.saturating_duration_since(Instant::now()),
            (false, None) => Duration::ZERO,
        };
        if let Some(event) = listener.recv_timeout(wait) {
            queue.push(event);
            while let Some(event) = listener.recv_timeout(Duration::ZERO) {
                queue.push(event);
            }
        }
        if listener.is_stopped() {
            // Only a listener whose thread died stops by itself: exit non-zero so that
            // a supervisor restarts the bridge (which then starts with a reset).
            return Err(CliError::Bridge(format!(
                "the cache feed listener stopped ({} tags unsent)",
                queue.len()
            )));
        }
        if retry_at.is_some_and(|at| Instant::now() < at) {
            continue;
        }
        let Some(tags) = queue.next_request() else {
            continue;
        };
        match post(&agent, &args.endpoint, &args.secret, &tags) {
            Ok(()) => {
                queue.acknowledge(tags.len());
                println!("delivered {} tags", tags.len());
                backoff = Duration::from_millis(100);
                retry_at = None;
            }
            Err(reason) => {
                eprintln!(
                    "jobprep cache-bridge: {reason}; retrying in {} ms ({} tags queued)",
                    backoff.as_millis(),
                    queue.len()
                );
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

/// Sends one request; `Err` with the reason when it was not acknowledged.
fn post(agent: &ureq::Agent, endpoint: &str, secret: &str, tags: &[String]) -> Result<(), String> {
    let body = serde_json::json!({ "tags": tags }).to_string();
    match agent
        .post(endpoint)
        .header(SECRET_HEADER, secret)
        .content_type("application/json")
        .send(body.as_bytes())
    {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("the endpoint answered {}", response.status())),
        Err(error) => Err(format!("request failed: {error}")),
    }
}

/// Tags waiting for an acknowledgement, oldest first, each once.
#[derive(Debug, Default)]
struct Queue {
    tags: VecDeque<String>,
    queued: BTreeSet<String>,
}

impl Queue {
    fn push(&mut self, event: FeedEvent) {
        let tags = match event {
            FeedEvent::Tags(tags) => tags,
            FeedEvent::Reset => feed::reset_tags(),
        };
        for tag in tags {
            // A tag already waiting covers the new write too: it is not yet revalidated.
            if self.queued.insert(tag.as_str().to_owned()) {
                self.tags.push_back(tag.as_str().to_owned());
            }
        }
        if self.tags.len() > MAX_QUEUED_TAGS {
            self.tags.clear();
            self.queued.clear();
            self.push(FeedEvent::Reset);
        }
    }

    fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    fn len(&self) -> usize {
        self.tags.len()
    }

    /// The oldest tags, up to one request's worth.
    fn next_request(&self) -> Option<Vec<String>> {
        if self.tags.is_empty() {
            return None;
        }
        Some(
            self.tags
                .iter()
                .take(MAX_TAGS_PER_REQUEST)
                .cloned()
                .collect(),
        )
    }

    /// Drops the `count` oldest tags, which the endpoint acknowledged.
    fn acknowledge(&mut self, count: usize) {
        for tag in self.tags.drain(..count.min(self.tags.len())) {
            self.queued.remove(&tag);
        }
    }
}
