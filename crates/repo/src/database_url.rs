//! Database URLs: which backend, what the driver receives, and how a URL is shown.
//!
//! PostgreSQL takes every connection string libpq takes: URLs (one host, several
//! hosts as `postgres://h1:5432,h2:5432/db`, none with a socket folder in `?host=`) and
//! keyword/value strings (`host=db dbname=app user=app`). Anything else that is not a
//! URL of ours is a SQLite file path.
//!
//! PostgreSQL URLs are parsed with the `url` crate and redacted by parsed component:
//! the userinfo password and every `password` / `sslpassword` query parameter (keys
//! compared after percent-decoding, as libpq does). A URL that does not parse is refused
//! before libpq sees it, so no driver error can echo it. Options of ours
//! (`jobprep_*`) are taken out of the query before the URL reaches the driver.

use std::fmt;

use crate::conninfo::{
    append_setting, decode, hold_hosts, is_keyword_value, is_url, keyword_pairs, keyword_string,
    query_pairs, restore_hosts, LIBPQ_KEYWORDS,
};
use crate::error::{Error, Result};

/// The database engine behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        })
    }
}

/// A database URL whose secrets never show: `Display` and `Debug` print
/// `postgres://user:***@host/db?sslpassword=***`.
///
/// ```
/// use jobprep_repo::DbConfig;
/// let config = DbConfig::parse("postgres://app:pw1@db/app?password=pw2&sslpassword=pw3")?;
/// assert_eq!(
///     config.url.to_string(),
///     "postgres://app:***@db/app?password=***&sslpassword=***"
/// );
/// # Ok::<(), jobprep_repo::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    backend: Backend,
    /// What the driver receives: a libpq URL without our options, or a SQLite path.
    target: String,
    /// The URL as shown, every secret replaced by `***`.
    shown: String,
    /// Every spelling (as written, percent-decoded) of every secret, longest first, so
    /// that driver messages can be scrubbed of them.
    secrets: Vec<String>,
}

/// Query keys whose values are secrets (libpq's connection keywords).
const SECRET_KEYS: &[&str] = &["password", "sslpassword"];

/// The prefix of our own options in a URL's query string.
pub(crate) const OPTION_PREFIX: &str = "jobprep_";

/// Shown in place of a secret.
const HIDDEN: &str = "***";

impl DatabaseUrl {
    /// Parses `text` (a `postgres://` or `postgresql://` URL, `sqlite://PATH`,
    /// `sqlite:PATH` or a plain file path) and returns it with our `jobprep_*` options,
    /// percent-decoded, in the order written.
    pub(crate) fn parse(text: &str) -> Result<(DatabaseUrl, Vec<(String, String)>)> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Config("the database URL is empty".into()));
        }
        if text.contains('\0') {
            return Err(Error::Config("the database URL contains a NUL byte".into()));
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            parse_postgres(text)
        } else if let Some(rest) = strip_prefix_ignore_case(text, "sqlite://")
            .or_else(|| strip_prefix_ignore_case(text, "sqlite:"))
        {
            parse_sqlite(rest)
        } else if is_keyword_value(text) {
            parse_keyword_value(text)
        } else if lower.starts_with("postgres") {
            // `postgres:/...`, `postgres//...`: a mistyped PostgreSQL URL, not a file
            // name. Never echo it: it may hold a password.
            Err(Error::Config(
                "malformed PostgreSQL URL: it must start with postgres:// or postgresql://".into(),
            ))
        } else if let Some(scheme) = url_scheme(text) {
            let scheme: String = scheme.chars().take(32).collect();
            Err(Error::Config(format!(
                "unsupported database URL scheme `{scheme}`: use postgres://, postgresql://, \
                 sqlite://PATH or a plain file path"
            )))
        } else {
            parse_sqlite(text)
        }
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL as the driver receives it (our options removed), password included:
    /// for handing to another client (an admin connection, a test harness). Never log
    /// it; `Display` and `Debug` show the redacted form.
    pub fn expose_secret(&self) -> &str {
        &self.target
    }

    /// Removes every spelling of this URL's secrets from `message`, such as a driver's
    /// error text, before it is shown or logged.
    pub fn scrub(&self, message: &str) -> String {
        let mut message = message.to_owned();
        for secret in &self.secrets {
            message = message.replace(secret.as_str(), HIDDEN);
        }
        message
    }

    /// The (first) host of a PostgreSQL connection string, if it names one (not a
    /// socket folder).
    pub(crate) fn host(&self) -> Option<String> {
        if self.backend != Backend::Postgres {
            return None;
        }
        let first = |hosts: &str| {
            let host = hosts.split(',').next().unwrap_or("");
            (!host.is_empty() && !host.starts_with('/')).then(|| host.to_owned())
        };
        if !is_url(&self.target) {
            return keyword_pairs(&self.target)
                .ok()?
                .into_iter()
                .find(|(key, _)| key == "host")
                .and_then(|(_, value)| first(&value));
        }
        let (placeheld, hosts) = hold_hosts(&self.target);
        match hosts {
            // `h1:5432,h2`: the first entry without its port.
            Some(hosts) => {
                let entry = hosts.split(',').next().unwrap_or("");
                let host = match entry.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or(""),
                    None => entry.split(':').next().unwrap_or(""),
                };
                first(host)
            }
            None => ::url::Url::parse(&placeheld)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned)),
        }
    }

    /// The connection string with libpq `settings` added where it does not set them
    /// itself (as `?key=value` on a URL, ` key=value` on a keyword/value string).
    pub(crate) fn with_defaults(&self, settings: &[(&str, &str)]) -> String {
        let mut target = self.target.clone();
        for (key, value) in settings {
            if !self.sets(key) {
                append_setting(&mut target, key, value);
            }
        }
        target
    }

    /// Whether the connection string sets libpq's `key` itself.
    pub(crate) fn sets(&self, key: &str) -> bool {
        self.target.contains(&format!("{key}="))
    }

    /// The same connection string with libpq's `key` set to `value` (which is no
    /// secret: it is shown too). The caller checks [`sets`](Self::sets) first.
    pub(crate) fn with_setting(&self, key: &str, value: &str) -> DatabaseUrl {
        let mut url = self.clone();
        append_setting(&mut url.target, key, value);
        append_setting(&mut url.shown, key, value);
        url
    }

    /// The same server with another database: the path of a PostgreSQL URL, or another
    /// file in the same folder for SQLite.
    pub fn with_database(&self, name: &str) -> Result<DatabaseUrl> {
        match self.backend {
            Backend::Postgres if !is_url(&self.target) => {
                let mut pairs = keyword_pairs(&self.target)?;
                pairs.retain(|(key, _)| key != "dbname");
                pairs.push(("dbname".into(), name.into()));
                Ok(DatabaseUrl::parse(&keyword_string(&pairs))?.0)
            }
            Backend::Postgres => {
                let (placeheld, hosts) = hold_hosts(&self.target);
                let mut url = ::url::Url::parse(&placeheld)
                    .map_err(|e| Error::Config(format!("malformed PostgreSQL URL: {e}")))?;
                url.set_path(&format!("/{name}"));
                Ok(DatabaseUrl::parse(&restore_hosts(url.as_str(), hosts))?.0)
            }
            Backend::Sqlite => {
                let path = std::path::Path::new(&self.target).with_file_name(name);
                Ok(DatabaseUrl::parse(&path.display().to_string())?.0)
            }
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.shown)
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn parse_postgres(text: &str) -> Result<(DatabaseUrl, Vec<(String, String)>)> {
    let (placeheld, hosts) = hold_hosts(text);
    let url = ::url::Url::parse(&placeheld).map_err(|error| {
        // The parser's message names the part that is wrong, never the input.
        Error::Config(format!("malformed PostgreSQL URL: {error}"))
    })?;
    let mut secrets = Vec::new();
    let mut keep_secret = |raw: &str| {
        if !raw.is_empty() {
            secrets.push(raw.to_owned());
            secrets.push(decode(raw).into_owned());
        }
    };
    if let Some(password) = url.password() {
        keep_secret(password);
    }
    let mut ours = Vec::new();
    let mut kept = Vec::new();
    let mut shown_query = Vec::new();
    for pair in query_pairs(url.query().unwrap_or("")) {
        if let Some(option) = pair.key.strip_prefix(OPTION_PREFIX) {
            ours.push((option.to_owned(), decode(pair.raw_value).into_owned()));
            continue;
        }
        kept.push(pair.raw);
        if SECRET_KEYS
            .iter()
            .any(|key| pair.key.eq_ignore_ascii_case(key))
        {
            keep_secret(pair.raw_value);
            let raw_key = pair.raw.split_once('=').map_or(pair.raw, |(key, _)| key);
            shown_query.push(format!("{raw_key}={HIDDEN}"));
        } else {
            shown_query.push(pair.raw.to_owned());
        }
    }
    let mut target = url.clone();
    target.set_query((!kept.is_empty()).then(|| kept.join("&")).as_deref());
    let mut shown = url;
    if shown.password().is_some() {
        // Only fails for URLs without a host, which cannot carry a userinfo password.
        let _ = shown.set_password(Some(HIDDEN));
    }
    shown.set_query(
        (!shown_query.is_empty())
            .then(|| shown_query.join("&"))
            .as_deref(),
    );
    shown.set_fragment(None);
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.dedup();
    let url = DatabaseUrl {
        backend: Backend::Postgres,
        target: restore_hosts(target.as_str(), hosts),
        shown: restore_hosts(shown.as_str(), hosts),
        secrets,
    };
    Ok((url, ours))
}

fn parse_keyword_value(text: &str) -> Result<(DatabaseUrl, Vec<(String, String)>)> {
    let mut ours = Vec::new();
    let mut kept = Vec::new();
    let mut secrets = Vec::new();
    for (key, value) in keyword_pairs(text)? {
        if let Some(option) = key.strip_prefix(OPTION_PREFIX) {
            ours.push((option.to_owned(), value));
        } else if LIBPQ_KEYWORDS.contains(&key.as_str()) {
            if SECRET_KEYS.contains(&key.as_str()) && !value.is_empty() {
                secrets.push(value.clone());
            }
            kept.push((key, value));
        } else {
            let key: String = key.chars().take(64).collect();
            return Err(Error::Config(format!(
                "`{key}` is not a libpq connection keyword (a PostgreSQL connection string \
                 is `host=... dbname=... user=...`; a SQLite path has no `=` before its \
                 first space)"
            )));
        }
    }
    let shown = kept
        .iter()
        .map(|(key, value)| match SECRET_KEYS.contains(&key.as_str()) {
            true => format!("{key}={HIDDEN}"),
            false => format!("{key}={value}"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    let url = DatabaseUrl {
        backend: Backend::Postgres,
        target: keyword_string(&kept),
        shown,
        secrets,
    };
    Ok((url, ours))
}

fn parse_sqlite(rest: &str) -> Result<(DatabaseUrl, Vec<(String, String)>)> {
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, query),
        None => (rest, ""),
    };
    let mut ours = Vec::new();
    let mut others = Vec::new();
    for pair in query_pairs(query) {
        match pair.key.strip_prefix(OPTION_PREFIX) {
            Some(option) => ours.push((option.to_owned(), decode(pair.raw_value).into_owned())),
            None => others.push(pair.key.into_owned()),
        }
    }
    if !others.is_empty() {
        // Name the keys only: a value could be a secret.
        return Err(Error::Config(format!(
            "SQLite URLs take no options but `{OPTION_PREFIX}*`; found `{}`",
            others.join("`, `")
        )));
    }
    if path.is_empty() {
        return Err(Error::Config("the SQLite URL names no file".into()));
    }
    if path == ":memory:" {
        return Err(Error::Config(
            "in-memory SQLite is not supported (each pooled connection would see its own \
             database); use a file, e.g. in a temporary folder"
                .into(),
        ));
    }
    let url = DatabaseUrl {
        backend: Backend::Sqlite,
        target: path.to_owned(),
        shown: format!("sqlite://{path}"),
        secrets: Vec::new(),
    };
    Ok((url, ours))
}

/// The scheme of `scheme:rest` (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`),
/// if the text starts with one. A file path has none (`./a.db`, `/srv/a.db`, `a.db`).
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let shaped = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    shaped.then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DatabaseUrl {
        DatabaseUrl::parse(text).unwrap().0
    }

    #[test]
    fn libpq_multi_host_and_socket_urls_are_postgres_as_written() {
        let url = parse("postgres://app:pw@h1:5432,h2:5433/db?target_session_attrs=read-write&jobprep_pool_max_size=2");
        assert_eq!(url.backend(), Backend::Postgres);
        assert_eq!(
            url.expose_secret(),
            "postgres://app:pw@h1:5432,h2:5433/db?target_session_attrs=read-write"
        );
        assert_eq!(
            url.to_string(),
            "postgres://app:***@h1:5432,h2:5433/db?target_session_attrs=read-write"
        );
        assert_eq!(url.host().as_deref(), Some("h1"));
        assert_eq!(
            url.with_database("other").unwrap().expose_secret(),
            "postgres://app:pw@h1:5432,h2:5433/other?target_session_attrs=read-write"
        );
        let v6 = parse("postgresql://[::1]:5432,[::1]:5433/db");
        assert_eq!(v6.host().as_deref(), Some("::1"));
        let socket = parse("postgresql://app@/db?host=/var/run/postgresql");
        assert_eq!(
            socket.expose_secret(),
            "postgresql://app@/db?host=/var/run/postgresql"
        );
        assert_eq!(socket.host(), None);
        assert_eq!(
            parse("postgresql:///db?host=/tmp").backend(),
            Backend::Postgres
        );
    }

    #[test]
    fn libpq_keyword_value_strings_are_postgres_with_secrets_hidden() {
        let (url, ours) = DatabaseUrl::parse(
            "host=127.0.0.1 port=5432 dbname=app user=postgres password='s3 cr\\'et' jobprep_pool_max_size=3",
        )
        .unwrap();
        assert_eq!(url.backend(), Backend::Postgres);
        assert_eq!(ours, vec![("pool_max_size".to_owned(), "3".to_owned())]);
        assert_eq!(
            url.expose_secret(),
            "host='127.0.0.1' port='5432' dbname='app' user='postgres' password='s3 cr\\'et'"
        );
        assert_eq!(
            url.to_string(),
            "host=127.0.0.1 port=5432 dbname=app user=postgres password=***"
        );
        assert_eq!(url.scrub("bad password s3 cr'et"), "bad password ***");
        assert_eq!(url.host().as_deref(), Some("127.0.0.1"));
        let other = url.with_database("other").unwrap();
        assert!(
            other.expose_secret().contains("dbname='other'"),
            "{other:?}"
        );
        assert!(!other.expose_secret().contains("dbname='app'"));
        assert!(url
            .with_defaults(&[("connect_timeout", "5")])
            .ends_with(" connect_timeout='5'"));
        // Not libpq's: refused, naming the keyword and never the value.
        let error = DatabaseUrl::parse("host=db dbnam=app password=hunter2")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`dbnam` is not a libpq connection keyword"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
        let error = DatabaseUrl::parse("host=db password='open")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("not closed") && !error.contains("open"),
            "{error}"
        );
        // A path is still a path.
        assert_eq!(parse("./data/app db.sqlite3").backend(), Backend::Sqlite);
    }

    #[test]
    fn backends_come_from_the_scheme() {
        assert_eq!(parse("postgresql://u@h/db").backend(), Backend::Postgres);
        assert_eq!(parse("POSTGRES://u@h/db").backend(), Backend::Postgres);
        for sqlite in [
            "sqlite:///tmp/a.db",
            "sqlite://a.db",
            "sqlite:a.db",
            "./a.db",
            "/tmp/a.db",
        ] {
            assert_eq!(parse(sqlite).backend(), Backend::Sqlite, "{sqlite}");
        }
        assert_eq!(parse("sqlite:///tmp/a.db").expose_secret(), "/tmp/a.db");
        let err = DatabaseUrl::parse("mysql://root@localhost/db").unwrap_err();
        assert!(
            err.to_string()
                .contains("unsupported database URL scheme `mysql`"),
            "{err}"
        );
    }

    #[test]
    fn our_options_are_taken_out_before_libpq() {
        let (url, ours) = DatabaseUrl::parse(
            "postgres://u:pw@h:5432/db?sslmode=require&jobprep_pool_max_size=3&application_name=x%20y",
        )
        .unwrap();
        assert_eq!(ours, vec![("pool_max_size".to_owned(), "3".to_owned())]);
        assert_eq!(
            url.expose_secret(),
            "postgres://u:pw@h:5432/db?sslmode=require&application_name=x%20y"
        );
    }

    #[test]
    fn every_secret_is_hidden_and_scrubbed() {
        let url = parse(
            "postgres://u:p%40ss@h/db?password=a&pass%77ord=b&sslpassword=c&PASSWORD=d&user=e",
        );
        assert_eq!(
            url.to_string(),
            "postgres://u:***@h/db?password=***&pass%77ord=***&sslpassword=***&PASSWORD=***&user=e"
        );
        assert_eq!(url.scrub("p@ss p%40ss"), "*** ***");
        assert_eq!(url.host().as_deref(), Some("h"));
    }

    #[test]
    fn unparseable_urls_are_refused_without_echo() {
        for text in [
            "postgres://u:secret@[::1/db?password=p2",
            "postgres://u:secret@h:99999/db",
        ] {
            let error = DatabaseUrl::parse(text).unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, Error::Config(_)), "{text}: {error:?}");
            assert!(
                !message.contains("secret") && !message.contains("p2"),
                "{message}"
            );
        }
    }

    #[test]
    fn the_database_name_can_be_replaced() {
        let url = parse("postgres://u:pw@h:5432/app?sslmode=disable");
        assert_eq!(
            url.with_database("other").unwrap().expose_secret(),
            "postgres://u:pw@h:5432/other?sslmode=disable"
        );
        let file = parse("/tmp/x/a.sqlite3");
        assert_eq!(
            file.with_database("b.sqlite3").unwrap().expose_secret(),
            "/tmp/x/b.sqlite3"
        );
    }
}
