//! Secrets in database URLs never show: not in `Debug` or `Display` of `DatabaseUrl`,
//! `DbConfig`, `DbBuilder` or `Db`, and not in any error, whatever URL form carries
//! them (userinfo password, `password=` and `sslpassword=` parameters, repeated,
//! percent-encoded, malformed URLs).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use jobprep_repo::{Db, DbConfig, Error, UserId};
use proptest::prelude::*;

const SECRET: &str = "S3cr3t-P4ss";

/// Every spelling of `secret` a message could carry.
fn spellings(secret: &str) -> Vec<String> {
    let encoded: String = secret.bytes().map(|b| format!("%{b:02X}")).collect();
    let mut spellings = vec![secret.to_owned(), encoded.clone(), encoded.to_lowercase()];
    spellings.push(secret.replace('-', "%2D"));
    spellings
}

fn assert_hidden(shown: &str, secret: &str, context: &str) {
    for spelling in spellings(secret) {
        assert!(
            !shown.contains(&spelling),
            "{context} shows the secret ({spelling}): {shown}"
        );
    }
}

/// Display, Debug and every source of an error.
fn error_texts(error: &Error) -> String {
    let mut text = format!("{error}\n{error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(&format!("\n{inner}\n{inner:?}"));
        source = inner.source();
    }
    text
}

/// Everything a URL's handles print, before and after a failed connection.
fn assert_handles_hide(url: &str, secret: &str) {
    let context = |what: &str| format!("{what} of {url:?}");
    match DbConfig::parse(url) {
        Ok(config) => {
            assert_hidden(&format!("{config:?}"), secret, &context("DbConfig"));
            assert_hidden(&config.url.to_string(), secret, &context("DatabaseUrl"));
            assert_hidden(
                &format!("{:?}", config.url),
                secret,
                &context("DatabaseUrl Debug"),
            );
        }
        Err(error) => assert_hidden(&error_texts(&error), secret, &context("parse error")),
    }
    let builder = Db::builder(url).connection_timeout(Duration::from_millis(300));
    assert_hidden(&format!("{builder:?}"), secret, &context("DbBuilder"));
    match builder.build() {
        Ok(db) => {
            assert_hidden(&format!("{db:?}"), secret, &context("Db"));
            let started = Instant::now();
            let error = jobprep_users::get(&db, &UserId::new("user_x").unwrap()).unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(10), "{url}");
            assert_hidden(&error_texts(&error), secret, &context("connection error"));
            let error = db.migrate().unwrap_err();
            assert_hidden(&error_texts(&error), secret, &context("migrate error"));
            assert_hidden(&format!("{db:?}"), secret, &context("Db after errors"));
        }
        Err(error) => assert_hidden(&error_texts(&error), secret, &context("build error")),
    }
}

#[test]
fn every_url_form_hides_its_secrets() {
    let p = SECRET;
    // Nothing listens on port 1: each connection attempt fails fast.
    for url in [
        format!("postgres://app:{p}@127.0.0.1:1/db"),
        format!("postgresql://app:{p}@127.0.0.1:1/db?sslmode=disable&jobprep_pool_max_size=2"),
        "postgres://app:S3cr3t%2DP4ss@127.0.0.1:1/db".to_owned(),
        format!("postgres://app@127.0.0.1:1/db?password={p}"),
        // Both places at once: libpq uses the query one.
        format!("postgres://app:other@127.0.0.1:1/db?password={p}"),
        format!("postgres://app:{p}@127.0.0.1:1/db?password={p}x"),
        // Repeated: libpq uses the last one.
        format!("postgres://app@127.0.0.1:1/db?password=first&password={p}"),
        // The client key's passphrase.
        format!("postgres://app@127.0.0.1:1/db?sslpassword={p}"),
        // Percent-encoded key and value.
        "postgres://app@127.0.0.1:1/db?pass%77ord=S3cr3t%2DP4ss".to_owned(),
        format!("postgres://app@127.0.0.1:1/db?PASSWORD={p}"),
        // Malformed: refused before libpq, which would echo them.
        format!("postgres://app:{p}@[::1/db?password={p}"),
        format!("postgres://app:pw@[::1/db?password={p}"),
        format!("postgres://app:{p}%zz@127.0.0.1:1/db"),
        format!("postgres://app:{p}@127.0.0.1:99999/db"),
        format!("postgres://app:{p}@h1:5432,h2:5433/db"),
    ] {
        assert_handles_hide(&url, SECRET);
    }
}

#[test]
fn a_malformed_url_is_refused_at_once_without_reaching_libpq() {
    let error = Db::connect(&format!("postgres://u:pw@[::1/db?password={SECRET}")).unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(
        error.to_string().contains("malformed PostgreSQL URL"),
        "{error}"
    );
    assert_hidden(&error_texts(&error), SECRET, "malformed URL");
}

#[test]
fn malformed_options_and_schemes_holding_a_password_are_refused_without_showing_it() {
    let p = SECRET;
    for url in [
        format!("postgres://app:{p}@h/db?jobprep_pool_max_size=lots"),
        format!("postgres://app:{p}@h/db?jobprep_bogus=1"),
        format!("postgres://app:{p}@h/db?jobprep_pool_max_size=0"),
        format!("postgres://app:{p}@h/db?jobprep_pool_timeout_secs=0"),
        format!("postgres://app:{p}@h/db?jobprep_pooler_safe=sometimes"),
        format!("postgres://app:{p}@h/db\0"),
        format!("mysql://app:{p}@h/db"),
        format!("postgress://app:{p}@h/db"),
        format!("postgres+ssl://app:{p}@h/db"),
        format!("postgres:/app:{p}@127.0.0.1:1/db"),
        format!("postgres//app:{p}@127.0.0.1:1/db"),
        format!("postgres:app:{p}@127.0.0.1:1/db"),
        format!("sqlite://app.db?password={p}"),
    ] {
        let error = Db::connect(&url).unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{url}: {error:?}");
        assert_handles_hide(&url, SECRET);
    }
}

/// A secret of letters, digits and the characters that need percent-encoding in a URL.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{6,10}(@|%|#|/|\\?|&|=|:| |\\+|é){0,2}[A-Za-z0-9]{4,8}".prop_filter(
        "distinct from the rest of the URL",
        |s| {
            !["app", "127", "postgres", "db", "password", "sslmode"]
                .iter()
                .any(|w| s.contains(w) || w.contains(s.as_str()))
        },
    )
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A PostgreSQL URL with the secret in one or more of the places libpq reads one.
fn url_with_secret(secret: &str, places: u8, encoded_key: bool, trailing: &str) -> String {
    let value = encode(secret);
    let userinfo = if places & 1 != 0 {
        format!("app:{value}@")
    } else {
        "app@".to_owned()
    };
    let key = if encoded_key {
        "pass%77ord"
    } else {
        "password"
    };
    let mut query = Vec::new();
    if places & 2 != 0 {
        query.push(format!("{key}={value}"));
    }
    if places & 4 != 0 {
        query.push(format!("sslpassword={value}"));
    }
    if places & 8 != 0 {
        query.push(format!("password=x&{key}={value}"));
    }
    query.push(trailing.to_owned());
    format!("postgres://{userinfo}127.0.0.1:1/db?{}", query.join("&"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_secret_in_any_position_never_shows(
        secret in secret(),
        places in 1u8..16,
        encoded_key in any::<bool>(),
        trailing in prop::sample::select(vec!["sslmode=disable", "jobprep_pool_max_size=2", "application_name=x", ""]),
    ) {
        let url = url_with_secret(&secret, places, encoded_key, trailing);
        let config = DbConfig::parse(&url).unwrap();
        for shown in [format!("{config:?}"), config.url.to_string(), format!("{:?}", Db::builder(&url))] {
            for spelling in [secret.clone(), encode(&secret)] {
                prop_assert!(!shown.contains(&spelling), "{} shows {}", shown, spelling);
            }
        }
    }
}
