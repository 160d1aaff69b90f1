//! Migrations reverted and re-applied next to live traffic, on both backends. Loops
//! have a fixed bound.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jobprep_interviews::{InterviewChanges, NewInterview};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::{Db, Error, Result};
use jobprep_testing::{backend_tests, job_form as new_job, join_within, user, TestDb};

/// Reads and writes in a loop on its own handle until told to stop (or a bound is
/// reached); returns how many operations succeeded and the errors met.
fn traffic(url: String, stop: Arc<AtomicBool>, done: Arc<AtomicUsize>) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        const MAX_OPERATIONS: usize = 20_000;
        let deadline = Instant::now() + Duration::from_secs(90);
        let db = Db::builder(&url).max_size(2).build().unwrap();
        let owner = user(&db, "user_traffic");
        let mut errors = Vec::new();
        for n in 0..MAX_OPERATIONS {
            if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                break;
            }
            let result = (|| -> Result<()> {
                let job =
                    jobprep_job_infos::insert(&db, &owner, &new_job(&format!("Traffic {n}")))?;
                jobprep_questions::insert_many(
                    &db,
                    &owner,
                    job.id,
                    &[
                        NewQuestion::new("q1", QuestionDifficulty::Easy),
                        NewQuestion::new("q2", QuestionDifficulty::Hard),
                    ],
                )?;
                let interview =
                    jobprep_interviews::insert(&db, &owner, job.id, &NewInterview::new())?;
                jobprep_interviews::update(
                    &db,
                    &owner,
                    interview.id,
                    &InterviewChanges {
                        hume_chat_id: Some(Some(format!("chat {n}"))),
                        ..Default::default()
                    },
                )?;
                let listed = jobprep_questions::list_for_job_info(&db, &owner, job.id)?.value;
                if listed.len() != 2 {
                    return Err(Error::Config(format!("listed {} questions", listed.len())));
                }
                jobprep_job_infos::list_for_user(&db, &owner)?;
                jobprep_interviews::list_for_job_info(&db, &owner, job.id)?;
                if n % 3 == 0 {
                    jobprep_job_infos::delete(&db, &owner, job.id)?;
                }
                Ok(())
            })();
            match result {
                Ok(()) => {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => errors.push(format!("operation {n}: {error}")),
            }
        }
        errors
    })
}

fn wait_for(count: &AtomicUsize, at_least: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while count.load(Ordering::Relaxed) < at_least {
        assert!(
            Instant::now() < deadline,
            "traffic stalled at {} operations",
            count.load(Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

backend_tests! {
    fn migrations_revert_and_reapply_next_to_live_traffic(t) {
        let fresh = TestDb::new(t.backend()).unwrap().db.describe_schema().unwrap();
        assert_eq!(t.db.describe_schema().unwrap(), fresh);
        let additive: Vec<String> = t.db.migration_status().unwrap()
            .into_iter()
            .skip(1) // the baseline: reverting it drops the tables under the traffic
            .map(|m| { assert!(m.applied, "{m:?}"); m.name })
            .collect();
        assert!(!additive.is_empty());

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let readers_and_writers = [
            traffic(t.url.clone(), stop.clone(), done.clone()),
            traffic(t.url.clone(), stop.clone(), done.clone()),
        ];
        wait_for(&done, 10, Duration::from_secs(30));

        for round in 0..2 {
            let before = done.load(Ordering::Relaxed);
            let mut reverted = Vec::new();
            for _ in 0..additive.len() {
                reverted.push(t.db.revert_last_migration().unwrap().expect("a migration to revert"));
            }
            reverted.reverse();
            assert_eq!(reverted, additive, "round {round}");
            let status = t.db.migration_status().unwrap();
            assert_eq!(status.iter().filter(|m| m.applied).count(), 1, "round {round}: {status:?}");
            assert_ne!(t.db.describe_schema().unwrap(), fresh, "round {round}: the indexes are gone");
            let report = t.db.migrate().unwrap();
            assert_eq!(report.applied, additive, "round {round}");
            assert!(!report.adopted);
            // The traffic kept going through the round.
            wait_for(&done, before + 10, Duration::from_secs(30));
        }
        stop.store(true, Ordering::Relaxed);
        let errors: Vec<String> = readers_and_writers
            .into_iter()
            .flat_map(|h| join_within(h, Duration::from_secs(120), "traffic"))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(t.db.describe_schema().unwrap(), fresh, "the schema ends as freshly migrated");
        assert!(t.db.migration_status().unwrap().iter().all(|m| m.applied));
        assert!(t.db.migrate().unwrap().applied.is_empty());
    }
}
