//! libpq's connection strings on a real server: multi-host URLs with
//! `target_session_attrs`, keyword/value strings, Unix-socket hosts, service names.
//! PostgreSQL only: SQLite takes a file path, tested in `bad_input.rs` and the CLI's
//! tests.
#![allow(clippy::unwrap_used)]

use jobprep_repo::{Backend, Db, Error, UserId};
use jobprep_testing::{postgres_admin_url, TestDb};
use jobprep_users::NewUser;

/// The test database's name, from its URL.
fn database_name(t: &TestDb) -> String {
    let path = t.url.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

/// Whether the test server is this machine's, reachable through its socket folder too.
fn local_server() -> bool {
    let admin = postgres_admin_url();
    (admin.contains("@127.0.0.1") || admin.contains("@localhost"))
        && std::path::Path::new("/var/run/postgresql/.s.PGSQL.5432").exists()
}

fn works(url: &str, user: &str) {
    let db = Db::connect(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let id = UserId::new(user).unwrap();
    jobprep_users::upsert(
        &db,
        &NewUser::new(id.clone(), "N", format!("{user}@example.com")),
    )
    .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(
        jobprep_users::get(&db, &id).unwrap().value.name,
        "N",
        "{url}"
    );
    assert_eq!(db.backend(), Backend::Postgres);
}

#[test]
fn postgres_takes_every_connection_string_libpq_takes() {
    // The strings below name this machine's server.
    let Some(t) = TestDb::on_default_postgres() else {
        return;
    };
    let db = database_name(&t);
    // Several hosts: libpq tries them in order (nothing listens on port 1) and keeps
    // the first that fits target_session_attrs.
    for attrs in ["read-write", "primary", "prefer-standby", "any"] {
        works(
            &format!(
                "postgres://postgres@127.0.0.1:1,127.0.0.1:5432/{db}?target_session_attrs={attrs}"
            ),
            &format!("user_multi_{}", attrs.replace('-', "_")),
        );
    }
    works(
        &format!("postgresql:///{db}?host=127.0.0.1,127.0.0.1&port=1,5432&user=postgres"),
        "user_query_hosts",
    );
    works(
        &format!(
            "host=127.0.0.1 port=5432 dbname={db} user=postgres application_name='jobprep test'"
        ),
        "user_keywords",
    );
    works(
        &format!("host=127.0.0.1,127.0.0.1 port=1,5432 dbname={db} user=postgres target_session_attrs=read-write"),
        "user_keyword_hosts",
    );
    if local_server() {
        works(
            &format!("postgresql://postgres@/{db}?host=/var/run/postgresql"),
            "user_socket",
        );
        works(
            &format!("host=/var/run/postgresql dbname={db} user=postgres"),
            "user_socket_keywords",
        );
    }
}

#[test]
fn postgres_an_unknown_service_name_is_a_configuration_error_on_the_first_call() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let db = Db::connect(&format!(
        "{}?service=no_such_service",
        t.url.split('?').next().unwrap()
    ))
    .unwrap();
    let error = jobprep_users::get(&db, &UserId::new("user_x").unwrap()).unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("no_such_service"), "{error}");
    assert_eq!(db.pool_state().timeouts, 1, "one failed checkout");
}
