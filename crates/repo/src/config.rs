//! Configuration: database URLs, pool settings, and where they come from.
//!
//! Precedence, lowest first: defaults, environment variables, options carried in the
//! URL (`?jobprep_pool_max_size=4`), then [`crate::DbBuilder`] calls in code.
//! Options of ours are removed from the URL before it reaches libpq.

use std::path::PathBuf;
use std::time::Duration;

use crate::database_url::OPTION_PREFIX;
pub use crate::database_url::{Backend, DatabaseUrl};
use crate::error::{Error, Result};

/// Connection pool settings. Defaults suit both a long-lived service and a serverless
/// function: the pool opens connections lazily, so a cold start opens one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections the pool keeps open (default 10).
    pub max_size: u32,
    /// Idle connections the pool keeps ready (default 0: open on demand).
    pub min_idle: u32,
    /// How long a caller waits for a connection before [`Error::Unavailable`] (default 5 s).
    pub connection_timeout: Duration,
    /// Idle connections are closed after this long (default 10 min).
    pub idle_timeout: Option<Duration>,
    /// Connections are replaced after this long (default 30 min).
    pub max_lifetime: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 10,
            min_idle: 0,
            connection_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
        }
    }
}

impl PoolOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_size == 0 {
            return Err(Error::Config("pool max_size must be at least 1".into()));
        }
        if self.min_idle > self.max_size {
            return Err(Error::Config(format!(
                "pool min_idle ({}) exceeds max_size ({})",
                self.min_idle, self.max_size
            )));
        }
        if self.connection_timeout.is_zero() {
            return Err(Error::Config(
                "pool connection_timeout must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Settings a [`crate::Db`] is built from.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: DatabaseUrl,
    pub replicas: Vec<DatabaseUrl>,
    pub pool: PoolOptions,
    /// Disables prepared-statement caching, for transaction-mode poolers (PgBouncer,
    /// Neon's `-pooler` hosts, which turn it on automatically).
    pub pooler_safe: bool,
    /// A replica further behind than this is skipped until it catches up.
    pub max_replica_lag: Duration,
    /// Statements slower than this are logged as slow (feature `tracing`).
    pub slow_query_threshold: Duration,
    /// PostgreSQL cancels a statement (or a lock wait) that runs longer than this,
    /// and the call fails with a retryable [`Error::Unavailable`] that says it timed
    /// out (default: none, the server's own setting). Sent as a start-up option, so it
    /// costs no round trip. A transaction-mode pooler does not forward start-up
    /// options: with [`DbConfig::pooler_safe`] the timeout is set per transaction
    /// instead (`BEGIN; SET LOCAL statement_timeout`, one round trip), and a call that
    /// is one statement runs in a transaction of its own, two round trips more. To
    /// avoid that cost, set it on the role (`ALTER ROLE app SET statement_timeout =
    /// '5s'`), which the pooler's server connections inherit, and leave this unset.
    pub statement_timeout: Option<Duration>,
}

/// Environment variables read by [`DbConfig::from_env`].
pub mod env {
    pub const DATABASE_URL: &str = "DATABASE_URL";
    pub const DATABASE_REPLICA_URLS: &str = "DATABASE_REPLICA_URLS";
    pub const POOL_MAX_SIZE: &str = "JOBPREP_POOL_MAX_SIZE";
    pub const POOL_MIN_IDLE: &str = "JOBPREP_POOL_MIN_IDLE";
    pub const POOL_TIMEOUT_SECS: &str = "JOBPREP_POOL_TIMEOUT_SECS";
    pub const POOL_IDLE_TIMEOUT_SECS: &str = "JOBPREP_POOL_IDLE_TIMEOUT_SECS";
    pub const POOL_MAX_LIFETIME_SECS: &str = "JOBPREP_POOL_MAX_LIFETIME_SECS";
    pub const POOLER_SAFE: &str = "JOBPREP_POOLER_SAFE";
    pub const MAX_REPLICA_LAG_MS: &str = "JOBPREP_MAX_REPLICA_LAG_MS";
    pub const SLOW_QUERY_MS: &str = "JOBPREP_SLOW_QUERY_MS";
    pub const STATEMENT_TIMEOUT_MS: &str = "JOBPREP_STATEMENT_TIMEOUT_MS";
    pub const SQLITE_PATH: &str = "JOBPREP_SQLITE_PATH";
}

impl DbConfig {
    /// A configuration for `url` with default pool settings. Options in the URL's query
    /// string that start with `jobprep_` are applied and removed:
    /// `jobprep_pool_max_size`, `jobprep_pool_min_idle`, `jobprep_pool_timeout_secs`,
    /// `jobprep_pool_idle_timeout_secs`, `jobprep_pool_max_lifetime_secs`,
    /// `jobprep_pooler_safe`, `jobprep_max_replica_lag_ms`, `jobprep_slow_query_ms`,
    /// `jobprep_statement_timeout_ms` (0: none).
    ///
    /// ```
    /// use jobprep_repo::{Backend, DbConfig};
    /// let config = DbConfig::parse("postgres://app:s3cret@db.internal/app?jobprep_pool_max_size=4")?;
    /// assert_eq!(config.url.backend(), Backend::Postgres);
    /// assert_eq!(config.pool.max_size, 4);
    /// assert_eq!(config.url.to_string(), "postgres://app:***@db.internal/app");
    /// # Ok::<(), jobprep_repo::Error>(())
    /// ```
    pub fn parse(url: &str) -> Result<Self> {
        let mut config = DbConfig::with_url(DatabaseUrl::parse(url)?.0);
        config.apply_url_options(url)?;
        Ok(config)
    }

    /// The configuration from the environment: `DATABASE_URL` (default: the embedded
    /// SQLite file, see [`default_sqlite_path`]), `DATABASE_REPLICA_URLS`
    /// (comma-separated), and the `JOBPREP_*` variables in [`env`](mod@env).
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let url = match var(env::DATABASE_URL) {
            Some(url) => url,
            None => default_sqlite_path()?.display().to_string(),
        };
        let (primary, _) = DatabaseUrl::parse(&url)?;
        let mut config = DbConfig::with_url(primary);
        let env_options: Vec<(&str, &str)> = [
            (env::POOL_MAX_SIZE, "pool_max_size"),
            (env::POOL_MIN_IDLE, "pool_min_idle"),
            (env::POOL_TIMEOUT_SECS, "pool_timeout_secs"),
            (env::POOL_IDLE_TIMEOUT_SECS, "pool_idle_timeout_secs"),
            (env::POOL_MAX_LIFETIME_SECS, "pool_max_lifetime_secs"),
            (env::POOLER_SAFE, "pooler_safe"),
            (env::MAX_REPLICA_LAG_MS, "max_replica_lag_ms"),
            (env::SLOW_QUERY_MS, "slow_query_ms"),
            (env::STATEMENT_TIMEOUT_MS, "statement_timeout_ms"),
        ]
        .into_iter()
        .collect();
        for (variable, option) in env_options {
            if let Some(value) = var(variable) {
                config.set_option(option, &value, variable)?;
            }
        }
        config.apply_url_options(&url)?;
        if let Some(list) = var(env::DATABASE_REPLICA_URLS) {
            for replica in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                config.replicas.push(DatabaseUrl::parse(replica)?.0);
            }
        }
        Ok(config)
    }

    fn with_url(url: DatabaseUrl) -> Self {
        let pooler_safe = is_neon_pooler_host(&url);
        DbConfig {
            url,
            replicas: Vec::new(),
            pool: PoolOptions::default(),
            pooler_safe,
            max_replica_lag: Duration::from_secs(5),
            slow_query_threshold: Duration::from_millis(200),
            statement_timeout: None,
        }
    }

    fn apply_url_options(&mut self, url: &str) -> Result<()> {
        for (key, value) in DatabaseUrl::parse(url)?.1 {
            self.set_option(&key, &value, &format!("{OPTION_PREFIX}{key}"))?;
        }
        Ok(())
    }

    /// Applies option `key` (without its prefix); errors name it as the user wrote it,
    /// `shown`: the URL option `jobprep_pool_max_size` or the variable
    /// `JOBPREP_POOL_MAX_SIZE`.
    fn set_option(&mut self, key: &str, value: &str, shown: &str) -> Result<()> {
        let number = || {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| Error::Config(format!("{shown}: `{value}` is not a whole number")))
        };
        let seconds = |n: u64| (n > 0).then(|| Duration::from_secs(n));
        let count = || {
            u32::try_from(number()?)
                .map_err(|_| Error::Config(format!("{shown}: `{value}` is too large")))
        };
        match key {
            "pool_max_size" => self.pool.max_size = count()?,
            "pool_min_idle" => self.pool.min_idle = count()?,
            "pool_timeout_secs" => self.pool.connection_timeout = Duration::from_secs(number()?),
            "pool_idle_timeout_secs" => self.pool.idle_timeout = seconds(number()?),
            "pool_max_lifetime_secs" => self.pool.max_lifetime = seconds(number()?),
            "max_replica_lag_ms" => self.max_replica_lag = Duration::from_millis(number()?),
            "slow_query_ms" => self.slow_query_threshold = Duration::from_millis(number()?),
            "statement_timeout_ms" => {
                self.statement_timeout =
                    Some(Duration::from_millis(number()?)).filter(|d| !d.is_zero())
            }
            "pooler_safe" => {
                self.pooler_safe = match value.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => true,
                    "0" | "false" | "no" | "off" => false,
                    _ => {
                        return Err(Error::Config(format!(
                            "{shown}: `{value}` is not true or false"
                        )))
                    }
                }
            }
            _ => return Err(Error::Config(format!("unknown option `{shown}`"))),
        }
        Ok(())
    }
}

impl DbConfig {
    /// `url` as the pools connect to it: with the statement timeout as a start-up
    /// option. Refuses settings that cannot take effect, rather than ignore them.
    pub(crate) fn connect_url(&self, url: &DatabaseUrl) -> Result<DatabaseUrl> {
        let Some(timeout) = self.statement_timeout else {
            return Ok(url.clone());
        };
        if url.backend() == Backend::Sqlite {
            return Err(Error::Config(
                "a statement timeout is PostgreSQL's: SQLite statements wait only for \
                 locks, up to its busy timeout (5 s)"
                    .into(),
            ));
        }
        if self.pooler_safe {
            // Set per transaction instead (see `local_timeout_ms`).
            return Ok(url.clone());
        }
        if url.sets("options") {
            return Err(Error::Config(
                "the URL sets libpq's `options` itself: add `-c statement_timeout=...` \
                 there instead of the statement timeout setting"
                    .into(),
            ));
        }
        let ms = timeout.as_millis().max(1);
        Ok(url.with_setting("options", &format!("-c statement_timeout={ms}")))
    }

    /// The statement timeout in milliseconds when it is set per transaction (`SET
    /// LOCAL`): in pooler-safe mode, where start-up options do not reach the server.
    pub(crate) fn local_timeout_ms(&self) -> Option<u128> {
        let timeout = self.statement_timeout.filter(|_| self.pooler_safe)?;
        Some(timeout.as_millis().max(1))
    }
}

/// Where the embedded SQLite database lives when no `DATABASE_URL` is set:
/// `$JOBPREP_SQLITE_PATH` if set, else `$XDG_DATA_HOME/jobprep/jobprep.sqlite3`, else
/// `$HOME/.local/share/jobprep/jobprep.sqlite3`, else the same under the system's
/// temporary directory. The folder is created when missing.
pub fn default_sqlite_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env::SQLITE_PATH).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|p| !p.is_empty())
                .map(|home| PathBuf::from(home).join(".local/share"))
        })
        .unwrap_or_else(std::env::temp_dir);
    let dir = data_home.join("jobprep");
    std::fs::create_dir_all(&dir).map_err(|e| {
        Error::Config(format!(
            "cannot create the SQLite data folder {}: {e}",
            dir.display()
        ))
    })?;
    Ok(dir.join("jobprep.sqlite3"))
}

/// Neon's transaction-pooler endpoints end their first host label in `-pooler`.
fn is_neon_pooler_host(url: &DatabaseUrl) -> bool {
    url.host().is_some_and(|host| {
        host.split('.')
            .next()
            .is_some_and(|label| label.ends_with("-pooler"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_options_are_applied_and_removed_before_libpq() {
        let config = DbConfig::parse(
            "postgres://u:pw@h:5432/db?sslmode=require&jobprep_pool_max_size=3&jobprep_pooler_safe=true&application_name=x",
        )
        .unwrap();
        assert_eq!(config.pool.max_size, 3);
        assert!(config.pooler_safe);
        assert_eq!(
            config.url.expose_secret(),
            "postgres://u:pw@h:5432/db?sslmode=require&application_name=x"
        );
        assert!(DbConfig::parse("postgres://h/db?jobprep_nope=1").is_err());
        let error = DbConfig::parse("postgres://h/db?jobprep_pool_max_size=many").unwrap_err();
        assert_eq!(
            error.to_string(),
            "configuration error: jobprep_pool_max_size: `many` is not a whole number"
        );
    }

    #[test]
    fn passwords_never_show() {
        let config = DbConfig::parse("postgres://app:p%40ss@h/db?jobprep_pool_max_size=2").unwrap();
        for shown in [format!("{config:?}"), config.url.to_string()] {
            assert!(
                !shown.contains("p%40ss") && !shown.contains("p@ss"),
                "{shown}"
            );
        }
        assert_eq!(
            config.url.scrub("failed for p@ss and p%40ss"),
            "failed for *** and ***"
        );
        let query = DbConfig::parse("postgres://h/db?user=a&password=hunter2").unwrap();
        assert!(!format!("{query:?}").contains("hunter2"));
    }

    #[test]
    fn neon_pooler_hosts_turn_pooler_safe_mode_on() {
        let neon = "postgres://u:p@ep-cool-123-pooler.us-east-2.aws.neon.tech/db?sslmode=require";
        assert!(DbConfig::parse(neon).unwrap().pooler_safe);
        assert!(
            !DbConfig::parse("postgres://u:p@ep-cool-123.aws.neon.tech/db")
                .unwrap()
                .pooler_safe
        );
    }
}
