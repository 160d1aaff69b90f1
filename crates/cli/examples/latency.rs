//! One client's latency per use case through jobprep, for `scripts/latency-bench.sh`:
//! `cargo run --release -p jobprep-cli --example latency -- URL CALLS` on a database the
//! script seeded (users `lat_user` and `lat_doomed_jobprep`). Prints one JSON line per
//! use case: `{"stack":"jobprep","case":...,"p50_ms":...,"p99_ms":...}`. Every use case
//! is warmed first (three calls), so the times are those of an open connection with its
//! statements prepared.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

use jobprep_job_infos::{ExperienceLevel, JobInfoId, NewJobInfo};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::{Db, Result};
use jobprep_users::UserId;

const WARM_UP: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(calls)) = (args.first(), args.get(1).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: latency URL CALLS");
        std::process::exit(2);
    };
    if let Err(error) = run(url, calls) {
        eprintln!("latency: {error}");
        std::process::exit(1);
    }
}

fn run(url: &str, calls: usize) -> Result<()> {
    let db = Db::builder(url).max_size(1).build()?;
    let user = UserId::new("lat_user")?;
    let doomed_owner = UserId::new("lat_doomed_jobprep")?;
    let job = jobprep_job_infos::list_for_user(&db, &user)?
        .value
        .first()
        .map(|j| j.id)
        .ok_or_else(|| jobprep_repo::Error::Config("lat_user has no job info".into()))?;
    let role = NewJobInfo::new(
        "Latency",
        ExperienceLevel::MidLevel,
        "A job for the benchmark",
    );
    let question = NewQuestion::new("How do you size a pool?", QuestionDifficulty::Medium);

    report("get_job_info", calls, || {
        jobprep_job_infos::get(&db, &user, job).map(drop)
    })?;
    report("insert_job_info", calls, || {
        jobprep_job_infos::insert(&db, &user, &role).map(drop)
    })?;
    report("insert_question_within_quota", calls, || {
        jobprep_questions::insert_within_quota(&db, &user, job, &question, 1_000_000_000).map(drop)
    })?;
    let mut doomed: Vec<JobInfoId> = jobprep_job_infos::list_for_user(&db, &doomed_owner)?
        .value
        .into_iter()
        .map(|j| j.id)
        .collect();
    report("delete_job_info", calls, || match doomed.pop() {
        Some(id) => jobprep_job_infos::delete(&db, &doomed_owner, id).map(drop),
        None => Err(jobprep_repo::Error::Config(
            "too few doomed job infos".into(),
        )),
    })?;
    Ok(())
}

/// Warms `call` up, times `calls` more, prints the line.
fn report(case: &str, calls: usize, mut call: impl FnMut() -> Result<()>) -> Result<()> {
    for _ in 0..WARM_UP {
        call()?;
    }
    let mut times: Vec<f64> = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        call()?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "{}",
        serde_json::json!({"stack": "jobprep", "case": case, "calls": calls,
                           "p50_ms": at(0.50), "p99_ms": at(0.99)})
    );
    Ok(())
}
