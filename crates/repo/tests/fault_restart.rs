//! Database restart under load (issue "Reliability", item 1).
//!
//! Run by `bash scripts/fault-restart.sh`, which starts a throwaway PostgreSQL cluster on
//! its own loopback port and sets:
//!
//! - `JOBPREP_FAULT_URL`: a `postgres://` URL of a database on that cluster;
//! - `JOBPREP_FAULT_PGDATA`: the cluster's data directory;
//! - `JOBPREP_FAULT_PGCTL`: a `pg_ctl` that runs as the cluster's owner.
//!
//! Writer threads insert users and job infos through the public API (single writes and
//! transactions) while the server goes away three times: `pg_ctl restart -m fast`,
//! `pg_ctl restart -m immediate`, then `pg_ctl stop -m immediate`, 5 s down (longer than
//! the pool's connection timeout), `pg_ctl start`. Afterwards:
//!
//! - (a) every write whose call returned `Ok` is in the database;
//! - (b) every error was `Error::Unavailable` (`is_retryable()`), seen during an outage;
//! - (c) no call blocked longer than the pool's connection timeout plus a margin;
//! - (d) writes succeed again by themselves within a few seconds of the server being back.
//!
//! Every check is evaluated and printed; the test fails if any of them failed.
//!
//! A second test crashes the server (`pg_ctl restart -m immediate`) under a cache-feed
//! listener: (f) the crash empties the feed's unlogged table, and the listener comes
//! back by itself with a reset before the first batch after the crash. The script runs
//! the two one after the other (`--test-threads=1`): each restarts the server.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

#[path = "support/load.rs"]
mod load;

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use diesel::prelude::*;
use jobprep_repo::feed::FeedEvent;
use jobprep_repo::{
    job_infos::{self, NewJobInfo},
    users::{self, NewUser},
    Db, Executor, ExperienceLevel, JobInfoId, UserId,
};
use jobprep_schema::{job_info, users as users_table};
use load::{secs, shape, Failure, Shared, CONNECTION_TIMEOUT, STEADY, WRITERS};

/// How soon after `pg_ctl` reports the server back every writer must succeed again.
const RECOVERY_LIMIT: Duration = Duration::from_secs(5);
/// The whole test stops by itself after this, whatever happens.
const WATCHDOG: Duration = Duration::from_secs(150);

struct FaultEnv {
    url: String,
    pgdata: String,
    pgctl: String,
}

impl FaultEnv {
    fn from_env() -> FaultEnv {
        let var = |name| load::required_var(name, "scripts/fault-restart.sh");
        FaultEnv {
            url: var("JOBPREP_FAULT_URL"),
            pgdata: var("JOBPREP_FAULT_PGDATA"),
            pgctl: var("JOBPREP_FAULT_PGCTL"),
        }
    }

    /// Runs `pg_ctl ACTION -D PGDATA ARGS... -w -t 60` (bounded) and checks it succeeded.
    fn pg_ctl(&self, action: &str, args: &[&str]) {
        let mut all = vec![action, "-D", &self.pgdata];
        all.extend(args);
        all.extend(["-w", "-t", "60"]);
        load::run_checked(&self.pgctl, &all);
    }

    /// Injects `fault`; returns once the server accepts connections again.
    fn inject(&self, fault: Fault) {
        // The server's output goes to a file: a pipe it inherited would stay open.
        let log = format!("{}/server.log", self.pgdata);
        match fault {
            Fault::Restart(mode) => self.pg_ctl("restart", &["-m", mode, "-l", &log]),
            Fault::StopStart(mode, down) => {
                self.pg_ctl("stop", &["-m", mode]);
                std::thread::sleep(down);
                self.pg_ctl("start", &["-l", &log]);
            }
        }
    }

    /// A `Db` on the cluster, migrated, with the cache feed installed.
    fn feed_db(&self) -> Db {
        let db = Db::builder(&self.url)
            .connection_timeout(CONNECTION_TIMEOUT)
            .build()
            .unwrap();
        db.migrate().unwrap();
        db.install_cache_feed().unwrap();
        db
    }

    /// When the postmaster started: changes on every restart.
    fn postmaster_start_time(&self) -> String {
        let mut conn = diesel::PgConnection::establish(&self.url).unwrap();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "pg_postmaster_start_time()::text",
        ))
        .get_result(&mut conn)
        .unwrap()
    }
}

/// How the server goes away.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `pg_ctl restart -m MODE`: down for a fraction of a second.
    Restart(&'static str),
    /// `pg_ctl stop -m MODE`, down this long (beyond the pool's connection timeout, so
    /// callers wait for connections that cannot be made), then `pg_ctl start`.
    StopStart(&'static str, Duration),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Restart(mode) => write!(f, "restart -m {mode}"),
            Fault::StopStart(mode, down) => {
                write!(f, "stop -m {mode}, {}s down, start", down.as_secs())
            }
        }
    }
}

/// The three outages, in order.
const FAULTS: [Fault; 3] = [
    Fault::Restart("fast"),
    Fault::Restart("immediate"),
    Fault::StopStart("immediate", Duration::from_secs(5)),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    User,
    JobInfo,
    Transaction,
}

type Call = load::Call<Op, ()>;

#[derive(Debug, Default)]
struct WriterLog {
    calls: Vec<Call>,
    users: Vec<UserId>,
    jobs: Vec<(JobInfoId, UserId)>,
}

fn job() -> NewJobInfo {
    NewJobInfo::new(
        "Fault-injection job",
        ExperienceLevel::Senior,
        "Inserted while the server restarts.",
    )
}

fn writer(db: Db, w: usize, run: String, shared: Arc<Shared>) -> WriterLog {
    let owner = UserId::new(format!("{run}-w{w}")).unwrap();
    let mut owner_acked = false;
    let mut log = WriterLog::default();
    let mut i: u64 = 0;
    while shared.running() {
        i += 1;
        let fresh_user = || {
            let id = UserId::new(format!("{run}-w{w}-u{i}")).unwrap();
            let new = NewUser::new(
                id.clone(),
                "Fault",
                format!("{run}-w{w}-u{i}@fault.example"),
            );
            (id, new)
        };
        let op = match i % 3 {
            _ if !owner_acked => Op::User,
            0 => Op::User,
            1 => Op::JobInfo,
            _ => Op::Transaction,
        };
        let call = shared.call(w, op, || match op {
            Op::User if !owner_acked => {
                let new = NewUser::new(owner.clone(), "Owner", format!("{run}-w{w}@fault.example"));
                db.write(|c, _| users::upsert(c, &new)).map(|_| {
                    owner_acked = true;
                    log.users.push(owner.clone());
                })
            }
            Op::User => {
                let (id, new) = fresh_user();
                db.write(|c, _| users::upsert(c, &new))
                    .map(|_| log.users.push(id))
            }
            Op::JobInfo => db
                .write(|c, _| job_infos::insert(c, &owner, &job()))
                .map(|key| log.jobs.push((key.id, owner.clone()))),
            Op::Transaction => {
                let (id, new) = fresh_user();
                db.transaction(|tx| {
                    tx.write(|c, _| users::upsert(c, &new))?;
                    let a = tx.write(|c, _| job_infos::insert(c, &id, &job()))?;
                    let b = tx.write(|c, _| job_infos::insert(c, &id, &job()))?;
                    Ok([a.id, b.id])
                })
                .map(|jobs| {
                    log.users.push(id.clone());
                    log.jobs.extend(jobs.map(|job| (job, id.clone())));
                })
            }
        });
        log.calls.push(call);
    }
    log
}

struct Outage {
    fault: Fault,
    /// When the fault was injected.
    begin: Duration,
    /// When `pg_ctl` reported the server back.
    back: Duration,
    /// Errors ending in `begin..=until` belong to this outage: up to RECOVERY_LIMIT
    /// after `back`, or the next outage.
    until: Duration,
}

impl Outage {
    fn covers(&self, t: Duration) -> bool {
        t >= self.begin && t <= self.until
    }
}

#[test]
#[ignore = "restarts a PostgreSQL server: run `bash scripts/fault-restart.sh`, which starts a throwaway one"]
fn acknowledged_writes_survive_server_restarts_and_the_pool_recovers() {
    let env = FaultEnv::from_env();
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        eprintln!("fault_restart: still running after {WATCHDOG:?}; aborting");
        std::process::exit(101);
    });

    let db = Db::builder(&env.url)
        .max_size(WRITERS as u32)
        .connection_timeout(CONNECTION_TIMEOUT)
        .build()
        .unwrap();
    db.migrate().unwrap();
    let run = load::run_name("fault");
    let shared = Shared::new();
    let handles: Vec<JoinHandle<WriterLog>> = (0..WRITERS)
        .map(|w| {
            let (db, run, shared) = (db.clone(), run.clone(), shared.clone());
            std::thread::spawn(move || writer(db, w, run, shared))
        })
        .collect();

    std::thread::sleep(STEADY);
    let mut outages: Vec<Outage> = Vec::new();
    for fault in FAULTS {
        let start_time_before = env.postmaster_start_time();
        let begin = shared.epoch.elapsed();
        if let Some(previous) = outages.last_mut() {
            previous.until = previous.until.min(begin);
        }
        env.inject(fault);
        let back = shared.epoch.elapsed();
        assert_ne!(
            start_time_before,
            env.postmaster_start_time(),
            "{fault} did not restart the server"
        );
        outages.push(Outage {
            fault,
            begin,
            back,
            until: back + RECOVERY_LIMIT,
        });
        load::eventually(RECOVERY_LIMIT * 3, || shared.all_succeeded_after(back));
        std::thread::sleep(STEADY);
    }
    shared.stop();

    let mut failures: Vec<String> = Vec::new();
    let mut logs = Vec::new();
    for (w, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(log) => logs.push(log),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("writer {w} panicked: {text}"));
            }
        }
    }
    let calls: Vec<&Call> = logs.iter().flat_map(|l| &l.calls).collect();
    let errors: Vec<(&Call, &Failure)> = calls
        .iter()
        .filter_map(|c| c.outcome.as_ref().err().map(|f| (*c, f)))
        .collect();

    println!("fault-restart measurements ({WRITERS} writers, pool of {WRITERS}, connection timeout {CONNECTION_TIMEOUT:?})");
    for o in &outages {
        let seen: Vec<Duration> = errors
            .iter()
            .filter(|(c, _)| o.covers(c.end))
            .map(|(c, _)| c.end)
            .collect();
        let since_begin = |t: Option<&Duration>| t.map_or("-".into(), |t| secs(*t - o.begin));
        println!(
            "  {}: pg_ctl took {}, {} failed calls, from {} to {} after the fault",
            o.fault,
            secs(o.back - o.begin),
            seen.len(),
            since_begin(seen.iter().min()),
            since_begin(seen.iter().max()),
        );
    }

    // (a) Every acknowledged write is in the database.
    let acked_users: HashSet<UserId> = logs.iter().flat_map(|l| l.users.clone()).collect();
    let acked_jobs: HashSet<(JobInfoId, UserId)> =
        logs.iter().flat_map(|l| l.jobs.clone()).collect();
    let mut check = diesel::PgConnection::establish(&env.url).unwrap();
    let pattern = format!("{run}-%");
    let present_users: HashSet<UserId> = users_table::table
        .filter(users_table::id.like(&pattern))
        .select(users_table::id)
        .load::<UserId>(&mut check)
        .unwrap()
        .into_iter()
        .collect();
    let present_jobs: HashSet<(JobInfoId, UserId)> = job_info::table
        .filter(job_info::user_id.like(&pattern))
        .select((job_info::id, job_info::user_id))
        .load::<(JobInfoId, UserId)>(&mut check)
        .unwrap()
        .into_iter()
        .collect();
    let missing_users = acked_users.difference(&present_users).count();
    let missing_jobs = acked_jobs.difference(&present_jobs).count();
    let unacked_users = present_users.difference(&acked_users).count();
    let unacked_jobs = present_jobs.difference(&acked_jobs).count();
    println!(
        "  writes acknowledged: {} calls ({} users, {} job infos); in the database: {} users, {} job infos",
        calls.len() - errors.len(),
        acked_users.len(),
        acked_jobs.len(),
        present_users.len(),
        present_jobs.len()
    );
    println!(
        "  committed although the call failed (in doubt: the connection broke after the write was sent): {unacked_users} users, {unacked_jobs} job infos"
    );
    // A call that answered OutcomeUnknown may have committed (the connection broke
    // after the write was sent): a user call one user, a job info call one job info, a
    // transaction both of its own. No other failed call may have.
    let failed = |op: Op| {
        errors
            .iter()
            .filter(|(c, f)| c.what == op && f.kind == "OutcomeUnknown")
            .count()
    };
    let (failed_users, failed_jobs, failed_tx) = (
        failed(Op::User),
        failed(Op::JobInfo),
        failed(Op::Transaction),
    );
    if missing_users + missing_jobs > 0
        || unacked_users > failed_users + failed_tx
        || unacked_jobs > failed_jobs + 2 * failed_tx
    {
        failures.push(format!(
            "(a) acknowledged writes missing: {missing_users} users, {missing_jobs} job infos; \
             rows no call acknowledged: {unacked_users} users, {unacked_jobs} job infos, \
             for {failed_users} user calls, {failed_jobs} job info calls, \
             {failed_tx} transactions in doubt"
        ));
    } else {
        println!(
            "check (a) every acknowledged write is present: ok ({} users, {} job infos)",
            acked_users.len(),
            acked_jobs.len()
        );
    }

    // (b) Every error is Unavailable (retryable), or OutcomeUnknown for a write in
    // flight when the connection broke, and happened during an outage.
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_message: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut by_op: BTreeMap<Op, (usize, usize)> = BTreeMap::new();
    for call in &calls {
        let entry = by_op.entry(call.what).or_default();
        entry.0 += 1;
        entry.1 += usize::from(call.outcome.is_err());
    }
    for (_, failure) in &errors {
        *by_kind.entry(failure.kind).or_default() += 1;
        *by_message
            .entry((failure.kind, shape(&failure.message)))
            .or_default() += 1;
    }
    println!("  calls by operation (total, failed): {by_op:?}");
    println!("  errors by kind: {by_kind:?}");
    for ((kind, message), n) in &by_message {
        println!("    {n:>5} x {kind}: {message}");
    }
    let not_retryable: Vec<&Failure> = errors
        .iter()
        .filter(|(_, f)| !(f.retryable && f.kind == "Unavailable") && f.kind != "OutcomeUnknown")
        .map(|(_, f)| *f)
        .collect();
    let outside_outage: Vec<&Call> = errors
        .iter()
        .filter(|(c, _)| !outages.iter().any(|o| o.covers(c.end)))
        .map(|(c, _)| *c)
        .collect();
    if !not_retryable.is_empty() || !outside_outage.is_empty() {
        failures.push(format!(
            "(b) {} errors were neither Unavailable nor OutcomeUnknown: {:#?}; {} errors happened outside the outages: {:#?}",
            not_retryable.len(),
            not_retryable.iter().take(5).collect::<Vec<_>>(),
            outside_outage.len(),
            outside_outage.iter().take(5).collect::<Vec<_>>()
        ));
    } else {
        println!(
            "check (b) every error is Unavailable and retryable, or in doubt (OutcomeUnknown), during an outage: ok ({} errors, {} in doubt)",
            errors.len(),
            errors.iter().filter(|(_, f)| f.kind == "OutcomeUnknown").count()
        );
    }

    // (c) No call blocked longer than the connection timeout plus a margin.
    load::check_no_call_blocked(&calls, &mut failures);

    // (d) After each restart, every writer succeeds again within RECOVERY_LIMIT.
    let mut recovery_failures = Vec::new();
    let mut recoveries = Vec::new();
    for o in &outages {
        let per_writer: Vec<Option<Duration>> = logs
            .iter()
            .map(|log| {
                log.calls
                    .iter()
                    .find(|c| c.outcome.is_ok() && c.start >= o.back)
                    .map(|c| c.end - o.back)
            })
            .collect();
        let worst = per_writer
            .iter()
            .copied()
            .try_fold(Duration::ZERO, |acc, t| t.map(|t| acc.max(t)));
        match worst {
            Some(t) if t <= RECOVERY_LIMIT => {
                recoveries.push(format!("{}: {}", o.fault, secs(t)));
            }
            _ => recovery_failures.push(format!(
                "{}: first successful write per writer after the server was back: {per_writer:?}",
                o.fault
            )),
        }
    }
    if recovery_failures.is_empty() {
        println!(
            "check (d) every writer succeeds again within {} of the server being back: ok ({})",
            secs(RECOVERY_LIMIT),
            recoveries.join(", ")
        );
    } else {
        failures.push(format!(
            "(d) no recovery within {}: {recovery_failures:?}",
            secs(RECOVERY_LIMIT)
        ));
    }
    // (e) The outages were felt: during the stop/start outage, with nothing listening,
    // callers were refused (at once, from an attempt made during their wait) or waited
    // out the connection timeout, so (b), (c) and (d) were checked on the pool's
    // checkout path too, not only on connections that broke.
    let checkout_failures = outages
        .iter()
        .filter(|o| matches!(o.fault, Fault::StopStart(..)))
        .map(|o| {
            errors
                .iter()
                .filter(|(c, f)| {
                    o.covers(c.end)
                        && (c.end - c.start >= CONNECTION_TIMEOUT
                            || f.message.contains("Connection refused"))
                })
                .count()
        })
        .sum::<usize>();
    if checkout_failures == 0 {
        failures.push(format!(
            "(e) no call was refused or waited out the {} connection timeout during the \
             stop/start outage",
            secs(CONNECTION_TIMEOUT)
        ));
    } else {
        println!(
            "check (e) the outages were felt: ok ({} failed calls, {checkout_failures} of them refused or timed out at checkout)",
            errors.len()
        );
    }
    println!("  pool at the end: {:?}", db.pool_state());
    load::report(&failures);
}

/// Waits for a batch holding `tag`; returns what came before it.
fn until_tag(listener: &mut jobprep_repo::feed::Listener, tag: &str) -> Vec<FeedEvent> {
    let started = Instant::now();
    let mut before = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        match listener.recv_timeout(Duration::from_millis(100)) {
            Some(FeedEvent::Tags(tags)) if tags.iter().any(|t| t.as_str() == tag) => {
                return before;
            }
            Some(event) => before.push(event),
            None => {}
        }
    }
    panic!("{tag} did not arrive within 30 s; got {before:?}");
}

/// Upserts the user `id`; returns the tag the feed reports for it.
fn write_user(db: &Db, id: &str) -> String {
    let id = UserId::new(id).unwrap();
    let new = NewUser::new(id.clone(), "Feed", format!("{id}@fault.example"));
    db.write(|c, _| users::upsert(c, &new)).unwrap();
    format!("id:{id}:users")
}

/// The cache feed records changes in an unlogged table, which a crash restart empties:
/// a listener must come back by itself, yield a reset for what it cannot know, and
/// deliver the writes made after it.
#[test]
#[ignore = "restarts a PostgreSQL server: run `bash scripts/fault-restart.sh`, which starts a throwaway one"]
fn a_cache_feed_listener_resets_after_a_crash_restart_and_delivers_again() {
    use jobprep_repo::feed::{FeedEvent, FeedInstallation};

    let env = FaultEnv::from_env();
    let db = env.feed_db();
    let mut listener = load::quick_listener(&db);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let write = |name: &str| write_user(&db, &format!("feed-{name}-{nanos}"));

    let tag = write("before");
    assert!(until_tag(&mut listener, &tag).is_empty());
    let recorded_before = || {
        let mut conn = diesel::PgConnection::establish(&env.url).unwrap();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "(SELECT count(*) FROM jobprep_cache_feed.changes \
              WHERE 'feed-before-{nanos}' = ANY(ids))"
        )))
        .get_result::<i64>(&mut conn)
        .unwrap()
    };
    assert_eq!(recorded_before(), 1);

    let start_time_before = env.postmaster_start_time();
    env.inject(Fault::Restart("immediate"));
    assert_ne!(start_time_before, env.postmaster_start_time());

    // What commits before the listener is back is covered by its reset, not
    // delivered: write once it has reconnected.
    let started = Instant::now();
    while !(listener.status().reconnects >= 1 && listener.status().connected) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the listener never came back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The server may still refuse for a moment: retry as callers would.
    let started = Instant::now();
    let tag = loop {
        let id = UserId::new(format!("feed-after-{nanos}")).unwrap();
        let email = format!("feed-after-{nanos}@fault.example");
        let new = NewUser::new(id.clone(), "Feed", email);
        match db.write(|c, _| users::upsert(c, &new)) {
            Ok(_) => break format!("id:{id}:users"),
            Err(e) if e.is_retryable() && started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("the write after the restart failed: {e}"),
        }
    };
    // The crash emptied the unlogged table; the feed itself is intact.
    assert_eq!(recorded_before(), 0);
    assert_eq!(db.cache_feed_status().unwrap(), FeedInstallation::Installed);
    let before = until_tag(&mut listener, &tag);
    assert!(
        before.first() == Some(&FeedEvent::Reset),
        "a reset comes before the first batch after the crash: {before:?}"
    );
    let status = listener.status();
    assert!(status.reconnects >= 1, "{status:?}");
    println!(
        "check (f) a cache feed listener resets after a crash restart and delivers again: ok \
         ({} reconnects)",
        status.reconnects
    );
    listener.stop();
}

/// Starts the stopped server again when dropped, so that a failing check does not
/// leave the next test without one.
struct StartOnDrop<'a>(&'a FaultEnv);

impl Drop for StartOnDrop<'_> {
    fn drop(&mut self) {
        let log = format!("{}/server.log", self.0.pgdata);
        self.0.pg_ctl("start", &["-l", &log]);
    }
}

/// With the server stopped, every call fails at once and says retryable: nothing
/// listens, so the pool's connection attempt is refused and ends the caller's wait,
/// instead of waiting out the connection timeout for a server that is not coming.
/// Once the server is back, the same `Db` serves again.
#[test]
#[ignore = "stops a PostgreSQL server: run `bash scripts/fault-restart.sh`, which starts a throwaway one"]
fn with_the_server_stopped_every_call_fails_fast_and_retryable() {
    use jobprep_interviews::NewInterview;
    use jobprep_questions::{NewQuestion, QuestionDifficulty};

    /// Far below the connection timeout: a refused attempt ends the wait.
    const FAST: Duration = Duration::from_millis(500);
    let env = FaultEnv::from_env();
    let db = Db::builder(&env.url)
        .max_size(4)
        .connection_timeout(CONNECTION_TIMEOUT)
        .build()
        .unwrap();
    db.migrate().unwrap();
    let run = load::run_name("stopped");
    let me = UserId::new(format!("{run}-u")).unwrap();
    let new = NewUser::new(me.clone(), "Stopped", format!("{run}@fault.example"));
    jobprep_users::upsert(&db, &new).unwrap();
    let parent = jobprep_job_infos::insert(&db, &me, &job()).unwrap().id;
    let chat = || NewInterview::new().with_hume_chat_id("chat");
    let question = || NewQuestion::new("Why?", QuestionDifficulty::Easy);
    type Call<'a> = (&'static str, Box<dyn Fn() -> jobprep_repo::Result<()> + 'a>);
    let calls: Vec<Call> = vec![
        (
            "users::upsert",
            Box::new(|| jobprep_users::upsert(&db, &new).map(drop)),
        ),
        (
            "users::get",
            Box::new(|| jobprep_users::get(&db, &me).map(drop)),
        ),
        (
            "job_infos::insert",
            Box::new(|| jobprep_job_infos::insert(&db, &me, &job()).map(drop)),
        ),
        (
            "job_infos::list_for_user",
            Box::new(|| jobprep_job_infos::list_for_user(&db, &me).map(drop)),
        ),
        (
            "interviews::insert_within_quota",
            Box::new(|| {
                jobprep_interviews::insert_within_quota(&db, &me, parent, &chat(), 10).map(drop)
            }),
        ),
        (
            "questions::insert_many",
            Box::new(|| {
                jobprep_questions::insert_many(&db, &me, parent, &[question(), question()])
                    .map(drop)
            }),
        ),
        (
            "questions::count_for_user",
            Box::new(|| jobprep_questions::count_for_user(&db, &me).map(drop)),
        ),
        (
            "db.transaction",
            Box::new(|| {
                db.transaction(|tx| jobprep_questions::insert(tx, &me, parent, &question()))
                    .map(drop)
            }),
        ),
        (
            "job_infos::delete",
            Box::new(|| jobprep_job_infos::delete(&db, &me, parent).map(drop)),
        ),
        #[cfg(feature = "tokio")]
        (
            "asynch: job_infos::list_for_user",
            Box::new(|| {
                let facade = jobprep_repo::asynch::AsyncDb::from(db.clone());
                let owner = me.clone();
                jobprep_testing::block_on(
                    facade.run(move |db| jobprep_job_infos::list_for_user(db, &owner)),
                )
                .map(drop)
            }),
        ),
    ];
    for (name, call) in &calls {
        call().unwrap_or_else(|e| panic!("{name} before the stop: {e}"));
    }

    env.pg_ctl("stop", &["-m", "fast"]);
    let restart = StartOnDrop(&env);
    let mut failures = Vec::new();
    let mut longest = Duration::ZERO;
    for (name, call) in &calls {
        let started = Instant::now();
        let result = call();
        let took = started.elapsed();
        longest = longest.max(took);
        match result {
            Ok(()) => failures.push(format!("{name} succeeded with the server stopped")),
            Err(e) if !e.is_retryable() => failures.push(format!("{name}: not retryable: {e:?}")),
            Err(_) if took > FAST => failures.push(format!("{name} took {}", secs(took))),
            Err(_) => {}
        }
    }
    println!(
        "  with the server stopped: {} calls failed, each retryable, the longest after {}",
        calls.len(),
        secs(longest)
    );
    drop(restart);
    let back = load::eventually(RECOVERY_LIMIT, || jobprep_users::get(&db, &me).is_ok());
    if !back {
        failures.push("the same Db did not serve again after the start".into());
    }
    if failures.is_empty() {
        println!(
            "check (g) with the server stopped every call fails fast and retryable, then serves again: ok ({} calls, longest {})",
            calls.len(),
            secs(longest)
        );
    }
    load::report(&failures);
}

/// A sleeping listener (`FeedOptions::sleep_after`) holds no connection, so it cannot
/// see the server go: a write made while it sleeps, then a crash that empties the
/// feed's unlogged table, must not be a silent gap. On waking it compares the server's
/// start time and yields a reset, then delivers again.
#[test]
#[ignore = "restarts a PostgreSQL server: run `bash scripts/fault-restart.sh`, which starts a throwaway one"]
fn a_sleeping_listener_that_wakes_after_a_crash_restart_yields_a_reset() {
    use jobprep_repo::feed::{FeedOptions, Listener};

    let env = FaultEnv::from_env();
    let db = env.feed_db();
    let mut listener = Listener::start(
        &db,
        FeedOptions {
            sleep_after: Some(Duration::from_millis(300)),
            wake_every: Duration::from_secs(6),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            ..FeedOptions::default()
        },
    )
    .unwrap();
    let run = load::run_name("sleeper");
    let tag = write_user(&db, &format!("{run}-before"));
    assert!(until_tag(&mut listener, &tag).is_empty());
    assert!(
        load::eventually(Duration::from_secs(10), || listener.status().asleep),
        "{:?}",
        listener.status()
    );

    // While it sleeps: a write, then a crash that takes the recorded change along.
    let unseen = write_user(&db, &format!("{run}-asleep"));
    let start_time_before = env.postmaster_start_time();
    env.inject(Fault::Restart("immediate"));
    assert_ne!(start_time_before, env.postmaster_start_time());
    assert!(
        listener.status().asleep,
        "woke too early: {:?}",
        listener.status()
    );

    // On waking, before anything else: a reset (the crash emptied what it would read).
    let first = listener.recv_timeout(Duration::from_secs(20));
    assert_eq!(
        first,
        Some(FeedEvent::Reset),
        "the first event after waking from a crash restart: {:?}",
        listener.status()
    );
    // Then it delivers again: a write made now arrives at its next wake-up.
    let after = write_user(&db, &format!("{run}-after"));
    let before = until_tag(&mut listener, &after);
    assert!(
        before.iter().all(|event| *event == FeedEvent::Reset),
        "nothing but resets before the write made after waking: {before:?}; {unseen} was covered by the first"
    );
    println!(
        "check (h) a sleeping listener that wakes after a crash restart yields a reset, then \
         delivers again: ok ({} sleeps)",
        listener.status().sleeps
    );
    listener.stop();
}
