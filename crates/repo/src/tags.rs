//! Cache tags and where writes report them: [`CacheTag`], the [`TagSink`] a service
//! installs, and [`Cached`] reads. Which tags each write and read has is
//! [`cache_rules`](crate::cache_rules).
//!
//! The product caches reads under tags and revalidates them after writes. Tag formats
//! are `global:{t}`, `user:{userId}:{t}`, `jobInfo:{jobInfoId}:{t}` and `id:{id}:{t}`,
//! with `t` one of `users`, `jobInfos`, `interviews`, `questions`. Writes hand their
//! tags to the [`TagSink`] the service installed, only after they have committed.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::error::Entity;

/// A cache tag, e.g. `jobInfo:0192...:questions`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct CacheTag(String);

impl fmt::Debug for CacheTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

fn collection(entity: Entity) -> &'static str {
    match entity {
        Entity::User => "users",
        Entity::JobInfo => "jobInfos",
        Entity::Interview => "interviews",
        Entity::Question => "questions",
    }
}

impl CacheTag {
    /// `global:{t}`: every row of the kind.
    pub fn global(entity: Entity) -> Self {
        CacheTag(format!("global:{}", collection(entity)))
    }

    /// `user:{userId}:{t}`: the rows of the kind one user owns.
    pub fn user(user_id: impl fmt::Display, entity: Entity) -> Self {
        CacheTag(format!("user:{user_id}:{}", collection(entity)))
    }

    /// `jobInfo:{jobInfoId}:{t}`: the rows of the kind under one job info.
    pub fn job_info(job_info_id: impl fmt::Display, entity: Entity) -> Self {
        CacheTag(format!("jobInfo:{job_info_id}:{}", collection(entity)))
    }

    /// `id:{id}:{t}`: one row.
    pub fn id(id: impl fmt::Display, entity: Entity) -> Self {
        CacheTag(format!("id:{id}:{}", collection(entity)))
    }

    /// A tag as the database's feed spelled it.
    pub(crate) fn from_raw(tag: String) -> Self {
        CacheTag(tag)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Receives the tags of committed writes; the embedding service revalidates its cache.
///
/// Called on the writer's thread after COMMIT, once per committed write or
/// transaction. The write has already happened, so the sink cannot fail it: a sink
/// that talks to a remote cache should queue or log its own failures.
pub trait TagSink: Send + Sync {
    fn revalidate(&self, tags: &[CacheTag]);
}

/// The default sink: drops every tag.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

impl TagSink for NoopSink {
    fn revalidate(&self, _tags: &[CacheTag]) {}
}

/// Keeps every batch it receives; for tests and for the demo.
#[derive(Debug, Clone, Default)]
pub struct RecordingSink {
    batches: Arc<Mutex<Vec<Vec<CacheTag>>>>,
}

impl RecordingSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns the batches received so far, oldest first.
    pub fn take(&self) -> Vec<Vec<CacheTag>> {
        std::mem::take(&mut *self.lock())
    }

    /// Removes and returns every tag received so far, as strings, sorted.
    pub fn take_sorted(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.take().into_iter().flatten().map(|tag| tag.0).collect();
        tags.sort();
        tags
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<CacheTag>>> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep it.
        self.batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TagSink for RecordingSink {
    fn revalidate(&self, tags: &[CacheTag]) {
        self.lock().push(tags.to_vec());
    }
}

/// A read's result together with the tags it depends on, so a caller can cache it
/// and have later writes revalidate it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cached<T> {
    pub value: T,
    pub tags: Vec<CacheTag>,
}

impl<T> Cached<T> {
    pub fn new(value: T, tags: Vec<CacheTag>) -> Self {
        Cached { value, tags }
    }

    pub fn into_inner(self) -> T {
        self.value
    }
}

/// Drops repeated tags, keeping the first occurrence of each.
pub(crate) fn dedup(tags: &mut Vec<CacheTag>) {
    if tags.len() < 2 {
        return;
    }
    let keep: Vec<bool> = {
        let mut seen = std::collections::HashSet::with_capacity(tags.len());
        tags.iter().map(|tag| seen.insert(tag.as_str())).collect()
    };
    let mut index = 0;
    tags.retain(|_| {
        index += 1;
        keep[index - 1]
    });
}
