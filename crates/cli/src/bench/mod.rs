//! `jobprep bench`: each operation through jobprep and through the baseline (the
//! same repository functions on a bare connection), in the same run, on a scratch
//! database seeded and analyzed first (or, with `--existing`, on a database as it is).

mod drive;
mod feed;
mod ops;
mod scratch;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobprep_job_infos::{ExperienceLevel, NewJobInfo};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::{Connection, Db, DbConfig, JobInfoId, NoopSink, UserId};
use jobprep_users::NewUser;
use serde::Serialize;

use crate::error::CliError;
use drive::{drive, Rng, Side};
use ops::{Inputs, Operation};
use scratch::Scratch;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Users to seed; each gets 2 job infos, each with 2 interviews and 3 questions.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Seconds to measure each operation, per side (jobprep and raw).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Concurrent client threads.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Only these operations (comma-separated); default: all.
    #[arg(long, value_delimiter = ',', value_enum)]
    ops: Vec<Operation>,
    /// A streaming replica of the server (repeatable): reads then go through the
    /// replica router, and are compared with raw reads on the primary.
    #[arg(long = "replica")]
    replicas: Vec<String>,
    /// Print one JSON object on the last line.
    #[arg(long)]
    json: bool,
    /// Measure the configured PostgreSQL database as it is, with the users and job
    /// infos it holds, instead of a scratch database seeded by the run (`--users` is
    /// then ignored). The writes add rows to it. For comparisons on the same data
    /// (scripts/pgbench-compare.sh).
    #[arg(long, conflicts_with_all = ["replicas", "cache_feed"])]
    existing: bool,
    /// Measure the cache feed instead (PostgreSQL): write throughput with the
    /// triggers off and on, and commit-to-listener latency.
    #[arg(long)]
    cache_feed: bool,
    /// With `--cache-feed`: the URL the listener connects with, the same server by
    /// another route (for example directly, while the writers go through a latency
    /// proxy); its database is replaced by the scratch database.
    #[arg(long, requires = "cache_feed")]
    listener_database_url: Option<String>,
}

#[derive(Debug, Serialize)]
struct OpResult {
    /// Operations per second through jobprep (rows per second for the bulk insert).
    dal_ops: f64,
    /// The same through the raw baseline.
    raw_ops: f64,
    /// dal_ops / raw_ops.
    ratio: f64,
    p50_us: u64,
    p99_us: u64,
    raw_p50_us: u64,
    raw_p99_us: u64,
    /// The plan shape PostgreSQL chose on the analyzed data, as the scans counted
    /// while the operation ran (both sides): sequential scans of jobprep's tables, and
    /// index scans. `None` on SQLite.
    sequential_scans: Option<i64>,
    index_scans: Option<i64>,
}

#[derive(Debug, Serialize)]
struct ColdStart {
    /// The first query of a fresh handle, connection included.
    first_query_us: u64,
    /// The median of the next 200 queries on that handle.
    warm_query_us: u64,
    /// Connections the pool holds after the first query.
    connections_after_first_query: u32,
}

#[derive(Debug, Serialize)]
struct Report {
    backend: String,
    replicas: usize,
    clients: usize,
    users: usize,
    seconds: f64,
    cold_start: ColdStart,
    ops: std::collections::BTreeMap<String, OpResult>,
}

/// The seeded rows the operations pick from.
pub struct Dataset {
    users: Vec<NewUser>,
    jobs: Vec<(UserId, JobInfoId)>,
}

impl Dataset {
    fn pick_job(&self, rng: &mut Rng) -> (&UserId, JobInfoId) {
        let (user, job) = &self.jobs[rng.below(self.jobs.len())];
        (user, *job)
    }

    fn pick_user(&self, rng: &mut Rng) -> &NewUser {
        &self.users[rng.below(self.users.len())]
    }
}

pub fn run(base: DbConfig, args: BenchArgs) -> Result<(), CliError> {
    if args.clients == 0 || args.users == 0 || args.seconds.is_nan() || args.seconds <= 0.0 {
        return Err(CliError::Refused(
            "--clients, --users and --seconds must be positive".into(),
        ));
    }
    if args.cache_feed {
        return feed::run(
            base,
            args.seconds,
            args.clients,
            args.json,
            args.listener_database_url.as_deref(),
        );
    }
    let scratch = if args.existing {
        Scratch::existing(&base)?
    } else {
        Scratch::create(&base)?
    };
    let mut config = scratch.config.clone();
    config.pool.max_size = u32::try_from(args.clients).unwrap_or(u32::MAX).max(1);
    config.pooler_safe = base.pooler_safe;
    for replica in &args.replicas {
        config
            .replicas
            .push(scratch.on_server(&DbConfig::parse(replica)?)?.url);
    }
    let db = Db::from_config(config.clone(), Arc::new(NoopSink))?;
    let progress = Progress::new(!args.json || std::io::stderr().is_terminal());
    let dataset = if scratch.is_scratch() {
        db.migrate()?;
        let dataset = seed(&db, args.users, &progress)?;
        scratch.analyze()?;
        dataset
    } else {
        existing_dataset(&scratch)?
    };
    if !args.replicas.is_empty() {
        wait_for_replicas(&db, &dataset)?;
    }
    let cold_start = cold_start(&config, &dataset)?;

    let per_side = Duration::from_secs_f64(args.seconds);
    let mut ops = std::collections::BTreeMap::new();
    for op in Operation::ALL {
        if !args.ops.is_empty() && !args.ops.contains(&op) {
            continue;
        }
        progress.line(&format!(
            "measuring {} ({} clients, {:.1}s per side)",
            op.name(),
            args.clients,
            args.seconds
        ));
        let before = scratch.scans()?;
        let mut result = measure_op(op, &db, &config, &dataset, args.clients, per_side)?;
        if let (Some(before), Some(after)) = (before, scratch.scans()?) {
            result.sequential_scans = Some(after.sequential - before.sequential);
            result.index_scans = Some(after.index - before.index);
        }
        progress.line(&format!(
            "  {:<28} jobprep {:>10.0}/s  raw {:>10.0}/s  ratio {:.3}  p50 {}us p99 {}us",
            op.name(),
            result.dal_ops,
            result.raw_ops,
            result.ratio,
            result.p50_us,
            result.p99_us
        ));
        ops.insert(op.name().to_owned(), result);
    }
    let report = Report {
        backend: db.backend().to_string(),
        replicas: args.replicas.len(),
        clients: args.clients,
        users: dataset.users.len(),
        seconds: args.seconds,
        cold_start,
        ops,
    };
    if args.json {
        let text = serde_json::to_string(&report).map_err(CliError::json("the report"))?;
        println!("{text}");
    } else {
        print_table(&report);
    }
    drop(db);
    drop(scratch);
    Ok(())
}

fn print_table(report: &Report) {
    println!(
        "jobprep bench: {}{}, {} clients, {} users, {:.1}s per side",
        report.backend,
        if report.replicas > 0 {
            format!(" with {} replica(s) for reads", report.replicas)
        } else {
            String::new()
        },
        report.clients,
        report.users,
        report.seconds
    );
    println!(
        "{:<28} {:>12} {:>12} {:>7} {:>8} {:>8}  plan",
        "operation", "jobprep/s", "raw/s", "ratio", "p50 us", "p99 us"
    );
    for (op, r) in &report.ops {
        let plan = match (r.sequential_scans, r.index_scans) {
            (Some(0), Some(_)) => "index scans".to_owned(),
            (Some(seq), Some(idx)) => format!("{seq} seq scans, {idx} index scans"),
            _ => String::new(),
        };
        println!(
            "{op:<28} {:>12.0} {:>12.0} {:>7.3} {:>8} {:>8}  {plan}",
            r.dal_ops, r.raw_ops, r.ratio, r.p50_us, r.p99_us
        );
    }
    let c = &report.cold_start;
    println!(
        "cold start: first query {}us (opens {} connection), warm query {}us",
        c.first_query_us, c.connections_after_first_query, c.warm_query_us
    );
}

/// Progress on stderr, only when it is a terminal (or when asked for the readable report).
struct Progress {
    on: bool,
    terminal: bool,
}

impl Progress {
    fn new(on: bool) -> Self {
        Progress {
            on,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn line(&self, text: &str) {
        if self.on {
            eprintln!("{text}");
        }
    }

    fn count(&self, what: &str, done: usize, total: usize) {
        if self.on && self.terminal {
            eprint!("\r{what} {done}/{total}");
            let _ = std::io::stderr().flush();
            if done == total {
                eprintln!();
            }
        }
    }
}

fn seed(db: &Db, users: usize, progress: &Progress) -> Result<Dataset, CliError> {
    let started = Instant::now();
    let mut dataset = Dataset {
        users: Vec::with_capacity(users),
        jobs: Vec::with_capacity(users * 2),
    };
    let questions: Vec<NewQuestion> = (0..3)
        .map(|n| NewQuestion::new(format!("Seed question {n}"), QuestionDifficulty::Medium))
        .collect();
    for chunk_start in (0..users).step_by(100) {
        let chunk_end = (chunk_start + 100).min(users);
        db.transaction(|tx| {
            for n in chunk_start..chunk_end {
                let id = UserId::new(format!("user_bench_{n:06}"))?;
                let user = NewUser::new(
                    id.clone(),
                    format!("Bench user {n}"),
                    format!("bench{n}@bench.example"),
                );
                jobprep_users::upsert(tx, &user)?;
                for j in 0..2 {
                    let level = ExperienceLevel::ALL[(n + j) % 3];
                    let job =
                        NewJobInfo::new(format!("Job {j}"), level, "Seeded for the benchmark");
                    let key = jobprep_job_infos::insert(tx, &id, &job)?;
                    for i in 0..2 {
                        let interview = ops::seed_interview(n, j, i);
                        jobprep_interviews::insert(tx, &id, key.id, &interview)?;
                    }
                    jobprep_questions::insert_many(tx, &id, key.id, &questions)?;
                    dataset.jobs.push((id.clone(), key.id));
                }
                dataset.users.push(user);
            }
            Ok(())
        })?;
        progress.count("seeding users", chunk_end, users);
    }
    progress.line(&format!(
        "seeded {users} users, {} job infos, {} interviews, {} questions in {:.1}s",
        users * 2,
        users * 4,
        users * 6,
        started.elapsed().as_secs_f64()
    ));
    Ok(dataset)
}

/// The users and job infos of an existing database, for `--existing`.
fn existing_dataset(scratch: &Scratch) -> Result<Dataset, CliError> {
    let scratch::ExistingRows { users, jobs } = scratch.rows()?;
    if users.is_empty() || jobs.is_empty() {
        return Err(CliError::Refused(
            "--existing needs a database that holds users and job infos".into(),
        ));
    }
    Ok(Dataset {
        users: users
            .into_iter()
            .map(|(id, name, email)| Ok(NewUser::new(UserId::new(id)?, name, email)))
            .collect::<Result<_, jobprep_repo::Error>>()?,
        jobs: jobs
            .into_iter()
            .map(|(user, id)| Ok((UserId::new(user)?, JobInfoId::from_uuid(id))))
            .collect::<Result<_, jobprep_repo::Error>>()?,
    })
}

/// Waits (up to a minute) until the replicas have replayed the seeded data.
fn wait_for_replicas(db: &Db, data: &Dataset) -> Result<(), CliError> {
    let (user, job) = data
        .jobs
        .last()
        .ok_or_else(|| CliError::Bench("nothing was seeded".into()))?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let before = db.routing_state().primary_reads;
        let found = jobprep_job_infos::get(db, user, *job).is_ok();
        if found && db.routing_state().primary_reads == before {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(CliError::Bench(
        "the replicas did not catch up with the seeded data within a minute".into(),
    ))
}

fn cold_start(config: &DbConfig, dataset: &Dataset) -> Result<ColdStart, CliError> {
    // On the primary alone: the point is what a new process's first query costs.
    let mut config = config.clone();
    config.replicas.clear();
    let db = Db::from_config(config, Arc::new(NoopSink))?;
    let (user, job) = dataset
        .jobs
        .first()
        .ok_or_else(|| CliError::Bench("nothing was seeded".into()))?;
    let started = Instant::now();
    jobprep_job_infos::get(&db, user, *job)?;
    let first = started.elapsed();
    let connections = db.pool_state().connections;
    let mut warm: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            jobprep_job_infos::get(&db, user, *job).map(|_| t.elapsed())
        })
        .collect::<Result<_, _>>()?;
    warm.sort();
    Ok(ColdStart {
        first_query_us: micros(first),
        warm_query_us: micros(warm[warm.len() / 2]),
        connections_after_first_query: connections,
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn measure_op(
    op: Operation,
    db: &Db,
    config: &DbConfig,
    data: &Dataset,
    clients: usize,
    per_side: Duration,
) -> Result<OpResult, CliError> {
    // Two halves per side, alternating, so drift on a shared machine hits both alike.
    let half = per_side / 2;
    let (mut dal, mut raw) = (Side::default(), Side::default());
    for _ in 0..2 {
        dal.add(drive(clients, half, || {
            let inputs = Inputs::new();
            Ok(move |rng: &mut Rng| ops::through_jobprep(op, db, data, &inputs, rng))
        })?);
        raw.add(drive(clients, half, || {
            let mut conn = Connection::establish(config)?;
            let inputs = Inputs::new();
            Ok(move |rng: &mut Rng| ops::baseline(op, &mut conn, data, &inputs, rng))
        })?);
    }
    let (dal_ops, raw_ops) = (dal.rate(), raw.rate());
    Ok(OpResult {
        dal_ops,
        raw_ops,
        ratio: if raw_ops > 0.0 {
            dal_ops / raw_ops
        } else {
            0.0
        },
        p50_us: dal.percentile(0.50),
        p99_us: dal.percentile(0.99),
        raw_p50_us: raw.percentile(0.50),
        raw_p99_us: raw.percentile(0.99),
        sequential_scans: None,
        index_scans: None,
    })
}
