//! The whole product flow from a downstream crate, as shown in README.md.
#![allow(clippy::print_stdout)]

use jobprep_interviews::{InterviewChanges, NewInterview};
use jobprep_job_infos::{ExperienceLevel, NewJobInfo};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::Db;
use jobprep_users::{NewUser, UserId};

fn main() -> jobprep_repo::Result<()> {
    let db = Db::global()?; // DATABASE_URL, or the embedded SQLite file; built once per process
    db.migrate()?;

    let me = UserId::new("user_quickstart")?;
    jobprep_users::upsert(
        &db,
        &NewUser::new(me.clone(), "Ada", "ada@quickstart.example"),
    )?;
    let role = NewJobInfo::new(
        "Backend engineer",
        ExperienceLevel::Senior,
        "Rust and PostgreSQL",
    );
    let job = jobprep_job_infos::insert(&db, &me, &role)?;

    let interview = jobprep_interviews::insert(&db, &me, job.id, &NewInterview::new())?;
    let finished = InterviewChanges {
        hume_chat_id: Some(Some("chat_1".into())),
        duration: Some("00:21:09".into()),
        ..Default::default()
    };
    jobprep_interviews::update(&db, &me, interview.id, &finished)?;

    let asked = ["Explain MVCC.", "Design a rate limiter."]
        .map(|q| NewQuestion::new(q, QuestionDifficulty::Hard));
    jobprep_questions::insert_many(&db, &me, job.id, &asked)?;

    for job in jobprep_job_infos::list_for_user(&db, &me)?.value {
        let questions = jobprep_questions::list_for_job_info(&db, &me, job.id)?;
        println!(
            "{}: {} questions, cache tags {:?}",
            job.name,
            questions.value.len(),
            questions.tags
        );
    }
    println!(
        "interviews used: {}",
        jobprep_interviews::count_for_user(&db, &me)?.value
    );

    jobprep_job_infos::delete(&db, &me, job.id)?; // its interviews and questions go with it
    Ok(())
}
