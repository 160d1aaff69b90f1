//! Connection failures say truthfully whether a retry can help, and those that cannot
//! be helped arrive at once, on the first attempt, not after the pool's timeout.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use jobprep_repo::{users, Backend, Db, Error, Executor, UserId};
use jobprep_testing::{postgres_admin_url, TestDb};

/// Far longer than any answer should take: an error that waited for the pool's timeout
/// shows as a wait of this length.
const TIMEOUT: Duration = Duration::from_secs(20);

fn first_read(url: &str) -> (Error, Duration) {
    let db = Db::builder(url)
        .connection_timeout(TIMEOUT)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = db
        .read(|conn| users::get(conn, &UserId::new("user_x").unwrap()))
        .unwrap_err();
    (error, started.elapsed())
}

fn assert_config_at_once(url: &str, names: &str) {
    let (error, took) = first_read(url);
    assert!(
        matches!(error, Error::Config(_)),
        "{url}: expected a configuration error, got {error:?}"
    );
    assert!(!error.is_retryable(), "{url}: {error:?}");
    assert!(
        took < TIMEOUT / 4,
        "{url}: the error waited {took:?}, as if for the pool's timeout"
    );
    let message = error.to_string();
    assert!(
        message.contains(names),
        "{url}: {message} should name {names}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

/// A URL for the test server with `path_and_query` after the host and port.
fn server_url(path_and_query: &str) -> Option<String> {
    // Probe that the server answers at all: these tests need PostgreSQL.
    TestDb::empty(Backend::Postgres)?;
    let admin = postgres_admin_url();
    let url = ::url::Url::parse(&admin).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(5432);
    let user = if url.username().is_empty() {
        "postgres"
    } else {
        url.username()
    };
    Some(format!("postgres://{user}@{host}:{port}{path_and_query}"))
}

#[test]
fn postgres_options_libpq_rejects_are_configuration_errors_at_once() {
    let Some(bogus_sslmode) = server_url("/postgres?sslmode=bogus&password=hunter2") else {
        return;
    };
    assert_config_at_once(&bogus_sslmode, "sslmode");
    let unknown = server_url("/postgres?no_such_option=1").unwrap();
    assert_config_at_once(&unknown, "no_such_option");
}

#[test]
fn postgres_a_port_out_of_range_is_refused_when_the_handle_is_built() {
    let error = Db::connect("postgres://u:hunter2@127.0.0.1:99999/db").unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("port"), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn postgres_a_missing_database_or_role_is_a_configuration_error_at_once() {
    let Some(no_database) = server_url("/jobprep_no_such_database") else {
        return;
    };
    assert_config_at_once(&no_database, "jobprep_no_such_database");
    let admin = ::url::Url::parse(&postgres_admin_url()).unwrap();
    let no_role = format!(
        "postgres://jobprep_no_such_role:hunter2@{}:{}/postgres",
        admin.host_str().unwrap_or("127.0.0.1"),
        admin.port().unwrap_or(5432)
    );
    assert_config_at_once(&no_role, "jobprep_no_such_role");
}

#[test]
fn postgres_a_refused_connection_is_retryable_at_once_on_one_line() {
    // Nothing listens on port 1.
    let (error, took) = first_read("postgres://u:hunter2@127.0.0.1:1/db");
    assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert!(
        took < TIMEOUT / 4,
        "the refusal waited {took:?}, as if for the pool's timeout"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("database unavailable: connection to server at \"127.0.0.1\", port 1 failed: Connection refused; "),
        "{message}"
    );
    assert!(!message.contains(['\n', '\t']), "{message:?}");
    assert!(!message.contains("hunter2"), "{message}");

    // The handle keeps working: the next call is refused again, and as fast.
    let db = Db::builder("postgres://u@127.0.0.1:1/db")
        .connection_timeout(TIMEOUT)
        .build()
        .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let error = db
            .read(|conn| users::get(conn, &UserId::new("user_x").unwrap()))
            .unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
        assert!(started.elapsed() < TIMEOUT / 4, "{:?}", started.elapsed());
    }
}

#[test]
fn sqlite_a_file_that_cannot_be_opened_is_a_configuration_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let in_missing_folder = dir.path().join("no/such/folder/db.sqlite3");
    assert_config_at_once(&in_missing_folder.display().to_string(), "unable to open");
    // SQLite names neither the file nor the folder it cannot create; the error does.
    assert_config_at_once(
        &in_missing_folder.display().to_string(),
        &format!(
            "{} (the folder {} does not exist)",
            in_missing_folder.display(),
            dir.path().join("no/such/folder").display()
        ),
    );
    // A folder is not a database file either.
    assert_config_at_once(&dir.path().display().to_string(), "unable to open");
}

#[test]
fn sqlite_a_file_that_is_not_a_database_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "these are not the pages of a SQLite database ".repeat(100),
    )
    .unwrap();
    let (error, took) = first_read(&path.display().to_string());
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(!error.is_retryable());
    assert!(took < TIMEOUT / 4, "{took:?}");
}

#[test]
fn a_pool_timeout_stays_retryable_on_both_backends() {
    for t in [TestDb::new(Backend::Sqlite), TestDb::new(Backend::Postgres)]
        .into_iter()
        .flatten()
    {
        let db = Db::builder(&t.url)
            .max_size(1)
            .connection_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let inner = db
            .transaction(
                |_tx| Ok(db.read(|conn| users::get(conn, &UserId::new("user_x").unwrap()))),
            )
            .unwrap();
        let error = inner.unwrap_err();
        assert!(matches!(error, Error::Unavailable { .. }), "{error:?}");
        assert!(error.is_retryable());
    }
}
