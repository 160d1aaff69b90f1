//! The question use cases on both backends: insert, bulk insert, get, list, count,
//! update, delete, ownership through the job info, the tags each reports, validation.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use jobprep_questions::{
    JobInfoId, NewQuestion, Question, QuestionChanges, QuestionDifficulty, QuestionId, QuestionKey,
    UserId,
};
use jobprep_repo::{job_infos, Entity, Error, Executor, ExperienceLevel};
use jobprep_testing::backend_tests;
use jobprep_testing::{assert_not_found, pause, refused_field, tag_set, user, TestDb};

/// Creates a job info for `owner` (reporting no tags).
fn job(t: &TestDb, owner: &UserId, name: &str) -> JobInfoId {
    let new = job_infos::NewJobInfo::new(name, ExperienceLevel::Junior, format!("About {name}"));
    t.db.write(|conn, _| job_infos::insert(conn, owner, &new))
        .unwrap()
        .id
}

/// Inserts a question and forgets its tags.
fn question(t: &TestDb, owner: &UserId, job: JobInfoId, text: &str) -> QuestionKey {
    let key = jobprep_questions::insert(
        &t.db,
        owner,
        job,
        &NewQuestion::new(text, QuestionDifficulty::Medium),
    )
    .unwrap();
    t.sink.take();
    key
}

fn stored(t: &TestDb, id: QuestionId, owner: &UserId) -> Question {
    jobprep_questions::get(&t.db, owner, id)
        .unwrap()
        .value
        .question
}

fn texts(t: &TestDb, job: JobInfoId, owner: &UserId) -> Vec<String> {
    jobprep_questions::list_for_job_info(&t.db, owner, job)
        .unwrap()
        .value
        .into_iter()
        .map(|q| q.text)
        .collect()
}

fn count(t: &TestDb, owner: &UserId) -> i64 {
    jobprep_questions::count_for_user(&t.db, owner)
        .unwrap()
        .value
}

fn batch(prefix: &str, n: usize) -> Vec<NewQuestion> {
    let difficulties = QuestionDifficulty::ALL;
    (0..n)
        .map(|i| {
            NewQuestion::new(
                format!("{prefix} {i}"),
                difficulties[i % difficulties.len()],
            )
        })
        .collect()
}

fn question_tags(key: &QuestionKey) -> Vec<String> {
    tag_set([
        "global:questions".to_owned(),
        format!("jobInfo:{}:questions", key.job_info_id),
        format!("id:{}:questions", key.id),
    ])
}

fn strings(tags: &[jobprep_repo::CacheTag]) -> Vec<String> {
    tags.iter().map(|tag| tag.to_string()).collect()
}

backend_tests! {
    fn insert_under_an_owned_job_info_reports_its_tags(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let key = jobprep_questions::insert(&t.db, &owner, j, &NewQuestion::new("What is a lifetime?", QuestionDifficulty::Hard)).unwrap();
        assert_eq!(key.job_info_id, j);
        assert_eq!(t.sink.take_sorted(), question_tags(&key));
        let row = stored(t, key.id, &owner);
        assert_eq!(row.id, key.id);
        assert_eq!(row.job_info_id, j);
        assert_eq!(row.text, "What is a lifetime?");
        assert_eq!(row.difficulty, QuestionDifficulty::Hard);
        assert_eq!(row.created_at, row.updated_at, "createdAt == updatedAt on insert");
    }

    fn get_returns_the_question_with_its_job_info_and_depends_on_both_ids(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let key = question(t, &owner, j, "Why?");
        let cached = jobprep_questions::get(&t.db, &owner, key.id).unwrap();
        assert_eq!(cached.value.question.text, "Why?");
        assert_eq!(cached.value.job_info.id, j);
        assert_eq!(cached.value.job_info.user_id, owner);
        assert_eq!(strings(&cached.tags), [format!("id:{}:questions", key.id), format!("id:{j}:jobInfos")]);
        assert!(t.sink.take().is_empty(), "reads report nothing");
    }

    fn every_difficulty_round_trips_and_unknown_ones_are_invalid(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        for difficulty in QuestionDifficulty::ALL {
            let key = jobprep_questions::insert(&t.db, &owner, j, &NewQuestion::new("q", *difficulty)).unwrap();
            assert_eq!(stored(t, key.id, &owner).difficulty, *difficulty);
        }
        assert_eq!(refused_field(&"impossible".parse::<QuestionDifficulty>()), Some("difficulty"));
        assert_eq!("medium".parse::<QuestionDifficulty>().unwrap(), QuestionDifficulty::Medium);
    }

    fn list_is_oldest_created_first_and_count_spans_the_users_job_infos(t) {
        let owner = user(&t.db, "user_owner");
        let other = user(&t.db, "user_other");
        let a = job(t, &owner, "a");
        let b = job(t, &owner, "b");
        let theirs = job(t, &other, "theirs");
        let first = question(t, &owner, a, "first");
        pause();
        question(t, &owner, a, "second");
        pause();
        question(t, &owner, a, "third");
        question(t, &owner, b, "in b");
        question(t, &other, theirs, "theirs");
        assert_eq!(texts(t, a, &owner), ["first", "second", "third"]);

        // An update changes updatedAt, not the order.
        pause();
        jobprep_questions::update(&t.db, &owner, first.id, &QuestionChanges { text: Some("first, edited".into()), ..Default::default() }).unwrap();
        assert_eq!(texts(t, a, &owner), ["first, edited", "second", "third"]);

        let cached = jobprep_questions::list_for_job_info(&t.db, &owner, a).unwrap();
        assert!(cached.value.windows(2).all(|w| w[0].created_at <= w[1].created_at));
        assert_eq!(strings(&cached.tags), [format!("jobInfo:{a}:questions")]);

        assert_eq!(count(t, &owner), 4);
        assert_eq!(count(t, &other), 1);
        let cached = jobprep_questions::count_for_user(&t.db, &owner).unwrap();
        assert_eq!(strings(&cached.tags), ["global:questions"]);
    }

    fn insert_many_writes_a_thousand_rows_in_order_and_reports_every_tag(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let new = batch("Question", 1000);
        let keys = jobprep_questions::insert_many(&t.db, &owner, j, &new).unwrap();
        assert_eq!(keys.len(), 1000);
        assert!(keys.iter().all(|k| k.job_info_id == j));
        assert_eq!(keys.iter().map(|k| k.id).collect::<BTreeSet<_>>().len(), 1000, "distinct ids");

        let batches = t.sink.take();
        assert_eq!(batches.len(), 1, "one batch for the whole insert");
        let reported = tag_set(batches.concat().into_iter().map(|tag| tag.to_string()));
        assert_eq!(reported.len(), 1002);
        assert_eq!(reported, tag_set(keys.iter().flat_map(question_tags)));

        let listed = jobprep_questions::list_for_job_info(&t.db, &owner, j).unwrap().value;
        assert_eq!(listed.len(), 1000);
        assert!(listed.windows(2).all(|w| w[0].created_at <= w[1].created_at), "oldest createdAt first");
        let listed_texts: Vec<&str> = listed.iter().map(|q| q.text.as_str()).collect();
        let new_texts: Vec<&str> = new.iter().map(|q| q.text.as_str()).collect();
        assert_eq!(listed_texts, new_texts, "listed in input order");
        let listed_ids: Vec<QuestionId> = listed.iter().map(|q| q.id).collect();
        let key_ids: Vec<QuestionId> = keys.iter().map(|k| k.id).collect();
        assert_eq!(listed_ids, key_ids, "keys are returned in input order");
        assert!(listed.iter().zip(&new).all(|(row, new)| row.difficulty == new.difficulty));
        assert!(listed.iter().all(|q| q.created_at == q.updated_at));
        assert_eq!(count(t, &owner), 1000);
    }

    fn insert_many_over_one_chunk_writes_everything(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let keys = jobprep_questions::insert_many(&t.db, &owner, j, &batch("Bulk", 10_001)).unwrap();
        assert_eq!(keys.len(), 10_001);
        assert_eq!(count(t, &owner), 10_001);
        let listed = texts(t, j, &owner);
        assert_eq!(listed.first().map(String::as_str), Some("Bulk 0"));
        assert_eq!(listed.last().map(String::as_str), Some("Bulk 10000"));
        assert_eq!(t.sink.take_sorted().len(), 10_003);
    }

    fn insert_many_of_nothing_checks_ownership_and_reports_nothing(t) {
        let owner = user(&t.db, "user_owner");
        let stranger = user(&t.db, "user_stranger");
        let j = job(t, &owner, "Backend");
        assert_eq!(jobprep_questions::insert_many(&t.db, &owner, j, &[]).unwrap(), Vec::<QuestionKey>::new());
        assert_not_found(jobprep_questions::insert_many(&t.db, &stranger, j, &[]), Entity::JobInfo);
        assert_not_found(jobprep_questions::insert_many(&t.db, &owner, JobInfoId::generate(), &[]), Entity::JobInfo);
        assert!(t.sink.take().is_empty());
        assert_eq!(count(t, &owner), 0);
    }

    fn insert_many_with_one_invalid_row_writes_nothing(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let mut new = batch("Question", 5);
        new[3].text = "   ".into();
        assert_eq!(refused_field(&jobprep_questions::insert_many(&t.db, &owner, j, &new)), Some("text"));
        new[3].text = "nul\0".into();
        assert_eq!(refused_field(&jobprep_questions::insert_many(&t.db, &owner, j, &new)), Some("text"));
        assert_eq!(count(t, &owner), 0);
        assert!(t.sink.take().is_empty());
    }

    fn update_changes_text_and_difficulty_and_refreshes_updated_at(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let key = question(t, &owner, j, "Original");
        let before = stored(t, key.id, &owner);

        pause();
        let returned = jobprep_questions::update(&t.db, &owner, key.id, &QuestionChanges {
            text: Some("Edited".into()),
            difficulty: Some(QuestionDifficulty::Easy),
        }).unwrap();
        assert_eq!(returned, key);
        assert_eq!(t.sink.take_sorted(), question_tags(&key));
        let edited = stored(t, key.id, &owner);
        assert_eq!(edited.text, "Edited");
        assert_eq!(edited.difficulty, QuestionDifficulty::Easy);
        assert_eq!(edited.created_at, before.created_at, "createdAt never changes");
        assert!(edited.updated_at > before.updated_at, "updatedAt is refreshed");

        pause();
        jobprep_questions::update(&t.db, &owner, key.id, &QuestionChanges {
            difficulty: Some(QuestionDifficulty::Hard),
            ..Default::default()
        }).unwrap();
        let harder = stored(t, key.id, &owner);
        assert_eq!(harder.text, "Edited", "None leaves the text alone");
        assert_eq!(harder.difficulty, QuestionDifficulty::Hard);
        assert!(harder.updated_at > edited.updated_at);
        assert_eq!(harder.created_at, before.created_at);
    }

    fn delete_removes_the_question_and_reports_its_tags(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let key = question(t, &owner, j, "doomed");
        question(t, &owner, j, "kept");
        assert_eq!(jobprep_questions::delete(&t.db, &owner, key.id).unwrap(), key);
        assert_eq!(t.sink.take_sorted(), question_tags(&key));
        assert_not_found(jobprep_questions::get(&t.db, &owner, key.id), Entity::Question);
        assert_eq!(texts(t, j, &owner), ["kept"]);
        assert_eq!(count(t, &owner), 1);
        assert_not_found(jobprep_questions::delete(&t.db, &owner, key.id), Entity::Question);
        assert!(t.sink.take().is_empty());
    }

    fn missing_ids_are_not_found(t) {
        let owner = user(&t.db, "user_owner");
        let missing = QuestionId::generate();
        assert_not_found(jobprep_questions::get(&t.db, &owner, missing), Entity::Question);
        let changes = QuestionChanges { text: Some("x".into()), ..Default::default() };
        assert_not_found(jobprep_questions::update(&t.db, &owner, missing, &changes), Entity::Question);
        assert_not_found(jobprep_questions::delete(&t.db, &owner, missing), Entity::Question);
        let new = NewQuestion::new("q", QuestionDifficulty::Easy);
        assert_not_found(jobprep_questions::insert(&t.db, &owner, JobInfoId::generate(), &new), Entity::JobInfo);
        assert!(t.sink.take().is_empty());
    }

    fn another_user_can_neither_insert_under_nor_see_nor_change_nor_delete(t) {
        let owner = user(&t.db, "user_owner");
        let stranger = user(&t.db, "user_stranger");
        let j = job(t, &owner, "Backend");
        let own_job = job(t, &stranger, "Stranger's");
        let key = question(t, &owner, j, "Private question");
        let before = stored(t, key.id, &owner);

        let new = NewQuestion::new("Injected", QuestionDifficulty::Easy);
        assert_not_found(jobprep_questions::insert(&t.db, &stranger, j, &new), Entity::JobInfo);
        assert_not_found(jobprep_questions::insert_many(&t.db, &stranger, j, &batch("Injected", 3)), Entity::JobInfo);
        assert_not_found(jobprep_questions::insert_many(&t.db, &stranger, j, &[]), Entity::JobInfo);
        assert_not_found(jobprep_questions::get(&t.db, &stranger, key.id), Entity::Question);
        let changes = QuestionChanges { text: Some("Stolen".into()), difficulty: Some(QuestionDifficulty::Hard) };
        assert_not_found(jobprep_questions::update(&t.db, &stranger, key.id, &changes), Entity::Question);
        assert_not_found(jobprep_questions::delete(&t.db, &stranger, key.id), Entity::Question);
        assert!(jobprep_questions::list_for_job_info(&t.db, &stranger, j).unwrap().value.is_empty());
        assert!(jobprep_questions::list_for_job_info(&t.db, &stranger, own_job).unwrap().value.is_empty());
        assert_eq!(count(t, &stranger), 0);

        assert!(t.sink.take().is_empty(), "no tags for refused writes");
        assert_eq!(stored(t, key.id, &owner), before, "the row is unchanged");
        assert_eq!(texts(t, j, &owner), ["Private question"], "nothing was inserted under it");
        assert_eq!(count(t, &owner), 1);
    }

    fn invalid_input_is_refused_naming_the_field_and_writes_nothing(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        for bad in ["", "  \n ", "nul\0byte"] {
            let new = NewQuestion::new(bad, QuestionDifficulty::Easy);
            assert_eq!(refused_field(&jobprep_questions::insert(&t.db, &owner, j, &new)), Some("text"), "{bad:?}");
        }
        assert_eq!(count(t, &owner), 0, "nothing written");

        let key = question(t, &owner, j, "Fine");
        let before = stored(t, key.id, &owner);
        for bad in ["", " ", "\0"] {
            let changes = QuestionChanges { text: Some(bad.into()), difficulty: Some(QuestionDifficulty::Hard) };
            assert_eq!(refused_field(&jobprep_questions::update(&t.db, &owner, key.id, &changes)), Some("text"), "{bad:?}");
        }
        assert_eq!(stored(t, key.id, &owner), before);
        assert!(t.sink.take().is_empty());
    }

    fn text_with_quotes_semicolons_comments_and_unicode_round_trips(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let tricky = [
            r#"'; DROP TABLE questions; --"#,
            r#"Robert"); DELETE FROM job_info; /*"#,
            "placeholders $1 ? :name @p1",
            "日本語の質問 🚀 Ünïcödé\nwith a newline and a tab\t",
            r"back\slash % _ ''",
        ];
        let single = jobprep_questions::insert(&t.db, &owner, j, &NewQuestion::new(tricky[0], QuestionDifficulty::Easy)).unwrap();
        assert_eq!(stored(t, single.id, &owner).text, tricky[0]);
        jobprep_questions::update(&t.db, &owner, single.id, &QuestionChanges { text: Some(tricky[1].into()), ..Default::default() }).unwrap();
        assert_eq!(stored(t, single.id, &owner).text, tricky[1]);

        // The bulk insert builds its statement text itself: the values must stay bound.
        let new: Vec<NewQuestion> = tricky.iter().map(|text| NewQuestion::new(*text, QuestionDifficulty::Medium)).collect();
        let keys = jobprep_questions::insert_many(&t.db, &owner, j, &new).unwrap();
        for (key, text) in keys.iter().zip(tricky) {
            assert_eq!(stored(t, key.id, &owner).text, text);
        }
        assert_eq!(count(t, &owner), 1 + tricky.len() as i64);
    }

    fn a_rolled_back_transaction_writes_and_reports_nothing(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let existing = question(t, &owner, j, "existing");
        let before = stored(t, existing.id, &owner);
        let outcome: jobprep_repo::Result<()> = t.db.transaction(|tx| {
            jobprep_questions::insert(tx, &owner, j, &NewQuestion::new("in tx", QuestionDifficulty::Easy))?;
            jobprep_questions::insert_many(tx, &owner, j, &batch("bulk in tx", 10))?;
            jobprep_questions::update(tx, &owner, existing.id, &QuestionChanges { text: Some("changed".into()), ..Default::default() })?;
            assert_eq!(jobprep_questions::count_for_user(tx, &owner)?.value, 12, "visible inside");
            Err(Error::Config("roll back".into()))
        });
        assert!(matches!(outcome, Err(Error::Config(_))), "{outcome:?}");
        assert!(t.sink.take().is_empty());
        assert_eq!(texts(t, j, &owner), ["existing"]);
        assert_eq!(stored(t, existing.id, &owner), before);
    }

    fn a_failed_write_inside_a_transaction_can_be_handled_and_the_rest_commits(t) {
        let owner = user(&t.db, "user_owner");
        let stranger = user(&t.db, "user_stranger");
        let j = job(t, &owner, "Backend");
        let kept = t.db.transaction(|tx| {
            let kept = jobprep_questions::insert(tx, &owner, j, &NewQuestion::new("kept", QuestionDifficulty::Easy))?;
            let refused = jobprep_questions::insert(tx, &stranger, j, &NewQuestion::new("refused", QuestionDifficulty::Easy));
            assert!(matches!(refused, Err(Error::NotFound { .. })), "{refused:?}");
            Ok(kept)
        })
        .unwrap();
        assert_eq!(texts(t, j, &owner), ["kept"]);
        assert_eq!(t.sink.take_sorted(), question_tags(&kept));
    }

    fn a_committed_transaction_reports_all_tags_once_after_commit(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let keys = t.db.transaction(|tx| {
            let mut keys = jobprep_questions::insert_many(tx, &owner, j, &batch("q", 3))?;
            keys.push(jobprep_questions::insert(tx, &owner, j, &NewQuestion::new("one more", QuestionDifficulty::Hard))?);
            jobprep_questions::update(tx, &owner, keys[0].id, &QuestionChanges { text: Some("edited".into()), ..Default::default() })?;
            assert!(t.sink.take().is_empty(), "nothing is reported before COMMIT");
            Ok(keys)
        })
        .unwrap();
        let batches = t.sink.take();
        assert_eq!(batches.len(), 1, "{batches:?}");
        let mut reported = strings(&batches[0]);
        reported.sort();
        assert_eq!(reported, tag_set(keys.iter().flat_map(question_tags)), "each tag once");
        assert_eq!(count(t, &owner), 4);
    }
}

/// Whether `result` is the question quota error for `limit`, and not retryable.
fn is_quota_exceeded<T: std::fmt::Debug>(result: &jobprep_repo::Result<T>, limit: u32) -> bool {
    matches!(result, Err(error @ Error::QuotaExceeded { entity: Entity::Question, limit: l })
        if *l == limit && !error.is_retryable())
}

backend_tests! {
    fn eight_concurrent_quota_checked_inserts_at_a_quota_of_two_write_exactly_two(t) {
        const THREADS: usize = 8;
        const LIMIT: u32 = 2;
        const HOLD: std::time::Duration = std::time::Duration::from_millis(25);
        let owner = user(&t.db, "user_owner");
        // Two job infos: the quota spans all of the user's questions.
        let jobs = [job(t, &owner, "a"), job(t, &owner, "b")];
        let barrier = std::sync::Barrier::new(THREADS);
        let results: Vec<jobprep_repo::Result<QuestionKey>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|i| {
                    let (barrier, owner, db) = (&barrier, &owner, &t.db);
                    scope.spawn(move || {
                        let new = NewQuestion::new(format!("Racing {i}"), QuestionDifficulty::Easy);
                        barrier.wait();
                        if i % 4 == 0 {
                            // A request that is just the write.
                            return jobprep_questions::insert_within_quota(db, owner, jobs[i % 2], &new, LIMIT);
                        }
                        // The others keep their transaction open a little after the
                        // write, so without the per-user serialization they would all
                        // count before any commits (and all would write).
                        db.transaction(|tx| {
                            let written = jobprep_questions::insert_within_quota(tx, owner, jobs[i % 2], &new, LIMIT);
                            std::thread::sleep(HOLD);
                            written
                        })
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let written: Vec<&QuestionKey> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(written.len(), 2, "{results:?}");
        assert_eq!(results.iter().filter(|r| is_quota_exceeded(r, LIMIT)).count(), 6, "{results:?}");
        assert_eq!(count(t, &owner), 2);
        let listed: BTreeSet<QuestionId> = jobs
            .iter()
            .flat_map(|j| jobprep_questions::list_for_job_info(&t.db, &owner, *j).unwrap().value)
            .map(|q| q.id)
            .collect();
        assert_eq!(listed, written.iter().map(|k| k.id).collect(), "the acknowledged rows, and only those");
        // One batch of tags per successful write, none for the refused ones.
        let batches = t.sink.take();
        assert_eq!(batches.len(), 2, "{batches:?}");
        let reported = tag_set(batches.concat().into_iter().map(|tag| tag.to_string()));
        assert_eq!(reported, tag_set(written.iter().flat_map(|k| question_tags(k))));
    }

    fn a_quota_checked_insert_below_the_quota_writes_and_reports_like_insert(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let new = NewQuestion::new("Within the plan", QuestionDifficulty::Hard);
        let key = jobprep_questions::insert_within_quota(&t.db, &owner, j, &new, 1).unwrap();
        assert_eq!(t.sink.take_sorted(), question_tags(&key));
        let row = stored(t, key.id, &owner);
        assert_eq!((row.text.as_str(), row.difficulty, row.job_info_id), ("Within the plan", QuestionDifficulty::Hard, j));

        // The quota is now used up: refused, nothing written, nothing reported.
        let refused = jobprep_questions::insert_within_quota(&t.db, &owner, j, &new, 1);
        assert!(is_quota_exceeded(&refused, 1), "{refused:?}");
        let message = refused.unwrap_err().to_string();
        assert_eq!(message, "question quota of 1 reached");
        assert_eq!(count(t, &owner), 1);
        assert!(t.sink.take().is_empty());

        // A larger plan allows more; the plain insert is not checked at all.
        jobprep_questions::insert_within_quota(&t.db, &owner, j, &new, 2).unwrap();
        question(t, &owner, j, "unchecked");
        assert_eq!(count(t, &owner), 3);
    }

    fn a_quota_of_zero_refuses_every_question(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let new = NewQuestion::new("No plan", QuestionDifficulty::Easy);
        let refused = jobprep_questions::insert_within_quota(&t.db, &owner, j, &new, 0);
        assert!(is_quota_exceeded(&refused, 0), "{refused:?}");
        assert_eq!(count(t, &owner), 0);
        assert!(texts(t, j, &owner).is_empty());
        assert!(t.sink.take().is_empty());
    }

    fn another_users_questions_do_not_count_against_the_quota(t) {
        let owner = user(&t.db, "user_owner");
        let other = user(&t.db, "user_other");
        let mine = job(t, &owner, "mine");
        let theirs = job(t, &other, "theirs");
        jobprep_questions::insert_many(&t.db, &other, theirs, &batch("Theirs", 5)).unwrap();
        t.sink.take();
        let new = NewQuestion::new("Mine", QuestionDifficulty::Easy);
        jobprep_questions::insert_within_quota(&t.db, &owner, mine, &new, 1).unwrap();
        assert_eq!(count(t, &owner), 1);
        assert_eq!(count(t, &other), 5);
        // The other user is over a quota of 1 and is refused, whatever the owner has.
        let refused = jobprep_questions::insert_within_quota(&t.db, &other, theirs, &new, 1);
        assert!(is_quota_exceeded(&refused, 1), "{refused:?}");
        assert_eq!(count(t, &other), 5);
    }

    fn a_quota_checked_insert_validates_first_and_keeps_ownership(t) {
        let owner = user(&t.db, "user_owner");
        let stranger = user(&t.db, "user_stranger");
        let j = job(t, &owner, "Backend");
        let blank = NewQuestion::new(" ", QuestionDifficulty::Easy);
        assert_eq!(refused_field(&jobprep_questions::insert_within_quota(&t.db, &owner, j, &blank, 0)), Some("text"));
        let new = NewQuestion::new("Injected", QuestionDifficulty::Easy);
        assert_not_found(jobprep_questions::insert_within_quota(&t.db, &stranger, j, &new, 5), Entity::JobInfo);
        assert_not_found(jobprep_questions::insert_within_quota(&t.db, &owner, JobInfoId::generate(), &new, 5), Entity::JobInfo);
        assert_eq!(count(t, &owner), 0);
        assert_eq!(count(t, &stranger), 0);
        assert!(t.sink.take().is_empty());
    }

    fn a_refused_quota_checked_insert_inside_a_transaction_can_be_handled_and_the_rest_commits(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let kept = t.db.transaction(|tx| {
            let kept = jobprep_questions::insert_within_quota(tx, &owner, j, &NewQuestion::new("kept", QuestionDifficulty::Easy), 1)?;
            let refused = jobprep_questions::insert_within_quota(tx, &owner, j, &NewQuestion::new("refused", QuestionDifficulty::Easy), 1);
            assert!(is_quota_exceeded(&refused, 1), "{refused:?}");
            // The transaction is still usable after the refusal.
            assert_eq!(jobprep_questions::count_for_user(tx, &owner)?.value, 1);
            Ok(kept)
        })
        .unwrap();
        assert_eq!(texts(t, j, &owner), ["kept"]);
        assert_eq!(t.sink.take_sorted(), question_tags(&kept));
    }
}

/// PostgreSQL only: at REPEATABLE READ a transaction's snapshot may predate the commit
/// of the request it waited for, so a stale count could let it write. The per-user
/// serialization turns that case into a serialization failure (retryable
/// `Unavailable`); retried, every request ends written or refused for the quota, and
/// the quota still holds.
#[test]
fn at_repeatable_read_racing_quota_checked_inserts_never_overshoot() {
    const THREADS: usize = 8;
    let Some(t) = TestDb::new(jobprep_repo::Backend::Postgres) else {
        return;
    };
    let owner = user(&t.db, "user_owner");
    let j = job(&t, &owner, "Backend");
    let separator = if t.url.contains('?') { '&' } else { '?' };
    // libpq's `options`: `-c default_transaction_isolation=repeatable\ read`.
    let url = format!(
        "{}{separator}options=-c%20default_transaction_isolation%3Drepeatable%5C%20read",
        t.url
    );
    let db = jobprep_repo::Db::connect(&url).unwrap();
    let barrier = std::sync::Barrier::new(THREADS);
    let outcomes: Vec<(jobprep_repo::Result<QuestionKey>, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (barrier, owner, db) = (&barrier, &owner, &db);
                scope.spawn(move || {
                    // A warm connection each, so the requests start together.
                    jobprep_questions::count_for_user(db, owner).unwrap();
                    let new = NewQuestion::new(format!("Racing {i}"), QuestionDifficulty::Easy);
                    barrier.wait();
                    let mut retries = 0;
                    loop {
                        let written = db.transaction(|tx| {
                            let written =
                                jobprep_questions::insert_within_quota(tx, owner, j, &new, 2);
                            std::thread::sleep(std::time::Duration::from_millis(25));
                            written
                        });
                        match written {
                            Err(error) if error.is_retryable() && retries < 20 => retries += 1,
                            other => return (other, retries),
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let results: Vec<&jobprep_repo::Result<QuestionKey>> =
        outcomes.iter().map(|(r, _)| r).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        2,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| is_quota_exceeded(r, 2)).count(),
        6,
        "{results:?}"
    );
    assert_eq!(count(&t, &owner), 2);
    let retried: usize = outcomes.iter().map(|(_, retries)| retries).sum();
    assert!(
        retried > 0,
        "REPEATABLE READ was in effect: some request met a serialization failure"
    );
}
