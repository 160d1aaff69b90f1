//! Writes whose answer is lost: the connection breaks after the write reached the
//! server and before its answer came back (a proxy drops the answer and closes the
//! connection). Such a write may have committed; jobprep says so
//! (`Error::OutcomeUnknown`), and settles the writes that have one effect when run
//! twice by running them again on a fresh connection: an insert keeps its id, so it
//! inserts once.
#![allow(clippy::unwrap_used)]

#[path = "support/round_trips.rs"]
mod round_trips;

use jobprep_job_infos::JobInfoChanges;
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::{job_infos, Backend, Db, Error, Executor, JobInfoId, UserId};
use jobprep_testing::{backend_tests, job_form, job_info, user, TestDb};
use jobprep_users::NewUser;
use round_trips::{through_proxy, RoundTripProxy};

backend_tests! {
    fn an_insert_with_a_chosen_id_run_twice_inserts_once(t) {
        let me = user(&t.db, "user_twice");
        let id = JobInfoId::generate();
        let run = || t.db.write(|c, _| job_infos::insert_with_id(c, id, &me, &job_form("Twice")));
        let first = run().unwrap();
        let second = run().unwrap();
        assert_eq!((first.id, second.id), (id, id));
        let jobs = jobprep_job_infos::list_for_user(&t.db, &me).unwrap().value;
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        // Inside a transaction too, which stays usable.
        let again = t.db.transaction(|tx| {
            let key = tx.write(|c, _| job_infos::insert_with_id(c, id, &me, &job_form("Twice")))?;
            jobprep_job_infos::insert(tx, &me, &job_form("Another"))?;
            Ok(key)
        });
        assert_eq!(again.unwrap().id, id);
        assert_eq!(jobprep_job_infos::list_for_user(&t.db, &me).unwrap().value.len(), 2);
        // Another user's row under that id stays a conflict, not a success.
        let other = user(&t.db, "user_twice_other");
        let theirs = t.db.write(|c, _| job_infos::insert_with_id(c, id, &other, &job_form("Theirs")));
        assert!(matches!(theirs, Err(Error::Conflict { .. })), "{theirs:?}");
    }
}

/// On PostgreSQL: a test database, a user `name` in it, and a one-connection `Db`
/// through a proxy that can drop an answer.
fn through_a_cutting_proxy(name: &str) -> Option<(TestDb, UserId, RoundTripProxy, Db)> {
    let t = TestDb::new(Backend::Postgres)?;
    let me = user(&t.db, name);
    let (proxy, db) = through_proxy(&t);
    Some((t, me, proxy, db))
}

#[test]
fn postgres_an_insert_whose_answer_is_lost_is_settled_and_inserted_once() {
    let Some((t, me, proxy, db)) = through_a_cutting_proxy("user_lost_insert") else {
        return;
    };
    // A first insert prepares the statement, so the cut request is the execution
    // itself (its parameters carry the name), which commits before the server answers.
    jobprep_job_infos::insert(&db, &me, &job_form("Warm-up")).unwrap();
    proxy.cut_answer_to(b"lost-insert-answer");
    let key = jobprep_job_infos::insert(&db, &me, &job_form("lost-insert-answer")).unwrap();
    assert_eq!(proxy.cuts(), 1);
    let jobs = jobprep_job_infos::list_for_user(&t.db, &me).unwrap().value;
    let lost: Vec<_> = jobs
        .iter()
        .filter(|j| j.name == "lost-insert-answer")
        .collect();
    assert_eq!(lost.len(), 1, "inserted once: {jobs:?}");
    assert_eq!(lost[0].id, key.id);

    // Interviews and questions, likewise.
    let parent = job_info(&t.db, &me, "Parent");
    let form = |text: &str| NewQuestion::new(text, QuestionDifficulty::Easy);
    jobprep_questions::insert(&db, &me, parent, &form("warm-up question")).unwrap();
    proxy.cut_answer_to(b"lost-question-answer");
    let question = jobprep_questions::insert(&db, &me, parent, &form("lost-question-answer"));
    assert_eq!(proxy.cuts(), 2);
    let questions = jobprep_questions::list_for_job_info(&t.db, &me, parent)
        .unwrap()
        .value;
    assert_eq!(questions.len(), 2, "{questions:?}");
    assert!(questions
        .iter()
        .any(|q| q.id == question.as_ref().unwrap().id));
}

#[test]
fn postgres_an_upsert_and_an_update_whose_answer_is_lost_are_settled() {
    let Some((t, me, proxy, db)) = through_a_cutting_proxy("user_lost_update") else {
        return;
    };
    let job = job_info(&t.db, &me, "Before");
    let renamed = NewUser::new(
        me.clone(),
        "lost-upsert-answer",
        "user_lost_update@example.com",
    );
    jobprep_users::upsert(&db, &renamed).unwrap();
    proxy.cut_answer_to(b"lost-upsert-answer");
    let user = jobprep_users::upsert(&db, &renamed).unwrap();
    assert_eq!(proxy.cuts(), 1);
    assert_eq!(user.name, "lost-upsert-answer");

    let change = |name: &str| JobInfoChanges {
        name: Some(name.into()),
        ..JobInfoChanges::default()
    };
    jobprep_job_infos::update(&db, &me, job, &change("warm-up")).unwrap();
    proxy.cut_answer_to(b"lost-update-answer");
    jobprep_job_infos::update(&db, &me, job, &change("lost-update-answer")).unwrap();
    assert_eq!(proxy.cuts(), 2);
    let stored = jobprep_job_infos::get(&t.db, &me, job).unwrap().value;
    assert_eq!(stored.name, "lost-update-answer");
}

#[test]
fn postgres_a_lost_commit_is_an_unknown_outcome_and_a_lost_statement_before_it_is_not() {
    let Some((t, me, proxy, db)) = through_a_cutting_proxy("user_lost_commit") else {
        return;
    };
    let names = || -> Vec<String> {
        let jobs = jobprep_job_infos::list_for_user(&t.db, &me).unwrap().value;
        jobs.into_iter().map(|j| j.name).collect()
    };

    // The COMMIT reached the server, its answer did not come back: in doubt, and here
    // it did commit.
    proxy.cut_answer_to(b"COMMIT");
    let outcome = db.transaction(|tx| jobprep_job_infos::insert(tx, &me, &job_form("committed")));
    assert_eq!(proxy.cuts(), 1);
    let error = outcome.unwrap_err();
    assert!(matches!(error, Error::OutcomeUnknown { .. }), "{error:?}");
    assert!(!error.is_retryable(), "a blind retry could apply it twice");
    assert!(
        error.to_string().contains("may have been committed"),
        "{error}"
    );
    assert_eq!(names(), ["committed"]);

    // Lost before the COMMIT was sent: the server rolls the transaction back, so
    // nothing was written, and a retry is safe.
    proxy.cut_answer_to(b"rolled-back-answer");
    let outcome =
        db.transaction(|tx| jobprep_job_infos::insert(tx, &me, &job_form("rolled-back-answer")));
    assert_eq!(proxy.cuts(), 2);
    let error = outcome.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Unavailable {
                connection_lost: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(names(), ["committed"]);

    // A write that would not have one effect when run twice is not run again: the
    // caller hears that it may have committed (it did).
    let parent = job_info(&t.db, &me, "Bulk parent");
    let bulk = |text: &str| vec![NewQuestion::new(text, QuestionDifficulty::Hard); 3];
    jobprep_questions::insert_many(&db, &me, parent, &bulk("warm-up bulk")).unwrap();
    proxy.cut_answer_to(b"lost-bulk-answer");
    let error =
        jobprep_questions::insert_many(&db, &me, parent, &bulk("lost-bulk-answer")).unwrap_err();
    assert_eq!(proxy.cuts(), 3);
    assert!(matches!(error, Error::OutcomeUnknown { .. }), "{error:?}");
    let questions = jobprep_questions::list_for_job_info(&t.db, &me, parent)
        .unwrap()
        .value;
    assert_eq!(questions.len(), 6, "{questions:?}");

    // The same Db goes on, on a fresh connection.
    jobprep_job_infos::insert(&db, &me, &job_form("after")).unwrap();
    assert_eq!(names().len(), 3);
}
