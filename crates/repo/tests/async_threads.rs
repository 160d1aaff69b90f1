//! The async facade waits for its turn without holding a thread: a thousand concurrent
//! calls on a pool of ten use about ten blocking threads, on both backends. Its own
//! test binary, one test, so that no other test's threads are counted.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::{users, Backend, Db, Error, Executor, UserId};
use jobprep_testing::TestDb;

const CALLS: usize = 1000;
const POOL: u32 = 10;
const WORKERS: usize = 2;

/// The threads of this process right now.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| tasks.count())
}

/// Runs `CALLS` concurrent reads and returns (threads before, most threads seen).
fn burst(t: &TestDb) -> (usize, usize) {
    let db = AsyncDb::new(Db::builder(&t.url).max_size(POOL).build().unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap();
    let missing = UserId::new("user_nobody").unwrap();
    // One call first: the runtime's workers and the pool's helpers exist from here on.
    let warm = missing.clone();
    let first = runtime.block_on(db.run(move |db| db.read(|conn| users::get(conn, &warm))));
    assert!(matches!(first, Err(Error::NotFound { .. })), "{first:?}");
    let before = threads();

    let most = Arc::new(AtomicUsize::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (most, done) = (most.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                most.fetch_max(threads(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    runtime.block_on(async {
        let calls: Vec<_> = (0..CALLS)
            .map(|_| {
                let (db, id) = (db.clone(), missing.clone());
                tokio::spawn(async move {
                    db.run(move |db| {
                        // Long enough that every call is in flight at once.
                        std::thread::sleep(Duration::from_micros(200));
                        db.read(|conn| users::get(conn, &id))
                    })
                    .await
                })
            })
            .collect();
        for call in calls {
            let outcome = call.await.unwrap();
            assert!(
                matches!(outcome, Err(Error::NotFound { .. })),
                "{outcome:?}"
            );
        }
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    // The sampler thread itself is one of the threads seen.
    (before, most.load(Ordering::Relaxed).saturating_sub(1))
}

#[test]
fn a_thousand_concurrent_calls_on_a_pool_of_ten_use_about_ten_threads() {
    for t in [TestDb::new(Backend::Sqlite), TestDb::new(Backend::Postgres)]
        .into_iter()
        .flatten()
    {
        let (before, most) = burst(&t);
        let added = most.saturating_sub(before);
        assert!(
            added <= POOL as usize + 2,
            "{:?}: {added} threads added for {CALLS} calls on a pool of {POOL} ({before} before)",
            t.backend()
        );
    }
}
