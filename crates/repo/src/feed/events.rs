//! What a [`Listener`](crate::feed::Listener) yields and reports, and the queue
//! between it and its source: the PostgreSQL poller or the SQLite subscription.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::Entity;
use crate::local_feed;
use crate::tags::CacheTag;

/// What a [`Listener`](crate::feed::Listener) yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// The tags of one committed transaction, each once, in one batch.
    Tags(Vec<CacheTag>),
    /// Changes may have been missed (reconnect, full queue, `TRUNCATE`, an
    /// unreadable recorded change, a trim of changes not yet read): flush everything
    /// cached. See [`reset_tags`] for the tags that stand for
    /// "everything" in the app's rules.
    Reset,
}

/// The tags a reset maps to when the consumer only knows tags: `global:*` of every kind.
pub fn reset_tags() -> Vec<CacheTag> {
    [
        Entity::User,
        Entity::JobInfo,
        Entity::Interview,
        Entity::Question,
    ]
    .into_iter()
    .map(CacheTag::global)
    .collect()
}

/// Settings of a [`Listener`](crate::feed::Listener). The defaults suit a service.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// How often the listener reads what committed since its last look while
    /// changes keep coming (default 20 ms): one prepared, indexed query each time. A
    /// failed poll is how a lost connection is noticed.
    pub poll_interval: Duration,
    /// The longest wait between polls (default 200 ms): after each poll that found
    /// nothing the wait doubles, up to this, so an idle listener costs the server
    /// about five queries a second; a poll that finds changes returns to
    /// `poll_interval`. Together they bound the added delivery latency.
    pub idle_poll_interval: Duration,
    /// Events queued for the consumer before a full queue turns into a reset
    /// (default 1024).
    pub capacity: usize,
    /// The first wait before reconnecting, doubled after each failure (default 100 ms).
    pub min_backoff: Duration,
    /// The longest wait between reconnection attempts (default 5 s).
    pub max_backoff: Duration,
    /// Let an idle server sleep (PostgreSQL): after this long with no change found,
    /// the listener closes its connection and sends the server nothing until
    /// [`wake_every`](Self::wake_every) has passed; then it reconnects and reads what
    /// committed meanwhile from where it stopped, so nothing is missed, only
    /// delivered late (a reset when the changes are no longer there to read: trimmed,
    /// or the server restarted). Default `None`: never sleep. See docs/cache-feed.md
    /// for what each choice costs a scale-to-zero database.
    pub sleep_after: Option<Duration>,
    /// How long a sleeping listener sleeps before it looks again (default 1 hour).
    pub wake_every: Duration,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            poll_interval: Duration::from_millis(20),
            idle_poll_interval: Duration::from_millis(200),
            capacity: 1024,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            sleep_after: None,
            wake_every: Duration::from_secs(60 * 60),
        }
    }
}

/// The listener's connection, as last seen; from
/// [`Listener::status`](crate::feed::Listener::status).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeedStatus {
    /// Whether the session connection is up (always true on SQLite).
    pub connected: bool,
    /// The server process of the session connection (PostgreSQL).
    pub backend_pid: Option<i32>,
    /// Reconnections so far.
    pub reconnects: u64,
    /// Polls of the recorded changes so far (PostgreSQL); a growing count shows the
    /// listener alive.
    pub polls: u64,
    /// Resets yielded so far.
    pub resets: u64,
    /// Whether the listener is asleep, its connection closed
    /// ([`FeedOptions::sleep_after`]).
    pub asleep: bool,
    /// Times it went to sleep so far.
    pub sleeps: u64,
    /// The latest failure: a lost connection, a failed reconnect, an unreadable
    /// recorded change, a failed trim.
    pub last_error: Option<String>,
}

/// What a listener and its source share.
pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    /// Set when an event could not be queued; the consumer sees a reset first.
    pub(super) gap: AtomicBool,
    status: Mutex<FeedStatus>,
    /// The in-process subscription (SQLite), removed on stop.
    local_id: Option<u64>,
}

impl Shared {
    pub(super) fn new(status: FeedStatus, local_id: Option<u64>) -> Arc<Shared> {
        Arc::new(Shared {
            stop: AtomicBool::new(false),
            gap: AtomicBool::new(false),
            status: Mutex::new(status),
            local_id,
        })
    }

    pub(super) fn status(&self) -> MutexGuard<'_, FeedStatus> {
        // Plain data: a panic elsewhere cannot leave it half-written in a harmful way.
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(id) = self.local_id {
            local_feed::unsubscribe(id);
        }
    }
}

/// The sending half: never blocks; a full queue becomes a gap.
#[derive(Clone)]
pub(super) struct Queue {
    tx: SyncSender<FeedEvent>,
    pub(super) shared: Arc<Shared>,
}

impl Queue {
    pub(super) fn new(tx: SyncSender<FeedEvent>, shared: &Arc<Shared>) -> Queue {
        Queue {
            tx,
            shared: shared.clone(),
        }
    }

    /// Queues `event`; false once the listener is gone.
    pub(super) fn send(&self, event: FeedEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.shared.gap.store(true, Ordering::SeqCst);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}
