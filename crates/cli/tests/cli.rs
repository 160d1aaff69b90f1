//! The `jobprep` binary, run as a user runs it, on both backends.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jobprep_testing::backend_tests;
use jobprep_testing::TestDb;
use serde_json::Value;
use support::jobprep;

mod support;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

backend_tests! {
    fn demo_walks_the_product_and_reports_tags(t) {
        let output = jobprep(&t.url, &["demo", "--json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        assert_eq!(text.trim().lines().count(), 1, "one JSON document");
        let report: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["backend"], t.backend().to_string());
        let steps = report["steps"].as_array().unwrap();
        let step = |name: &str| steps.iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(step("user signs up (upsert)")["tags"], serde_json::json!(["global:users", "id:user_demo_alice:users"]));
        let isolation = &step("second user tries Alice's ids")["result"];
        assert_eq!(isolation["jobInfos"], serde_json::json!([]));
        assert_eq!(isolation["aliceJobInfo"]["error"], "job info not found");
        assert_eq!(isolation["aliceQuestions"], serde_json::json!([]));
        let cascade = step("delete job info (cascade)");
        assert_eq!(cascade["result"]["questions"].as_array().unwrap().len(), 4);
        let tags: Vec<&str> = cascade["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert!(tags.contains(&"global:questions") && tags.contains(&"global:interviews"), "{tags:?}");
        assert_eq!(step("what is left for Alice")["result"]["questions"], 0);

        // The readable report, run a second time on the same database.
        let again = jobprep(&t.url, &["demo"]);
        assert!(again.status.success(), "{}", stderr(&again));
        assert!(stdout(&again).contains("cache tags: global:users, id:user_demo_alice:users"));
        assert!(stdout(&again).contains("migrations: up to date"));
    }

    fn operator_reads_print_json_or_exit_1_when_not_found(t) {
        let user = jobprep(&t.url, &["user", "get", "user_nobody"]);
        assert_eq!(user.status.code(), Some(1));
        assert_eq!(stderr(&user).trim(), "jobprep: user not found");
        assert!(stdout(&user).is_empty());

        assert!(jobprep(&t.url, &["demo"]).status.success());
        let found = jobprep(&t.url, &["user", "get", "user_demo_alice"]);
        assert!(found.status.success(), "{}", stderr(&found));
        let user: Value = serde_json::from_str(&stdout(&found)).unwrap();
        assert_eq!(user["email"], "alice@demo.jobprep.dev");
        assert!(user["imageUrl"].is_string() && user["createdAt"].is_string());

        let jobs = jobprep(&t.url, &["job-infos", "list", "--user", "user_demo_alice"]);
        assert!(jobs.status.success());
        assert_eq!(serde_json::from_str::<Value>(&stdout(&jobs)).unwrap(), serde_json::json!([]));

        let bad = jobprep(&t.url, &["questions", "list", "--job-info", "not-a-uuid", "--user", "u"]);
        assert_eq!(bad.status.code(), Some(1));
        assert!(stderr(&bad).starts_with("jobprep: invalid jobInfoId"), "{}", stderr(&bad));
    }

    fn scoped_lists_agree_with_the_library_for_a_missing_or_foreign_job_info(t) {
        let owner = jobprep_testing::user(&t.db, "user_list_owner");
        jobprep_testing::user(&t.db, "user_list_other");
        let job = jobprep_job_infos::insert(&t.db, &owner, &jobprep_testing::job_form("Backend")).unwrap().id;
        let held = jobprep_interviews::NewInterview::new().with_hume_chat_id("chat_1");
        jobprep_interviews::insert(&t.db, &owner, job, &held).unwrap();
        jobprep_interviews::insert(&t.db, &owner, job, &jobprep_interviews::NewInterview::new()).unwrap();
        let job = job.to_string();
        let list = |args: &[&str]| {
            let output = jobprep(&t.url, args);
            assert!(output.status.success(), "{args:?}: {}", stderr(&output));
            serde_json::from_str::<Value>(&stdout(&output)).unwrap().as_array().unwrap().len()
        };
        assert_eq!(list(&["interviews", "list", "--job-info", &job, "--user", "user_list_owner"]), 1, "only the held one");
        assert_eq!(list(&["interviews", "list", "--job-info", &job, "--user", "user_list_owner", "--all"]), 2);
        let missing = "0192f0c1-8d2e-7c3a-9b4f-1e2d3c4b5a69";
        for entity in ["interviews", "questions"] {
            // Someone else's job info and a missing one list nothing, as the library does.
            for (job_info, user) in [(job.as_str(), "user_list_other"), (missing, "user_list_owner")] {
                assert_eq!(list(&[entity, "list", "--job-info", job_info, "--user", user]), 0, "{entity} {job_info} {user}");
            }
        }
        assert_eq!(list(&["interviews", "list", "--job-info", &job, "--user", "user_list_other", "--all"]), 0);
    }

    fn cache_feed_status_exits_0_only_when_nothing_is_missing(t) {
        let status = |expected_code: i32| {
            let output = jobprep(&t.url, &["cache-feed", "status"]);
            assert_eq!(output.status.code(), Some(expected_code), "{}{}", stdout(&output), stderr(&output));
            stdout(&output).trim().to_string()
        };
        if t.backend() == jobprep_repo::Backend::Sqlite {
            assert!(status(0).starts_with("in process (SQLite: nothing to install"));
            return;
        }
        assert_eq!(status(1), "absent");
        // The listener's refusal names the state in words too.
        let listen = jobprep(&t.url, &["cache-feed", "listen"]);
        assert_eq!(listen.status.code(), Some(1));
        assert_eq!(stderr(&listen).trim(), "jobprep: configuration error: the cache feed is not installed in this database (absent): run `jobprep cache-feed install`");
        assert!(jobprep(&t.url, &["cache-feed", "install"]).status.success());
        assert_eq!(status(0), "installed");
        t.execute_sql("ALTER TABLE questions DISABLE TRIGGER jobprep_cache_feed_insert").unwrap();
        assert_eq!(status(1), "partial: missing questions.jobprep_cache_feed_insert");
        assert!(jobprep(&t.url, &["cache-feed", "install"]).status.success());
        assert_eq!(status(0), "installed");
        assert!(jobprep(&t.url, &["cache-feed", "remove"]).status.success());
        assert_eq!(status(1), "absent");
    }

    fn cache_feed_listen_says_at_once_that_it_listens(t) {
        if t.backend() == jobprep_repo::Backend::Postgres {
            assert!(jobprep(&t.url, &["cache-feed", "install"]).status.success());
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobprep"))
            .args(["--database-url", &t.url, "cache-feed", "listen"])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let (sent, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stderr_pipe).read_line(&mut line);
            let _ = sent.send(line);
        });
        // No write happens: the line must come without any event.
        let line = received.recv_timeout(Duration::from_secs(20));
        child.kill().unwrap();
        child.wait().unwrap();
        let line = line.expect("a first line on stderr before any event");
        assert!(line.starts_with("jobprep: listening to the cache feed of "), "{line}");
        assert!(line.contains("Ctrl-C stops"), "{line}");
    }

    fn migrate_check_on_an_empty_database_says_what_migrate_creates(t) {
        let fresh = TestDb::empty(t.backend()).unwrap();
        let check = jobprep(&fresh.url, &["migrate", "check"]);
        assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
        let report = stdout(&check);
        assert_eq!(report.lines().count(), 1, "{report}");
        assert!(report.starts_with("empty database: `jobprep migrate` creates the app's schema and jobprep's indexes"), "{report}");
        assert!(report.trim_end().ends_with("(jobprep migrate repairs this)"), "{report}");
        assert_eq!(stderr(&check).trim(), "jobprep: 1 difference(s) from what jobprep expects");
        assert!(jobprep(&fresh.url, &["migrate"]).status.success());
        let again = jobprep(&fresh.url, &["migrate", "check"]);
        assert!(again.status.success(), "{}", stdout(&again));
    }

    fn migrate_check_on_a_partly_migrated_database_marks_what_pending_migrations_create(t) {
        for _ in 0..3 {
            assert!(stdout(&jobprep(&t.url, &["migrate", "revert"])).starts_with("reverted "));
        }
        let check = jobprep(&t.url, &["migrate", "check"]);
        assert_eq!(check.status.code(), Some(1));
        let report = stdout(&check);
        // 000007 installs PostgreSQL's four functions; on SQLite it is empty.
        let functions = if t.backend() == jobprep_repo::Backend::Postgres { 4 } else { 0 };
        assert_eq!(
            report.lines().count(),
            3 + 2 + functions,
            "3 pending migrations, the indexes of 000005 and 000006, 000007's functions: {report}"
        );
        assert!(report.lines().all(|line| line.ends_with("(jobprep migrate repairs this)")), "{report}");
        assert!(jobprep(&t.url, &["migrate"]).status.success());
        assert!(jobprep(&t.url, &["migrate", "check"]).status.success());
    }

    fn bench_existing_measures_the_postgres_database_as_it_is(t) {
        let args = ["bench", "--existing", "--ops", "get_job_info,list_job_infos", "--seconds", "0.2", "--json"];
        if t.backend() == jobprep_repo::Backend::Sqlite {
            let refused = jobprep(&t.url, &args);
            assert_eq!(refused.status.code(), Some(1));
            assert!(stderr(&refused).contains("--existing measures a PostgreSQL database"), "{}", stderr(&refused));
            return;
        }
        let empty = jobprep(&t.url, &args);
        assert_eq!(empty.status.code(), Some(1));
        assert!(stderr(&empty).contains("needs a database that holds users and job infos"), "{}", stderr(&empty));

        let owner = jobprep_testing::user(&t.db, "user_bench_existing");
        jobprep_job_infos::insert(&t.db, &owner, &jobprep_testing::job_form("Backend")).unwrap();
        let before = jobprep(&t.url, &["job-infos", "list", "--user", owner.as_str()]);
        assert!(before.status.success(), "{}", stderr(&before));
        assert!(stdout(&before).contains("Backend"), "{}", stdout(&before));
        let output = jobprep(&t.url, &args);
        assert!(output.status.success(), "{}", stderr(&output));
        let report: Value = serde_json::from_str(stdout(&output).trim().lines().last().unwrap()).unwrap();
        assert_eq!(report["users"], 1, "{report}");
        for op in ["get_job_info", "list_job_infos"] {
            assert!(report["ops"][op]["dal_ops"].as_f64().unwrap() > 0.0, "{report}");
            assert!(report["ops"][op]["raw_ops"].as_f64().unwrap() > 0.0, "{report}");
        }
        // Measured in place: the database's rows are still there, unchanged by reads.
        assert_eq!(stdout(&jobprep(&t.url, &["job-infos", "list", "--user", owner.as_str()])), stdout(&before));
    }

    fn migrate_status_and_revert(t) {
        let fresh = TestDb::empty(t.backend()).unwrap();
        let applied = jobprep(&fresh.url, &["migrate"]);
        assert!(applied.status.success(), "{}", stderr(&applied));
        assert_eq!(stdout(&applied).matches("applied ").count(), 7, "{}", stdout(&applied));
        assert_eq!(stdout(&jobprep(&fresh.url, &["migrate"])).trim(), "no pending migrations");
        let status = stdout(&jobprep(&fresh.url, &["migrate", "status"]));
        assert_eq!(status.matches("applied ").count(), 7, "{status}");
        let reverted = jobprep(&fresh.url, &["migrate", "revert"]);
        assert!(stdout(&reverted).starts_with("reverted 2026-12-03-000007_jobprep_functions"), "{}", stdout(&reverted));
        let status = stdout(&jobprep(&fresh.url, &["migrate", "status"]));
        assert!(status.contains("pending  2026-12-03-000007"), "{status}");
    }

    fn migrate_revert_stops_at_the_baseline_and_drop_app_schema_is_named(t) {
        for _ in 0..6 {
            assert!(stdout(&jobprep(&t.url, &["migrate", "revert"])).starts_with("reverted "));
        }
        let refused = jobprep(&t.url, &["migrate", "revert"]);
        assert_eq!(refused.status.code(), Some(1));
        assert_eq!(stderr(&refused).lines().count(), 1, "{}", stderr(&refused));
        assert!(stderr(&refused).contains("refusing to revert the baseline"), "{}", stderr(&refused));
        assert!(stderr(&refused).contains("jobprep migrate drop-app-schema"), "{}", stderr(&refused));
        let status = stdout(&jobprep(&t.url, &["migrate", "status"]));
        assert!(status.starts_with("applied  2026-11-25-000001_existing_app_schema"), "{status}");

        assert!(jobprep(&t.url, &["demo"]).status.success(), "rows in the app's tables");
        let drop = jobprep(&t.url, &["migrate", "drop-app-schema"]);
        assert_eq!(drop.status.code(), Some(1));
        assert!(stderr(&drop).contains("refusing to drop the original app's schema"), "{}", stderr(&drop));
        assert!(stderr(&drop).contains("table users holds rows"), "{}", stderr(&drop));
        assert!(stdout(&jobprep(&t.url, &["user", "get", "user_demo_alice"])).contains("alice@demo.jobprep.dev"));
    }

    fn migrate_check_names_each_drift_and_exits_1_until_migrate_repairs_it(t) {
        let ok = jobprep(&t.url, &["migrate", "check"]);
        assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
        assert_eq!(stdout(&ok).trim(), "the database matches what jobprep expects");
        for _ in 0..2 {
            assert!(stdout(&jobprep(&t.url, &["migrate", "revert"])).starts_with("reverted "));
        }
        let drift = jobprep(&t.url, &["migrate", "check"]);
        assert_eq!(drift.status.code(), Some(1));
        let report = stdout(&drift);
        assert!(report.contains("pending migration: 2026-11-26-000006_interviews_job_info_chat_idx  (jobprep migrate repairs this)"), "{report}");
        assert!(report.contains("expected, not found: index "), "{report}");
        assert!(report.contains("interviews_jobInfoId_humeChatId_idx"), "{report}");
        // 000007: PostgreSQL's four functions, nothing on SQLite.
        let differences = if t.backend() == jobprep_repo::Backend::Postgres {
            assert!(report.contains("expected, not found: function jobprep.delete_user: "), "{report}");
            3 + 4
        } else {
            3
        };
        assert_eq!(
            stderr(&drift).trim(),
            format!("jobprep: {differences} difference(s) from what jobprep expects")
        );
        assert!(jobprep(&t.url, &["migrate"]).status.success());
        assert!(jobprep(&t.url, &["migrate", "check"]).status.success());
    }
}

#[test]
fn bad_urls_fail_with_one_line_and_no_password() {
    let output = jobprep("mysql://root:hunter2@localhost/db", &["migrate"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("unsupported database URL scheme `mysql`"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));

    // Nothing listens on port 1: refused at once, not after the pool's 5 s.
    let started = Instant::now();
    let unreachable = jobprep("postgres://app:hunter2@127.0.0.1:1/db", &["migrate"]);
    let took = started.elapsed();
    assert_eq!(unreachable.status.code(), Some(1));
    let err = stderr(&unreachable);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("jobprep: database unavailable: connection to server at"),
        "{err}"
    );
    assert!(
        err.contains("Connection refused; Is the server running"),
        "{err}"
    );
    assert!(!err.contains('\t') && !err.contains("timed out"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(took < Duration::from_secs(3), "waited {took:?}");

    // An option is named as it was written.
    let option = jobprep(
        "postgres://app@127.0.0.1:1/db?jobprep_pool_max_size=abc",
        &["migrate"],
    );
    assert_eq!(
        stderr(&option).trim(),
        "jobprep: configuration error: jobprep_pool_max_size: `abc` is not a whole number"
    );
    let env_only = Command::new(env!("CARGO_BIN_EXE_jobprep"))
        .arg("migrate")
        .env("DATABASE_URL", "postgres://app@127.0.0.1:1/db")
        .env("JOBPREP_POOL_MAX_SIZE", "abc")
        .output()
        .unwrap();
    assert_eq!(
        stderr(&env_only).trim(),
        "jobprep: configuration error: JOBPREP_POOL_MAX_SIZE: `abc` is not a whole number"
    );

    // SQLite creates a file, never its folder: the error names both.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing/db.sqlite3");
    let sqlite = jobprep(&path.display().to_string(), &["migrate"]);
    assert_eq!(sqlite.status.code(), Some(1));
    let err = stderr(&sqlite);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{}", path.display())), "{err}");
    assert!(
        err.contains(&format!(
            "(the folder {} does not exist)",
            dir.path().join("missing").display()
        )),
        "{err}"
    );
}

#[test]
fn usage_and_help_document_every_argument() {
    let help = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_jobprep"))
            .args(args)
            .arg("--help")
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        stdout(&output)
    };
    let interviews = help(&["interviews", "list"]);
    assert!(
        interviews.contains("The interviews with a chat id"),
        "{interviews}"
    );
    assert!(
        interviews.contains("--all")
            && interviews.contains("Every interview, with a chat id or not"),
        "{interviews}"
    );
    for (args, line) in [
        (
            &["interviews", "list"][..],
            "--job-info <JOB_INFO> The job info's id",
        ),
        (
            &["questions", "list"][..],
            "--user <USER> The id of the user who owns the job info",
        ),
        (&["job-infos", "list"][..], "--user <USER> The user's id"),
        (&["user", "get"][..], "<ID> The user's id"),
    ] {
        let text = help(args);
        let squeezed = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(squeezed.contains(line), "{args:?}: {text}");
    }
    let status = help(&["cache-feed", "status"]);
    assert!(status.contains("Exits 0 only when installed"), "{status}");

    // With DATABASE_URL set, a usage error does not list --database-url as if required.
    let usage = Command::new(env!("CARGO_BIN_EXE_jobprep"))
        .args(["interviews", "list"])
        .env("DATABASE_URL", "sqlite://unused.sqlite3")
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let err = stderr(&usage);
    assert!(err.contains("Usage: jobprep interviews list"), "{err}");
    assert!(!err.contains("--database-url"), "{err}");
}

#[test]
fn no_configuration_uses_the_embedded_sqlite_file() {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_jobprep"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env_remove("JOBPREP_SQLITE_PATH")
        .env("XDG_DATA_HOME", home.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(home.path().join("jobprep/jobprep.sqlite3").exists());
}
