//! `jobprep bench --cache-feed`: what the cache feed costs the writers, and how long a
//! committed write takes to reach a listener. PostgreSQL only (on SQLite the feed is
//! an in-process hand-off).
//!
//! Write throughput (`insert_job_info`, `--clients` threads, each writing as its own
//! user) alternates in four rounds between the feed removed and the feed installed
//! with a listener draining it, the order swapped every round, so drift on a shared
//! machine hits both sides alike. Latency is
//! measured one write at a time, each after a random pause of up to 100 ms: from the
//! moment the write call returns (COMMIT acknowledged) to the moment the listener
//! yields a batch holding the row's `id:` tag.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobprep_job_infos::{ExperienceLevel, NewJobInfo};
use jobprep_repo::feed::{FeedEvent, FeedOptions, Listener};
use jobprep_repo::{Backend, Db, DbConfig, NoopSink, UserId};
use jobprep_users::NewUser;
use serde::Serialize;

use super::drive::{drive, Rng};
use super::scratch::Scratch;
use crate::error::CliError;

const ROUNDS: u32 = 4;
const LATENCY_SAMPLES: usize = 300;

#[derive(Debug, Serialize)]
struct FeedReport {
    seconds: f64,
    clients: usize,
    /// `insert_job_info` per second with the feed removed.
    feed_off_ops: f64,
    /// The same with the triggers installed and a listener draining them.
    feed_on_ops: f64,
    /// feed_on_ops / feed_off_ops.
    ratio: f64,
    /// Commit acknowledged to listener yield, one write at a time.
    latency_p50_us: u64,
    latency_p99_us: u64,
    latency_samples: usize,
}

pub fn run(
    base: DbConfig,
    seconds: f64,
    clients: usize,
    json: bool,
    listener_url: Option<&str>,
) -> Result<(), CliError> {
    let scratch = Scratch::create(&base)?;
    let mut config = scratch.config.clone();
    config.pool.max_size = u32::try_from(clients).unwrap_or(u32::MAX).max(1);
    let db = Db::from_config(config, Arc::new(NoopSink))?;
    // The listener's own route to the scratch database, when given.
    let listener_db = match listener_url {
        Some(url) => {
            let mut config = DbConfig::parse(url)?;
            config.url = config.url.with_database(scratch.database_name())?;
            Some(Db::from_config(config, Arc::new(NoopSink))?)
        }
        None => None,
    };
    let listen_on = listener_db.as_ref().unwrap_or(&db);
    if db.backend() != Backend::Postgres {
        return Err(CliError::Refused(
            "bench --cache-feed measures the PostgreSQL triggers; give a postgres:// URL".into(),
        ));
    }
    db.migrate()?;
    // One user per client: the writes of one user take turns on its quota lock, and
    // the bench would then measure how long that lock is held, not what writing costs.
    let users = (0..clients.max(1))
        .map(|client| {
            let id = UserId::new(format!("user_bench_feed_{client}"))?;
            let email = format!("bench{client}@feed.example");
            jobprep_users::upsert(&db, &NewUser::new(id.clone(), "Bench", email))?;
            Ok(id)
        })
        .collect::<Result<Vec<UserId>, jobprep_repo::Error>>()?;
    let me = &users[0];
    let job = NewJobInfo::new("Backend", ExperienceLevel::Senior, "Rust and PostgreSQL");
    let half = Duration::from_secs_f64(seconds / f64::from(2 * ROUNDS));

    let (mut off, mut on) = ((0u64, Duration::ZERO), (0u64, Duration::ZERO));
    // Odd rounds measure "on" first, so that an order effect hits both sides alike.
    for round in 0..ROUNDS {
        for on_side in [round % 2 == 1, round % 2 == 0] {
            if on_side {
                db.install_cache_feed()?;
                let listener = Listener::start(listen_on, FeedOptions::default())?;
                let stop = listener.stop_handle();
                let drain = std::thread::spawn(move || listener.count());
                let (n, took) = writes(&db, &users, &job, half)?;
                on = (on.0 + n, on.1 + took);
                stop.stop();
                drain
                    .join()
                    .map_err(|_| CliError::Bench("the draining listener panicked".into()))?;
            } else {
                db.remove_cache_feed()?;
                let (n, took) = writes(&db, &users, &job, half)?;
                off = (off.0 + n, off.1 + took);
            }
        }
    }
    db.install_cache_feed()?;
    let rate = |(n, took): (u64, Duration)| n as f64 / took.as_secs_f64().max(f64::EPSILON);

    let mut listener = Listener::start(listen_on, FeedOptions::default())?;
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    let mut rng = Rng::for_client(0);
    let longest = FeedOptions::default().idle_poll_interval / 2;
    for _ in 0..LATENCY_SAMPLES {
        // Writes at random moments, as real ones come, some while the listener polls
        // fast and some after it slowed down: a write made right after the previous
        // delivery would always find the same point of the poll cycle.
        let pause = rng.below(usize::try_from(longest.as_micros()).unwrap_or(usize::MAX));
        std::thread::sleep(Duration::from_micros(pause as u64));
        let key = jobprep_job_infos::insert(&db, me, &job)?;
        let committed = Instant::now();
        let wanted = format!("id:{}:jobInfos", key.id);
        loop {
            match listener.recv_timeout(Duration::from_secs(5)) {
                Some(FeedEvent::Tags(tags)) if tags.iter().any(|t| t.as_str() == wanted) => {
                    latencies.push(committed.elapsed());
                    break;
                }
                Some(_) => continue,
                None => {
                    return Err(CliError::Bench(
                        "a write did not reach the listener within 5 s".into(),
                    ))
                }
            }
        }
    }
    listener.stop();
    latencies.sort_unstable();
    let at = |p: f64| {
        let index = ((latencies.len() - 1) as f64 * p).round() as usize;
        u64::try_from(latencies[index].as_micros()).unwrap_or(u64::MAX)
    };
    let report = FeedReport {
        seconds,
        clients,
        feed_off_ops: rate(off),
        feed_on_ops: rate(on),
        ratio: rate(on) / rate(off).max(f64::EPSILON),
        latency_p50_us: at(0.50),
        latency_p99_us: at(0.99),
        latency_samples: latencies.len(),
    };
    if json {
        let text = serde_json::to_string(&report).map_err(CliError::json("the report"))?;
        println!("{text}");
    } else {
        println!(
            "cache feed: insert_job_info, {} client(s): {:.0}/s off, {:.0}/s on (ratio {:.3}); \
             commit to listener p50 {} us, p99 {} us ({} writes)",
            report.clients,
            report.feed_off_ops,
            report.feed_on_ops,
            report.ratio,
            report.latency_p50_us,
            report.latency_p99_us,
            report.latency_samples
        );
    }
    drop(listener_db);
    drop(db);
    drop(scratch);
    Ok(())
}

/// Job info inserts for `time`, one after another on one client thread per user.
fn writes(
    db: &Db,
    users: &[UserId],
    job: &NewJobInfo,
    time: Duration,
) -> Result<(u64, Duration), CliError> {
    let next = AtomicUsize::new(0);
    let side = drive(users.len(), time, || {
        let me = &users[next.fetch_add(1, Ordering::Relaxed) % users.len()];
        Ok(move |_: &mut Rng| jobprep_job_infos::insert(db, me, job).map(|_| 1))
    })?;
    Ok((side.units, side.elapsed))
}
