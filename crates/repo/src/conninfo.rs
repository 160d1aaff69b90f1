//! libpq's connection strings as text: URL query pairs and host lists the `url` crate
//! cannot take as written, and keyword/value strings (`host=db dbname=app`). What they
//! mean (backend, secrets, our options) is `database_url`'s.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

pub(crate) fn decode(text: &str) -> Cow<'_, str> {
    percent_decode_str(text).decode_utf8_lossy()
}

/// One `key=value` pair of a raw query string, as written.
pub(crate) struct QueryPair<'a> {
    pub(crate) raw: &'a str,
    pub(crate) key: Cow<'a, str>,
    pub(crate) raw_value: &'a str,
}

pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = QueryPair<'_>> {
    query.split('&').filter(|p| !p.is_empty()).map(|raw| {
        let (key, raw_value) = raw.split_once('=').unwrap_or((raw, ""));
        QueryPair {
            raw,
            key: decode(key),
            raw_value,
        }
    })
}

/// Stands for the host list while the `url` crate parses a URL it would refuse:
/// several hosts (`h1:5432,h2:5433`) or none (`user@/db?host=/run/postgresql`).
pub(crate) const HOSTS_PLACEHOLDER: &str = "jobprep-hosts.invalid";

/// `text` with its host list replaced by [`HOSTS_PLACEHOLDER`] when the `url` crate
/// cannot take it as written, and that host list.
pub(crate) fn hold_hosts(text: &str) -> (Cow<'_, str>, Option<&str>) {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return (Cow::Borrowed(text), None);
    };
    let end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    let authority = &text[start..end];
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let hosts = &authority[host_start..];
    let several = hosts.contains(',');
    let none_after_user = hosts.is_empty() && host_start > 0;
    if !several && !none_after_user {
        return (Cow::Borrowed(text), None);
    }
    let at = start + host_start;
    let held = format!(
        "{}{HOSTS_PLACEHOLDER}{}",
        &text[..at],
        &text[at + hosts.len()..]
    );
    (Cow::Owned(held), Some(hosts))
}

pub(crate) fn restore_hosts(text: &str, hosts: Option<&str>) -> String {
    match hosts {
        Some(hosts) => text.replacen(HOSTS_PLACEHOLDER, hosts, 1),
        None => text.to_owned(),
    }
}

/// Appends `key=value` to a URL's query (percent-encoded) or to a keyword/value
/// string (quoted).
pub(crate) fn append_setting(target: &mut String, key: &str, value: &str) {
    if is_url(target) {
        let value =
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str(&format!("{key}={value}"));
    } else {
        let value = value.replace('\\', "\\\\").replace('\'', "\\'");
        target.push_str(&format!(" {key}='{value}'"));
    }
}

pub(crate) fn is_url(text: &str) -> bool {
    let lower = text.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// libpq's connection keywords (its documentation, "Parameter Key Words").
pub(crate) const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
    "min_protocol_version",
    "max_protocol_version",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
];

/// Whether `text` is a libpq keyword/value string: it starts with `keyword =`.
pub(crate) fn is_keyword_value(text: &str) -> bool {
    let Some((key, _)) = text.split_once('=') else {
        return false;
    };
    let key = key.trim();
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The pairs of a keyword/value string, values unquoted as libpq reads them (`'...'`
/// with `\'` and `\\` escapes, or a run of non-space characters).
pub(crate) fn keyword_pairs(text: &str) -> Result<Vec<(String, String)>> {
    let malformed =
        |what: &str| Error::Config(format!("malformed PostgreSQL connection string: {what}"));
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| malformed("a keyword without `=`"))?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(malformed("a keyword must be letters, digits and `_`"));
        }
        let after = after.trim_start();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let consumed = if after.starts_with('\'') {
            chars.next();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            end.ok_or_else(|| malformed("a quoted value is not closed"))?
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            value.push_str(&after[..end]);
            end
        };
        pairs.push((key.to_owned(), value));
        rest = after[consumed..].trim_start();
    }
    Ok(pairs)
}

/// A keyword/value string libpq reads back as `pairs`.
pub(crate) fn keyword_string(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| {
            let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
            format!("{key}='{escaped}'")
        })
        .collect::<Vec<_>>()
        .join(" ")
}
