//! Bad input, by property tests: no panic, `InvalidInput` naming the field (or
//! `Config` for URLs); valid text with SQL meta-characters, on both backends, stored
//! and read back verbatim.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use jobprep_interviews::{InterviewChanges, InterviewId, NewInterview};
use jobprep_job_infos::{ExperienceLevel, JobInfoChanges, JobInfoId, NewJobInfo};
use jobprep_questions::{NewQuestion, QuestionChanges, QuestionDifficulty, QuestionId};
use jobprep_repo::{Db, DbConfig, Entity, Error, UserId};
use jobprep_testing::{assert_not_found, backend_tests, job_form as new_job, refused_field, user};
use jobprep_users::NewUser;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

/// Fragments that break naive escaping or validation.
const NASTY: &[&str] = &[
    "'",
    "\"",
    ";",
    "--",
    "/*",
    "*/",
    "\\",
    "\\'",
    "\0",
    "%",
    "_",
    "$1",
    "?",
    ":name",
    "' OR '1'='1",
    "'); DROP TABLE users; --",
    "\"; DELETE FROM job_info; /*",
    "E'\\x00'",
    "😀",
    "🦀",
    "👩‍💻",
    "é",
    "e\u{301}",
    "中文",
    "\u{202e}",
    "\u{feff}",
    "\u{200b}",
    "\u{10ffff}",
    " ",
    "\u{a0}",
    "\n",
    "\r\n",
    "\t",
    "@",
    ".",
    ":",
];

fn fragment() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(NASTY).prop_map(str::to_owned),
        2 => "[a-zA-Z0-9]{1,6}",
        1 => any::<char>().prop_map(String::from),
    ]
    .boxed()
}

/// Arbitrary strings: nasty fragments, arbitrary unicode, empty, blank, lengths around
/// the 255 and 1000 character limits, and very long ones.
fn any_text() -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::collection::vec(fragment(), 0..12).prop_map(|parts| parts.concat()),
        3 => any::<String>(),
        1 => Just(String::new()),
        1 => "[ \t\n\u{a0}\u{3000}]{1,4}",
        1 => (fragment(), 250usize..260).prop_map(|(part, n)| {
            let part = if part.is_empty() { "x".to_owned() } else { part };
            part.chars().cycle().take(n).collect()
        }),
        1 => (fragment(), 995usize..1005).prop_map(|(part, n)| {
            let part = if part.is_empty() { "y".to_owned() } else { part };
            part.chars().cycle().take(n).collect()
        }),
        1 => (fragment(), 20_000usize..70_000).prop_map(|(part, n)| {
            let part = if part.is_empty() { "z".to_owned() } else { part };
            part.chars().cycle().take(n).collect()
        }),
    ]
    .boxed()
}

/// The documented contract of required text: non-blank, at most `max` characters (as
/// PostgreSQL counts them), no NUL.
fn required_ok(text: &str, max: usize) -> bool {
    !text.trim().is_empty() && !text.contains('\0') && text.chars().count() <= max
}

/// `HH:MM:SS`, hours 2 to 6 digits, minutes and seconds 00 to 59.
fn duration_ok(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    let digits = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    let below_60 = |p: &str| p.len() == 2 && digits(p) && p.parse::<u32>().is_ok_and(|n| n < 60);
    parts.len() == 3
        && (2..=6).contains(&parts[0].len())
        && digits(parts[0])
        && below_60(parts[1])
        && below_60(parts[2])
}

fn durations() -> BoxedStrategy<String> {
    prop_oneof![
        2 => any_text(),
        2 => "[0-9]{0,7}:[0-9]{0,3}:[0-9]{0,3}",
        1 => "[0-9]{2}:[0-6][0-9]:[0-6][0-9]",
        1 => "[0-9 +-]{1,3}:[0-9]{2}:[0-9]{2}(:[0-9]{2})?",
    ]
    .boxed()
}

fn uuid_like() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any_text(),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).hyphenated().to_string()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string()),
        1 => any::<u128>().prop_map(|n| format!(" {} ", uuid::Uuid::from_u128(n).urn())),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).braced().to_string().to_uppercase()),
        1 => (any::<u128>(), 0usize..36).prop_map(|(n, cut)| uuid::Uuid::from_u128(n).to_string()[..cut].to_owned()),
        1 => (any::<u128>(), fragment()).prop_map(|(n, f)| format!("{}{f}", uuid::Uuid::from_u128(n))),
    ]
    .boxed()
}

fn labels() -> BoxedStrategy<String> {
    let known = ["junior", "mid-level", "senior", "easy", "medium", "hard"];
    prop_oneof![
        2 => any_text(),
        2 => proptest::sample::select(known.to_vec()).prop_map(str::to_owned),
        1 => (proptest::sample::select(known.to_vec()), fragment())
            .prop_map(|(label, f)| format!("{label}{f}")),
        1 => proptest::sample::select(known.to_vec()).prop_map(str::to_uppercase),
        1 => proptest::sample::select(known.to_vec()).prop_map(|l| format!(" {l}")),
    ]
    .boxed()
}

/// The `jobprep_*` URL options.
const OPTIONS: &[&str] = &[
    "pool_max_size",
    "pool_min_idle",
    "pool_timeout_secs",
    "pool_idle_timeout_secs",
    "pool_max_lifetime_secs",
    "pooler_safe",
    "max_replica_lag_ms",
];

fn urls() -> BoxedStrategy<String> {
    let schemes = [
        "postgres://",
        "postgresql://",
        "sqlite://",
        "sqlite:",
        "mysql://",
        "postgres:/",
        "://",
        "",
    ];
    prop_oneof![
        2 => any_text(),
        2 => (proptest::sample::select(schemes.to_vec()), any_text())
            .prop_map(|(scheme, rest)| format!("{scheme}{rest}")),
        1 => (any_text(), any_text())
            .prop_map(|(key, value)| format!("postgres://u:pw@h/db?jobprep_{key}={value}")),
        1 => (proptest::sample::select(OPTIONS.to_vec()), any_text())
            .prop_map(|(key, value)| format!("postgres://u:pw@h/db?a=b&jobprep_{key}={value}&c")),
        1 => (any_text(), any_text())
            .prop_map(|(path, query)| format!("sqlite://{path}?{query}")),
    ]
    .boxed()
}

fn pure_config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Picks which one field of a form gets the arbitrary value; the others stay valid.
fn one_field(fields: usize) -> impl Strategy<Value = (usize, String)> {
    (0..fields, any_text())
}

proptest! {
    #![proptest_config(pure_config())]

    #[test]
    fn user_ids_accept_exactly_the_documented_text(text in any_text()) {
        let result = UserId::new(text.clone());
        match refused_field(&result) {
            None => {
                prop_assert!(required_ok(&text, 255), "{text:?} was accepted");
                let id = result.unwrap();
                prop_assert_eq!(id.as_str(), text.as_str());
            }
            Some(field) => {
                prop_assert_eq!(field, "userId");
                prop_assert!(!required_ok(&text, 255), "{text:?} was refused");
            }
        }
        // FromStr and JSON agree with the constructor.
        prop_assert_eq!(UserId::from_str(&text).ok(), UserId::new(text.clone()).ok());
        let json = serde_json::to_string(&text).unwrap();
        prop_assert_eq!(serde_json::from_str::<UserId>(&json).ok(), UserId::new(text.clone()).ok());
    }

    #[test]
    fn uuid_ids_parse_uuids_and_refuse_the_rest_naming_the_field(text in uuid_like()) {
        let expected = uuid::Uuid::parse_str(text.trim()).ok();
        let job = JobInfoId::from_str(&text);
        let interview = InterviewId::from_str(&text);
        let question = QuestionId::from_str(&text);
        prop_assert_eq!(refused_field(&job), expected.is_none().then_some("jobInfoId"));
        prop_assert_eq!(refused_field(&interview), expected.is_none().then_some("interviewId"));
        prop_assert_eq!(refused_field(&question), expected.is_none().then_some("questionId"));
        if let Some(uuid) = expected {
            let job = job.unwrap();
            prop_assert_eq!(job.as_uuid(), uuid);
            prop_assert_eq!(JobInfoId::from_str(&job.to_string()).unwrap(), job);
            prop_assert_eq!(interview.unwrap().as_uuid(), uuid);
            prop_assert_eq!(question.unwrap().as_uuid(), uuid);
        }
    }

    #[test]
    fn enum_labels_parse_exactly_and_refuse_the_rest_naming_the_field(text in labels()) {
        let level = ExperienceLevel::from_str(&text);
        let known_level = ExperienceLevel::ALL.iter().find(|l| l.as_str() == text);
        prop_assert_eq!(refused_field(&level), known_level.is_none().then_some("experienceLevel"));
        prop_assert_eq!(level.ok(), known_level.copied());
        let difficulty = QuestionDifficulty::from_str(&text);
        let known_difficulty = QuestionDifficulty::ALL.iter().find(|d| d.as_str() == text);
        prop_assert_eq!(refused_field(&difficulty), known_difficulty.is_none().then_some("difficulty"));
        prop_assert_eq!(difficulty.ok(), known_difficulty.copied());
    }

    #[test]
    fn new_user_validation_names_the_bad_field((which, text) in one_field(3)) {
        let id = UserId::new("user_prop").unwrap();
        let mut form = NewUser::new(id, "Valid Name", "valid@example.com");
        let (field, ok) = match which {
            0 => { form.name = text.clone(); ("name", required_ok(&text, 255)) }
            1 => {
                form.email = text.clone();
                // Not the whole rule, but what any accepted email must satisfy.
                let plausible = required_ok(&text, 255)
                    && text.matches('@').count() == 1
                    && !text.starts_with('@')
                    && !text.chars().any(char::is_whitespace);
                let result = form.validate();
                if result.is_ok() {
                    prop_assert!(plausible, "accepted email {text:?}");
                }
                ("email", result.is_ok())
            }
            _ => { form.image_url = Some(text.clone()); ("imageUrl", required_ok(&text, 1000)) }
        };
        let result = form.validate();
        prop_assert_eq!(refused_field(&result), (!ok).then_some(field), "{:?}", text);
    }

    #[test]
    fn new_job_info_validation_names_the_bad_field((which, text) in one_field(3)) {
        let mut form = new_job("Valid");
        let field = match which {
            0 => { form.name = text.clone(); "name" }
            1 => { form.description = text.clone(); "description" }
            _ => { form.title = Some(text.clone()); "title" }
        };
        let ok = required_ok(&text, usize::MAX);
        prop_assert_eq!(refused_field(&form.validate()), (!ok).then_some(field), "{:?}", text);

        let mut changes = JobInfoChanges::default();
        match which {
            0 => changes.name = Some(text.clone()),
            1 => changes.description = Some(text.clone()),
            _ => changes.title = Some(Some(text.clone())),
        }
        prop_assert_eq!(refused_field(&changes.validate()), (!ok).then_some(field), "{:?}", text);
        let untitle = JobInfoChanges { title: Some(None), ..Default::default() };
        prop_assert!(untitle.validate().is_ok());
    }

    #[test]
    fn interview_validation_names_the_bad_field(duration in durations(), text in any_text(), which in 0..3usize) {
        let mut form = NewInterview::new();
        let mut changes = InterviewChanges::default();
        let (field, ok) = match which {
            0 => {
                form.duration = duration.clone();
                changes.duration = Some(duration.clone());
                ("duration", duration_ok(&duration))
            }
            1 => {
                form.hume_chat_id = Some(text.clone());
                changes.hume_chat_id = Some(Some(text.clone()));
                ("humeChatId", required_ok(&text, usize::MAX))
            }
            _ => {
                changes.feedback = Some(Some(text.clone()));
                ("feedback", required_ok(&text, usize::MAX))
            }
        };
        if which < 2 {
            prop_assert_eq!(refused_field(&form.validate()), (!ok).then_some(field), "{:?} {:?}", duration, text);
        }
        prop_assert_eq!(refused_field(&changes.validate()), (!ok).then_some(field), "{:?} {:?}", duration, text);
    }

    #[test]
    fn question_validation_names_the_bad_field(text in any_text()) {
        let ok = required_ok(&text, usize::MAX);
        let form = NewQuestion::new(text.clone(), QuestionDifficulty::Easy);
        prop_assert_eq!(refused_field(&form.validate()), (!ok).then_some("text"));
        let changes = QuestionChanges { text: Some(text.clone()), difficulty: None };
        prop_assert_eq!(refused_field(&changes.validate()), (!ok).then_some("text"));
    }

    #[test]
    fn forms_from_json_never_panic_and_keep_the_text_for_validation(
        text in any_text(),
        label in labels(),
        raw in any_text(),
    ) {
        // Arbitrary bytes as JSON: an error, never a panic.
        let _ = serde_json::from_str::<NewJobInfo>(&raw);
        let _ = serde_json::from_str::<InterviewChanges>(&raw);
        let _ = serde_json::from_str::<NewUser>(&raw);
        // Well-formed JSON with arbitrary values: the text arrives unchanged (validation
        // is the write's job); an unknown enum label is refused.
        let job = serde_json::from_value::<NewJobInfo>(serde_json::json!({
            "name": text, "description": text, "title": text, "experienceLevel": label,
        }));
        let known = ExperienceLevel::from_str(&label).is_ok();
        prop_assert_eq!(job.is_ok(), known, "{:?}", label);
        if let Ok(job) = job {
            prop_assert_eq!(&job.name, &text);
            prop_assert_eq!(job.validate().is_ok(), required_ok(&text, usize::MAX));
        }
        let question = serde_json::from_value::<NewQuestion>(serde_json::json!({
            "text": text, "difficulty": label,
        }));
        prop_assert_eq!(question.is_ok(), QuestionDifficulty::from_str(&label).is_ok());
        let changes = serde_json::from_value::<InterviewChanges>(serde_json::json!({
            "duration": text, "humeChatId": null, "feedback": text,
        }))
        .unwrap();
        prop_assert_eq!(&changes.hume_chat_id, &Some(None));
        prop_assert_eq!(changes.feedback.as_ref().and_then(Option::as_deref), Some(text.as_str()));
        prop_assert_eq!(refused_field(&changes.validate()), (!duration_ok(&text)).then_some("duration"));
    }

    #[test]
    fn url_parsing_never_panics_and_refuses_with_a_configuration_error(url in urls()) {
        match DbConfig::parse(&url) {
            Ok(config) => {
                // Printing works, whatever the URL held.
                let _ = format!("{config:?} {}", config.url);
            }
            Err(error) => prop_assert!(matches!(error, Error::Config(_)), "{error:?}"),
        }
        // Building a handle opens nothing, so garbage never reaches a driver here.
        match Db::connect(&url) {
            Ok(db) => {
                let _ = format!("{db:?}");
                prop_assert_eq!(db.pool_state().connections, 0);
            }
            Err(error) => prop_assert!(matches!(error, Error::Config(_)), "{error:?}"),
        }
        prop_assert_eq!(DbConfig::parse(&url).is_ok(), Db::connect(&url).is_ok());
    }
}

#[test]
fn known_bad_urls_are_configuration_errors() {
    for url in [
        "",
        "   ",
        "mysql://root@localhost/db",
        "postgres://u@h/db\0",
        "sqlite://",
        "sqlite::memory:",
        "sqlite://a.db?mode=ro",
        "postgres://h/db?jobprep_pool_max_size=lots",
        "postgres://h/db?jobprep_pool_max_size=0",
        "postgres://h/db?jobprep_pool_max_size=99999999999",
        "postgres://h/db?jobprep_pool_min_idle=5&jobprep_pool_max_size=2",
        "postgres://h/db?jobprep_pool_timeout_secs=0",
        "postgres://h/db?jobprep_pooler_safe=maybe",
        "postgres://h/db?jobprep_=1",
    ] {
        let error = Db::connect(url).unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{url:?}: {error:?}");
        assert!(!error.to_string().is_empty());
    }
}

/// Valid text made of SQL meta-characters, quotes, escapes and unicode.
fn tricky_text(max_chars: usize) -> BoxedStrategy<String> {
    proptest::collection::vec(fragment(), 1..10)
        .prop_map(move |parts| {
            let text: String = parts.concat().replace('\0', "\\0");
            let text: String = text.chars().take(max_chars).collect();
            if text.trim().is_empty() {
                format!("x{text}").chars().take(max_chars).collect()
            } else {
                text
            }
        })
        .boxed()
}

fn db_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

backend_tests! {
    fn sql_metacharacters_and_unicode_are_stored_and_read_back_verbatim(t) {
        let case = AtomicUsize::new(0);
        let mut runner = TestRunner::new(db_config(48));
        let strategy = (tricky_text(200), tricky_text(255), tricky_text(1000));
        runner.run(&strategy, |(a, b, c)| {
            let n = case.fetch_add(1, Ordering::Relaxed);
            // Users: the id, name and image URL as given; the email's local part too.
            let id = UserId::new(format!("{a}#{n}")).unwrap();
            let local: String = a.chars().filter(|ch| !ch.is_whitespace() && *ch != '@').collect();
            let form = NewUser {
                id: id.clone(),
                name: b.clone(),
                email: format!("{local}.{n}@example.com"),
                image_url: Some(c.clone()),
                created_at: None,
                updated_at: None,
            };
            prop_assert!(form.validate().is_ok(), "{form:?}");
            let written = jobprep_users::upsert(&t.db, &form).unwrap();
            let read = jobprep_users::get(&t.db, &id).unwrap().value;
            prop_assert_eq!(&written, &read);
            prop_assert_eq!((read.id.as_str(), read.name.as_str(), read.email.as_str()), (id.as_str(), b.as_str(), form.email.as_str()));
            prop_assert_eq!(read.image_url.as_deref(), Some(c.as_str()));

            // Job infos: insert, update, list.
            let job = jobprep_job_infos::insert(&t.db, &id, &NewJobInfo::new(a.clone(), ExperienceLevel::Junior, c.clone()).with_title(b.clone())).unwrap();
            let row = jobprep_job_infos::get(&t.db, &id, job.id).unwrap().value;
            prop_assert_eq!((row.name.as_str(), row.title.as_deref(), row.description.as_str()), (a.as_str(), Some(b.as_str()), c.as_str()));
            jobprep_job_infos::update(&t.db, &id, job.id, &JobInfoChanges {
                name: Some(c.clone()),
                title: Some(Some(a.clone())),
                description: Some(b.clone()),
                experience_level: None,
            }).unwrap();
            let listed = jobprep_job_infos::list_for_user(&t.db, &id).unwrap().value;
            prop_assert_eq!(listed.len(), 1);
            prop_assert_eq!((listed[0].name.as_str(), listed[0].title.as_deref(), listed[0].description.as_str()), (c.as_str(), Some(a.as_str()), b.as_str()));

            // Interviews: chat id on create, feedback on update.
            let interview = jobprep_interviews::insert(&t.db, &id, job.id, &NewInterview {
                duration: "00:01:02".into(),
                hume_chat_id: Some(b.clone()),
            }).unwrap();
            jobprep_interviews::update(&t.db, &id, interview.id, &InterviewChanges {
                feedback: Some(Some(c.clone())),
                ..Default::default()
            }).unwrap();
            let got = jobprep_interviews::get(&t.db, &id, interview.id).unwrap().value;
            prop_assert_eq!(got.interview.hume_chat_id.as_deref(), Some(b.as_str()));
            prop_assert_eq!(got.interview.feedback.as_deref(), Some(c.as_str()));
            prop_assert_eq!(got.job_info.title.as_deref(), Some(a.as_str()));
            let listed = jobprep_interviews::list_for_job_info(&t.db, &id, job.id).unwrap().value;
            prop_assert_eq!(listed.len(), 1);
            prop_assert_eq!(&listed[0], &got.interview);

            // Questions: one insert, one bulk insert (the hand-written SQL), one update.
            let single = jobprep_questions::insert(&t.db, &id, job.id, &NewQuestion::new(a.clone(), QuestionDifficulty::Hard)).unwrap();
            let bulk = jobprep_questions::insert_many(&t.db, &id, job.id, &[
                NewQuestion::new(b.clone(), QuestionDifficulty::Easy),
                NewQuestion::new(c.clone(), QuestionDifficulty::Medium),
            ]).unwrap();
            let texts: BTreeMap<QuestionId, String> = jobprep_questions::list_for_job_info(&t.db, &id, job.id)
                .unwrap().value.into_iter().map(|q| (q.id, q.text)).collect();
            let expected: BTreeMap<QuestionId, String> = [(single.id, a.clone()), (bulk[0].id, b.clone()), (bulk[1].id, c.clone())].into_iter().collect();
            prop_assert_eq!(texts, expected);
            jobprep_questions::update(&t.db, &id, bulk[0].id, &QuestionChanges { text: Some(c.clone()), difficulty: None }).unwrap();
            prop_assert_eq!(jobprep_questions::get(&t.db, &id, bulk[0].id).unwrap().value.question.text, c.clone());
            Ok(())
        }).unwrap();
    }

    fn arbitrary_input_through_the_use_cases_is_stored_verbatim_or_refused_writing_nothing(t) {
        let owner = user(&t.db, "user_arbitrary");
        let job = jobprep_job_infos::insert(&t.db, &owner, &new_job("Target")).unwrap();
        let mut runner = TestRunner::new(db_config(64));
        runner.run(&(any_text(), durations(), 0..4usize), |(text, duration, which)| {
            let jobs_before = jobprep_job_infos::list_for_user(&t.db, &owner).unwrap().value.len();
            let questions_before = jobprep_questions::count_for_user(&t.db, &owner).unwrap().value;
            match which {
                0 => {
                    let form = new_job("Named").with_title(text.clone());
                    let result = jobprep_job_infos::insert(&t.db, &owner, &form);
                    prop_assert_eq!(refused_field(&result), (!required_ok(&text, usize::MAX)).then_some("title"));
                    if let Ok(key) = result {
                        let row = jobprep_job_infos::get(&t.db, &owner, key.id).unwrap().value;
                        prop_assert_eq!(row.title.as_deref(), Some(text.as_str()));
                        jobprep_job_infos::delete(&t.db, &owner, key.id).unwrap();
                    }
                }
                1 => {
                    // One bad question in a batch refuses the whole batch.
                    let batch = [
                        NewQuestion::new("fine", QuestionDifficulty::Easy),
                        NewQuestion::new(text.clone(), QuestionDifficulty::Hard),
                    ];
                    let result = jobprep_questions::insert_many(&t.db, &owner, job.id, &batch);
                    prop_assert_eq!(refused_field(&result), (!required_ok(&text, usize::MAX)).then_some("text"));
                    if let Ok(keys) = result {
                        let row = jobprep_questions::get(&t.db, &owner, keys[1].id).unwrap().value;
                        prop_assert_eq!(row.question.text, text.clone());
                        for key in keys {
                            jobprep_questions::delete(&t.db, &owner, key.id).unwrap();
                        }
                    }
                }
                2 => {
                    let form = NewInterview { duration: duration.clone(), hume_chat_id: None };
                    let result = jobprep_interviews::insert(&t.db, &owner, job.id, &form);
                    prop_assert_eq!(refused_field(&result), (!duration_ok(&duration)).then_some("duration"));
                    if let Ok(key) = result {
                        let row = jobprep_interviews::get(&t.db, &owner, key.id).unwrap().value;
                        prop_assert_eq!(row.interview.duration, duration.clone());
                        jobprep_interviews::delete(&t.db, &owner, key.id).unwrap();
                    }
                }
                _ => {
                    let id = UserId::new("user_arbitrary_email").unwrap();
                    let result = jobprep_users::upsert(&t.db, &NewUser::new(id.clone(), "Someone", text.clone()));
                    match refused_field(&result) {
                        Some(field) => {
                            prop_assert_eq!(field, "email");
                            assert_not_found(jobprep_users::get(&t.db, &id), Entity::User);
                        }
                        None => {
                            prop_assert_eq!(jobprep_users::get(&t.db, &id).unwrap().value.email, text.clone());
                            jobprep_users::delete(&t.db, &id).unwrap();
                        }
                    }
                }
            }
            // Refused or cleaned up: nothing is left behind.
            prop_assert_eq!(jobprep_job_infos::list_for_user(&t.db, &owner).unwrap().value.len(), jobs_before);
            prop_assert_eq!(jobprep_questions::count_for_user(&t.db, &owner).unwrap().value, questions_before);
            Ok(())
        }).unwrap();
        assert_eq!(jobprep_interviews::count_for_user(&t.db, &owner).unwrap().value, 0);
    }

    fn very_long_text_is_stored_verbatim(t) {
        let owner = user(&t.db, "user_long");
        let long: String = "é'; -- /* 😀 \\ ".chars().cycle().take(500_000).collect();
        let job = jobprep_job_infos::insert(&t.db, &owner, &NewJobInfo::new("Long", ExperienceLevel::MidLevel, long.clone())).unwrap();
        assert_eq!(jobprep_job_infos::get(&t.db, &owner, job.id).unwrap().value.description, long);
        let keys = jobprep_questions::insert_many(&t.db, &owner, job.id, &[NewQuestion::new(long.clone(), QuestionDifficulty::Hard)]).unwrap();
        assert_eq!(jobprep_questions::get(&t.db, &owner, keys[0].id).unwrap().value.question.text, long);
        // The user columns are varchar(255) on PostgreSQL: 255 characters fit, even wide ones.
        let wide: String = "😀".repeat(255);
        let id = UserId::new(wide.clone()).unwrap();
        jobprep_users::upsert(&t.db, &NewUser::new(id.clone(), wide.clone(), format!("{}@example.com", "é".repeat(200)))).unwrap();
        assert_eq!(jobprep_users::get(&t.db, &id).unwrap().value.name, wide);
        let too_long = UserId::new("😀".repeat(256));
        assert_eq!(refused_field(&too_long), Some("userId"));
    }

    fn forms_refuse_unknown_fields_and_nulls_and_a_change_of_nothing_writes_nothing(t) {
        // A misspelt field and a null on a column that cannot be NULL are mistakes, not
        // "leave it": deserialization fails and names the field.
        for (json, named) in [
            (r#"{"experience_level":"senior"}"#, "experience_level"),
            (r#"{"name":"A","unknown":1}"#, "unknown"),
        ] {
            let error = serde_json::from_str::<JobInfoChanges>(json).unwrap_err().to_string();
            assert!(error.contains(&format!("unknown field `{named}`")), "{error}");
        }
        for json in [r#"{"name":null}"#, r#"{"experienceLevel":null}"#, r#"{"description":null}"#] {
            assert!(serde_json::from_str::<JobInfoChanges>(json).is_err(), "{json}");
        }
        assert!(serde_json::from_str::<QuestionChanges>(r#"{"text":null}"#).is_err());
        assert!(serde_json::from_str::<QuestionChanges>(r#"{"difficulty":null}"#).is_err());
        assert!(serde_json::from_str::<InterviewChanges>(r#"{"duration":null}"#).is_err());
        assert!(serde_json::from_str::<InterviewChanges>(r#"{"humeChatID":"x"}"#).is_err());
        assert!(serde_json::from_str::<NewJobInfo>(r#"{"name":"A","experienceLevel":"senior","description":"d","titel":"x"}"#).is_err());
        assert!(serde_json::from_str::<NewQuestion>(r#"{"text":"q","difficulty":"easy","level":1}"#).is_err());
        assert!(serde_json::from_str::<NewInterview>(r#"{"duration":"00:00:01","chatId":"x"}"#).is_err());
        assert!(serde_json::from_str::<NewUser>(r#"{"id":"user_1","name":"A","email":"a@example.com","role":"admin"}"#).is_err());
        // A null where the column can be NULL still clears it; a field left out is kept.
        let cleared: JobInfoChanges = serde_json::from_str(r#"{"title":null}"#).unwrap();
        assert_eq!(cleared.title, Some(None));
        assert_eq!(serde_json::from_str::<JobInfoChanges>(r#"{"name":"B"}"#).unwrap().description, None);

        // A change of nothing is refused before anything is written: updatedAt stays.
        let owner = user(&t.db, "user_nothing");
        let job = jobprep_job_infos::insert(&t.db, &owner, &new_job("Kept")).unwrap();
        let question = jobprep_questions::insert(&t.db, &owner, job.id, &NewQuestion::new("q", QuestionDifficulty::Easy)).unwrap();
        let interview = jobprep_interviews::insert(&t.db, &owner, job.id, &NewInterview::new()).unwrap();
        let before = jobprep_job_infos::get(&t.db, &owner, job.id).unwrap().value;
        let nothing: JobInfoChanges = serde_json::from_str("{}").unwrap();
        assert_eq!(refused_field(&jobprep_job_infos::update(&t.db, &owner, job.id, &nothing)), Some("changes"));
        assert_eq!(refused_field(&jobprep_questions::update(&t.db, &owner, question.id, &QuestionChanges::default())), Some("changes"));
        assert_eq!(refused_field(&jobprep_interviews::update(&t.db, &owner, interview.id, &InterviewChanges::default())), Some("changes"));
        assert_eq!(refused_field(&jobprep_interviews::update_within_quota(&t.db, &owner, interview.id, &InterviewChanges::default(), 5)), Some("changes"));
        assert_eq!(jobprep_job_infos::get(&t.db, &owner, job.id).unwrap().value, before);
    }
}
