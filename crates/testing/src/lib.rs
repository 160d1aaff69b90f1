#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![allow(clippy::print_stderr, clippy::unwrap_used, clippy::panic)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection as _;

pub use jobprep_repo::Backend;
use jobprep_repo::{Db, DbConfig, RecordingSink};

/// Runs each test once per backend, each time in a database of its own.
///
/// Two forms, which may not be mixed in one invocation:
///
/// - `fn name(t) { body }`: the body is the test, `t` a `&TestDb`.
/// - `name, other_name`: each names a function `fn name(t: &TestDb)` of the enclosing
///   module, so that rustfmt formats its body (it leaves macro bodies alone).
///
/// Either form expands to `mod name { #[test] fn sqlite(); #[test] fn postgres(); }`
/// (test names `name::sqlite`, `name::postgres`); attributes and doc comments before a
/// name go on that module. The PostgreSQL half returns early, passing, when the server
/// is unreachable and `JOBPREP_REQUIRE_POSTGRES` is not `1` (see [`TestDb::new`]).
#[macro_export]
macro_rules! backend_tests {
    ($($(#[$meta:meta])* fn $name:ident($t:ident) $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[test]
                fn sqlite() {
                    let $t = &$crate::TestDb::new($crate::Backend::Sqlite)
                        .expect("SQLite is always available");
                    $body
                }

                #[test]
                fn postgres() {
                    let Some(test_db) = $crate::TestDb::new($crate::Backend::Postgres) else {
                        return;
                    };
                    let $t = &test_db;
                    $body
                }
            }
        )*
    };
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {
        $(
            $(#[$meta])*
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(
                        &$crate::TestDb::new($crate::Backend::Sqlite)
                            .expect("SQLite is always available"),
                    );
                }

                #[test]
                fn postgres() {
                    if let Some(test_db) = $crate::TestDb::new($crate::Backend::Postgres) {
                        super::$name(&test_db);
                    }
                }
            }
        )+
    };
}

/// A database of its own for one test, dropped (PostgreSQL) or deleted (SQLite) when
/// the value is.
pub struct TestDb {
    /// A handle on the database whose tag sink is [`TestDb::sink`]; give a service
    /// under test [`TestDb::url`] instead when it builds its own `Db`.
    pub db: Db,
    /// Every cache tag [`TestDb::db`] reported, in commit order, until taken.
    pub sink: RecordingSink,
    /// The URL the test database answers on: a PostgreSQL URL, or a SQLite file's path.
    /// It holds a password only when `TEST_DATABASE_URL` does.
    pub url: String,
    _cleanup: Cleanup,
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb").field("db", &self.db).finish()
    }
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = self {
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
            }
        }
    }
}

/// The PostgreSQL server tests create their databases on: `TEST_DATABASE_URL`, default
/// `postgres://postgres@127.0.0.1:5432/postgres`. Its user needs the right to create
/// databases.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn require_postgres() -> bool {
    std::env::var("JOBPREP_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    /// A database on `backend` with jobprep's migrations applied: on PostgreSQL a clone
    /// of the migrated template (built on first use), on SQLite a new file, migrated.
    ///
    /// `None` when PostgreSQL is unreachable and `JOBPREP_REQUIRE_POSTGRES` is not `1`:
    /// the caller returns, and one line per test binary on stderr says why. With
    /// `JOBPREP_REQUIRE_POSTGRES=1` this panics instead. SQLite always answers `Some`.
    pub fn new(backend: Backend) -> Option<TestDb> {
        Self::create(backend, true)
    }

    /// An empty database on `backend`: no migrations applied, for tests of migrating
    /// or adopting a schema. `None` as for [`TestDb::new`].
    pub fn empty(backend: Backend) -> Option<TestDb> {
        Self::create(backend, false)
    }

    fn create(backend: Backend, migrated: bool) -> Option<TestDb> {
        let sink = RecordingSink::new();
        let (url, cleanup) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let url = dir.path().join("test.sqlite3").display().to_string();
                (url, Cleanup::Sqlite(dir))
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let template = match postgres_template(&admin_url) {
                    Ok(template) => template,
                    Err(reason) => {
                        if require_postgres() {
                            panic!("PostgreSQL is required (JOBPREP_REQUIRE_POSTGRES=1) but unusable: {reason}");
                        }
                        static SKIP: Once = Once::new();
                        SKIP.call_once(|| {
                            // Straight to the process's stderr: libtest captures the
                            // output of `eprintln!` in passing tests.
                            let _ = writeln!(
                                std::io::stderr(),
                                "skipping PostgreSQL tests: {reason} (set TEST_DATABASE_URL, or JOBPREP_REQUIRE_POSTGRES=1 to fail instead)"
                            );
                        });
                        return None;
                    }
                };
                let name = format!(
                    "jobprep_test_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let source = if migrated {
                    template.as_str()
                } else {
                    "template0"
                };
                let mut admin = PgConnection::establish(&admin_url).expect("admin connection");
                admin
                    .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{source}\""))
                    .expect("create the test database");
                let url = database_url(&admin_url, &name);
                (url, Cleanup::Postgres { admin_url, name })
            }
        };
        let db = Db::builder(&url)
            .tag_sink(Arc::new(sink.clone()))
            .build()
            .expect("test database handle");
        if migrated && backend == Backend::Sqlite {
            db.migrate().expect("migrate the SQLite test database");
        }
        Some(TestDb {
            db,
            sink,
            url,
            _cleanup: cleanup,
        })
    }

    /// A migrated PostgreSQL database, when the test server is the default one at
    /// `127.0.0.1:5432`: for tests whose connection strings spell that host and port
    /// (socket paths, host lists). `None` otherwise, or without PostgreSQL.
    pub fn on_default_postgres() -> Option<TestDb> {
        if !postgres_admin_url().contains("@127.0.0.1:5432/") {
            return None;
        }
        TestDb::new(Backend::Postgres)
    }

    /// The backend this database runs on.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Another handle on this database with a pool of its own: at most `max_size`
    /// connections, a caller waiting at most `timeout` for one. For tests of the pool's
    /// limits; its writes report their tags to no sink.
    pub fn pool_of(&self, max_size: u32, timeout: std::time::Duration) -> Db {
        Db::builder(&self.url)
            .max_size(max_size)
            .connection_timeout(timeout)
            .build()
            .expect("a handle on the test database")
    }

    /// Runs `sql` (one or more statements) on a connection of its own, outside jobprep,
    /// as another client of the database would: the original app, `psql`, a migrator.
    /// On failure, the database's error as text.
    pub fn execute_sql(&self, sql: &str) -> Result<(), String> {
        match self.backend() {
            Backend::Postgres => PgConnection::establish(&self.url)
                .map_err(|e| e.to_string())?
                .batch_execute(sql),
            Backend::Sqlite => diesel::SqliteConnection::establish(&self.url)
                .map_err(|e| e.to_string())?
                .batch_execute(sql),
        }
        .map_err(|e| e.to_string())
    }
}

/// `admin_url` with its database name replaced by `name` (panics on a malformed URL).
pub fn database_url(admin_url: &str, name: &str) -> String {
    DbConfig::parse(admin_url)
        .and_then(|config| config.url.with_database(name))
        .map(|url| url.expose_secret().to_owned())
        .expect("the test server's URL is well formed")
}

/// The name of a migrated template database, built on first use.
fn postgres_template(admin_url: &str) -> Result<String, String> {
    static TEMPLATE: OnceLock<Mutex<Option<Result<String, String>>>> = OnceLock::new();
    let cell = TEMPLATE.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(done) = guard.as_ref() {
        return done.clone();
    }
    let result = build_template(admin_url);
    *guard = Some(result.clone());
    result
}

fn build_template(admin_url: &str) -> Result<String, String> {
    let mut admin = PgConnection::establish(admin_url).map_err(|e| {
        format!(
            "cannot connect to {}: {e}",
            DbConfig::parse(admin_url)
                .map(|c| c.url.to_string())
                .unwrap_or_default()
        )
    })?;
    let name = format!("jobprep_template_{:016x}", migrations_fingerprint());
    let sql =
        |admin: &mut PgConnection, sql: &str| admin.batch_execute(sql).map_err(|e| e.to_string());
    sql(&mut admin, "SELECT pg_advisory_lock(7365426)")?;
    let result = (|| {
        drop_stale_test_databases(&mut admin)?;
        let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
        )))
        .get_result(&mut admin)
        .map_err(|e| e.to_string())?;
        if !exists {
            let building = format!("{name}_building");
            sql(
                &mut admin,
                &format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
            )?;
            sql(
                &mut admin,
                &format!("CREATE DATABASE \"{building}\" TEMPLATE template0"),
            )?;
            {
                let db =
                    Db::connect(&database_url(admin_url, &building)).map_err(|e| e.to_string())?;
                db.migrate().map_err(|e| e.to_string())?;
            }
            sql(
                &mut admin,
                &format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\""),
            )?;
        }
        Ok(name)
    })();
    sql(&mut admin, "SELECT pg_advisory_unlock(7365426)")?;
    result
}

use diesel::RunQueryDsl as _;

/// Drops test databases whose process is gone (a crashed or killed run).
fn drop_stale_test_databases(admin: &mut PgConnection) -> Result<(), String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let names: Vec<Name> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'jobprep\\_test\\_%'",
    )
    .load(admin)
    .map_err(|e| e.to_string())?;
    for Name { datname } in names {
        let pid = datname
            .split('_')
            .nth(2)
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{datname}\" WITH (FORCE)"
                ))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// A hash of the PostgreSQL migrations' names, so a changed migration set builds a new
/// template instead of reusing a stale one.
fn migrations_fingerprint() -> u64 {
    use diesel::migration::MigrationSource;
    let mut hasher = DefaultHasher::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres");
    if let Ok(migrations) =
        MigrationSource::<diesel::pg::Pg>::migrations(&jobprep_repo::migrations::POSTGRES)
    {
        for migration in migrations {
            let name = migration.name().to_string();
            name.hash(&mut hasher);
            for file in ["up.sql", "down.sql"] {
                std::fs::read_to_string(dir.join(&name).join(file))
                    .unwrap_or_default()
                    .hash(&mut hasher);
            }
        }
    }
    hasher.finish()
}

/// Fixtures and assertions the tests of every crate share.
mod fixtures {
    use std::collections::BTreeSet;

    use jobprep_repo::job_infos::{self, NewJobInfo};
    use jobprep_repo::{users, Db, Entity, Error, Executor, ExperienceLevel, JobInfoId, UserId};

    /// Creates the user `id` on `db` below the use cases (so the sink records no tags)
    /// and returns its id; the email is made from the id's letters and digits. Panics
    /// when `id` is not a valid user id.
    pub fn user(db: &Db, id: &str) -> UserId {
        let id = UserId::new(id).expect("a valid user id");
        let local: String = id
            .as_str()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let new = users::NewUser::new(
            id.clone(),
            format!("Name of {id}"),
            format!("{local}@example.com"),
        );
        db.write(|conn, _| users::upsert(conn, &new))
            .expect("create the user");
        id
    }

    /// Creates a job info of `owner` named `name` (see [`job_form`]) on `db` below the
    /// use cases (so the sink records no tags) and returns its id.
    pub fn job_info(db: &Db, owner: &UserId, name: &str) -> JobInfoId {
        db.write(|conn, _| job_infos::insert(conn, owner, &job_form(name)))
            .expect("create the job info")
            .id
    }

    /// A job info form named `name`.
    pub fn job_form(name: &str) -> NewJobInfo {
        NewJobInfo::new(name, ExperienceLevel::Senior, format!("About {name}"))
    }

    /// Tags as sorted, de-duplicated strings.
    pub fn tag_set<S: Into<String>>(tags: impl IntoIterator<Item = S>) -> Vec<String> {
        tags.into_iter()
            .map(Into::into)
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect()
    }

    /// Fails the test, at the caller's line, unless `result` is `NotFound` for `entity`.
    #[track_caller]
    pub fn assert_not_found<T: std::fmt::Debug>(result: jobprep_repo::Result<T>, entity: Entity) {
        assert!(
            matches!(result, Err(Error::NotFound { entity: e }) if e == entity),
            "expected {entity} not found, got {result:?}"
        );
    }

    /// The field an `InvalidInput` names, `None` for `Ok`; any other error fails the
    /// test. Compare with `Some("field")` to require a refusal.
    #[track_caller]
    pub fn refused_field<T: std::fmt::Debug>(
        result: &jobprep_repo::Result<T>,
    ) -> Option<&'static str> {
        match result {
            Ok(_) => None,
            Err(Error::InvalidInput { field, .. }) => Some(field),
            Err(other) => panic!("expected Ok or InvalidInput, got {other:?}"),
        }
    }

    /// Joins `handle`, failing the test (instead of hanging) when it has not finished
    /// within `limit`; `what` names it in the failure.
    pub fn join_within<T>(
        handle: std::thread::JoinHandle<T>,
        limit: std::time::Duration,
        what: &str,
    ) -> T {
        let deadline = std::time::Instant::now() + limit;
        while !handle.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what} did not finish within {limit:?}: deadlock or hang"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Long enough for the clock to move past a stored timestamp (microseconds).
    pub fn pause() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

pub use fixtures::{
    assert_not_found, job_form, job_info, join_within, pause, refused_field, tag_set, user,
};

/// Runs `future` to completion on a fresh single-threaded runtime, for tests of the
/// async facade (feature `tokio`) written as plain `#[test]`s.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}
