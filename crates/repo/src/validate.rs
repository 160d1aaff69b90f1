//! Input checks run before any write. Each failure is [`Error::InvalidInput`] naming
//! the field in the JSON spelling the original app's clients use.
//!
//! Lengths count characters, as PostgreSQL's `varchar(n)` does. NUL is refused
//! everywhere because PostgreSQL text cannot hold it (SQLite could, and the two
//! backends must behave alike).

use chrono::{DateTime, Datelike, Utc};

use crate::error::{Error, Result};

/// Text that must be present: non-blank, at most `max_chars`, no NUL.
pub(crate) fn required_text(field: &'static str, value: &str, max_chars: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    bounded_text(field, value, max_chars)
}

/// Text that may be anything up to `max_chars`, without NUL.
pub(crate) fn bounded_text(field: &'static str, value: &str, max_chars: usize) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    // Count at most one past the limit: a huge input is rejected without a full scan.
    if value.chars().take(max_chars + 1).count() > max_chars {
        return Err(Error::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

/// No column limit: `varchar` without a length.
pub(crate) const UNBOUNDED: usize = usize::MAX - 1;

/// An email address shaped like `local@domain.tld`, at most 255 characters.
pub(crate) fn email(value: &str) -> Result<()> {
    required_text("email", value, 255)?;
    let shaped = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !value.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if shaped {
        Ok(())
    } else {
        Err(Error::invalid("email", "must look like name@example.com"))
    }
}

/// A timestamp from outside (an auth provider's), in years 1 to 9999: what both
/// backends store and read back alike (SQLite keeps fixed-width RFC 3339 text).
pub(crate) fn timestamp(field: &'static str, value: &DateTime<Utc>) -> Result<()> {
    if (1..=9999).contains(&value.year()) {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "must be between the years 1 and 9999",
        ))
    }
}

/// An interview duration, `HH:MM:SS` (hours may exceed two digits).
pub(crate) fn duration(value: &str) -> Result<()> {
    let mut parts = value.split(':');
    let shaped = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(m), Some(s), None) => {
            let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            let sexagesimal = |p: &str| p.len() == 2 && digits(p) && p < "60";
            h.len() >= 2 && h.len() <= 6 && digits(h) && sexagesimal(m) && sexagesimal(s)
        }
        _ => false,
    };
    if shaped {
        Ok(())
    } else {
        Err(Error::invalid(
            "duration",
            "must be HH:MM:SS, e.g. 00:12:34",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@@b.co", "a b@c.de", "a@.co", "a@b.co.",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        for ok in ["00:00:00", "01:59:59", "123:00:01"] {
            assert!(duration(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1:00:00",
            "00:60:00",
            "00:00:6",
            "00:00:00:00",
            "aa:bb:cc",
            "-1:00:00",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lengths_count_characters() {
        assert!(required_text("name", &"é".repeat(255), 255).is_ok());
        assert!(required_text("name", &"é".repeat(256), 255).is_err());
        assert!(required_text("name", "  ", 255).is_err());
        assert!(bounded_text("name", "a\0b", 255).is_err());
    }
}
