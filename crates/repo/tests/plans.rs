//! The reads that list or count for a user use indexes: with 100,000 job infos on
//! PostgreSQL, EXPLAIN the exact SQL jobprep sends (captured from its query
//! instrumentation) and require index scans, no sequential scan of a big table, and
//! index-only scans for the plan quotas' counts.
#![cfg(feature = "tracing")]
#![allow(clippy::unwrap_used)]

#[path = "support/logs.rs"]
mod logs;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use jobprep_repo::{interviews, job_infos, questions, Backend, Db, Executor, JobInfoId, UserId};
use jobprep_testing::TestDb;
use logs::logs_of;

/// The SQL of the statements `f` runs, in order.
fn statements_of(f: impl FnOnce()) -> Vec<String> {
    let text = logs_of(f);
    text.lines()
        .filter_map(|line| line.split_once(" sql=").map(|(_, sql)| sql.to_owned()))
        .collect()
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

fn plan(conn: &mut PgConnection, sql: &str, args: &str) -> String {
    conn.batch_execute("DEALLOCATE ALL").unwrap();
    conn.batch_execute(&format!("PREPARE q AS {sql}")).unwrap();
    let lines: Vec<PlanLine> = diesel::sql_query(format!("EXPLAIN EXECUTE q({args})"))
        .load(conn)
        .unwrap();
    lines
        .into_iter()
        .map(|l| l.line)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn postgres_user_scoped_lists_and_counts_use_indexes_at_100k_job_infos() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let mut conn = PgConnection::establish(&t.url).unwrap();
    conn.batch_execute(
        r#"
        INSERT INTO users (id, name, email)
            SELECT 'user_' || n, 'User ' || n, 'user' || n || '@example.com' FROM generate_series(1, 1000) n;
        INSERT INTO job_info (name, "experienceLevel", description, "userId")
            SELECT 'Job ' || n, 'senior', 'Seeded', 'user_' || (n % 1000 + 1) FROM generate_series(1, 100000) n;
        INSERT INTO interviews ("jobInfoId", duration, "humeChatId")
            SELECT id, '00:10:00', 'chat_' || id FROM job_info;
        INSERT INTO questions ("jobInfoId", text, difficulty)
            SELECT id, 'Question', 'easy' FROM job_info;
        "#,
    )
    .unwrap();
    // A statement of its own: VACUUM refuses to run in a multi-statement batch.
    conn.batch_execute("VACUUM ANALYZE").unwrap();
    let db = Db::connect(&t.url).unwrap();
    let user = UserId::new("user_42").unwrap();
    let job: JobInfoId = db.read(|c| job_infos::list_for_user(c, &user)).unwrap()[0].id;

    let reads = statements_of(|| {
        db.read(|c| job_infos::list_for_user(c, &user)).unwrap();
        db.read(|c| job_infos::user_has_any(c, &user)).unwrap();
        db.read(|c| interviews::count_for_user(c, &user)).unwrap();
        db.read(|c| questions::count_for_user(c, &user)).unwrap();
        db.read(|c| interviews::list_for_job_info(c, &user, job))
            .unwrap();
        db.read(|c| questions::list_for_job_info(c, &user, job))
            .unwrap();
    });
    assert_eq!(reads.len(), 6, "{reads:#?}");
    let by_user = "'user_42'";
    let by_job = format!("'{job}', 'user_42'");
    for (sql, args) in [
        (&reads[0], by_user.to_owned()),
        (&reads[1], by_user.to_owned()),
        (&reads[2], by_user.to_owned()),
        (&reads[3], by_user.to_owned()),
        (&reads[4], by_job.clone()),
        (&reads[5], by_job.clone()),
    ] {
        let plan = plan(&mut conn, sql, &args);
        assert!(plan.contains("Index"), "no index used:\n{sql}\n{plan}");
        if sql.to_lowercase().contains("count(") {
            // The plan quotas' counts read indexes only (migrations 000005 and 000006)
            // on a vacuumed table, as autovacuum keeps it: every table they scan.
            let scans: Vec<&str> = plan.lines().filter(|l| l.contains(" Scan ")).collect();
            assert!(
                scans.len() >= 2 && scans.iter().all(|l| l.contains("Index Only Scan")),
                "a count that reads the table:\n{sql}\n{plan}"
            );
        }
        for table in ["job_info", "interviews", "questions"] {
            assert!(
                !plan.contains(&format!("Seq Scan on {table}")),
                "sequential scan:\n{sql}\n{plan}"
            );
        }
    }
}
