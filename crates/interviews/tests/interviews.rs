//! The interview use cases on both backends: create, get with the job info, list and
//! count (only interviews with a chat id), update, delete, ownership through the job
//! info, the tags each reports, validation and serialization.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use jobprep_interviews::{
    Interview, InterviewChanges, InterviewId, InterviewKey, JobInfoId, NewInterview, UserId,
};
use jobprep_repo::{job_infos, Entity, Error, Executor, ExperienceLevel};
use jobprep_testing::backend_tests;
use jobprep_testing::{assert_not_found, pause, refused_field, tag_set, user, TestDb};

/// Creates a job info for `owner` (reporting no tags).
fn job(t: &TestDb, owner: &UserId, name: &str) -> JobInfoId {
    let new = job_infos::NewJobInfo::new(name, ExperienceLevel::MidLevel, format!("About {name}"))
        .with_title(format!("Title of {name}"));
    t.db.write(|conn, _| job_infos::insert(conn, owner, &new))
        .unwrap()
        .id
}

/// Creates an interview, with a chat id when given, and forgets its tags.
fn interview(t: &TestDb, owner: &UserId, job: JobInfoId, chat: Option<&str>) -> InterviewKey {
    let new = NewInterview {
        hume_chat_id: chat.map(str::to_owned),
        ..NewInterview::new()
    };
    let key = jobprep_interviews::insert(&t.db, owner, job, &new).unwrap();
    t.sink.take();
    key
}

fn stored(t: &TestDb, id: InterviewId, owner: &UserId) -> Interview {
    jobprep_interviews::get(&t.db, owner, id)
        .unwrap()
        .value
        .interview
}

fn listed(t: &TestDb, job: JobInfoId, owner: &UserId) -> Vec<InterviewId> {
    jobprep_interviews::list_for_job_info(&t.db, owner, job)
        .unwrap()
        .value
        .into_iter()
        .map(|i| i.id)
        .collect()
}

fn count(t: &TestDb, owner: &UserId) -> i64 {
    jobprep_interviews::count_for_user(&t.db, owner)
        .unwrap()
        .value
}

fn interview_tags(key: &InterviewKey) -> Vec<String> {
    tag_set([
        "global:interviews".to_owned(),
        format!("jobInfo:{}:interviews", key.job_info_id),
        format!("id:{}:interviews", key.id),
    ])
}

fn strings(tags: &[jobprep_repo::CacheTag]) -> Vec<String> {
    tags.iter().map(|tag| tag.to_string()).collect()
}

fn chat(id: &str) -> InterviewChanges {
    InterviewChanges {
        hume_chat_id: Some(Some(id.to_owned())),
        ..Default::default()
    }
}

backend_tests! {
    fn create_under_an_owned_job_info_reports_its_tags(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let key = jobprep_interviews::insert(&t.db, &owner, j, &NewInterview::new()).unwrap();
        assert_eq!(key.job_info_id, j);
        assert_eq!(t.sink.take_sorted(), interview_tags(&key));

        let row = stored(t, key.id, &owner);
        assert_eq!(row.id, key.id);
        assert_eq!(row.job_info_id, j);
        assert_eq!(row.duration, "00:00:00");
        assert_eq!(row.hume_chat_id, None);
        assert_eq!(row.feedback, None);
        assert_eq!(row.created_at, row.updated_at, "createdAt == updatedAt on create");

        let started = NewInterview {
            duration: "123:04:05".into(),
            hume_chat_id: Some("chat_1".into()),
        };
        let second = jobprep_interviews::insert(&t.db, &owner, j, &started).unwrap();
        let row = stored(t, second.id, &owner);
        assert_eq!(row.duration, "123:04:05");
        assert_eq!(row.hume_chat_id.as_deref(), Some("chat_1"));
        assert_ne!(second.id, key.id);
    }

    fn get_returns_the_interview_with_its_job_info_and_depends_on_both_ids(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let key = interview(t, &owner, j, Some("chat_1"));
        let cached = jobprep_interviews::get(&t.db, &owner, key.id).unwrap();
        let info = &cached.value.job_info;
        assert_eq!(info.id, j);
        assert_eq!(info.user_id, owner);
        assert_eq!(info.title.as_deref(), Some("Title of Backend"));
        assert_eq!(info.description, "About Backend");
        assert_eq!(info.experience_level, ExperienceLevel::MidLevel);
        assert_eq!(cached.value.interview.id, key.id);
        assert_eq!(cached.value.interview.hume_chat_id.as_deref(), Some("chat_1"));
        assert_eq!(strings(&cached.tags), [format!("id:{}:interviews", key.id), format!("id:{j}:jobInfos")]);
        assert!(t.sink.take().is_empty(), "reads report nothing");
    }

    fn list_has_only_interviews_with_a_chat_id_newest_updated_first(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let elsewhere = job(t, &owner, "Elsewhere");
        let first = interview(t, &owner, j, Some("chat_1"));
        pause();
        let unstarted = interview(t, &owner, j, None);
        pause();
        let third = interview(t, &owner, j, Some("chat_3"));
        pause();
        let fourth = interview(t, &owner, j, Some("chat_4"));
        interview(t, &owner, elsewhere, Some("chat_elsewhere"));
        assert_eq!(listed(t, j, &owner), [fourth.id, third.id, first.id]);

        pause();
        jobprep_interviews::update(&t.db, &owner, first.id, &InterviewChanges {
            feedback: Some(Some("Good".into())),
            ..Default::default()
        }).unwrap();
        assert_eq!(listed(t, j, &owner), [first.id, fourth.id, third.id], "an update moves it to the top");

        pause();
        jobprep_interviews::update(&t.db, &owner, unstarted.id, &chat("chat_2")).unwrap();
        assert_eq!(listed(t, j, &owner), [unstarted.id, first.id, fourth.id, third.id], "listed once it has a chat id");

        let cached = jobprep_interviews::list_for_job_info(&t.db, &owner, j).unwrap();
        assert!(cached.value.iter().all(|i| i.job_info_id == j && i.hume_chat_id.is_some()));
        assert!(cached.value.windows(2).all(|w| w[0].updated_at >= w[1].updated_at));
        assert_eq!(
            strings(&cached.tags),
            [format!("jobInfo:{j}:interviews"), format!("id:{j}:jobInfos")],
            "the list depends on the job info too"
        );
    }

    fn list_all_has_every_interview_held_or_not_newest_updated_first(t) {
        let owner = user(&t.db, "user_owner");
        let stranger = user(&t.db, "user_stranger");
        let j = job(t, &owner, "Backend");
        let held = interview(t, &owner, j, Some("chat_1"));
        pause();
        let unstarted = interview(t, &owner, j, None);
        let all = jobprep_interviews::list_all_for_job_info(&t.db, &owner, j).unwrap();
        let ids: Vec<InterviewId> = all.value.iter().map(|i| i.id).collect();
        assert_eq!(ids, [unstarted.id, held.id]);
        assert_eq!(listed(t, j, &owner), [held.id], "the plain list keeps only held ones");
        assert_eq!(
            strings(&all.tags),
            [format!("jobInfo:{j}:interviews"), format!("id:{j}:jobInfos")]
        );
        let theirs = jobprep_interviews::list_all_for_job_info(&t.db, &stranger, j).unwrap();
        assert!(theirs.value.is_empty(), "another user's job info lists nothing");
    }

    fn count_counts_only_interviews_with_a_chat_id_across_the_users_job_infos(t) {
        let owner = user(&t.db, "user_owner");
        let other = user(&t.db, "user_other");
        let a = job(t, &owner, "a");
        let b = job(t, &owner, "b");
        let theirs = job(t, &other, "theirs");
        assert_eq!(count(t, &owner), 0);
        interview(t, &owner, a, Some("chat_a1"));
        interview(t, &owner, a, None);
        interview(t, &owner, b, Some("chat_b1"));
        interview(t, &owner, b, Some("chat_b2"));
        let later = interview(t, &owner, b, None);
        interview(t, &other, theirs, Some("chat_theirs"));
        assert_eq!(count(t, &owner), 3);
        assert_eq!(count(t, &other), 1);

        jobprep_interviews::update(&t.db, &owner, later.id, &chat("chat_b3")).unwrap();
        assert_eq!(count(t, &owner), 4);
        jobprep_interviews::update(&t.db, &owner, later.id, &InterviewChanges {
            hume_chat_id: Some(None),
            ..Default::default()
        }).unwrap();
        assert_eq!(count(t, &owner), 3, "clearing the chat id uncounts it");

        let cached = jobprep_interviews::count_for_user(&t.db, &owner).unwrap();
        assert_eq!(strings(&cached.tags), ["global:interviews"]);
    }

    fn update_sets_duration_chat_id_and_feedback_and_some_none_clears(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let key = interview(t, &owner, j, None);
        let before = stored(t, key.id, &owner);

        pause();
        let changes = InterviewChanges {
            duration: Some("00:14:05".into()),
            hume_chat_id: Some(Some("chat_123".into())),
            feedback: Some(Some("Clear answers.".into())),
        };
        let returned = jobprep_interviews::update(&t.db, &owner, key.id, &changes).unwrap();
        assert_eq!(returned, key);
        assert_eq!(t.sink.take_sorted(), interview_tags(&key));
        let updated = stored(t, key.id, &owner);
        assert_eq!(updated.duration, "00:14:05");
        assert_eq!(updated.hume_chat_id.as_deref(), Some("chat_123"));
        assert_eq!(updated.feedback.as_deref(), Some("Clear answers."));
        assert_eq!(updated.created_at, before.created_at, "createdAt never changes");
        assert!(updated.updated_at > before.updated_at, "updatedAt is refreshed");

        // None leaves a field alone.
        pause();
        let duration_only = InterviewChanges { duration: Some("01:00:00".into()), ..Default::default() };
        jobprep_interviews::update(&t.db, &owner, key.id, &duration_only).unwrap();
        let partly = stored(t, key.id, &owner);
        assert_eq!(partly.duration, "01:00:00");
        assert_eq!(partly.hume_chat_id.as_deref(), Some("chat_123"));
        assert_eq!(partly.feedback.as_deref(), Some("Clear answers."));
        assert!(partly.updated_at > updated.updated_at);

        // Some(None) clears the feedback.
        let clear = InterviewChanges { feedback: Some(None), ..Default::default() };
        jobprep_interviews::update(&t.db, &owner, key.id, &clear).unwrap();
        let cleared = stored(t, key.id, &owner);
        assert_eq!(cleared.feedback, None);
        assert_eq!(cleared.hume_chat_id.as_deref(), Some("chat_123"));
        assert_eq!(cleared.duration, "01:00:00");
        assert_eq!(cleared.created_at, before.created_at);
    }

    fn delete_removes_the_interview_and_reports_its_tags(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let key = interview(t, &owner, j, Some("chat_1"));
        let kept = interview(t, &owner, j, Some("chat_2"));
        assert_eq!(jobprep_interviews::delete(&t.db, &owner, key.id).unwrap(), key);
        assert_eq!(t.sink.take_sorted(), interview_tags(&key));
        assert_not_found(jobprep_interviews::get(&t.db, &owner, key.id), Entity::Interview);
        assert_eq!(listed(t, j, &owner), [kept.id]);
        assert_not_found(jobprep_interviews::delete(&t.db, &owner, key.id), Entity::Interview);
        assert!(t.sink.take().is_empty());
    }

    fn missing_ids_are_not_found(t) {
        let owner = user(&t.db, "user_owner");
        let missing = InterviewId::generate();
        assert_not_found(jobprep_interviews::get(&t.db, &owner, missing), Entity::Interview);
        assert_not_found(jobprep_interviews::update(&t.db, &owner, missing, &chat("c")), Entity::Interview);
        assert_not_found(jobprep_interviews::delete(&t.db, &owner, missing), Entity::Interview);
        assert_not_found(jobprep_interviews::insert(&t.db, &owner, JobInfoId::generate(), &NewInterview::new()), Entity::JobInfo);
        assert!(jobprep_interviews::list_for_job_info(&t.db, &owner, JobInfoId::generate()).unwrap().value.is_empty());
        assert!(t.sink.take().is_empty());
    }

    fn another_user_can_neither_create_under_nor_see_nor_change_nor_delete(t) {
        let owner = user(&t.db, "user_owner");
        let stranger = user(&t.db, "user_stranger");
        let j = job(t, &owner, "Backend");
        let own_job = job(t, &stranger, "Stranger's");
        let key = interview(t, &owner, j, Some("chat_1"));
        jobprep_interviews::update(&t.db, &owner, key.id, &InterviewChanges {
            feedback: Some(Some("private".into())),
            ..Default::default()
        }).unwrap();
        t.sink.take();
        let before = stored(t, key.id, &owner);

        let under_theirs = NewInterview { hume_chat_id: Some("chat_x".into()), ..NewInterview::new() };
        assert_not_found(jobprep_interviews::insert(&t.db, &stranger, j, &under_theirs), Entity::JobInfo);
        assert_not_found(jobprep_interviews::get(&t.db, &stranger, key.id), Entity::Interview);
        let changes = InterviewChanges {
            duration: Some("09:09:09".into()),
            hume_chat_id: Some(None),
            feedback: Some(Some("stolen".into())),
        };
        assert_not_found(jobprep_interviews::update(&t.db, &stranger, key.id, &changes), Entity::Interview);
        assert_not_found(jobprep_interviews::delete(&t.db, &stranger, key.id), Entity::Interview);
        assert!(jobprep_interviews::list_for_job_info(&t.db, &stranger, j).unwrap().value.is_empty());
        // Passing one's own job info does not reach another's interviews either.
        assert!(jobprep_interviews::list_for_job_info(&t.db, &stranger, own_job).unwrap().value.is_empty());
        assert_eq!(count(t, &stranger), 0);

        assert!(t.sink.take().is_empty(), "no tags for refused writes");
        assert_eq!(stored(t, key.id, &owner), before, "the row is unchanged");
        assert_eq!(listed(t, j, &owner), [key.id], "nothing was created under the owner's job info");
        assert_eq!(count(t, &owner), 1);
    }

    fn invalid_input_is_refused_naming_the_field_and_writes_nothing(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        // With a chat id, a row written by mistake would show in the list and count.
        let with = |duration: &str| NewInterview {
            duration: duration.into(),
            hume_chat_id: Some("chat".into()),
        };
        for bad in ["", "1:00:00", "00:60:00", "00:00:60", "00:00", "00:00:00:00", "aa:bb:cc", "-1:00:00", "00:00:00\0", " 00:00:00"] {
            assert_eq!(refused_field(&jobprep_interviews::insert(&t.db, &owner, j, &with(bad))), Some("duration"), "{bad:?}");
        }
        let blank_chat = NewInterview { hume_chat_id: Some("  ".into()), ..NewInterview::new() };
        assert_eq!(refused_field(&jobprep_interviews::insert(&t.db, &owner, j, &blank_chat)), Some("humeChatId"));
        let nul_chat = NewInterview { hume_chat_id: Some("a\0".into()), ..NewInterview::new() };
        assert_eq!(refused_field(&jobprep_interviews::insert(&t.db, &owner, j, &nul_chat)), Some("humeChatId"));
        assert!(listed(t, j, &owner).is_empty(), "nothing written");
        assert_eq!(count(t, &owner), 0);
        assert!(t.sink.take().is_empty());

        let key = interview(t, &owner, j, Some("chat_1"));
        let before = stored(t, key.id, &owner);
        let cases: Vec<(InterviewChanges, &str)> = vec![
            (InterviewChanges { duration: Some("12:34".into()), ..Default::default() }, "duration"),
            (InterviewChanges { duration: Some("1:2:3".into()), ..Default::default() }, "duration"),
            (InterviewChanges { hume_chat_id: Some(Some(String::new())), ..Default::default() }, "humeChatId"),
            (InterviewChanges { feedback: Some(Some("nul\0".into())), ..Default::default() }, "feedback"),
        ];
        for (changes, field) in cases {
            assert_eq!(refused_field(&jobprep_interviews::update(&t.db, &owner, key.id, &changes)), Some(field), "{changes:?}");
        }
        assert_eq!(stored(t, key.id, &owner), before);
        assert!(t.sink.take().is_empty());
    }

    fn text_with_quotes_semicolons_comments_and_unicode_round_trips(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let tricky = r#"'; DELETE FROM interviews; -- "quoted" $1 ? \ % _ 日本語 🚀 Ünïcödé"#;
        let new = NewInterview { hume_chat_id: Some(format!("chat {tricky}")), ..NewInterview::new() };
        let key = jobprep_interviews::insert(&t.db, &owner, j, &new).unwrap();
        let changes = InterviewChanges { feedback: Some(Some(format!("feedback {tricky}\nsecond line"))), ..Default::default() };
        jobprep_interviews::update(&t.db, &owner, key.id, &changes).unwrap();
        let row = stored(t, key.id, &owner);
        assert_eq!(row.hume_chat_id, new.hume_chat_id);
        assert_eq!(row.feedback.as_deref(), Some(format!("feedback {tricky}\nsecond line").as_str()));
        assert_eq!(listed(t, j, &owner), [key.id]);
    }

    fn a_rolled_back_transaction_writes_and_reports_nothing(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let existing = interview(t, &owner, j, Some("chat_1"));
        let before = stored(t, existing.id, &owner);
        let outcome: jobprep_repo::Result<()> = t.db.transaction(|tx| {
            let created = jobprep_interviews::insert(tx, &owner, j, &NewInterview {
                hume_chat_id: Some("chat_tx".into()),
                ..NewInterview::new()
            })?;
            jobprep_interviews::update(tx, &owner, existing.id, &InterviewChanges {
                feedback: Some(Some("in tx".into())),
                ..Default::default()
            })?;
            let inside: Vec<InterviewId> = jobprep_interviews::list_for_job_info(tx, &owner, j)?
                .value
                .into_iter()
                .map(|i| i.id)
                .collect();
            assert_eq!(inside, [existing.id, created.id], "visible inside, the update on top");
            Err(Error::Config("roll back".into()))
        });
        assert!(matches!(outcome, Err(Error::Config(_))), "{outcome:?}");
        assert!(t.sink.take().is_empty());
        assert_eq!(listed(t, j, &owner), [existing.id]);
        assert_eq!(stored(t, existing.id, &owner), before);
    }

    fn a_committed_transaction_reports_all_tags_once_after_commit(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let (first, second) = t.db.transaction(|tx| {
            let first = jobprep_interviews::insert(tx, &owner, j, &NewInterview::new())?;
            let second = jobprep_interviews::insert(tx, &owner, j, &NewInterview::new())?;
            jobprep_interviews::update(tx, &owner, first.id, &chat("chat_1"))?;
            jobprep_interviews::update(tx, &owner, second.id, &chat("chat_2"))?;
            assert!(t.sink.take().is_empty(), "nothing is reported before COMMIT");
            Ok((first, second))
        })
        .unwrap();
        let batches = t.sink.take();
        assert_eq!(batches.len(), 1, "{batches:?}");
        let mut reported = strings(&batches[0]);
        reported.sort();
        assert_eq!(reported, tag_set(interview_tags(&first).into_iter().chain(interview_tags(&second))), "each tag once");
        assert_eq!(count(t, &owner), 2);
    }

    fn interviews_serialize_with_camel_case_names(t) {
        let owner = user(&t.db, "user_json");
        let j = job(t, &owner, "Backend");
        let key = interview(t, &owner, j, Some("chat_json"));
        let found = jobprep_interviews::get(&t.db, &owner, key.id).unwrap().value;

        let json = serde_json::to_value(&found.interview).unwrap();
        assert_eq!(json["id"], key.id.to_string());
        assert_eq!(json["jobInfoId"], j.to_string());
        assert_eq!(json["humeChatId"], "chat_json");
        assert_eq!(json["duration"], "00:00:00");
        assert!(json["feedback"].is_null());
        assert!(json["createdAt"].is_string() && json["updatedAt"].is_string(), "{json}");
        let keys: BTreeSet<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["id", "jobInfoId", "duration", "humeChatId", "feedback", "createdAt", "updatedAt"])
        );
        let back: Interview = serde_json::from_value(json).unwrap();
        assert_eq!(back, found.interview);

        // With its job info: the interview's fields flattened, the job info nested.
        let json = serde_json::to_value(&found).unwrap();
        assert_eq!(json["humeChatId"], "chat_json");
        assert_eq!(json["jobInfo"]["id"], j.to_string());
        assert_eq!(json["jobInfo"]["userId"], "user_json");
        assert_eq!(json["jobInfo"]["experienceLevel"], "mid-level");
        assert_eq!(json["jobInfo"]["title"], "Title of Backend");
        assert_eq!(json["jobInfo"]["description"], "About Backend");
    }
}

/// Whether `result` is the interview quota error for `limit`, and not retryable.
fn is_quota_exceeded<T: std::fmt::Debug>(result: &jobprep_repo::Result<T>, limit: u32) -> bool {
    matches!(result, Err(error @ Error::QuotaExceeded { entity: Entity::Interview, limit: l })
        if *l == limit && !error.is_retryable())
}

/// Runs `request(i)` on eight threads released at once, each inside a transaction held
/// open a little after the write: without the per-user serialization all eight would
/// count before any commits.
fn eight_racing<T: Send>(
    t: &TestDb,
    request: impl Fn(&jobprep_repo::Tx<'_>, usize) -> jobprep_repo::Result<T> + Sync,
) -> Vec<jobprep_repo::Result<T>> {
    const THREADS: usize = 8;
    let barrier = std::sync::Barrier::new(THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let (barrier, request, db) = (&barrier, &request, &t.db);
                scope.spawn(move || {
                    barrier.wait();
                    db.transaction(|tx| {
                        let written = request(tx, i);
                        std::thread::sleep(std::time::Duration::from_millis(25));
                        written
                    })
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}

/// Exactly two writes succeeded, six were refused for the quota of 2, two interviews
/// count, and only the successful writes reported tags.
fn assert_two_of_eight(t: &TestDb, owner: &UserId, results: &[jobprep_repo::Result<InterviewKey>]) {
    let written: Vec<&InterviewKey> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(written.len(), 2, "{results:?}");
    assert_eq!(
        results.iter().filter(|r| is_quota_exceeded(r, 2)).count(),
        6,
        "{results:?}"
    );
    assert_eq!(count(t, owner), 2);
    let batches = t.sink.take();
    assert_eq!(batches.len(), 2, "{batches:?}");
    let reported = tag_set(batches.concat().into_iter().map(|tag| tag.to_string()));
    assert_eq!(
        reported,
        tag_set(written.iter().flat_map(|k| interview_tags(k)))
    );
}

backend_tests! {
    fn eight_concurrent_creations_with_a_chat_id_at_a_quota_of_two_write_exactly_two(t) {
        let owner = user(&t.db, "user_owner");
        let jobs = [job(t, &owner, "a"), job(t, &owner, "b")];
        let results = eight_racing(t, |tx, i| {
            let new = NewInterview { hume_chat_id: Some(format!("chat_{i}")), ..NewInterview::new() };
            jobprep_interviews::insert_within_quota(tx, &owner, jobs[i % 2], &new, 2)
        });
        assert_two_of_eight(t, &owner, &results);
        let mut counted: Vec<InterviewId> = jobs.iter().flat_map(|j| listed(t, *j, &owner)).collect();
        counted.sort();
        let mut written: Vec<InterviewId> = results.iter().filter_map(|r| r.as_ref().ok()).map(|k| k.id).collect();
        written.sort();
        assert_eq!(counted, written, "the acknowledged rows, and only those");
    }

    fn eight_concurrent_updates_setting_a_chat_id_at_a_quota_of_two_write_exactly_two(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let started: Vec<InterviewKey> = (0..8).map(|_| interview(t, &owner, j, None)).collect();
        let results = eight_racing(t, |tx, i| {
            jobprep_interviews::update_within_quota(tx, &owner, started[i].id, &chat(&format!("chat_{i}")), 2)
        });
        assert_two_of_eight(t, &owner, &results);
        for (key, result) in started.iter().zip(&results) {
            let row = stored(t, key.id, &owner);
            assert_eq!(row.hume_chat_id.is_some(), result.is_ok(), "{row:?}: {result:?}");
        }
    }

    fn a_quota_checked_creation_counts_only_interviews_with_a_chat_id(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        // Without a chat id an interview does not count: created even at a quota of 0.
        let plain = jobprep_interviews::insert_within_quota(&t.db, &owner, j, &NewInterview::new(), 0).unwrap();
        assert_eq!(t.sink.take_sorted(), interview_tags(&plain));
        interview(t, &owner, j, None);
        assert_eq!(count(t, &owner), 0);

        let with_chat = NewInterview { hume_chat_id: Some("chat_1".into()), ..NewInterview::new() };
        let key = jobprep_interviews::insert_within_quota(&t.db, &owner, j, &with_chat, 1).unwrap();
        assert_eq!(t.sink.take_sorted(), interview_tags(&key));
        assert_eq!(stored(t, key.id, &owner).hume_chat_id.as_deref(), Some("chat_1"));

        let refused = jobprep_interviews::insert_within_quota(&t.db, &owner, j, &with_chat, 1);
        assert!(is_quota_exceeded(&refused, 1), "{refused:?}");
        assert_eq!(refused.unwrap_err().to_string(), "interview quota of 1 reached");
        assert_eq!(count(t, &owner), 1);
        assert!(t.sink.take().is_empty(), "a refused write reports nothing");
    }

    fn a_quota_of_zero_refuses_the_first_chat_id(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let with_chat = NewInterview { hume_chat_id: Some("chat_1".into()), ..NewInterview::new() };
        let refused = jobprep_interviews::insert_within_quota(&t.db, &owner, j, &with_chat, 0);
        assert!(is_quota_exceeded(&refused, 0), "{refused:?}");
        let key = interview(t, &owner, j, None);
        let before = stored(t, key.id, &owner);
        let refused = jobprep_interviews::update_within_quota(&t.db, &owner, key.id, &chat("chat_2"), 0);
        assert!(is_quota_exceeded(&refused, 0), "{refused:?}");
        assert_eq!(stored(t, key.id, &owner), before, "nothing written");
        assert_eq!(count(t, &owner), 0);
        assert!(t.sink.take().is_empty());
    }

    fn a_quota_checked_update_checks_only_the_write_that_makes_an_interview_count(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let counted = interview(t, &owner, j, Some("chat_1"));
        let pending = interview(t, &owner, j, None);
        // At a quota of 1, used up by `counted`:
        // - a new chat id for an interview that already counts uses no more quota;
        let key = jobprep_interviews::update_within_quota(&t.db, &owner, counted.id, &chat("chat_1b"), 1).unwrap();
        assert_eq!(t.sink.take_sorted(), interview_tags(&key));
        assert_eq!(stored(t, counted.id, &owner).hume_chat_id.as_deref(), Some("chat_1b"));
        // - other changes of an interview without one are not checked;
        let finished = InterviewChanges { duration: Some("00:10:00".into()), feedback: Some(Some("ok".into())), ..Default::default() };
        jobprep_interviews::update_within_quota(&t.db, &owner, pending.id, &finished, 1).unwrap();
        assert_eq!(stored(t, pending.id, &owner).duration, "00:10:00");
        t.sink.take();
        // - giving it a chat id would make it count: refused, nothing changed.
        let before = stored(t, pending.id, &owner);
        let with_chat = InterviewChanges { duration: Some("00:20:00".into()), ..chat("chat_2") };
        let refused = jobprep_interviews::update_within_quota(&t.db, &owner, pending.id, &with_chat, 1);
        assert!(is_quota_exceeded(&refused, 1), "{refused:?}");
        assert_eq!(stored(t, pending.id, &owner), before);
        assert!(t.sink.take().is_empty());
        // Clearing the counted one's chat id frees the quota for the pending one.
        let cleared = InterviewChanges { hume_chat_id: Some(None), ..Default::default() };
        jobprep_interviews::update_within_quota(&t.db, &owner, counted.id, &cleared, 1).unwrap();
        jobprep_interviews::update_within_quota(&t.db, &owner, pending.id, &with_chat, 1).unwrap();
        assert_eq!(stored(t, pending.id, &owner).hume_chat_id.as_deref(), Some("chat_2"));
        assert_eq!(count(t, &owner), 1);
    }

    fn another_users_interviews_do_not_count_and_ownership_still_holds(t) {
        let owner = user(&t.db, "user_owner");
        let other = user(&t.db, "user_other");
        let mine = job(t, &owner, "mine");
        let theirs = job(t, &other, "theirs");
        for n in 0..3 {
            interview(t, &other, theirs, Some(&format!("theirs_{n}")));
        }
        let with_chat = NewInterview { hume_chat_id: Some("mine".into()), ..NewInterview::new() };
        jobprep_interviews::insert_within_quota(&t.db, &owner, mine, &with_chat, 1).unwrap();
        assert_eq!((count(t, &owner), count(t, &other)), (1, 3));
        t.sink.take();

        // Someone else's job info or interview is NotFound, never a quota answer about
        // the owner, and nothing is written.
        let stranger = user(&t.db, "user_stranger");
        let pending = interview(t, &owner, mine, None);
        let sneaky = NewInterview { hume_chat_id: Some("sneaky".into()), ..NewInterview::new() };
        assert_not_found(jobprep_interviews::insert_within_quota(&t.db, &stranger, mine, &sneaky, 5), Entity::JobInfo);
        assert_not_found(jobprep_interviews::update_within_quota(&t.db, &stranger, pending.id, &chat("sneaky"), 5), Entity::Interview);
        assert_not_found(jobprep_interviews::update_within_quota(&t.db, &owner, InterviewId::generate(), &chat("x"), 5), Entity::Interview);
        assert_eq!(stored(t, pending.id, &owner).hume_chat_id, None);
        // Invalid input is refused before the quota is looked at.
        let blank = NewInterview { hume_chat_id: Some(" ".into()), ..NewInterview::new() };
        assert_eq!(refused_field(&jobprep_interviews::insert_within_quota(&t.db, &owner, mine, &blank, 0)), Some("humeChatId"));
        assert_eq!(refused_field(&jobprep_interviews::update_within_quota(&t.db, &owner, pending.id, &chat(""), 0)), Some("humeChatId"));
        assert_eq!((count(t, &owner), count(t, &other), count(t, &stranger)), (1, 3, 0));
        assert!(t.sink.take().is_empty());
    }

    fn a_chat_id_of_any_length_is_stored_through_jobprep_and_through_the_apps_own_sql(t) {
        // `humeChatId` is an unbounded varchar in the app's schema. No index jobprep
        // adds may narrow that: a btree entry holds at most about 2,700 bytes, so an
        // index that contains the chat id would refuse this row, the app's writes too.
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let long = |c: char| c.to_string().repeat(1 << 20);
        let with = |c: char| NewInterview { hume_chat_id: Some(long(c)), ..NewInterview::new() };
        let inserted = jobprep_interviews::insert(&t.db, &owner, j, &with('a')).unwrap();
        let quota = jobprep_interviews::insert_within_quota(&t.db, &owner, j, &with('b'), 10).unwrap();
        let pending = interview(t, &owner, j, None);
        jobprep_interviews::update(&t.db, &owner, pending.id, &chat(&long('c'))).unwrap();
        let pending_quota = interview(t, &owner, j, None);
        jobprep_interviews::update_within_quota(&t.db, &owner, pending_quota.id, &chat(&long('d')), 10).unwrap();
        for (key, c) in [(&inserted, 'a'), (&quota, 'b'), (&pending, 'c'), (&pending_quota, 'd')] {
            assert_eq!(stored(t, key.id, &owner).hume_chat_id, Some(long(c)));
        }
        // The original app writes the same column with its own SQL.
        let app_id = "0190b6a4-0000-7000-8000-00000000a991";
        let sql = format!(
            r#"INSERT INTO interviews (id, "jobInfoId", duration, "humeChatId") VALUES ('{app_id}', '{j}', '00:01:00', '{}');
               UPDATE interviews SET "humeChatId" = '{}' WHERE id = '{app_id}';"#,
            long('e'),
            long('f'),
        );
        t.execute_sql(&sql).unwrap();
        assert_eq!(count(t, &owner), 5);
        assert_eq!(listed(t, j, &owner).len(), 5);
    }

    fn a_refused_quota_checked_write_inside_a_transaction_can_be_handled_and_the_rest_commits(t) {
        let owner = user(&t.db, "user_owner");
        let j = job(t, &owner, "Backend");
        let pending = interview(t, &owner, j, None);
        let kept = t.db.transaction(|tx| {
            let with_chat = NewInterview { hume_chat_id: Some("chat_1".into()), ..NewInterview::new() };
            let kept = jobprep_interviews::insert_within_quota(tx, &owner, j, &with_chat, 1)?;
            let refused = jobprep_interviews::update_within_quota(tx, &owner, pending.id, &chat("chat_2"), 1);
            assert!(is_quota_exceeded(&refused, 1), "{refused:?}");
            assert_eq!(jobprep_interviews::count_for_user(tx, &owner)?.value, 1, "the transaction is still usable");
            Ok(kept)
        })
        .unwrap();
        assert_eq!(listed(t, j, &owner), [kept.id]);
        assert_eq!(t.sink.take_sorted(), interview_tags(&kept));
    }
}
