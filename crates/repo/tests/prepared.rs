//! The hot writes are prepared once per connection and then only bound: the user
//! upsert and the updates, which diesel would parse again on every call (their text
//! may vary with the fields set; ours never does). PostgreSQL lists what a session
//! has prepared; the same statements serve SQLite, where the behaviour tests run.
#![allow(clippy::unwrap_used)]

use jobprep_repo::interviews::{InterviewChanges, NewInterview};
use jobprep_repo::job_infos::{JobInfoChanges, NewJobInfo};
use jobprep_repo::questions::{NewQuestion, QuestionChanges};
use jobprep_repo::{
    interviews, job_infos, questions, users, Backend, Connection, DbConfig, ExperienceLevel,
    QuestionDifficulty, UserId,
};
use jobprep_testing::TestDb;

fn prepared(conn: &mut Connection, prefix: &str) -> Vec<String> {
    conn.prepared_statements()
        .unwrap()
        .into_iter()
        .filter(|statement| statement.starts_with(prefix))
        .collect()
}

#[test]
fn postgres_the_hot_writes_are_prepared_once_per_connection() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let mut conn = Connection::establish(&DbConfig::parse(&t.url).unwrap()).unwrap();

    // Inserted twice and updated once: one statement serves all three.
    for (n, name) in ["Ada", "Ada L.", "Ada Lovelace"].into_iter().enumerate() {
        let id = UserId::new(format!("user_prepared_{}", n % 2)).unwrap();
        let email = format!("ada{}@example.com", n % 2);
        users::upsert(&mut conn, &users::NewUser::new(id, name, email)).unwrap();
    }
    assert_eq!(prepared(&mut conn, r#"INSERT INTO "users""#).len(), 1);
    let me = UserId::new("user_prepared_0").unwrap();
    assert_eq!(users::get(&mut conn, &me).unwrap().name, "Ada Lovelace");

    // Updates setting different fields share one statement per table.
    let job = job_infos::insert(
        &mut conn,
        &me,
        &NewJobInfo::new("SRE", ExperienceLevel::Junior, "On call"),
    )
    .unwrap();
    let job_changes = [
        JobInfoChanges {
            title: Some(Some("Staff SRE".into())),
            ..Default::default()
        },
        JobInfoChanges {
            name: Some("Platform".into()),
            ..Default::default()
        },
        JobInfoChanges {
            title: Some(None),
            experience_level: Some(ExperienceLevel::Senior),
            description: Some("Pager".into()),
            ..Default::default()
        },
    ];
    for changes in &job_changes {
        job_infos::update(&mut conn, &me, job.id, changes).unwrap();
    }
    assert_eq!(prepared(&mut conn, r#"UPDATE "job_info""#).len(), 1);
    let stored = job_infos::get(&mut conn, &me, job.id).unwrap();
    assert_eq!(
        (
            stored.title,
            stored.name.as_str(),
            stored.experience_level,
            stored.description.as_str()
        ),
        (None, "Platform", ExperienceLevel::Senior, "Pager"),
        "each change applied exactly its fields"
    );

    let interview = interviews::insert(&mut conn, &me, job.id, &NewInterview::new()).unwrap();
    for changes in [
        InterviewChanges {
            hume_chat_id: Some(Some("chat_1".into())),
            ..Default::default()
        },
        InterviewChanges {
            feedback: Some(Some("Good".into())),
            ..Default::default()
        },
        InterviewChanges {
            duration: Some("00:10:00".into()),
            hume_chat_id: Some(None),
            ..Default::default()
        },
    ] {
        interviews::update(&mut conn, &me, interview.id, &changes).unwrap();
    }
    assert_eq!(prepared(&mut conn, r#"UPDATE "interviews""#).len(), 1);
    let stored = interviews::get(&mut conn, &me, interview.id)
        .unwrap()
        .interview;
    assert_eq!(
        (
            stored.duration.as_str(),
            stored.hume_chat_id,
            stored.feedback.as_deref()
        ),
        ("00:10:00", None, Some("Good"))
    );

    let question = questions::insert(
        &mut conn,
        &me,
        job.id,
        &NewQuestion::new("Why?", QuestionDifficulty::Easy),
    )
    .unwrap();
    for changes in [
        QuestionChanges {
            text: Some("Why not?".into()),
            ..Default::default()
        },
        QuestionChanges {
            difficulty: Some(QuestionDifficulty::Hard),
            ..Default::default()
        },
    ] {
        questions::update(&mut conn, &me, question.id, &changes).unwrap();
    }
    assert_eq!(prepared(&mut conn, r#"UPDATE "questions""#).len(), 1);
    let stored = questions::get(&mut conn, &me, question.id)
        .unwrap()
        .question;
    assert_eq!(
        (stored.text.as_str(), stored.difficulty),
        ("Why not?", QuestionDifficulty::Hard)
    );

    // The owner filter is part of each statement: someone else's id changes nothing.
    let stranger = UserId::new("user_prepared_1").unwrap();
    let refused = questions::update(
        &mut conn,
        &stranger,
        question.id,
        &QuestionChanges {
            text: Some("Not yours".into()),
            ..Default::default()
        },
    );
    assert!(
        matches!(refused, Err(jobprep_repo::Error::NotFound { .. })),
        "{refused:?}"
    );
}
