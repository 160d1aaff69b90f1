//! The commits of this process on SQLite files, handed to this process's cache-feed
//! listeners. SQLite has no notification channel between processes, so a
//! [`Listener`](crate::feed::Listener) on SQLite subscribes here, and every `Db` of
//! the process publishes the tags of its commits here, after COMMIT. On PostgreSQL the
//! database itself records the changes (see `feed/`), so nothing is done here.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::database_url::{Backend, DatabaseUrl};
use crate::tags::CacheTag;

/// Receives one commit's tags; false once it wants no more.
pub(crate) type Subscriber = Box<dyn Fn(&[CacheTag]) -> bool + Send>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Subscribers, counted separately so that a write with none takes no lock.
static COUNT: AtomicUsize = AtomicUsize::new(0);
static SUBSCRIBERS: Mutex<Vec<(u64, PathBuf, Subscriber)>> = Mutex::new(Vec::new());

fn subscribers() -> MutexGuard<'static, Vec<(u64, PathBuf, Subscriber)>> {
    SUBSCRIBERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The file a URL names, the same for every spelling of it.
fn file(url: &DatabaseUrl) -> PathBuf {
    let path = PathBuf::from(url.expose_secret());
    std::fs::canonicalize(&path).unwrap_or(path)
}

/// An id for [`subscribe`] and [`unsubscribe`].
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

pub(crate) fn subscribe(url: &DatabaseUrl, id: u64, subscriber: Subscriber) {
    let mut subscribers = subscribers();
    subscribers.push((id, file(url), subscriber));
    COUNT.store(subscribers.len(), Ordering::SeqCst);
}

pub(crate) fn unsubscribe(id: u64) {
    let mut subscribers = subscribers();
    subscribers.retain(|(other, _, _)| *other != id);
    COUNT.store(subscribers.len(), Ordering::SeqCst);
}

/// Called by the `Db` after a commit with the tags it reported.
pub(crate) fn publish(url: &DatabaseUrl, tags: &[CacheTag]) {
    if url.backend() != Backend::Sqlite || COUNT.load(Ordering::SeqCst) == 0 {
        return;
    }
    let file = file(url);
    let mut subscribers = subscribers();
    subscribers.retain(|(_, other, subscriber)| *other != file || subscriber(tags));
    COUNT.store(subscribers.len(), Ordering::SeqCst);
}
