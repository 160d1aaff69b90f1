//! The read cache: answers kept under their cache tags, invalidated by this process's
//! writes and by the cache feed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use axum::body::Bytes;
use axum::http::HeaderValue;
use axum::response::Response;
use jobprep_repo::feed::{FeedEvent, FeedOptions, Listener, StopHandle};
use jobprep_repo::{CacheTag, Cached, Db, TagSink};
use serde::Serialize;

use crate::errors::ApiError;
use crate::respond::{json_bytes, tagged_json};

/// A read's answer as it goes out: the JSON bytes, serialized once, and the cache tags
/// it depends on. The cache keeps these very bytes, so a hit is byte-identical to the
/// miss that stored it.
type CachedBody = (Vec<CacheTag>, Bytes);

/// Read results under the cache tags they depend on, invalidated by the `Db`'s sink
/// (this process's writes) and by the cache feed (everyone's).
#[derive(Clone, Default)]
pub struct ReadCache(Arc<CacheInner>);

#[derive(Default)]
struct CacheInner {
    /// Off until a listener follows the feed: without it, entries could go stale.
    enabled: AtomicBool,
    /// Bumped by every invalidation: a read that started before one does not store
    /// its (possibly older) result.
    generation: AtomicU64,
    entries: Mutex<HashMap<String, CachedBody>>,
    listener: Mutex<Option<StopHandle>>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("enabled", &self.0.enabled.load(Ordering::SeqCst))
            .field("entries", &self.entries().len())
            .finish()
    }
}

impl Drop for CacheInner {
    fn drop(&mut self) {
        if let Some(stop) = self.listener.get_mut().ok().and_then(Option::take) {
            stop.stop();
        }
    }
}

impl ReadCache {
    /// Starts a cache-feed listener that invalidates this cache, and turns it on.
    pub(crate) fn follow(&self, db: &Db) -> jobprep_repo::Result<()> {
        let listener = Listener::start(db, FeedOptions::default())?;
        *self.lock_listener() = Some(listener.stop_handle());
        let cache: Weak<CacheInner> = Arc::downgrade(&self.0);
        std::thread::spawn(move || {
            for event in listener {
                // The service is gone: dropping the listener closes its connection.
                let Some(cache) = cache.upgrade().map(ReadCache) else {
                    return;
                };
                match event {
                    FeedEvent::Tags(tags) => cache.invalidate(&tags),
                    FeedEvent::Reset => cache.clear(),
                }
            }
        });
        self.0.enabled.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Whether a listener follows the feed, so entries are kept.
    pub(crate) fn is_enabled(&self) -> bool {
        self.0.enabled.load(Ordering::SeqCst)
    }

    /// Answers from the cache, or runs `read` and keeps its serialized result.
    pub(crate) async fn serve<T: Serialize>(
        &self,
        key: String,
        read: impl std::future::Future<Output = jobprep_repo::Result<Cached<T>>>,
    ) -> Result<Response, ApiError> {
        if let Some((tags, body)) = self.entries().get(&key).cloned() {
            return Ok(with_cache_header(tagged_json(&tags, body), "hit"));
        }
        let generation = self.0.generation.load(Ordering::SeqCst);
        let read = read.await?;
        let body = json_bytes(&read.value)?;
        if self.0.enabled.load(Ordering::SeqCst) {
            let mut entries = self.entries();
            // Checked under the lock that invalidation takes too.
            if self.0.generation.load(Ordering::SeqCst) == generation {
                entries.insert(key, (read.tags.clone(), body.clone()));
            }
        }
        Ok(with_cache_header(tagged_json(&read.tags, body), "miss"))
    }

    fn invalidate(&self, tags: &[CacheTag]) {
        let mut entries = self.entries();
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, (depends_on, _)| !depends_on.iter().any(|tag| tags.contains(tag)));
    }

    fn clear(&self) {
        let mut entries = self.entries();
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedBody>> {
        self.0.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_listener(&self) -> std::sync::MutexGuard<'_, Option<StopHandle>> {
        self.0.listener.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TagSink for ReadCache {
    /// Called after this process's own writes commit, before they answer.
    fn revalidate(&self, tags: &[CacheTag]) {
        self.invalidate(tags);
    }
}

fn with_cache_header(mut response: Response, state: &'static str) -> Response {
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(state));
    response
}
