//! The [`Listener`]: the consumer's end of the cache feed, whichever backend feeds it
//! (the `poller` on PostgreSQL, the `subscription` on SQLite).

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::events::{FeedEvent, FeedOptions, FeedStatus, Shared};
use super::{poller, subscription};
use crate::config::Backend;
use crate::error::{Error, Result};
use crate::handle::Db;

/// Stops a [`Listener`] from any thread; cheap to clone.
#[derive(Clone)]
pub struct StopHandle(Arc<Shared>);

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("stopped", &self.0.stopped())
            .finish()
    }
}

impl StopHandle {
    /// Asks the listener to stop: its iterator ends once the queued events are
    /// drained, within about 50 ms on PostgreSQL (a poll under way finishes first).
    pub fn stop(&self) {
        self.0.stop();
    }
}

/// Receives the cache tags of committed writes; see the [module](crate::feed) docs.
///
/// Use it as an iterator (blocks until an event arrives or the listener is stopped
/// through a [`StopHandle`]) or with [`Listener::recv_timeout`] (bounded).
pub struct Listener {
    events: Receiver<FeedEvent>,
    shared: Arc<Shared>,
    /// An event held back behind a reset.
    held: Option<FeedEvent>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("status", &*self.shared.status())
            .finish()
    }
}

impl Listener {
    /// Starts listening on `db`'s primary. On PostgreSQL this opens a dedicated
    /// session connection and fails when it cannot (retryable), when the URL is a
    /// transaction-mode pooler, or when the feed is not installed (configuration
    /// errors). Later connection losses are not errors: the listener reconnects and
    /// yields [`FeedEvent::Reset`].
    pub fn start(db: &Db, options: FeedOptions) -> Result<Listener> {
        if options.capacity == 0 || options.poll_interval.is_zero() {
            return Err(Error::Config(
                "cache feed: capacity and poll_interval must be positive".into(),
            ));
        }
        if options.idle_poll_interval < options.poll_interval {
            return Err(Error::Config(
                "cache feed: idle_poll_interval must not be shorter than poll_interval".into(),
            ));
        }
        if options.sleep_after.is_some_and(|after| after.is_zero()) || options.wake_every.is_zero()
        {
            return Err(Error::Config(
                "cache feed: sleep_after and wake_every must be positive".into(),
            ));
        }
        let (tx, events) = mpsc::sync_channel(options.capacity);
        let (shared, worker) = match db.backend() {
            Backend::Sqlite => (subscription::start(db, tx), None),
            Backend::Postgres => {
                let (shared, worker) = poller::start(db, options, tx)?;
                (shared, Some(worker))
            }
        };
        Ok(Listener {
            events,
            shared,
            held: None,
            worker,
        })
    }

    /// The next event, waiting at most `timeout`; `None` when none came in time or the
    /// listener is stopped.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<FeedEvent> {
        if let Some(event) = self.held.take() {
            return Some(event);
        }
        if self.take_gap() {
            return Some(FeedEvent::Reset);
        }
        let event = match self.events.recv_timeout(timeout) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => {
                // The source is gone (stopped, or its thread ended): so is the listener.
                self.shared.stop.store(true, Ordering::SeqCst);
                return None;
            }
        };
        // Whatever was dropped happened before this event was taken: reset first.
        if event != FeedEvent::Reset && self.take_gap() {
            self.held = Some(event);
            return Some(FeedEvent::Reset);
        }
        if event == FeedEvent::Reset {
            self.take_gap();
            self.shared.status().resets += 1;
        }
        Some(event)
    }

    fn take_gap(&self) -> bool {
        let gap = self.shared.gap.swap(false, Ordering::SeqCst);
        if gap {
            self.shared.status().resets += 1;
        }
        gap
    }

    /// A handle that stops this listener from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shared.clone())
    }

    /// Whether the listener was stopped.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped()
    }

    /// The connection as last seen.
    pub fn status(&self) -> FeedStatus {
        self.shared.status().clone()
    }

    /// Stops listening and waits for the connection to close (within about 50 ms
    /// after a poll under way, or the connect timeout while reconnecting).
    pub fn stop(mut self) {
        self.shared.stop();
        if let Some(worker) = self.worker.take() {
            // The worker only exits; a panic in it has nothing left to report.
            let _ = worker.join();
        }
    }
}

impl Iterator for Listener {
    type Item = FeedEvent;

    /// Blocks until the next event; `None` once stopped.
    fn next(&mut self) -> Option<FeedEvent> {
        loop {
            if let Some(event) = self.recv_timeout(Duration::from_millis(100)) {
                return Some(event);
            }
            if self.is_stopped() {
                return None;
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // The worker notices within 50 ms and closes its connection.
        self.shared.stop();
    }
}
