//! `jobprep bench`: each operation through jobprep and through the raw baseline (the
//! same SQL on a bare diesel connection), in the same run, on a scratch database.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobprep_interviews::NewInterview;
use jobprep_job_infos::{ExperienceLevel, NewJobInfo};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::bench::{scratch_database, RawConnection};
use jobprep_repo::{Db, DbConfig, Error, JobInfoId, NoopSink, UserId};
use jobprep_users::NewUser;
use serde::Serialize;

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
    #[arg(long, value_delimiter = ',')]
    ops: Vec<String>,
    /// A streaming replica of the server (repeatable): reads then go through the
    /// replica router, and are compared with raw reads on the primary.
    #[arg(long = "replica")]
    replicas: Vec<String>,
    /// Print one JSON object on the last line.
    #[arg(long)]
    json: bool,
    /// Measure the cache feed instead (PostgreSQL): write throughput with the
    /// triggers off and on, and commit-to-listener latency.
    #[arg(long)]
    cache_feed: bool,
}

/// Reads first, on the seeded dataset they are meant to measure; then the writes,
/// which grow the tables.
const OPS: &[&str] = &[
    "get_job_info",
    "list_job_infos",
    "list_interviews",
    "count_interviews_for_user",
    "upsert_user",
    "insert_job_info",
    "insert_question",
    "bulk_insert_questions",
];

/// Rows a `bulk_insert_questions` call writes.
const BULK_ROWS: usize = 1000;

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

struct Dataset {
    users: Vec<NewUser>,
    jobs: Vec<(UserId, JobInfoId)>,
}

pub fn run(base: DbConfig, args: BenchArgs) -> Result<(), Error> {
    for op in &args.ops {
        if !OPS.contains(&op.as_str()) {
            return Err(Error::Config(format!(
                "unknown operation `{op}`; known: {}",
                OPS.join(", ")
            )));
        }
    }
    if args.clients == 0 || args.users == 0 || args.seconds.is_nan() || args.seconds <= 0.0 {
        return Err(Error::Config(
            "--clients, --users and --seconds must be positive".into(),
        ));
    }
    if args.cache_feed {
        return crate::bench_feed::run(base, args.seconds, args.json);
    }
    let scratch = scratch_database(&base)?;
    let mut config = DbConfig::parse(&scratch.url)?;
    config.pool.max_size = u32::try_from(args.clients).unwrap_or(u32::MAX).max(1);
    config.pooler_safe = base.pooler_safe;
    for replica in &args.replicas {
        config
            .replicas
            .push(DbConfig::parse(&scratch.on_server(replica))?.url);
    }
    let db = Db::from_config(config.clone(), Arc::new(NoopSink))?;
    db.migrate()?;
    let progress = Progress::new(!args.json || std::io::stderr().is_terminal());

    let dataset = seed(&db, args.users, &progress)?;
    if !args.replicas.is_empty() {
        wait_for_replicas(&db, &dataset)?;
    }
    let cold_start = cold_start(&config, &dataset)?;

    let per_side = Duration::from_secs_f64(args.seconds);
    let mut ops = std::collections::BTreeMap::new();
    for &op in OPS {
        if !args.ops.is_empty() && !args.ops.iter().any(|o| o == op) {
            continue;
        }
        progress.line(&format!(
            "measuring {op} ({} clients, {:.1}s per side)",
            args.clients, args.seconds
        ));
        let result = measure_op(op, &db, &config, &dataset, args.clients, per_side)?;
        progress.line(&format!(
            "  {op:<28} jobprep {:>10.0}/s  raw {:>10.0}/s  ratio {:.3}  p50 {}us p99 {}us",
            result.dal_ops, result.raw_ops, result.ratio, result.p50_us, result.p99_us
        ));
        ops.insert(op.to_owned(), result);
    }
    let report = Report {
        backend: db.backend().to_string(),
        replicas: args.replicas.len(),
        clients: args.clients,
        users: args.users,
        seconds: args.seconds,
        cold_start,
        ops,
    };
    if args.json {
        let text = serde_json::to_string(&report)
            .map_err(|e| Error::Config(format!("cannot encode the report: {e}")))?;
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
        "{:<28} {:>12} {:>12} {:>7} {:>8} {:>8}",
        "operation", "jobprep/s", "raw/s", "ratio", "p50 us", "p99 us"
    );
    for (op, r) in &report.ops {
        println!(
            "{op:<28} {:>12.0} {:>12.0} {:>7.3} {:>8} {:>8}",
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

fn seed(db: &Db, users: usize, progress: &Progress) -> Result<Dataset, Error> {
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
                        let interview = NewInterview {
                            job_info_id: key.id,
                            duration: "00:10:00".into(),
                            hume_chat_id: Some(format!("chat_{n}_{j}_{i}")),
                        };
                        jobprep_interviews::create(tx, &id, &interview)?;
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

/// Waits (up to a minute) until the replicas have replayed the seeded data.
fn wait_for_replicas(db: &Db, data: &Dataset) -> Result<(), Error> {
    let (user, job) = data
        .jobs
        .last()
        .ok_or_else(|| Error::Config("nothing was seeded".into()))?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let before = db.routing_state().primary_reads;
        let found = jobprep_job_infos::get(db, *job, user).is_ok();
        if found && db.routing_state().primary_reads == before {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::Unavailable {
        reason: "the replicas did not catch up with the seeded data within a minute".into(),
    })
}

fn cold_start(config: &DbConfig, dataset: &Dataset) -> Result<ColdStart, Error> {
    // On the primary alone: the point is what a new process's first query costs.
    let mut config = config.clone();
    config.replicas.clear();
    let db = Db::from_config(config, Arc::new(NoopSink))?;
    let (user, job) = &dataset.jobs[0];
    let started = Instant::now();
    jobprep_job_infos::get(&db, *job, user)?;
    let first = started.elapsed();
    let connections = db.pool_state().connections;
    let mut warm: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            jobprep_job_infos::get(&db, *job, user).map(|_| t.elapsed())
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

/// A small xorshift generator: each client picks rows at random, reproducibly.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

struct Side {
    units: u64,
    elapsed: Duration,
    latencies: Vec<u32>,
}

/// Runs `op` on `clients` threads for `duration`; each call returns the units it did.
fn drive<F>(
    clients: usize,
    duration: Duration,
    make: impl Fn(usize) -> Result<F, Error> + Sync,
) -> Result<Side, Error>
where
    F: FnMut(&mut Rng) -> Result<u64, Error>,
{
    let started = Instant::now();
    let results: Vec<Result<(u64, Vec<u32>), Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let make = &make;
                scope.spawn(move || {
                    let mut op = make(client)?;
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((client as u64 + 1) * 0x2545_F491));
                    let deadline = Instant::now() + duration;
                    let (mut units, mut latencies) = (0, Vec::with_capacity(65_536));
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        units += op(&mut rng)?;
                        latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    Ok((units, latencies))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Config("a benchmark client panicked".into())))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut side = Side {
        units: 0,
        elapsed,
        latencies: Vec::new(),
    };
    for result in results {
        let (units, latencies) = result?;
        side.units += units;
        side.latencies.extend(latencies);
    }
    Ok(side)
}

fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    u64::from(sorted[index.min(sorted.len() - 1)])
}

fn measure_op(
    op: &str,
    db: &Db,
    config: &DbConfig,
    data: &Dataset,
    clients: usize,
    per_side: Duration,
) -> Result<OpResult, Error> {
    // Two halves per side, alternating, so drift on a shared machine hits both alike.
    let half = per_side / 2;
    let mut dal = Side {
        units: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    let mut raw = Side {
        units: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for _ in 0..2 {
        let d = drive(clients, half, |_| Ok(dal_op(op, db, data)))?;
        let r = drive(clients, half, |_| raw_op(op, config, data))?;
        for (total, part) in [(&mut dal, d), (&mut raw, r)] {
            total.units += part.units;
            total.elapsed += part.elapsed;
            total.latencies.extend(part.latencies);
        }
    }
    dal.latencies.sort_unstable();
    raw.latencies.sort_unstable();
    let rate = |side: &Side| side.units as f64 / side.elapsed.as_secs_f64().max(f64::EPSILON);
    let (dal_ops, raw_ops) = (rate(&dal), rate(&raw));
    Ok(OpResult {
        dal_ops,
        raw_ops,
        ratio: if raw_ops > 0.0 {
            dal_ops / raw_ops
        } else {
            0.0
        },
        p50_us: percentile(&dal.latencies, 0.50),
        p99_us: percentile(&dal.latencies, 0.99),
        raw_p50_us: percentile(&raw.latencies, 0.50),
        raw_p99_us: percentile(&raw.latencies, 0.99),
    })
}

fn bulk_batch() -> Vec<NewQuestion> {
    (0..BULK_ROWS)
        .map(|n| {
            NewQuestion::new(
                format!("Generated question {n}"),
                QuestionDifficulty::ALL[n % 3],
            )
        })
        .collect()
}

fn bench_job() -> NewJobInfo {
    NewJobInfo::new(
        "Bench job",
        ExperienceLevel::Senior,
        "A job for the benchmark",
    )
    .with_title("Bench title")
}

/// One call of `op` through jobprep's public use cases.
fn dal_op<'a>(
    op: &str,
    db: &'a Db,
    data: &'a Dataset,
) -> impl FnMut(&mut Rng) -> Result<u64, Error> + 'a {
    let op = op.to_owned();
    let job = bench_job();
    let question = NewQuestion::new(
        "How do you size a connection pool?",
        QuestionDifficulty::Medium,
    );
    let batch = bulk_batch();
    move |rng| {
        let (user, job_id) = &data.jobs[rng.below(data.jobs.len())];
        match op.as_str() {
            "upsert_user" => {
                jobprep_users::upsert(db, &data.users[rng.below(data.users.len())])?;
            }
            "insert_job_info" => {
                jobprep_job_infos::insert(db, user, &job)?;
            }
            "get_job_info" => {
                jobprep_job_infos::get(db, *job_id, user)?;
            }
            "list_job_infos" => {
                jobprep_job_infos::list_for_user(db, user)?;
            }
            "list_interviews" => {
                jobprep_interviews::list_for_job_info(db, *job_id, user)?;
            }
            "insert_question" => {
                jobprep_questions::insert(db, user, *job_id, &question)?;
            }
            "bulk_insert_questions" => {
                jobprep_questions::insert_many(db, user, *job_id, &batch)?;
                return Ok(BULK_ROWS as u64);
            }
            _ => {
                jobprep_interviews::count_for_user(db, user)?;
            }
        }
        Ok(1)
    }
}

/// One call of `op` through the raw baseline, on a bare connection of the client's own.
fn raw_op<'a>(
    op: &str,
    config: &DbConfig,
    data: &'a Dataset,
) -> Result<impl FnMut(&mut Rng) -> Result<u64, Error> + 'a, Error> {
    let mut conn = RawConnection::connect(config)?;
    let op = op.to_owned();
    let job = bench_job();
    let question = NewQuestion::new(
        "How do you size a connection pool?",
        QuestionDifficulty::Medium,
    );
    let batch = bulk_batch();
    Ok(move |rng: &mut Rng| {
        let (user, job_id) = &data.jobs[rng.below(data.jobs.len())];
        match op.as_str() {
            "upsert_user" => {
                let u = &data.users[rng.below(data.users.len())];
                conn.upsert_user(&u.id, &u.name, &u.email)?;
            }
            "insert_job_info" => {
                conn.insert_job_info(user, &job)?;
            }
            "get_job_info" => {
                conn.get_job_info(*job_id, user)?;
            }
            "list_job_infos" => {
                conn.list_job_infos(user)?;
            }
            "list_interviews" => {
                conn.list_interviews(*job_id, user)?;
            }
            "insert_question" => {
                conn.insert_question(user, *job_id, &question)?;
            }
            "bulk_insert_questions" => {
                let rows = conn.bulk_insert_questions(user, *job_id, &batch)?;
                return Ok(rows as u64);
            }
            _ => {
                conn.count_interviews_for_user(user)?;
            }
        }
        Ok(1)
    })
}
