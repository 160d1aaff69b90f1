//! Concurrent writers, on both backends: some serial order, no torn rows, no lost
//! rows. Threads are joined with a deadline.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use jobprep_interviews::{InterviewChanges, NewInterview};
use jobprep_questions::{NewQuestion, QuestionDifficulty, QuestionId};
use jobprep_repo::{Backend, Error};
use jobprep_testing::{backend_tests, job_form as new_job, join_within, user};

/// Parses the `(thread, round)` a writer encoded in a field.
fn writer_of(text: &str, prefix: &str) -> (usize, usize) {
    let rest = text
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{text:?} lacks {prefix:?}"));
    let (thread, round) = rest.split_once('/').unwrap();
    (thread.parse().unwrap(), round.parse().unwrap())
}

/// Runs `work(thread)` on `threads` threads that start together; their results in
/// thread order, each joined with a deadline (`what` names them in a failure).
fn at_once<T: Send + 'static>(
    threads: usize,
    what: &str,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(threads));
    let work = Arc::new(work);
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let (barrier, work) = (barrier.clone(), work.clone());
            std::thread::spawn(move || {
                barrier.wait();
                work(thread)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|handle| join_within(handle, Duration::from_secs(60), what))
        .collect()
}

backend_tests! {
    fn concurrent_updates_of_one_interview_end_in_one_writers_state(t) {
        const THREADS: usize = 6;
        const ROUNDS: usize = 12;
        let owner = user(&t.db, "user_interviewer");
        let job = jobprep_job_infos::insert(&t.db, &owner, &new_job("Contended")).unwrap();
        let interview = jobprep_interviews::insert(&t.db, &owner, job.id, &NewInterview::new()).unwrap();
        let (db, writer) = (t.db.clone(), owner.clone());
        let errors: Vec<String> = at_once(THREADS, "interview writer", move |thread| {
            let owner = writer.clone();
            let mut errors = Vec::new();
            for round in 0..ROUNDS {
                let duration = format!("{thread:02}:{round:02}:00");
                let chat = format!("chat {thread}/{round}");
                let feedback = format!("feedback {thread}/{round}");
                // Odd threads split their write in two statements in one
                // transaction: a torn row would show if isolation failed.
                let result = if thread % 2 == 0 {
                    jobprep_interviews::update(&db, &owner, interview.id, &InterviewChanges {
                        duration: Some(duration),
                        hume_chat_id: Some(Some(chat)),
                        feedback: Some(Some(feedback)),
                    })
                } else {
                    db.transaction(|tx| {
                        jobprep_interviews::update(tx, &owner, interview.id, &InterviewChanges {
                            duration: Some(duration),
                            ..Default::default()
                        })?;
                        jobprep_interviews::update(tx, &owner, interview.id, &InterviewChanges {
                            hume_chat_id: Some(Some(chat)),
                            feedback: Some(Some(feedback)),
                            ..Default::default()
                        })
                    })
                };
                if let Err(error) = result {
                    errors.push(format!("thread {thread} round {round}: {error:?}"));
                }
            }
            errors
        })
        .into_iter()
        .flatten()
        .collect();
        assert!(errors.is_empty(), "{errors:#?}");

        let row = jobprep_interviews::get(&t.db, &owner, interview.id).unwrap().value.interview;
        let from_chat = writer_of(row.hume_chat_id.as_deref().unwrap(), "chat ");
        let from_feedback = writer_of(row.feedback.as_deref().unwrap(), "feedback ");
        let (hours, minutes) = row.duration.split_once(':').unwrap();
        let from_duration = (hours.parse().unwrap(), minutes[..2].parse().unwrap());
        assert_eq!(from_chat, from_feedback, "torn row: {row:?}");
        assert_eq!(from_chat, from_duration, "torn row: {row:?}");
        // In a serial order, the last write is the last one of some thread.
        assert_eq!(from_chat.1, ROUNDS - 1, "a later write was lost: {row:?}");
        assert!(row.updated_at >= row.created_at);
    }

    fn concurrent_bulk_inserts_into_one_job_info_keep_every_acknowledged_row(t) {
        const THREADS: usize = 4;
        const ROUNDS: usize = 6;
        let owner = user(&t.db, "user_bulk");
        let job = jobprep_job_infos::insert(&t.db, &owner, &new_job("Bulk")).unwrap();
        let other_job = jobprep_job_infos::insert(&t.db, &owner, &new_job("Bystander")).unwrap();
        let (db, writer) = (t.db.clone(), owner.clone());
        let results = at_once(THREADS, "bulk inserter", move |thread| {
            let owner = writer.clone();
            let mut acknowledged = BTreeMap::new();
            let mut errors = Vec::new();
            for round in 0..ROUNDS {
                let n = 1 + (thread * 7 + round * 13) % 40;
                let batch: Vec<NewQuestion> = (0..n)
                    .map(|i| NewQuestion::new(format!("t{thread} r{round} q{i}"), QuestionDifficulty::Medium))
                    .collect();
                // Every other round reads, then writes, in one transaction: on
                // SQLite this is where BEGIN IMMEDIATE matters.
                let result = if round % 2 == 0 {
                    jobprep_questions::insert_many(&db, &owner, job.id, &batch)
                } else {
                    db.transaction(|tx| {
                        let before = jobprep_questions::list_for_job_info(tx, &owner, job.id)?.value.len();
                        let keys = jobprep_questions::insert_many(tx, &owner, job.id, &batch)?;
                        let after = jobprep_questions::list_for_job_info(tx, &owner, job.id)?.value.len();
                        // SQLite's writers are serialized (BEGIN IMMEDIATE): nobody
                        // else adds rows meanwhile. PostgreSQL's READ COMMITTED
                        // shows each statement the rows committed so far: never
                        // fewer.
                        let consistent = match db.backend() {
                            Backend::Sqlite => after == before + keys.len(),
                            Backend::Postgres => after >= before + keys.len(),
                        };
                        if !consistent {
                            return Err(Error::Config(format!("saw {before} then {after} rows after adding {}", keys.len())));
                        }
                        Ok(keys)
                    })
                };
                match result {
                    Ok(keys) => {
                        assert_eq!(keys.len(), n);
                        for (key, question) in keys.into_iter().zip(batch) {
                            acknowledged.insert(key.id, question.text);
                        }
                    }
                    Err(error) => errors.push(format!("thread {thread} round {round}: {error:?}")),
                }
            }
            (acknowledged, errors)
        });
        let mut acknowledged = BTreeMap::new();
        let mut errors = Vec::new();
        for (acked, errs) in results {
            acknowledged.extend(acked);
            errors.extend(errs);
        }
        assert!(errors.is_empty(), "{errors:#?}");
        let expected: usize = (0..THREADS)
            .flat_map(|thread| (0..ROUNDS).map(move |round| 1 + (thread * 7 + round * 13) % 40))
            .sum();
        assert_eq!(acknowledged.len(), expected, "ids are unique");

        let stored: BTreeMap<QuestionId, String> =
            jobprep_questions::list_for_job_info(&t.db, &owner, job.id)
                .unwrap()
                .value
                .into_iter()
                .map(|q| (q.id, q.text))
                .collect();
        assert_eq!(stored, acknowledged, "exactly the acknowledged rows, each with its text");
        assert_eq!(
            jobprep_questions::count_for_user(&t.db, &owner).unwrap().value,
            i64::try_from(expected).unwrap()
        );
        assert!(jobprep_questions::list_for_job_info(&t.db, &owner, other_job.id).unwrap().value.is_empty());
    }
}
