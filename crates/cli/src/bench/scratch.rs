//! A scratch database of the benchmark's own, next to the one configured, dropped
//! when the run ends.

use diesel::connection::SimpleConnection;
use diesel::{Connection as _, PgConnection};
use jobprep_repo::{Backend, DbConfig};

use crate::error::CliError;

/// The database a run measures: normally one made for the run, a new database on the
/// same PostgreSQL server (needs CREATEDB) or a new SQLite file in the temporary
/// folder, dropped at the end; with `--existing`, the configured database, which is
/// neither created nor dropped.
pub struct Scratch {
    pub config: DbConfig,
    admin_url: Option<String>,
    name: String,
    sqlite_path: Option<std::path::PathBuf>,
}

impl Scratch {
    /// The scratch database's name (empty for `--existing`).
    pub fn database_name(&self) -> &str {
        &self.name
    }

    pub fn create(base: &DbConfig) -> Result<Scratch, CliError> {
        let name = format!("jobprep_bench_{}", std::process::id());
        match base.url.backend() {
            Backend::Postgres => {
                let admin_url = base.url.expose_secret().to_owned();
                let mut admin = admin(base)?;
                // Two statements: neither may run inside a (multi-statement) transaction.
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
                admin.batch_execute(&format!("CREATE DATABASE \"{name}\""))?;
                let mut config = base.clone();
                config.url = base.url.with_database(&name)?;
                config.replicas.clear();
                Ok(Scratch {
                    config,
                    admin_url: Some(admin_url),
                    name,
                    sqlite_path: None,
                })
            }
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.sqlite3"));
                remove_sqlite(&path);
                let config = DbConfig::parse(&path.display().to_string())?;
                Ok(Scratch {
                    config,
                    admin_url: None,
                    name,
                    sqlite_path: Some(path),
                })
            }
        }
    }

    /// The configured PostgreSQL database itself, as it is: nothing is created,
    /// seeded, vacuumed or dropped (`jobprep bench --existing`).
    pub fn existing(base: &DbConfig) -> Result<Scratch, CliError> {
        if base.url.backend() != Backend::Postgres {
            return Err(CliError::Refused(
                "--existing measures a PostgreSQL database (the pgbench comparison's)".into(),
            ));
        }
        let mut config = base.clone();
        config.replicas.clear();
        Ok(Scratch {
            config,
            admin_url: None,
            name: String::new(),
            sqlite_path: None,
        })
    }

    /// Whether this is a database of the run's own (dropped at the end).
    pub fn is_scratch(&self) -> bool {
        self.admin_url.is_some() || self.sqlite_path.is_some()
    }

    /// The users and job infos already in the database, for `--existing`.
    pub fn rows(&self) -> Result<ExistingRows, CliError> {
        #[derive(diesel::QueryableByName)]
        struct UserRow {
            #[diesel(sql_type = diesel::sql_types::Text)]
            id: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            email: String,
        }
        #[derive(diesel::QueryableByName)]
        struct JobRow {
            #[diesel(sql_type = diesel::sql_types::Text)]
            user_id: String,
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: uuid::Uuid,
        }
        let mut conn = admin(&self.config)?;
        let users: Vec<UserRow> = diesel::RunQueryDsl::load(
            diesel::sql_query("SELECT id, name, email FROM users ORDER BY id"),
            &mut conn,
        )?;
        let jobs: Vec<JobRow> = diesel::RunQueryDsl::load(
            diesel::sql_query(r#"SELECT "userId" AS user_id, id FROM job_info ORDER BY id"#),
            &mut conn,
        )?;
        Ok(ExistingRows {
            users: users.into_iter().map(|u| (u.id, u.name, u.email)).collect(),
            jobs: jobs.into_iter().map(|j| (j.user_id, j.id)).collect(),
        })
    }

    /// The scratch database's name on another server (a replica of this one).
    pub fn on_server(&self, server: &DbConfig) -> Result<DbConfig, CliError> {
        let mut config = server.clone();
        config.url = server.url.with_database(&self.name)?;
        Ok(config)
    }

    /// `VACUUM ANALYZE`s the tables, as autovacuum does soon after a bulk load, so
    /// the planner measures the plans users get: statistics, and the visibility map
    /// that index-only scans (the quota counts) rely on.
    pub fn analyze(&self) -> Result<(), CliError> {
        if self.config.url.backend() == Backend::Postgres {
            admin(&self.config)?.batch_execute("VACUUM ANALYZE")?;
        }
        Ok(())
    }
}

/// What `--existing` measures with: users as (id, name, email), job infos as
/// (owner, id).
pub struct ExistingRows {
    pub users: Vec<(String, String, String)>,
    pub jobs: Vec<(String, uuid::Uuid)>,
}

/// Sequential and index scans of the tables so far (PostgreSQL's statistics).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scans {
    pub sequential: i64,
    pub index: i64,
}

impl Scratch {
    /// The scans PostgreSQL has counted on jobprep's tables so far; `None` on SQLite.
    /// Backends report their statistics when idle, at most a second late, so this
    /// waits that long first.
    pub fn scans(&self) -> Result<Option<Scans>, CliError> {
        if self.config.url.backend() != Backend::Postgres {
            return Ok(None);
        }
        #[derive(diesel::QueryableByName)]
        struct Counts {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            sequential: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            index: i64,
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let counts: Counts = diesel::RunQueryDsl::get_result(
            diesel::sql_query(
                "SELECT COALESCE(sum(seq_scan), 0)::bigint AS sequential, \
                 COALESCE(sum(idx_scan), 0)::bigint AS index FROM pg_stat_user_tables \
                 WHERE relname IN ('users', 'job_info', 'interviews', 'questions')",
            ),
            &mut admin(&self.config)?,
        )?;
        Ok(Some(Scans {
            sequential: counts.sequential,
            index: counts.index,
        }))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(admin_url) = &self.admin_url {
            // Best effort: a failure leaves a database named jobprep_bench_<pid>.
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ));
            }
        }
        if let Some(path) = &self.sqlite_path {
            remove_sqlite(path);
        }
    }
}

fn admin(config: &DbConfig) -> Result<PgConnection, CliError> {
    PgConnection::establish(config.url.expose_secret()).map_err(|e| {
        let reason = config.url.scrub(&e.to_string());
        CliError::Bench(format!("cannot connect to {}: {reason}", config.url))
    })
}

fn remove_sqlite(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
