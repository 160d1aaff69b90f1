//! The SQLite side of a listener: a subscription to the commits this process makes on
//! the same file (see `local_feed`); no thread, no connection.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use super::events::{FeedEvent, FeedStatus, Queue, Shared};
use crate::handle::Db;
use crate::local_feed;

pub(super) fn start(db: &Db, tx: SyncSender<FeedEvent>) -> Arc<Shared> {
    let id = local_feed::next_id();
    let shared = Shared::new(
        FeedStatus {
            connected: true,
            ..FeedStatus::default()
        },
        Some(id),
    );
    let queue = Queue::new(tx, &shared);
    local_feed::subscribe(
        &db.config().url,
        id,
        Box::new(move |tags| queue.send(FeedEvent::Tags(tags.to_vec()))),
    );
    shared
}
