//! `jobprep demo`: the product's whole flow against a real database, step by step,
//! with the cache tags each write reported.

use std::sync::Arc;

use jobprep_interviews::{InterviewChanges, NewInterview};
use jobprep_job_infos::{ExperienceLevel, JobInfoChanges, NewJobInfo};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::{Db, DbConfig, Error, RecordingSink};
use jobprep_users::{NewUser, UserId};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::CliError;

#[derive(Debug, Serialize)]
struct Step {
    step: &'static str,
    result: Value,
    /// Tags the step's writes reported after commit, or the tags a read depends on.
    tags: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    backend: String,
    database: String,
    migrations_applied: Vec<String>,
    steps: Vec<Step>,
}

struct Recorder {
    sink: RecordingSink,
    steps: Vec<Step>,
}

impl Recorder {
    /// Records a write step: its result and the tags the sink received.
    fn write(&mut self, step: &'static str, result: impl Serialize) -> Result<(), CliError> {
        let tags = self.sink.take_sorted();
        self.steps.push(Step {
            step,
            result: to_json(result)?,
            tags,
        });
        Ok(())
    }

    /// Records a read step: its result and the tags it depends on.
    fn read<T: Serialize>(
        &mut self,
        step: &'static str,
        read: jobprep_repo::Cached<T>,
    ) -> Result<(), CliError> {
        let tags = read.tags.iter().map(ToString::to_string).collect();
        self.steps.push(Step {
            step,
            result: to_json(read.value)?,
            tags,
        });
        Ok(())
    }
}

fn to_json(value: impl Serialize) -> Result<Value, CliError> {
    serde_json::to_value(value).map_err(CliError::json("a demo step"))
}

pub fn run(config: DbConfig, json: bool) -> Result<(), CliError> {
    let sink = RecordingSink::new();
    let database = config.url.to_string();
    let db = Db::from_config(config, Arc::new(sink.clone()))?;
    let migrations = if db.config().pooler_safe {
        // Through a transaction pooler migrations cannot run; they must already have
        // been applied over the direct URL.
        if db.migration_status()?.iter().any(|m| !m.applied) {
            return Err(CliError::Refused(
                "the database has pending migrations, and they cannot run through a \
                 transaction pooler: run `jobprep migrate` with the direct URL first"
                    .into(),
            ));
        }
        Vec::new()
    } else {
        db.migrate()?.applied
    };
    let mut r = Recorder {
        sink,
        steps: Vec::new(),
    };

    // A user signs up through the auth provider's webhook.
    let alice = UserId::new("user_demo_alice")?;
    let user = jobprep_users::upsert(
        &db,
        &NewUser::new(alice.clone(), "Alice Demo", "alice@demo.jobprep.dev")
            .with_image_url("https://img.example.com/alice.png"),
    )?;
    r.write("user signs up (upsert)", &user)?;

    // She describes the job she is preparing for.
    let job = NewJobInfo::new(
        "Backend engineer",
        ExperienceLevel::MidLevel,
        "Rust services on PostgreSQL; on-call for the data layer.",
    )
    .with_title("Senior Rust Engineer");
    let job_key = jobprep_job_infos::insert(&db, &alice, &job)?;
    r.write("create job info", &job_key)?;
    let renamed = JobInfoChanges {
        name: Some("Backend engineer (payments)".into()),
        ..Default::default()
    };
    r.write(
        "update job info",
        jobprep_job_infos::update(&db, &alice, job_key.id, &renamed)?,
    )?;

    // A voice interview starts, gets its chat id, ends with a duration and feedback.
    let interview = jobprep_interviews::insert(&db, &alice, job_key.id, &NewInterview::new())?;
    r.write("start interview", &interview)?;
    let finished = InterviewChanges {
        hume_chat_id: Some(Some("hume_chat_demo_001".into())),
        duration: Some("00:18:42".into()),
        feedback: Some(Some(
            "Clear structure; go deeper on indexing trade-offs.".into(),
        )),
    };
    r.write(
        "record chat id, duration, feedback",
        jobprep_interviews::update(&db, &alice, interview.id, &finished)?,
    )?;

    // Practice questions: a generated batch in one statement, then one more.
    let batch = [
        (
            "How would you shard a multi-tenant PostgreSQL database?",
            QuestionDifficulty::Hard,
        ),
        (
            "When is a partial index the right tool?",
            QuestionDifficulty::Medium,
        ),
        ("What does ON DELETE CASCADE do?", QuestionDifficulty::Easy),
    ]
    .map(|(text, difficulty)| NewQuestion::new(text, difficulty));
    r.write(
        "add generated questions (one statement)",
        jobprep_questions::insert_many(&db, &alice, job_key.id, &batch)?,
    )?;
    let one_more = NewQuestion::new(
        "Explain read-your-writes consistency.",
        QuestionDifficulty::Medium,
    );
    r.write(
        "add one question",
        jobprep_questions::insert(&db, &alice, job_key.id, &one_more)?,
    )?;

    // Everything she sees, with the tags each read can be cached under.
    r.read(
        "list job infos",
        jobprep_job_infos::list_for_user(&db, &alice)?,
    )?;
    r.read(
        "get interview with its job info",
        jobprep_interviews::get(&db, &alice, interview.id)?,
    )?;
    r.read(
        "list interviews",
        jobprep_interviews::list_for_job_info(&db, &alice, job_key.id)?,
    )?;
    r.read(
        "list questions",
        jobprep_questions::list_for_job_info(&db, &alice, job_key.id)?,
    )?;
    r.read(
        "interview quota used",
        jobprep_interviews::count_for_user(&db, &alice)?,
    )?;
    r.read(
        "question quota used",
        jobprep_questions::count_for_user(&db, &alice)?,
    )?;

    // A second user sees none of it, even with Alice's ids in hand.
    let bob = UserId::new("user_demo_bob")?;
    r.write(
        "second user signs up",
        jobprep_users::upsert(
            &db,
            &NewUser::new(bob.clone(), "Bob Demo", "bob@demo.jobprep.dev"),
        )?,
    )?;
    let bob_view = json!({
        "jobInfos": jobprep_job_infos::list_for_user(&db, &bob)?.value,
        "aliceJobInfo": outcome(jobprep_job_infos::get(&db, &bob, job_key.id))?,
        "aliceInterview": outcome(jobprep_interviews::get(&db, &bob, interview.id))?,
        "aliceQuestions": jobprep_questions::list_for_job_info(&db, &bob, job_key.id)?.value,
        "deleteAliceJobInfo": outcome(jobprep_job_infos::delete(&db, &bob, job_key.id))?,
    });
    r.write("second user tries Alice's ids", bob_view)?;

    // Deleting the job info takes its interview and questions along (cascade), and
    // reports every removed row's tags.
    r.write(
        "delete job info (cascade)",
        jobprep_job_infos::delete(&db, &alice, job_key.id)?,
    )?;
    let after = json!({
        "jobInfos": jobprep_job_infos::list_for_user(&db, &alice)?.value.len(),
        "questions": jobprep_questions::count_for_user(&db, &alice)?.value,
        "interviews": jobprep_interviews::count_for_user(&db, &alice)?.value,
    });
    r.write("what is left for Alice", after)?;

    let report = Report {
        backend: db.backend().to_string(),
        database,
        migrations_applied: migrations,
        steps: r.steps,
    };
    if json {
        let text = serde_json::to_string(&report).map_err(CliError::json("the demo report"))?;
        println!("{text}");
    } else {
        print_readable(&report);
    }
    Ok(())
}

/// A cross-tenant attempt's outcome, for the report: what the caller got back.
fn outcome<T: Serialize>(result: Result<T, Error>) -> Result<Value, CliError> {
    match result {
        Ok(value) => Ok(json!({ "found": to_json(value)? })),
        Err(Error::NotFound { entity }) => Ok(json!({ "error": format!("{entity} not found") })),
        Err(other) => Err(other.into()),
    }
}

fn print_readable(report: &Report) {
    println!("jobprep demo on {} ({})", report.backend, report.database);
    if report.migrations_applied.is_empty() {
        println!("migrations: up to date");
    } else {
        println!(
            "migrations applied: {}",
            report.migrations_applied.join(", ")
        );
    }
    for (n, step) in report.steps.iter().enumerate() {
        println!("\n{:>2}. {}", n + 1, step.step);
        let body = serde_json::to_string_pretty(&step.result).unwrap_or_default();
        for line in body.lines() {
            println!("      {line}");
        }
        if !step.tags.is_empty() {
            println!("    cache tags: {}", step.tags.join(", "));
        }
    }
}
