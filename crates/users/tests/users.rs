//! The users use cases on both backends: upsert, get, delete with its cascade, the tags
//! each reports, input validation, and concurrent sign-ups.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use jobprep_interviews::{InterviewChanges, NewInterview};
use jobprep_job_infos::{ExperienceLevel, NewJobInfo};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::{ConstraintKind, Entity, Error, JobInfoId};
use jobprep_testing::backend_tests;
use jobprep_testing::{assert_not_found, pause, refused_field, tag_set, TestDb};
use jobprep_users::{NewUser, User, UserId};

fn uid(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

fn new_user(id: &str) -> NewUser {
    NewUser::new(
        uid(id),
        format!("Name of {id}"),
        format!("{id}@example.com"),
    )
}

/// Upserts a user and forgets the tags it reported.
fn user(t: &TestDb, id: &str) -> User {
    let row = jobprep_users::upsert(&t.db, &new_user(id)).unwrap();
    t.sink.take();
    row
}

/// The stored row.
fn stored(t: &TestDb, id: &UserId) -> User {
    jobprep_users::get(&t.db, id).unwrap().value
}

fn is_missing(t: &TestDb, id: &UserId) -> bool {
    matches!(
        jobprep_users::get(&t.db, id),
        Err(Error::NotFound {
            entity: Entity::User
        })
    )
}

fn user_tags(id: &UserId) -> Vec<String> {
    vec!["global:users".to_owned(), format!("id:{id}:users")]
}

/// A job info for `owner` with two interviews (one with a chat id) and two questions.
struct Owned {
    job: JobInfoId,
    interviews: Vec<jobprep_interviews::InterviewKey>,
    questions: Vec<jobprep_questions::QuestionKey>,
}

fn job_with_children(t: &TestDb, owner: &UserId, name: &str) -> Owned {
    let job = jobprep_job_infos::insert(
        &t.db,
        owner,
        &NewJobInfo::new(name, ExperienceLevel::Senior, "Builds things"),
    )
    .unwrap();
    let first = jobprep_interviews::insert(&t.db, owner, job.id, &NewInterview::new()).unwrap();
    let second = jobprep_interviews::insert(&t.db, owner, job.id, &NewInterview::new()).unwrap();
    let chat = InterviewChanges {
        hume_chat_id: Some(Some(format!("chat_{name}"))),
        ..Default::default()
    };
    jobprep_interviews::update(&t.db, owner, first.id, &chat).unwrap();
    let questions = jobprep_questions::insert_many(
        &t.db,
        owner,
        job.id,
        &[
            NewQuestion::new("What is ownership?", QuestionDifficulty::Easy),
            NewQuestion::new("Explain MVCC.", QuestionDifficulty::Hard),
        ],
    )
    .unwrap();
    t.sink.take();
    Owned {
        job: job.id,
        interviews: vec![first, second],
        questions,
    }
}

backend_tests! {
    fn upsert_creates_the_user_and_reports_its_tags(t) {
        let id = uid("user_new");
        let created = jobprep_users::upsert(
            &t.db,
            &new_user("user_new").with_image_url("https://img.example.com/a.png"),
        )
        .unwrap();
        assert_eq!(created.id, id);
        assert_eq!(created.name, "Name of user_new");
        assert_eq!(created.email, "user_new@example.com");
        assert_eq!(created.image_url.as_deref(), Some("https://img.example.com/a.png"));
        assert_eq!(created.created_at, created.updated_at, "createdAt == updatedAt on insert");
        assert_eq!(t.sink.take_sorted(), user_tags(&id));
        assert_eq!(stored(t, &id), created, "what upsert returns is what is stored");
    }

    fn get_returns_the_row_and_depends_on_its_id_tag(t) {
        let created = user(t, "user_get");
        let cached = jobprep_users::get(&t.db, &created.id).unwrap();
        assert_eq!(cached.value, created);
        let tags: Vec<&str> = cached.tags.iter().map(|tag| tag.as_str()).collect();
        assert_eq!(tags, ["id:user_get:users"]);
        assert!(t.sink.take().is_empty(), "reads report nothing");
    }

    fn get_of_a_missing_user_is_not_found(t) {
        assert!(is_missing(t, &uid("user_nobody")));
    }

    fn second_upsert_refreshes_profile_and_updated_at_but_never_created_at(t) {
        let first = user(t, "user_refresh");
        pause();
        let changed = NewUser::new(first.id.clone(), "Renamed", "renamed@example.com")
            .with_image_url("https://img.example.com/new.png");
        let second = jobprep_users::upsert(&t.db, &changed).unwrap();
        assert_eq!(second.name, "Renamed");
        assert_eq!(second.email, "renamed@example.com");
        assert_eq!(second.image_url.as_deref(), Some("https://img.example.com/new.png"));
        assert_eq!(second.created_at, first.created_at, "createdAt never changes");
        assert!(second.updated_at >= first.updated_at);
        assert!(second.updated_at > first.updated_at, "updatedAt is refreshed");
        assert_eq!(stored(t, &first.id), second);
        assert_eq!(t.sink.take_sorted(), user_tags(&first.id));

        // Upserting without an image clears it: the profile is replaced as a whole.
        pause();
        let third = jobprep_users::upsert(&t.db, &NewUser::new(first.id.clone(), "Renamed", "renamed@example.com")).unwrap();
        assert_eq!(third.image_url, None);
        assert_eq!(third.created_at, first.created_at);
        assert!(third.updated_at > second.updated_at);
    }

    fn email_of_another_user_is_a_conflict_and_changes_nothing(t) {
        let ada = user(t, "user_ada");
        let eve = user(t, "user_eve");

        // A new user taking Ada's email.
        let taken = jobprep_users::upsert(
            &t.db,
            &NewUser::new(uid("user_mallory"), "Mallory", ada.email.clone()),
        );
        match taken {
            Err(Error::Conflict { kind, constraint }) => {
                assert_eq!(kind, ConstraintKind::Unique);
                assert_eq!(constraint.as_deref(), Some("users_email_unique"));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(is_missing(t, &uid("user_mallory")));

        // An existing user switching to Ada's email.
        let switched = jobprep_users::upsert(
            &t.db,
            &NewUser::new(eve.id.clone(), "Eve Renamed", ada.email.clone()),
        );
        assert!(
            matches!(
                &switched,
                Err(Error::Conflict { constraint: Some(name), .. }) if name == "users_email_unique"
            ),
            "{switched:?}"
        );
        assert_eq!(stored(t, &ada.id), ada);
        assert_eq!(stored(t, &eve.id), eve, "Eve's row is unchanged");
        assert!(t.sink.take().is_empty(), "a failed write reports no tags");
    }

    fn delete_says_whether_a_row_went(t) {
        let gone = user(t, "user_gone");
        let removed = jobprep_users::delete(&t.db, &gone.id).expect("a row went");
        assert_eq!(removed.id, gone.id);
        assert!(removed.job_infos.is_empty() && removed.interviews.is_empty() && removed.questions.is_empty());
        assert_eq!(t.sink.take_sorted(), user_tags(&gone.id));
        assert!(is_missing(t, &gone.id));

        // A second delete finds nothing.
        assert_not_found(jobprep_users::delete(&t.db, &gone.id), Entity::User);
        assert!(t.sink.take().is_empty(), "deleting nothing reports nothing");
    }

    fn delete_cascades_to_everything_the_user_owns_and_reports_every_removed_row(t) {
        let owner = user(t, "user_owner").id;
        let other = user(t, "user_other").id;
        let first = job_with_children(t, &owner, "first");
        let second = job_with_children(t, &owner, "second");
        let kept = job_with_children(t, &other, "kept");

        let removed = jobprep_users::delete(&t.db, &owner).expect("the owner existed");

        let batches = t.sink.take();
        assert_eq!(batches.len(), 1, "one batch, after commit");
        let reported = tag_set(batches.concat().into_iter().map(|tag| tag.to_string()));
        let mut expected = user_tags(&owner);
        for owned in [&first, &second] {
            let j = owned.job;
            expected.extend([
                "global:jobInfos".to_owned(),
                format!("user:{owner}:jobInfos"),
                format!("id:{j}:jobInfos"),
            ]);
            for i in &owned.interviews {
                expected.extend([
                    "global:interviews".to_owned(),
                    format!("jobInfo:{j}:interviews"),
                    format!("id:{}:interviews", i.id),
                ]);
            }
            for q in &owned.questions {
                expected.extend([
                    "global:questions".to_owned(),
                    format!("jobInfo:{j}:questions"),
                    format!("id:{}:questions", q.id),
                ]);
            }
        }
        assert_eq!(reported, tag_set(expected));

        // What delete says it removed.
        assert_eq!(removed.id, owner);
        let jobs: HashSet<JobInfoId> = removed.job_infos.iter().map(|k| k.id).collect();
        assert_eq!(jobs, HashSet::from([first.job, second.job]));
        assert!(removed.job_infos.iter().all(|k| k.user_id == owner));
        let interviews: HashSet<_> = removed.interviews.iter().cloned().collect();
        let expected_interviews: HashSet<_> =
            first.interviews.iter().chain(&second.interviews).cloned().collect();
        assert_eq!(interviews, expected_interviews);
        let questions: HashSet<_> = removed.questions.iter().cloned().collect();
        let expected_questions: HashSet<_> =
            first.questions.iter().chain(&second.questions).cloned().collect();
        assert_eq!(questions, expected_questions);

        // The rows are gone: signing up again with the same id finds nothing of old.
        assert!(is_missing(t, &owner));
        user(t, "user_owner");
        assert!(!jobprep_job_infos::user_has_any(&t.db, &owner).unwrap().value);
        assert!(jobprep_job_infos::list_for_user(&t.db, &owner).unwrap().value.is_empty());
        assert_eq!(jobprep_interviews::count_for_user(&t.db, &owner).unwrap().value, 0);
        assert_eq!(jobprep_questions::count_for_user(&t.db, &owner).unwrap().value, 0);
        for i in first.interviews.iter().chain(&second.interviews) {
            assert!(matches!(
                jobprep_interviews::get(&t.db, &owner, i.id),
                Err(Error::NotFound { .. })
            ));
        }
        for q in first.questions.iter().chain(&second.questions) {
            assert!(matches!(
                jobprep_questions::get(&t.db, &owner, q.id),
                Err(Error::NotFound { .. })
            ));
        }

        // The other user's rows are untouched.
        assert!(jobprep_users::get(&t.db, &other).is_ok());
        assert_eq!(jobprep_job_infos::list_for_user(&t.db, &other).unwrap().value.len(), 1);
        assert_eq!(
            jobprep_questions::list_for_job_info(&t.db, &other, kept.job).unwrap().value.len(),
            2
        );
        assert_eq!(jobprep_interviews::count_for_user(&t.db, &other).unwrap().value, 1);
    }

    fn eight_threads_upserting_the_same_users_leave_one_row_each(t) {
        const THREADS: usize = 8;
        const USERS: usize = 25;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let db = t.db.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut errors = Vec::new();
                    for n in 0..USERS {
                        // Threads walk the set in different orders to collide more.
                        let n = (n + thread * 3) % USERS;
                        let id = UserId::new(format!("user_{n}")).unwrap();
                        let new = NewUser::new(id, format!("User {n} via {thread}"), format!("user{n}@example.com"));
                        if let Err(error) = jobprep_users::upsert(&db, &new) {
                            errors.push(format!("user_{n}: {error:?}"));
                        }
                    }
                    errors
                })
            })
            .collect();
        let errors: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        assert!(errors.is_empty(), "{errors:#?}");

        for n in 0..USERS {
            let row = stored(t, &uid(&format!("user_{n}")));
            assert_eq!(row.email, format!("user{n}@example.com"));
            assert!(row.name.starts_with(&format!("User {n} via ")), "{}", row.name);
            assert!(row.updated_at >= row.created_at);
            // Exactly one row: deleting it once removes it, a second time finds nothing.
            jobprep_users::delete(&t.db, &row.id).unwrap();
            assert_not_found(jobprep_users::delete(&t.db, &row.id), Entity::User);
        }
        let batches = t.sink.take();
        assert_eq!(batches.len(), THREADS * USERS + USERS, "one batch per committed write");
    }

    fn invalid_input_is_refused_naming_the_field_and_writes_nothing(t) {
        let id = uid("user_valid");
        let base = || NewUser::new(id.clone(), "Valid", "valid@example.com");
        let cases: Vec<(NewUser, &str)> = vec![
            (NewUser { name: String::new(), ..base() }, "name"),
            (NewUser { name: "   ".into(), ..base() }, "name"),
            (NewUser { name: "a".repeat(256), ..base() }, "name"),
            (NewUser { name: "nul\0byte".into(), ..base() }, "name"),
            (NewUser { email: "not-an-email".into(), ..base() }, "email"),
            (NewUser { email: String::new(), ..base() }, "email"),
            (NewUser { email: "a@b".into(), ..base() }, "email"),
            (NewUser { email: format!("{}@example.com", "a".repeat(244)), ..base() }, "email"),
            (NewUser { email: "nul\0@example.com".into(), ..base() }, "email"),
            (base().with_image_url(format!("https://x.co/{}", "a".repeat(990))), "imageUrl"),
            (base().with_image_url("https://x.co/\0"), "imageUrl"),
        ];
        for (new, field) in cases {
            assert_eq!(refused_field(&jobprep_users::upsert(&t.db, &new)), Some(field), "{new:?}");
        }
        assert!(is_missing(t, &id), "nothing was written");
        assert!(t.sink.take().is_empty());

        // Ids are checked when they are made.
        assert_eq!(refused_field(&UserId::new("a".repeat(256))), Some("userId"));
        assert_eq!(refused_field(&UserId::new("")), Some("userId"));
        assert_eq!(refused_field(&UserId::new("user\0x")), Some("userId"));

        // An invalid change to an existing user leaves it as it was.
        let before = user(t, "user_valid");
        let bad = NewUser { email: "nope".into(), ..base() };
        assert_eq!(refused_field(&jobprep_users::upsert(&t.db, &bad)), Some("email"));
        assert_eq!(stored(t, &id), before);
        assert!(t.sink.take().is_empty());
    }

    fn the_longest_allowed_values_are_stored(t) {
        // Limits count characters, as varchar(n) does: multi-byte text at the limit fits.
        let id = UserId::new("ü".repeat(255)).unwrap();
        let new = NewUser::new(id.clone(), "é".repeat(255), format!("{}@example.com", "a".repeat(243)))
            .with_image_url(format!("https://x.co/{}", "ß".repeat(987)));
        assert_eq!(new.email.chars().count(), 255);
        assert_eq!(new.image_url.as_ref().unwrap().chars().count(), 1000);
        let created = jobprep_users::upsert(&t.db, &new).unwrap();
        let row = stored(t, &id);
        assert_eq!(row, created);
        assert_eq!(row.name, new.name);
        assert_eq!(row.email, new.email);
        assert_eq!(row.image_url, new.image_url);
    }

    fn text_with_quotes_semicolons_comments_and_unicode_round_trips(t) {
        let id = uid("user_'; DROP TABLE users; --");
        let name = r#"O'Brien "Bobby"; DROP TABLE users; -- 日本語 🚀 Ünïcödé \ % _"#;
        let email = "o'brien+tag;--@exämple.com";
        let image = "https://img.example.com/a?b='c';d=--\"e\"&f=ü";
        let created = jobprep_users::upsert(&t.db, &NewUser::new(id.clone(), name, email).with_image_url(image)).unwrap();
        let row = stored(t, &id);
        assert_eq!(row, created);
        assert_eq!(row.id.as_str(), "user_'; DROP TABLE users; --");
        assert_eq!(row.name, name);
        assert_eq!(row.email, email);
        assert_eq!(row.image_url.as_deref(), Some(image));
        assert_eq!(t.sink.take_sorted(), user_tags(&id));
    }

    fn a_rolled_back_transaction_writes_and_reports_nothing(t) {
        let existing = user(t, "user_existing");
        let outcome: jobprep_repo::Result<()> = t.db.transaction(|tx| {
            jobprep_users::upsert(tx, &new_user("user_in_tx"))?;
            jobprep_users::upsert(tx, &NewUser::new(existing.id.clone(), "Changed", "changed@example.com"))?;
            // Inside the transaction the writes are visible.
            assert_eq!(jobprep_users::get(tx, &uid("user_in_tx"))?.value.name, "Name of user_in_tx");
            Err(Error::Config("roll back".into()))
        });
        assert!(matches!(outcome, Err(Error::Config(_))), "{outcome:?}");
        assert!(is_missing(t, &uid("user_in_tx")));
        assert_eq!(stored(t, &existing.id), existing);
        assert!(t.sink.take().is_empty());
    }

    fn a_conflicting_upsert_inside_a_transaction_leaves_it_usable(t) {
        let ada = user(t, "user_ada");
        t.db.transaction(|tx| {
            let taken = jobprep_users::upsert(tx, &NewUser::new(uid("user_eve"), "Eve", ada.email.clone()));
            assert!(matches!(taken, Err(Error::Conflict { .. })), "{taken:?}");
            // The caller handled the conflict; the transaction goes on, on both backends.
            jobprep_users::upsert(tx, &new_user("user_eve"))
        })
        .unwrap();
        assert_eq!(stored(t, &uid("user_eve")).email, "user_eve@example.com");
        assert_eq!(stored(t, &ada.id), ada);
        assert_eq!(t.sink.take_sorted(), user_tags(&uid("user_eve")));
    }

    fn a_committed_transaction_reports_all_tags_once_after_commit(t) {
        let a = uid("user_tx_a");
        let b = uid("user_tx_b");
        t.db.transaction(|tx| {
            jobprep_users::upsert(tx, &new_user("user_tx_a"))?;
            jobprep_users::upsert(tx, &new_user("user_tx_b"))?;
            jobprep_users::upsert(tx, &NewUser::new(a.clone(), "Again", "again@example.com"))?;
            assert!(t.sink.take().is_empty(), "nothing is reported before COMMIT");
            Ok(())
        })
        .unwrap();
        let batches = t.sink.take();
        assert_eq!(batches.len(), 1, "{batches:?}");
        let mut reported: Vec<String> = batches[0].iter().map(|tag| tag.to_string()).collect();
        reported.sort();
        let expected = tag_set(user_tags(&a).into_iter().chain(user_tags(&b)));
        assert_eq!(reported, expected, "each tag once");
        assert_eq!(stored(t, &a).name, "Again");
        assert!(jobprep_users::get(&t.db, &b).is_ok());
    }

    fn serialized_users_use_camel_case(t) {
        let row = jobprep_users::upsert(&t.db, &new_user("user_json").with_image_url("https://x.co/i.png")).unwrap();
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["id"], "user_json");
        assert_eq!(json["imageUrl"], "https://x.co/i.png");
        assert!(json["createdAt"].is_string() && json["updatedAt"].is_string(), "{json}");
        assert!(json.get("image_url").is_none() && json.get("created_at").is_none(), "{json}");
    }
}

/// A time the provider reports, with nanoseconds the database does not keep.
fn at(rfc3339: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

backend_tests! {
    fn provider_timestamps_are_stored_truncated_to_microseconds(t) {
        let id = uid("user_provider");
        let new = new_user("user_provider").with_provider_timestamps(at("2025-09-12T22:14:52.823456789Z"), at("2025-09-13T08:00:00.000000999Z"));
        let row = jobprep_users::upsert(&t.db, &new).unwrap();
        assert_eq!(row.created_at, at("2025-09-12T22:14:52.823456Z"));
        assert_eq!(row.updated_at, at("2025-09-13T08:00:00Z"));
        assert_eq!(stored(t, &id), row, "what upsert returns is what is stored");
        assert_eq!(t.sink.take_sorted(), user_tags(&id));
    }

    fn the_providers_created_at_replaces_the_stored_one_and_updated_at_never_goes_back(t) {
        // Signed up through jobprep first (createdAt = now), then the provider's event.
        let first = user(t, "user_provider");
        let new = |name: &str, created: &str, updated: &str| {
            NewUser::new(first.id.clone(), name, "p@example.com").with_provider_timestamps(at(created), at(updated))
        };
        let synced = jobprep_users::upsert(&t.db, &new("Synced", "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z")).unwrap();
        assert_eq!(synced.created_at, at("2025-01-01T00:00:00Z"), "the provider is the source of truth for createdAt");
        assert_eq!(synced.updated_at, first.updated_at, "an older updatedAt does not move it back");
        assert_eq!(synced.name, "Synced", "the profile is refreshed");

        // A newer event moves updatedAt forward; a late, older one leaves it.
        let newer = jobprep_users::upsert(&t.db, &new("Newer", "2025-01-01T00:00:00Z", "2999-01-01T00:00:00Z")).unwrap();
        assert_eq!(newer.updated_at, at("2999-01-01T00:00:00Z"));
        let late = jobprep_users::upsert(&t.db, &new("Late", "2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z")).unwrap();
        assert_eq!(late.updated_at, at("2999-01-01T00:00:00Z"));
        assert_eq!(late.created_at, at("2024-06-01T00:00:00Z"));
        assert!(late.updated_at >= late.created_at);

        // Without provider timestamps, createdAt stays and updatedAt still never goes back.
        let plain = jobprep_users::upsert(&t.db, &NewUser::new(first.id.clone(), "Plain", "p@example.com")).unwrap();
        assert_eq!(plain.created_at, at("2024-06-01T00:00:00Z"));
        assert_eq!(plain.updated_at, at("2999-01-01T00:00:00Z"));
        assert_eq!(stored(t, &first.id), plain);
    }

    fn a_new_user_with_provider_timestamps_can_be_created_before_jobprep_existed(t) {
        let row = jobprep_users::upsert(&t.db, &new_user("user_old").with_provider_timestamps(at("2001-02-03T04:05:06Z"), at("2001-02-03T04:05:06Z"))).unwrap();
        assert_eq!((row.created_at, row.updated_at), (at("2001-02-03T04:05:06Z"), at("2001-02-03T04:05:06Z")));
        // A later plain upsert refreshes updatedAt to now.
        let plain = jobprep_users::upsert(&t.db, &new_user("user_old")).unwrap();
        assert_eq!(plain.created_at, row.created_at);
        assert!(plain.updated_at > at("2020-01-01T00:00:00Z"));
    }

    fn inconsistent_provider_timestamps_are_refused_naming_the_field_and_write_nothing(t) {
        let base = || new_user("user_bad");
        let cases = [
            (base().with_provider_timestamps(at("2025-01-02T00:00:00Z"), at("2025-01-01T00:00:00Z")), "updatedAt"),
            (NewUser { created_at: Some(at("2025-01-01T00:00:00Z")), ..base() }, "updatedAt"),
            (NewUser { updated_at: Some(at("2025-01-01T00:00:00Z")), ..base() }, "createdAt"),
            (base().with_provider_timestamps(chrono::DateTime::<chrono::Utc>::MIN_UTC, at("2025-01-01T00:00:00Z")), "createdAt"),
            (base().with_provider_timestamps(at("2025-01-01T00:00:00Z"), chrono::DateTime::<chrono::Utc>::MAX_UTC), "updatedAt"),
            // Year 10000 would not keep SQLite's fixed-width text order.
            (base().with_provider_timestamps(at("2025-01-01T00:00:00Z"), chrono::DateTime::from_timestamp(253_402_300_800, 0).unwrap()), "updatedAt"),
        ];
        for (new, field) in cases {
            assert_eq!(refused_field(&jobprep_users::upsert(&t.db, &new)), Some(field), "{new:?}");
        }
        // Within one microsecond, updatedAt "before" createdAt is the same stored instant.
        let same = base().with_provider_timestamps(at("2025-01-01T00:00:00.000000900Z"), at("2025-01-01T00:00:00.000000100Z"));
        let row = jobprep_users::upsert(&t.db, &same).unwrap();
        assert_eq!(row.created_at, row.updated_at);
        assert_eq!(t.sink.take_sorted(), user_tags(&row.id), "only the accepted upsert reported");
        jobprep_users::delete(&t.db, &row.id).unwrap();
        let refused = base().with_provider_timestamps(at("2025-01-02T00:00:00Z"), at("2025-01-01T00:00:00Z"));
        assert_eq!(refused_field(&jobprep_users::upsert(&t.db, &refused)), Some("updatedAt"));
        assert!(is_missing(t, &uid("user_bad")), "a refused upsert writes nothing");
    }

    fn new_users_deserialize_with_or_without_provider_timestamps(t) {
        let plain: NewUser = serde_json::from_value(serde_json::json!({"id": "user_json", "name": "Ada", "email": "ada@example.com"})).unwrap();
        assert_eq!(plain, new_user_named("user_json", "Ada", "ada@example.com"));
        let with: NewUser = serde_json::from_value(serde_json::json!({
            "id": "user_json", "name": "Ada", "email": "ada@example.com",
            "createdAt": "2025-09-12T22:14:52.823Z", "updatedAt": "2025-09-12T22:14:53Z",
        }))
        .unwrap();
        assert_eq!(with.created_at, Some(at("2025-09-12T22:14:52.823Z")));
        let row = jobprep_users::upsert(&t.db, &with).unwrap();
        assert_eq!((row.created_at, row.updated_at), (at("2025-09-12T22:14:52.823Z"), at("2025-09-12T22:14:53Z")));
    }
}

fn new_user_named(id: &str, name: &str, email: &str) -> NewUser {
    NewUser::new(uid(id), name, email)
}
