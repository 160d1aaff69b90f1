//! A child written under a job info that another transaction deletes at the same
//! moment: the writer sees the documented `NotFound` for the job info on both
//! backends, never a foreign-key `Conflict`, and a caller's transaction stays usable.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use jobprep_interviews::NewInterview;
use jobprep_job_infos::{ExperienceLevel, JobInfoId, NewJobInfo};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::{Db, Entity, Error, Executor, Result, UserId};
use jobprep_testing::backend_tests;
use jobprep_testing::user;

/// Rounds per race, and a bound on the time they may take together.
const ROUNDS: usize = 150;
const TIME_BOUND: Duration = Duration::from_secs(20);

/// Races `write` (under a fresh job info) against the job info's delete, round after
/// round; returns how many writes found the job info gone.
fn race(db: &Db, owner: &UserId, write: fn(&Db, &UserId, JobInfoId) -> Result<()>) -> usize {
    let started = Instant::now();
    let mut not_found = 0;
    for round in 0..ROUNDS {
        if started.elapsed() > TIME_BOUND {
            break;
        }
        let job = jobprep_job_infos::insert(
            db,
            owner,
            &NewJobInfo::new(format!("Race {round}"), ExperienceLevel::Junior, "d"),
        )
        .unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let deleter = {
            let (db, owner, barrier) = (db.clone(), owner.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                jobprep_job_infos::delete(&db, &owner, job.id)
            })
        };
        barrier.wait();
        match write(db, owner, job.id) {
            Ok(()) => {}
            Err(Error::NotFound {
                entity: Entity::JobInfo,
            }) => not_found += 1,
            Err(other) => panic!("round {round}: expected Ok or NotFound(job info), got {other:?}"),
        }
        deleter.join().unwrap().unwrap();
    }
    not_found
}

fn insert_question(db: &Db, owner: &UserId, job: JobInfoId) -> Result<()> {
    let question = NewQuestion::new("Why?", QuestionDifficulty::Easy);
    jobprep_questions::insert(db, owner, job, &question).map(drop)
}

fn insert_questions(db: &Db, owner: &UserId, job: JobInfoId) -> Result<()> {
    let questions = vec![NewQuestion::new("Why?", QuestionDifficulty::Easy); 3];
    jobprep_questions::insert_many(db, owner, job, &questions).map(drop)
}

fn create_interview(db: &Db, owner: &UserId, job: JobInfoId) -> Result<()> {
    jobprep_interviews::insert(db, owner, job, &NewInterview::new()).map(drop)
}

backend_tests! {
    fn a_question_racing_its_job_infos_delete_is_written_or_not_found(t) {
        let owner = user(&t.db, "user_racer");
        race(&t.db, &owner, insert_question);
    }

    fn questions_in_bulk_racing_their_job_infos_delete_are_written_or_not_found(t) {
        let owner = user(&t.db, "user_racer");
        race(&t.db, &owner, insert_questions);
    }

    fn an_interview_racing_its_job_infos_delete_is_written_or_not_found(t) {
        let owner = user(&t.db, "user_racer");
        race(&t.db, &owner, create_interview);
    }

    fn a_missing_job_info_inside_a_transaction_leaves_it_usable(t) {
        let owner = user(&t.db, "user_tx");
        let job = jobprep_job_infos::insert(
            &t.db,
            &owner,
            &NewJobInfo::new("Kept", ExperienceLevel::Senior, "d"),
        )
        .unwrap();
        let gone = JobInfoId::generate();
        let written = t.db.transaction(|tx| {
            let missing = jobprep_interviews::insert(tx, &owner, gone, &NewInterview::new());
            assert!(matches!(missing, Err(Error::NotFound { entity: Entity::JobInfo })), "{missing:?}");
            jobprep_questions::insert(tx, &owner, job.id, &NewQuestion::new("Still here?", QuestionDifficulty::Hard))
        });
        written.unwrap();
        let listed = t.db.read(|c| jobprep_repo::questions::list_for_job_info(c, &owner, job.id)).unwrap();
        assert_eq!(listed.len(), 1);
    }
}

/// The race inside a caller's transaction, made certain: another session deletes the
/// job info and holds its transaction open; our insert's select still sees the job
/// info, and its foreign-key check waits for that session, which then commits. The
/// check fails, and PostgreSQL aborts our transaction: the call says so with a
/// retryable `Unavailable`, and the transaction run again finds the job info gone.
#[test]
fn postgres_a_parent_deleted_under_an_insert_in_a_transaction_is_a_retryable_abort() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection as _;

    let Some(t) = jobprep_testing::TestDb::new(jobprep_repo::Backend::Postgres) else {
        return;
    };
    let owner = user(&t.db, "user_tx_race");
    let job = jobprep_job_infos::insert(
        &t.db,
        &owner,
        &NewJobInfo::new("Doomed", ExperienceLevel::Senior, "d"),
    )
    .unwrap();
    let mut deleter = diesel::PgConnection::establish(&t.url).unwrap();
    deleter
        .batch_execute(&format!(
            "BEGIN; DELETE FROM job_info WHERE id = '{}'",
            job.id
        ))
        .unwrap();
    let commit = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        deleter.batch_execute("COMMIT").unwrap();
    });
    let attempt = || {
        t.db.transaction(|tx| {
            let question = NewQuestion::new("Why?", QuestionDifficulty::Easy);
            jobprep_questions::insert(tx, &owner, job.id, &question)
        })
    };
    let raced = attempt();
    commit.join().unwrap();
    let error = raced.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(error.to_string().contains("retry"), "{error}");
    let again = attempt();
    assert!(
        matches!(
            again,
            Err(Error::NotFound {
                entity: Entity::JobInfo
            })
        ),
        "{again:?}"
    );
}
