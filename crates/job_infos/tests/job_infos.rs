//! The job info use cases on both backends: insert, get, list, update, delete with its
//! cascade, ownership, the tags each reports, validation and serialization.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};

use jobprep_interviews::{InterviewKey, NewInterview};
use jobprep_job_infos::{
    ExperienceLevel, JobInfo, JobInfoChanges, JobInfoId, JobInfoKey, NewJobInfo, UserId,
};
use jobprep_questions::{NewQuestion, QuestionDifficulty, QuestionKey};
use jobprep_repo::{Entity, Error};
use jobprep_testing::backend_tests;
use jobprep_testing::{assert_not_found, pause, refused_field, tag_set, user, TestDb};

fn new_job(name: &str) -> NewJobInfo {
    NewJobInfo::new(
        name,
        ExperienceLevel::MidLevel,
        format!("Description of {name}"),
    )
}

/// Inserts a job info and forgets the tags it reported.
fn job(t: &TestDb, owner: &UserId, name: &str) -> JobInfoKey {
    let key = jobprep_job_infos::insert(&t.db, owner, &new_job(name)).unwrap();
    t.sink.take();
    key
}

fn stored(t: &TestDb, id: JobInfoId, owner: &UserId) -> JobInfo {
    jobprep_job_infos::get(&t.db, owner, id).unwrap().value
}

fn names(t: &TestDb, owner: &UserId) -> Vec<String> {
    jobprep_job_infos::list_for_user(&t.db, owner)
        .unwrap()
        .value
        .into_iter()
        .map(|job| job.name)
        .collect()
}

fn job_tags(key: &JobInfoKey) -> Vec<String> {
    tag_set([
        "global:jobInfos".to_owned(),
        format!("user:{}:jobInfos", key.user_id),
        format!("id:{}:jobInfos", key.id),
    ])
}

fn interview_tags(key: &InterviewKey) -> Vec<String> {
    vec![
        "global:interviews".to_owned(),
        format!("jobInfo:{}:interviews", key.job_info_id),
        format!("id:{}:interviews", key.id),
    ]
}

fn question_tags(key: &QuestionKey) -> Vec<String> {
    vec![
        "global:questions".to_owned(),
        format!("jobInfo:{}:questions", key.job_info_id),
        format!("id:{}:questions", key.id),
    ]
}

/// Two interviews and two questions under the job info.
fn children(t: &TestDb, owner: &UserId, job: JobInfoId) -> (Vec<InterviewKey>, Vec<QuestionKey>) {
    let interviews = (0..2)
        .map(|_| jobprep_interviews::insert(&t.db, owner, job, &NewInterview::new()).unwrap())
        .collect();
    let questions = jobprep_questions::insert_many(
        &t.db,
        owner,
        job,
        &[
            NewQuestion::new("Why Rust?", QuestionDifficulty::Easy),
            NewQuestion::new("Design a cache.", QuestionDifficulty::Hard),
        ],
    )
    .unwrap();
    t.sink.take();
    (interviews, questions)
}

backend_tests! {
    fn insert_returns_id_and_owner_and_reports_its_tags(t) {
        let owner = user(&t.db, "user_owner");
        let key = jobprep_job_infos::insert(&t.db, &owner, &new_job("Backend").with_title("Rustacean")).unwrap();
        assert_eq!(key.user_id, owner);
        assert_eq!(t.sink.take_sorted(), job_tags(&key));

        let row = stored(t, key.id, &owner);
        assert_eq!(row.id, key.id);
        assert_eq!(row.user_id, owner);
        assert_eq!(row.name, "Backend");
        assert_eq!(row.title.as_deref(), Some("Rustacean"));
        assert_eq!(row.description, "Description of Backend");
        assert_eq!(row.experience_level, ExperienceLevel::MidLevel);
        assert_eq!(row.created_at, row.updated_at, "createdAt == updatedAt on insert");

        let untitled = job(t, &owner, "Untitled");
        assert_eq!(stored(t, untitled.id, &owner).title, None);
        assert_ne!(untitled.id, key.id);
    }

    fn every_experience_level_round_trips(t) {
        let owner = user(&t.db, "user_levels");
        for level in ExperienceLevel::ALL {
            let key = jobprep_job_infos::insert(&t.db, &owner, &NewJobInfo::new("Job", *level, "d")).unwrap();
            assert_eq!(stored(t, key.id, &owner).experience_level, *level);
        }
        let labels: Vec<&str> = ExperienceLevel::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(labels, ["junior", "mid-level", "senior"]);
        assert_eq!("mid-level".parse::<ExperienceLevel>().unwrap(), ExperienceLevel::MidLevel);
    }

    fn unknown_experience_level_is_invalid_input(t) {
        let _ = t;
        assert_eq!(refused_field(&"principal".parse::<ExperienceLevel>()), Some("experienceLevel"));
        assert_eq!(refused_field(&"Senior".parse::<ExperienceLevel>()), Some("experienceLevel"));
        assert_eq!(refused_field(&"".parse::<ExperienceLevel>()), Some("experienceLevel"));
    }

    fn get_depends_on_the_id_tag_and_reports_nothing(t) {
        let owner = user(&t.db, "user_owner");
        let key = job(t, &owner, "Backend");
        let cached = jobprep_job_infos::get(&t.db, &owner, key.id).unwrap();
        assert_eq!(cached.value.id, key.id);
        let tags: Vec<String> = cached.tags.iter().map(|tag| tag.to_string()).collect();
        assert_eq!(tags, [format!("id:{}:jobInfos", key.id)]);
        assert!(t.sink.take().is_empty());
    }

    fn get_update_delete_of_a_missing_id_are_not_found(t) {
        let owner = user(&t.db, "user_owner");
        let missing = JobInfoId::generate();
        assert_not_found(jobprep_job_infos::get(&t.db, &owner, missing), Entity::JobInfo);
        let changes = JobInfoChanges { name: Some("x".into()), ..Default::default() };
        assert_not_found(jobprep_job_infos::update(&t.db, &owner, missing, &changes), Entity::JobInfo);
        assert_not_found(jobprep_job_infos::delete(&t.db, &owner, missing), Entity::JobInfo);
        assert!(t.sink.take().is_empty());
    }

    fn list_is_newest_updated_first_and_an_update_moves_a_job_to_the_top(t) {
        let owner = user(&t.db, "user_owner");
        let other = user(&t.db, "user_other");
        let a = job(t, &owner, "a");
        pause();
        job(t, &owner, "b");
        pause();
        job(t, &owner, "c");
        job(t, &other, "someone else's");
        assert_eq!(names(t, &owner), ["c", "b", "a"]);

        pause();
        let changes = JobInfoChanges { description: Some("touched".into()), ..Default::default() };
        jobprep_job_infos::update(&t.db, &owner, a.id, &changes).unwrap();
        assert_eq!(names(t, &owner), ["a", "c", "b"]);

        let listed = jobprep_job_infos::list_for_user(&t.db, &owner).unwrap();
        assert!(listed.value.windows(2).all(|w| w[0].updated_at >= w[1].updated_at));
        assert!(listed.value.iter().all(|j| j.user_id == owner));
        let tags: Vec<String> = listed.tags.iter().map(|tag| tag.to_string()).collect();
        assert_eq!(tags, ["user:user_owner:jobInfos"]);
    }

    fn update_changes_only_the_given_fields_and_refreshes_updated_at(t) {
        let owner = user(&t.db, "user_owner");
        let key = jobprep_job_infos::insert(&t.db, &owner, &new_job("Backend").with_title("Title")).unwrap();
        t.sink.take();
        let before = stored(t, key.id, &owner);

        pause();
        let rename = JobInfoChanges { name: Some("Platform".into()), ..Default::default() };
        let returned = jobprep_job_infos::update(&t.db, &owner, key.id, &rename).unwrap();
        assert_eq!(returned, key);
        assert_eq!(t.sink.take_sorted(), job_tags(&key));
        let renamed = stored(t, key.id, &owner);
        assert_eq!(renamed.name, "Platform");
        assert_eq!(renamed.title.as_deref(), Some("Title"), "None leaves the title unchanged");
        assert_eq!(renamed.description, before.description);
        assert_eq!(renamed.experience_level, before.experience_level);
        assert_eq!(renamed.created_at, before.created_at, "createdAt never changes");
        assert!(renamed.updated_at > before.updated_at, "updatedAt is refreshed");

        pause();
        let clear = JobInfoChanges { title: Some(None), ..Default::default() };
        jobprep_job_infos::update(&t.db, &owner, key.id, &clear).unwrap();
        let cleared = stored(t, key.id, &owner);
        assert_eq!(cleared.title, None, "Some(None) sets NULL");
        assert_eq!(cleared.name, "Platform");
        assert!(cleared.updated_at > renamed.updated_at);

        let everything = JobInfoChanges {
            title: Some(Some("New title".into())),
            name: Some("SRE".into()),
            experience_level: Some(ExperienceLevel::Junior),
            description: Some("On call".into()),
        };
        jobprep_job_infos::update(&t.db, &owner, key.id, &everything).unwrap();
        let all = stored(t, key.id, &owner);
        assert_eq!(
            (all.title.as_deref(), all.name.as_str(), all.experience_level, all.description.as_str()),
            (Some("New title"), "SRE", ExperienceLevel::Junior, "On call")
        );
        assert_eq!(all.created_at, before.created_at);
    }

    fn a_change_of_no_field_is_refused_and_changes_nothing(t) {
        // It would only move updatedAt and invalidate caches.
        let owner = user(&t.db, "user_owner");
        let key = job(t, &owner, "Backend");
        let before = stored(t, key.id, &owner);
        pause();
        let refused = jobprep_job_infos::update(&t.db, &owner, key.id, &JobInfoChanges::default());
        assert_eq!(refused_field(&refused), Some("changes"));
        assert_eq!(stored(t, key.id, &owner), before);
        assert!(t.sink.take_sorted().is_empty());
    }

    fn user_has_any_follows_inserts_and_deletes(t) {
        let owner = user(&t.db, "user_owner");
        let other = user(&t.db, "user_other");
        let has_any = |id: &UserId| jobprep_job_infos::user_has_any(&t.db, id).unwrap();
        assert!(!has_any(&owner).value);
        let key = job(t, &owner, "Backend");
        let cached = has_any(&owner);
        assert!(cached.value);
        let tags: Vec<String> = cached.tags.iter().map(|tag| tag.to_string()).collect();
        assert_eq!(tags, ["user:user_owner:jobInfos"]);
        assert!(!has_any(&other).value, "another user's job info does not count");
        jobprep_job_infos::delete(&t.db, &owner, key.id).unwrap();
        assert!(!has_any(&owner).value);
    }

    fn delete_cascades_to_interviews_and_questions_and_reports_their_tags(t) {
        let owner = user(&t.db, "user_owner");
        let doomed = job(t, &owner, "doomed");
        let kept = job(t, &owner, "kept");
        let (interviews, questions) = children(t, &owner, doomed.id);
        let (kept_interviews, kept_questions) = children(t, &owner, kept.id);

        let removed = jobprep_job_infos::delete(&t.db, &owner, doomed.id).unwrap();
        assert_eq!(removed.key, doomed);
        assert_eq!(
            removed.interviews.iter().cloned().collect::<HashSet<_>>(),
            interviews.iter().cloned().collect::<HashSet<_>>()
        );
        assert_eq!(
            removed.questions.iter().cloned().collect::<HashSet<_>>(),
            questions.iter().cloned().collect::<HashSet<_>>()
        );

        let batches = t.sink.take();
        assert_eq!(batches.len(), 1, "one batch, after commit");
        let reported = tag_set(batches.concat().into_iter().map(|tag| tag.to_string()));
        let mut expected = job_tags(&doomed);
        expected.extend(interviews.iter().flat_map(interview_tags));
        expected.extend(questions.iter().flat_map(question_tags));
        assert_eq!(reported, tag_set(expected));

        assert_not_found(jobprep_job_infos::get(&t.db, &owner, doomed.id), Entity::JobInfo);
        for i in &interviews {
            assert_not_found(jobprep_interviews::get(&t.db, &owner, i.id), Entity::Interview);
        }
        for q in &questions {
            assert_not_found(jobprep_questions::get(&t.db, &owner, q.id), Entity::Question);
        }
        assert!(jobprep_questions::list_for_job_info(&t.db, &owner, doomed.id).unwrap().value.is_empty());
        // The other job info keeps its children.
        assert_eq!(names(t, &owner), ["kept"]);
        for i in &kept_interviews {
            assert!(jobprep_interviews::get(&t.db, &owner, i.id).is_ok());
        }
        assert_eq!(jobprep_questions::count_for_user(&t.db, &owner).unwrap().value, kept_questions.len() as i64);

        // Deleting again finds nothing and reports nothing.
        assert_not_found(jobprep_job_infos::delete(&t.db, &owner, doomed.id), Entity::JobInfo);
        assert!(t.sink.take().is_empty());
    }

    fn insert_for_a_missing_user_is_user_not_found(t) {
        let ghost = UserId::new("user_ghost").unwrap();
        assert_not_found(jobprep_job_infos::insert(&t.db, &ghost, &new_job("Backend")), Entity::User);
        assert!(t.sink.take().is_empty());
        assert!(jobprep_job_infos::list_for_user(&t.db, &ghost).unwrap().value.is_empty());
    }

    fn another_user_can_neither_see_nor_change_nor_delete_a_job_info(t) {
        let owner = user(&t.db, "user_owner");
        let stranger = user(&t.db, "user_stranger");
        let key = jobprep_job_infos::insert(&t.db, &owner, &new_job("Backend").with_title("Mine")).unwrap();
        let (interviews, questions) = children(t, &owner, key.id);
        t.sink.take();
        let before = stored(t, key.id, &owner);

        assert_not_found(jobprep_job_infos::get(&t.db, &stranger, key.id), Entity::JobInfo);
        let changes = JobInfoChanges {
            title: Some(None),
            name: Some("Stolen".into()),
            experience_level: Some(ExperienceLevel::Junior),
            description: Some("Stolen".into()),
        };
        assert_not_found(jobprep_job_infos::update(&t.db, &stranger, key.id, &changes), Entity::JobInfo);
        assert_not_found(jobprep_job_infos::delete(&t.db, &stranger, key.id), Entity::JobInfo);
        assert!(jobprep_job_infos::list_for_user(&t.db, &stranger).unwrap().value.is_empty());
        assert!(!jobprep_job_infos::user_has_any(&t.db, &stranger).unwrap().value);

        assert!(t.sink.take().is_empty(), "no tags for refused writes");
        assert_eq!(stored(t, key.id, &owner), before, "the row is unchanged");
        for i in &interviews {
            assert!(jobprep_interviews::get(&t.db, &owner, i.id).is_ok(), "children survive");
        }
        assert_eq!(jobprep_questions::list_for_job_info(&t.db, &owner, key.id).unwrap().value.len(), questions.len());
    }

    fn invalid_new_job_infos_are_refused_naming_the_field_and_write_nothing(t) {
        let owner = user(&t.db, "user_owner");
        let cases: Vec<(NewJobInfo, &str)> = vec![
            (NewJobInfo { name: String::new(), ..new_job("x") }, "name"),
            (NewJobInfo { name: " \t ".into(), ..new_job("x") }, "name"),
            (NewJobInfo { name: "a\0b".into(), ..new_job("x") }, "name"),
            (NewJobInfo { description: String::new(), ..new_job("x") }, "description"),
            (NewJobInfo { description: "a\0b".into(), ..new_job("x") }, "description"),
            (new_job("x").with_title("  "), "title"),
            (new_job("x").with_title(""), "title"),
            (new_job("x").with_title("a\0b"), "title"),
        ];
        for (new, field) in cases {
            assert_eq!(refused_field(&jobprep_job_infos::insert(&t.db, &owner, &new)), Some(field), "{new:?}");
        }
        assert!(!jobprep_job_infos::user_has_any(&t.db, &owner).unwrap().value, "nothing written");
        assert!(t.sink.take().is_empty());
    }

    fn invalid_changes_are_refused_naming_the_field_and_change_nothing(t) {
        let owner = user(&t.db, "user_owner");
        let key = job(t, &owner, "Backend");
        let before = stored(t, key.id, &owner);
        let cases: Vec<(JobInfoChanges, &str)> = vec![
            (JobInfoChanges { name: Some(String::new()), ..Default::default() }, "name"),
            (JobInfoChanges { name: Some("a\0".into()), ..Default::default() }, "name"),
            (JobInfoChanges { description: Some("   ".into()), ..Default::default() }, "description"),
            (JobInfoChanges { title: Some(Some("  ".into())), ..Default::default() }, "title"),
            (JobInfoChanges { title: Some(Some("\0".into())), ..Default::default() }, "title"),
        ];
        for (changes, field) in cases {
            assert_eq!(refused_field(&jobprep_job_infos::update(&t.db, &owner, key.id, &changes)), Some(field), "{changes:?}");
        }
        assert_eq!(stored(t, key.id, &owner), before);
        assert!(t.sink.take().is_empty());
    }

    fn text_with_quotes_semicolons_comments_and_unicode_round_trips(t) {
        let owner = user(&t.db, "user_o'brien; --");
        let tricky = r#"'; DROP TABLE job_info; -- "quoted" \ % _ 日本語 🚀 Ünïcödé"#;
        let new = NewJobInfo::new(format!("name {tricky}"), ExperienceLevel::Senior, format!("desc {tricky}\nline two"))
            .with_title(format!("title {tricky}"));
        let key = jobprep_job_infos::insert(&t.db, &owner, &new).unwrap();
        let row = stored(t, key.id, &owner);
        assert_eq!(row.user_id.as_str(), "user_o'brien; --");
        assert_eq!(row.name, new.name);
        assert_eq!(row.description, new.description);
        assert_eq!(row.title, new.title);

        let changes = JobInfoChanges { name: Some(format!("renamed {tricky}")), ..Default::default() };
        jobprep_job_infos::update(&t.db, &owner, key.id, &changes).unwrap();
        assert_eq!(stored(t, key.id, &owner).name, format!("renamed {tricky}"));
        assert_eq!(jobprep_job_infos::list_for_user(&t.db, &owner).unwrap().value.len(), 1);
    }

    fn a_rolled_back_transaction_writes_and_reports_nothing(t) {
        let owner = user(&t.db, "user_owner");
        let existing = job(t, &owner, "existing");
        let before = stored(t, existing.id, &owner);
        let outcome: jobprep_repo::Result<()> = t.db.transaction(|tx| {
            let inserted = jobprep_job_infos::insert(tx, &owner, &new_job("in tx"))?;
            let changes = JobInfoChanges { name: Some("changed in tx".into()), ..Default::default() };
            jobprep_job_infos::update(tx, &owner, existing.id, &changes)?;
            jobprep_job_infos::delete(tx, &owner, inserted.id)?;
            jobprep_job_infos::insert(tx, &owner, &new_job("also in tx"))?;
            assert_eq!(jobprep_job_infos::list_for_user(tx, &owner)?.value.len(), 2, "visible inside");
            Err(Error::Config("roll back".into()))
        });
        assert!(matches!(outcome, Err(Error::Config(_))), "{outcome:?}");
        assert!(t.sink.take().is_empty());
        assert_eq!(names(t, &owner), ["existing"]);
        assert_eq!(stored(t, existing.id, &owner), before);
    }

    fn a_refused_insert_inside_a_transaction_leaves_it_usable(t) {
        let owner = user(&t.db, "user_owner");
        let ghost = UserId::new("user_ghost").unwrap();
        let kept = t.db.transaction(|tx| {
            let refused = jobprep_job_infos::insert(tx, &ghost, &new_job("refused"));
            assert!(matches!(refused, Err(Error::NotFound { entity: Entity::User })), "{refused:?}");
            // The caller handled the error; the transaction goes on, on both backends.
            jobprep_job_infos::insert(tx, &owner, &new_job("kept"))
        })
        .unwrap();
        assert_eq!(names(t, &owner), ["kept"]);
        assert_eq!(t.sink.take_sorted(), job_tags(&kept));
    }

    fn a_committed_transaction_reports_all_tags_once_after_commit(t) {
        let owner = user(&t.db, "user_owner");
        let (first, second) = t.db.transaction(|tx| {
            let first = jobprep_job_infos::insert(tx, &owner, &new_job("first"))?;
            let second = jobprep_job_infos::insert(tx, &owner, &new_job("second"))?;
            let changes = JobInfoChanges { title: Some(Some("t".into())), ..Default::default() };
            jobprep_job_infos::update(tx, &owner, first.id, &changes)?;
            assert!(t.sink.take().is_empty(), "nothing is reported before COMMIT");
            Ok((first, second))
        })
        .unwrap();
        let batches = t.sink.take();
        assert_eq!(batches.len(), 1, "{batches:?}");
        let mut reported: Vec<String> = batches[0].iter().map(|tag| tag.to_string()).collect();
        reported.sort();
        assert_eq!(reported, tag_set(job_tags(&first).into_iter().chain(job_tags(&second))), "each tag once");
        assert_eq!(stored(t, first.id, &owner).title.as_deref(), Some("t"));
    }

    fn a_job_info_serializes_with_camel_case_names(t) {
        let owner = user(&t.db, "user_json");
        let key = jobprep_job_infos::insert(&t.db, &owner, &new_job("Backend").with_title("T")).unwrap();
        let row = stored(t, key.id, &owner);
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["id"], key.id.to_string());
        assert_eq!(json["userId"], "user_json");
        assert_eq!(json["experienceLevel"], "mid-level");
        assert_eq!(json["title"], "T");
        assert_eq!(json["name"], "Backend");
        assert_eq!(json["description"], "Description of Backend");
        assert!(json["createdAt"].is_string(), "{json}");
        assert!(json["updatedAt"].is_string(), "{json}");
        let keys: BTreeSet<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["id", "title", "name", "experienceLevel", "description", "userId", "createdAt", "updatedAt"])
        );
        let key_json = serde_json::to_value(&key).unwrap();
        assert_eq!(key_json, serde_json::json!({ "id": key.id.to_string(), "userId": "user_json" }));
        // And the timestamps read back from JSON are the row's.
        let back: JobInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, row);
    }
}
