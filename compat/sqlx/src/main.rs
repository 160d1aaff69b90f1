//! jobprep's async facade against sqlx 0.8, operation by operation, on a PostgreSQL
//! database seeded by `scripts/pgbench/seed.sql` and analyzed (see
//! `scripts/sqlx-compare.sh`, which prepares it and runs this).
//!
//! sqlx runs as an experienced user runs it: a `PgPool` of as many connections as
//! tasks, `test_before_acquire(false)`, `query_as` with the statement jobprep sends
//! (so both sides prepare the same SQL once per connection). jobprep runs its use cases
//! (`jobprep_*::asynch`) over an `AsyncDb` whose pool holds as many connections. Each
//! cell alternates the two sides, a few rounds, and reports the median rate of each.
//!
//! Usage: `jobprep-sqlx-compat DATABASE_URL [--seconds S] [--rounds N] [--tasks 1,4,16] [--ops a,b]`

use std::error::Error as StdError;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::Db;
use sqlx::encode::IsNull;
use sqlx::postgres::{PgArgumentBuffer, PgPool, PgPoolOptions, PgTypeInfo, PgValueRef};
use sqlx::Postgres;
use uuid::Uuid;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Reads first, on the seeded data; then the writes, which grow the tables.
const OPS: &[&str] = &[
    "get_job_info",
    "list_job_infos",
    "list_interviews",
    "count_interviews_for_user",
    "upsert_user",
    "insert_job_info",
    "insert_question",
];

// The statements jobprep sends (PostgreSQL's log, `log_statement = all`).
const GET_JOB_INFO: &str = r#"SELECT "job_info"."id", "job_info"."title", "job_info"."name", "job_info"."experienceLevel", "job_info"."description", "job_info"."userId", "job_info"."createdAt", "job_info"."updatedAt" FROM "job_info" WHERE (("job_info"."id" = $1) AND ("job_info"."userId" = $2))"#;
const LIST_JOB_INFOS: &str = r#"SELECT "job_info"."id", "job_info"."title", "job_info"."name", "job_info"."experienceLevel", "job_info"."description", "job_info"."userId", "job_info"."createdAt", "job_info"."updatedAt" FROM "job_info" WHERE ("job_info"."userId" = $1) ORDER BY "job_info"."updatedAt" DESC, "job_info"."id" DESC"#;
const LIST_INTERVIEWS: &str = r#"SELECT "interviews"."id", "interviews"."jobInfoId", "interviews"."duration", "interviews"."humeChatId", "interviews"."feedback", "interviews"."createdAt", "interviews"."updatedAt" FROM ("interviews" INNER JOIN "job_info" ON ("interviews"."jobInfoId" = "job_info"."id")) WHERE ((("job_info"."id" = $1) AND ("job_info"."userId" = $2)) AND ("interviews"."humeChatId" IS NOT NULL)) ORDER BY "interviews"."updatedAt" DESC, "interviews"."id" DESC"#;
const COUNT_INTERVIEWS: &str = r#"SELECT COUNT(*) FROM ("interviews" INNER JOIN "job_info" ON ("interviews"."jobInfoId" = "job_info"."id")) WHERE (("job_info"."userId" = $1) AND ("interviews"."humeChatId" IS NOT NULL))"#;
const UPSERT_USER: &str = r#"INSERT INTO "users" ("id", "name", "email", "imageUrl", "createdAt", "updatedAt") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name", "email" = excluded."email", "imageUrl" = excluded."imageUrl", "createdAt" = CASE WHEN $7 THEN excluded."createdAt" ELSE "users"."createdAt" END, "updatedAt" = CASE WHEN excluded."updatedAt" > "users"."updatedAt" THEN excluded."updatedAt" ELSE "users"."updatedAt" END RETURNING "users"."id", "users"."name", "users"."email", "users"."imageUrl", "users"."createdAt", "users"."updatedAt""#;
const INSERT_JOB_INFO: &str = r#"INSERT INTO "job_info" ("id", "title", "name", "experienceLevel", "description", "userId", "createdAt", "updatedAt") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING "job_info"."id", "job_info"."userId""#;
const INSERT_QUESTION: &str = r#"INSERT INTO "questions" ("id", "jobInfoId", "text", "difficulty", "createdAt", "updatedAt") SELECT $1, "job_info"."id", $2, $3, $4, $5 FROM "job_info" WHERE (("job_info"."id" = $6) AND ("job_info"."userId" = $7)) RETURNING "questions"."id", "questions"."jobInfoId""#;

/// A PostgreSQL enum value, bound and read as its label. Written out rather than derived:
/// sqlx's derive macros would build a second copy of its drivers for the compiler.
macro_rules! pg_enum {
    ($name:ident, $type_name:literal, { $($variant:ident => $label:literal),+ $(,)? }) => {
        #[allow(dead_code)] // every label the type has, not only those the bench binds
        #[derive(Debug, Clone, Copy)]
        enum $name {
            $($variant),+
        }

        impl sqlx::Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                PgTypeInfo::with_name($type_name)
            }
        }

        impl<'q> sqlx::Encode<'q, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxError> {
                let label = match self {
                    $($name::$variant => $label),+
                };
                <&str as sqlx::Encode<Postgres>>::encode_by_ref(&label, buf)
            }
        }

        impl<'r> sqlx::Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxError> {
                match <&str as sqlx::Decode<Postgres>>::decode(value)? {
                    $($label => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {other}", $type_name).into()),
                }
            }
        }
    };
}

pg_enum!(ExperienceLevel, "job_infos_experience_level", {
    Junior => "junior",
    MidLevel => "mid-level",
    Senior => "senior",
});

pg_enum!(Difficulty, "questions_question_difficulty", {
    Easy => "easy",
    Medium => "medium",
    Hard => "hard",
});

/// A `job_info` row, decoded in full as jobprep decodes it.
type JobInfoRow = (
    Uuid,
    Option<String>,
    String,
    ExperienceLevel,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// An `interviews` row.
type InterviewRow = (
    Uuid,
    Uuid,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// A `users` row.
type UserRow = (
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// The seeded ids (see seed.sql): job info `k` in 0..2000 is
/// `00000000-0000-4000-8000-` followed by `k` in 12 decimal digits, and belongs to user
/// `k / 2`.
fn job_uuid(k: u64) -> Uuid {
    let (mut digits, mut rest, mut shift) = (0u128, k, 0);
    while rest > 0 {
        digits |= u128::from(rest % 10) << shift;
        rest /= 10;
        shift += 4;
    }
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | digits)
}

fn user_id(n: u64) -> String {
    format!("user_bench_{n:06}")
}

/// A small xorshift generator: each task picks rows at random.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Clone)]
enum Side {
    Jobprep(AsyncDb),
    Sqlx(PgPool),
}

/// Calls `op` once. Task `task` of `tasks` upserts only its own users (every `tasks`-th):
/// two upserts of one user at once can fail on the email's unique index, which is no
/// part of what is measured.
async fn call(
    side: &Side,
    op: &str,
    rng: &mut Rng,
    (task, tasks): (u64, u64),
) -> Result<(), BoxError> {
    let k = rng.below(2000);
    let (job, user) = (job_uuid(k), user_id(k / 2));
    match side {
        Side::Jobprep(db) => {
            let user = jobprep_repo::UserId::new(user)?;
            let job = jobprep_repo::JobInfoId::from_uuid(job);
            match op {
                "get_job_info" => {
                    jobprep_job_infos::asynch::get(db, user, job).await?;
                }
                "list_job_infos" => {
                    jobprep_job_infos::asynch::list_for_user(db, user).await?;
                }
                "list_interviews" => {
                    jobprep_interviews::asynch::list_for_job_info(db, user, job).await?;
                }
                "count_interviews_for_user" => {
                    jobprep_interviews::asynch::count_for_user(db, user).await?;
                }
                "upsert_user" => {
                    let n = rng.below(1000 / tasks) * tasks + task;
                    let new = jobprep_users::NewUser::new(
                        jobprep_repo::UserId::new(user_id(n))?,
                        format!("Bench user {n}"),
                        format!("bench{n}@bench.example"),
                    );
                    jobprep_users::asynch::upsert(db, new).await?;
                }
                "insert_job_info" => {
                    let new = jobprep_job_infos::NewJobInfo::new(
                        "Bench job",
                        jobprep_repo::ExperienceLevel::Senior,
                        "A job for the benchmark",
                    )
                    .with_title("Bench title");
                    jobprep_job_infos::asynch::insert(db, user, new).await?;
                }
                "insert_question" => {
                    let new = jobprep_questions::NewQuestion::new(
                        "How do you size a connection pool?",
                        jobprep_repo::QuestionDifficulty::Medium,
                    );
                    jobprep_questions::asynch::insert(db, user, job, new).await?;
                }
                other => return Err(format!("unknown operation {other}").into()),
            }
        }
        Side::Sqlx(pool) => match op {
            "get_job_info" => {
                sqlx::query_as::<_, JobInfoRow>(GET_JOB_INFO)
                    .bind(job)
                    .bind(user)
                    .fetch_one(pool)
                    .await?;
            }
            "list_job_infos" => {
                sqlx::query_as::<_, JobInfoRow>(LIST_JOB_INFOS)
                    .bind(user)
                    .fetch_all(pool)
                    .await?;
            }
            "list_interviews" => {
                sqlx::query_as::<_, InterviewRow>(LIST_INTERVIEWS)
                    .bind(job)
                    .bind(user)
                    .fetch_all(pool)
                    .await?;
            }
            "count_interviews_for_user" => {
                sqlx::query_as::<_, (i64,)>(COUNT_INTERVIEWS)
                    .bind(user)
                    .fetch_one(pool)
                    .await?;
            }
            "upsert_user" => {
                let n = rng.below(1000 / tasks) * tasks + task;
                let now = Utc::now();
                sqlx::query_as::<_, UserRow>(UPSERT_USER)
                    .bind(user_id(n))
                    .bind(format!("Bench user {n}"))
                    .bind(format!("bench{n}@bench.example"))
                    .bind(None::<String>)
                    .bind(now)
                    .bind(now)
                    .bind(false)
                    .fetch_one(pool)
                    .await?;
            }
            "insert_job_info" => {
                let now = Utc::now();
                sqlx::query_as::<_, (Uuid, String)>(INSERT_JOB_INFO)
                    .bind(Uuid::now_v7())
                    .bind(Some("Bench title"))
                    .bind("Bench job")
                    .bind(ExperienceLevel::Senior)
                    .bind("A job for the benchmark")
                    .bind(user)
                    .bind(now)
                    .bind(now)
                    .fetch_one(pool)
                    .await?;
            }
            "insert_question" => {
                let now = Utc::now();
                sqlx::query_as::<_, (Uuid, Uuid)>(INSERT_QUESTION)
                    .bind(Uuid::now_v7())
                    .bind("How do you size a connection pool?")
                    .bind(Difficulty::Medium)
                    .bind(now)
                    .bind(now)
                    .bind(job)
                    .bind(user)
                    .fetch_one(pool)
                    .await?;
            }
            other => return Err(format!("unknown operation {other}").into()),
        },
    }
    Ok(())
}

/// Runs `op` on `tasks` concurrent tasks for `duration`; returns calls per second.
async fn drive(
    side: &Side,
    op: &'static str,
    tasks: usize,
    duration: Duration,
) -> Result<f64, BoxError> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let side = side.clone();
        handles.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((task as u64 + 1) * 0x2545_F491));
            let mut calls = 0u64;
            while Instant::now() < deadline {
                call(&side, op, &mut rng, (task as u64, tasks as u64)).await?;
                calls += 1;
            }
            Ok::<u64, BoxError>(calls)
        }));
    }
    let mut calls = 0;
    for handle in handles {
        calls += handle.await??;
    }
    Ok(calls as f64 / started.elapsed().as_secs_f64())
}

/// The process's CPU time and context switches so far (every thread).
struct Usage {
    cpu_us: f64,
    switches: f64,
}

impl Usage {
    fn now() -> Usage {
        // SAFETY: getrusage only writes the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
        Usage {
            cpu_us: us(usage.ru_utime) + us(usage.ru_stime),
            switches: (usage.ru_nvcsw + usage.ru_nivcsw) as f64,
        }
    }

    fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            cpu_us: self.cpu_us - earlier.cpu_us,
            switches: self.switches - earlier.switches,
        }
    }
}

/// One side's client cost, summed over its rounds.
#[derive(Default)]
struct Cost {
    cpu_us: f64,
    switches: f64,
    calls: f64,
}

impl Cost {
    fn add(&mut self, usage: &Usage, calls: f64) {
        self.cpu_us += usage.cpu_us;
        self.switches += usage.switches;
        self.calls += calls;
    }

    fn cpu_us_per_call(&self) -> f64 {
        self.cpu_us / self.calls.max(1.0)
    }

    fn switches_per_call(&self) -> f64 {
        self.switches / self.calls.max(1.0)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Args {
    url: String,
    seconds: f64,
    rounds: usize,
    tasks: Vec<usize>,
    ops: Vec<String>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        url: String::new(),
        seconds: 3.0,
        rounds: 3,
        tasks: vec![1, 4, 16],
        ops: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => parsed.seconds = value()?.parse()?,
            "--rounds" => parsed.rounds = value()?.parse()?,
            "--ops" => parsed.ops = value()?.split(',').map(str::to_owned).collect(),
            "--tasks" => {
                parsed.tasks = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            url if !url.starts_with("--") && parsed.url.is_empty() => parsed.url = url.to_owned(),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let tasks_ok = parsed.tasks.iter().all(|&t| (1..=1000).contains(&t));
    if parsed.url.is_empty() || parsed.rounds == 0 || parsed.seconds <= 0.0 || !tasks_ok {
        return Err(
            "usage: jobprep-sqlx-compat DATABASE_URL [--seconds S] [--rounds N] [--tasks 1,4,16] [--ops a,b]"
                .into(),
        );
    }
    Ok(parsed)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let per_side = Duration::from_secs_f64(args.seconds);
    println!(
        "jobprep async facade vs sqlx 0.8 (PgPool, test_before_acquire(false)), calls per second, \
         median of {} rounds x {:.1}s per side, {} tokio worker threads",
        args.rounds,
        args.seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let probe = PgPoolOptions::new()
        .max_connections(1)
        .connect(&args.url)
        .await?;
    let (commit,): (String,) = sqlx::query_as("SHOW synchronous_commit")
        .fetch_one(&probe)
        .await?;
    probe.close().await;
    println!("sqlx's sessions: synchronous_commit = {commit}");
    println!(
        "client cost per call, this process (getrusage): CPU in microseconds, context switches"
    );
    println!(
        "{:<28} {:>5} {:>12} {:>12} {:>7} {:>9} {:>9} {:>8} {:>8}",
        "operation",
        "tasks",
        "jobprep/s",
        "sqlx/s",
        "ratio",
        "cpu jp",
        "cpu sqlx",
        "cs jp",
        "cs sqlx"
    );
    // Operation by operation, every task count: the reads all run before the writes
    // grow the tables.
    for &op in OPS {
        if !args.ops.is_empty() && !args.ops.iter().any(|o| o == op) {
            continue;
        }
        for &tasks in &args.tasks {
            let size = u32::try_from(tasks)?;
            let jobprep =
                Side::Jobprep(AsyncDb::new(Db::builder(&args.url).max_size(size).build()?));
            let sqlx = Side::Sqlx(
                PgPoolOptions::new()
                    .max_connections(size)
                    .test_before_acquire(false)
                    .connect(&args.url)
                    .await?,
            );
            // Warm both pools (connections open, statements prepared) before timing.
            for side in [&jobprep, &sqlx] {
                drive(side, op, tasks, Duration::from_millis(200)).await?;
            }
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            let (mut our_cost, mut their_cost) = (Cost::default(), Cost::default());
            for round in 0..args.rounds {
                // Alternate which side goes first, so drift hits both alike.
                let order = if round % 2 == 0 {
                    [&jobprep, &sqlx]
                } else {
                    [&sqlx, &jobprep]
                };
                for side in order {
                    let before = Usage::now();
                    let started = Instant::now();
                    let rate = drive(side, op, tasks, per_side).await?;
                    let calls = rate * started.elapsed().as_secs_f64();
                    let cost = Usage::now().since(&before);
                    let (rates, costs) = match side {
                        Side::Jobprep(_) => (&mut ours, &mut our_cost),
                        Side::Sqlx(_) => (&mut theirs, &mut their_cost),
                    };
                    rates.push(rate);
                    costs.add(&cost, calls);
                }
            }
            let (ours, theirs) = (median(ours), median(theirs));
            println!(
                "{op:<28} {tasks:>5} {ours:>12.0} {theirs:>12.0} {:>7.2} {:>9.1} {:>9.1} {:>8.2} {:>8.2}",
                ours / theirs,
                our_cost.cpu_us_per_call(),
                their_cost.cpu_us_per_call(),
                our_cost.switches_per_call(),
                their_cost.switches_per_call(),
            );
            if let Side::Sqlx(pool) = sqlx {
                pool.close().await;
            }
        }
    }
    Ok(())
}
