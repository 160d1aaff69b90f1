//! The CLI takes libpq's keyword/value strings and multi-host URLs, and refuses a
//! string that is neither a connection string nor a file path without creating a file.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use jobprep_testing::TestDb;

fn jobprep_in(dir: &std::path::Path, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jobprep"))
        .current_dir(dir)
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

#[test]
fn postgres_keyword_value_strings_and_multi_host_urls_reach_the_server() {
    // The strings below name this machine's server.
    let Some(t) = TestDb::on_default_postgres() else {
        return;
    };
    let db = t
        .url
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("host=127.0.0.1 port=5432 dbname={db} user=postgres"),
        format!(
            "postgres://postgres@127.0.0.1:1,127.0.0.1:5432/{db}?target_session_attrs=read-write"
        ),
    ] {
        let output = jobprep_in(dir.path(), &url, &["migrate", "check"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{url}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(stdout.trim(), "the database matches what jobprep expects");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file made"
    );
}

#[test]
fn a_string_that_is_no_connection_string_is_refused_and_makes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = jobprep_in(
        dir.path(),
        "hostt=127.0.0.1 dbname=app password=hunter2",
        &["migrate"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`hostt` is not a libpq connection keyword"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file made"
    );
}
