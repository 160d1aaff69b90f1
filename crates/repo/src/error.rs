//! Errors, and the policy behind them.
//!
//! - Every public function of jobprep returns [`Result<T>`] with this one [`Error`].
//!   Its variants are the decisions a caller makes: show "not found", report a conflict,
//!   fix the input, retry later, fix the deployment.
//! - Database errors are classified here, once, for both backends, by [`Error::from`]
//!   (`diesel::result::Error`), so a unique violation is [`Error::Conflict`] on
//!   PostgreSQL and on SQLite alike, under the same constraint name.
//! - Nothing is swallowed: an error jobprep cannot classify keeps its source in
//!   [`Error::Database`].
//! - Messages never carry a password: connection errors are scrubbed before they are
//!   stored, and URLs are only ever shown through [`crate::DatabaseUrl`]'s redacted form.
//! - Mapping to HTTP statuses or user-facing text is the embedding service's job.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Shorthand for `std::result::Result<T, jobprep_repo::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds of rows jobprep stores, as named in errors and cache tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    User,
    JobInfo,
    Interview,
    Question,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entity::User => "user",
            Entity::JobInfo => "job info",
            Entity::Interview => "interview",
            Entity::Question => "question",
        })
    }
}

/// Which kind of constraint a write ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstraintKind {
    Unique,
    ForeignKey,
    Check,
    NotNull,
}

/// Everything that can go wrong in jobprep. See the module docs for the policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The row does not exist, or it belongs to another user (the two are
    /// indistinguishable on purpose).
    #[error("{entity} not found")]
    NotFound { entity: Entity },

    /// A write broke a constraint, e.g. `users_email_unique` when the email belongs to
    /// another user. `constraint` is the PostgreSQL constraint name on both backends,
    /// when the database reports one.
    #[error("conflict: {kind:?} constraint {} violated", constraint.as_deref().unwrap_or("(unnamed)"))]
    Conflict {
        kind: ConstraintKind,
        constraint: Option<String>,
    },

    /// The input was rejected before anything was written. `field` is the field's name
    /// as JSON spells it, or `changes` for a change form that sets no field.
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },

    /// A quota-checked write found the user's plan quota used up: the user already has
    /// `limit` of `entity` (interviews count once they have a chat id). Nothing was
    /// written; trying again fails again until the count drops or the plan grows.
    #[error("{entity} quota of {limit} reached")]
    QuotaExceeded { entity: Entity, limit: u32 },

    /// The database could not be reached in time, the connection was lost, or the
    /// transaction lost a race (serialization failure, deadlock, SQLite busy). Nothing
    /// of the failed call was committed; retrying is the expected reaction.
    /// `connection_lost` tells a connection that is gone (server restart, network loss)
    /// from a transaction that lost a race.
    #[error("database unavailable: {reason}")]
    Unavailable {
        reason: String,
        connection_lost: bool,
    },

    /// The connection broke after a write was sent and before its answer came (an
    /// autocommit statement, or the COMMIT of a transaction): the write may have been
    /// committed, or not. Not retryable as such, since a blind retry of a write that
    /// did commit would apply it twice. The writes that have the same effect when run
    /// twice (the inserts, upserts and updates of the feature crates, see
    /// [`Executor::write_idempotent`](crate::Executor::write_idempotent)) settle this
    /// themselves by running once more on a fresh connection, and answer this only when
    /// that fails too; for the others, read to find out before writing again
    /// (`docs/replicas-and-failover.md` says what to do per use case).
    #[error("outcome unknown: the connection broke before the write's answer came, so it may have been committed ({reason})")]
    OutcomeUnknown { reason: String },

    /// Migrations could not be applied, reverted or adopted.
    #[error("migration failed: {0}")]
    Migration(String),

    /// The configuration (URL, options, pool settings, replicas) is unusable, or names
    /// a database, role or file that cannot be used as given. Retrying cannot help.
    #[error("configuration error: {0}")]
    Config(String),

    /// The API was used in a way it cannot serve: a transaction used from inside one of
    /// its own calls, or the async handle awaited outside a tokio runtime. A bug in the
    /// calling code; retrying cannot help.
    #[error("misuse: {0}")]
    Misuse(String),

    /// Any other database error, kept whole.
    #[error("database error: {0}")]
    Database(#[source] DieselError),
}

impl Error {
    /// Whether the same call may succeed if simply tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// Whether the error shows the connection itself is gone (server restart, network
    /// loss), as opposed to a transaction that lost a race.
    pub(crate) fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            Error::Unavailable {
                connection_lost: true,
                ..
            } | Error::OutcomeUnknown { .. }
        )
    }

    /// For a write whose connection broke after it was sent: the outcome is unknown.
    /// Other errors pass through.
    pub(crate) fn in_doubt(self) -> Self {
        match self {
            Error::Unavailable {
                reason,
                connection_lost: true,
            } => Error::OutcomeUnknown { reason },
            other => other,
        }
    }

    /// A retryable failure with the connection still usable.
    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        Error::Unavailable {
            reason: reason.into(),
            connection_lost: false,
        }
    }

    /// A retryable failure classified from a driver message: whether the message shows
    /// the connection is gone is decided here, once.
    fn unavailable_from_message(reason: String) -> Self {
        let connection_lost = LOST_CONNECTION.iter().any(|needle| reason.contains(needle));
        Error::Unavailable {
            reason,
            connection_lost,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// A change form that sets no field: `InvalidInput` for `changes`.
    pub(crate) fn nothing_to_change() -> Self {
        Error::invalid("changes", "no field to change: set at least one")
    }

    pub(crate) fn not_found(entity: Entity) -> Self {
        Error::NotFound { entity }
    }

    /// For a write under a parent row: a foreign-key violation means the parent is
    /// missing, either never there or deleted by a concurrent transaction after this
    /// statement found it. Either way the caller sees the documented `NotFound`.
    pub(crate) fn parent_missing(self, parent: Entity) -> Self {
        match self {
            Error::Conflict {
                kind: ConstraintKind::ForeignKey,
                ..
            } => Error::not_found(parent),
            other => other,
        }
    }
}

impl From<DieselError> for Error {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::DatabaseError(kind, info) => {
                classify_database_error(kind, info.message(), info.constraint_name())
                    .unwrap_or_else(|| Error::Database(DieselError::DatabaseError(kind, info)))
            }
            DieselError::BrokenTransactionManager => {
                Error::unavailable("the connection's transaction state was lost")
            }
            other => Error::Database(other),
        }
    }
}

impl From<r2d2::Error> for Error {
    fn from(error: r2d2::Error) -> Self {
        // r2d2 reports a timeout together with the last connection error, which the
        // connection manager has already scrubbed of passwords.
        Error::unavailable_from_message(error.to_string())
    }
}

fn classify_database_error(
    kind: DatabaseErrorKind,
    message: &str,
    constraint: Option<&str>,
) -> Option<Error> {
    let conflict = |kind| {
        Some(Error::Conflict {
            kind,
            constraint: constraint
                .map(str::to_owned)
                .or_else(|| sqlite_constraint_name(message)),
        })
    };
    match kind {
        DatabaseErrorKind::UniqueViolation => conflict(ConstraintKind::Unique),
        DatabaseErrorKind::ForeignKeyViolation => conflict(ConstraintKind::ForeignKey),
        DatabaseErrorKind::CheckViolation => conflict(ConstraintKind::Check),
        DatabaseErrorKind::NotNullViolation => conflict(ConstraintKind::NotNull),
        DatabaseErrorKind::ClosedConnection => Some(Error::Unavailable {
            reason: format!("connection is closed: {message}"),
            connection_lost: true,
        }),
        DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ReadOnlyTransaction => {
            Some(Error::unavailable_from_message(message.to_owned()))
        }
        // The statement timeout (or a lock timeout) cancelled it: nothing was written,
        // and another try may find the lock free or the server less busy.
        _ if message.contains("due to statement timeout")
            || message.contains("due to lock timeout") =>
        {
            Some(Error::unavailable(format!("timed out: {message}")))
        }
        _ if is_transient_message(message) => {
            Some(Error::unavailable_from_message(message.to_owned()))
        }
        // A database migrated by an older version: no retry helps, a migration does.
        _ if message.contains("does not exist")
            && (message.contains("function jobprep.")
                || message.contains("schema \"jobprep\"")) =>
        {
            Some(Error::Config(format!(
                "{message}: this database lacks jobprep's functions; run `jobprep migrate`"
            )))
        }
        _ => None,
    }
}

/// PostgreSQL's answer to a call of jobprep's functions where migration 000007 has not
/// run (or its schema was dropped).
fn names_missing_functions(message: &str) -> bool {
    message.contains("does not exist")
        && (message.contains("function jobprep.") || message.contains("schema \"jobprep\""))
}

/// Whether `error` is PostgreSQL's refusal of a call of jobprep's functions because
/// they are not installed.
pub(crate) fn is_missing_functions(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(_, info) if names_missing_functions(info.message()))
}

/// Errors that diesel reports as `Unknown` but that mean "try again": SQLite's busy
/// and locked states, PostgreSQL deadlocks, and servers shutting down or restarting.
fn is_transient_message(message: &str) -> bool {
    const RACES: &[&str] = &[
        "database is locked",
        "database table is locked",
        "deadlock detected",
        "could not serialize access",
        "canceling statement due to conflict with recovery",
    ];
    RACES
        .iter()
        .chain(LOST_CONNECTION)
        .any(|needle| message.contains(needle))
}

/// Whether a failed connection attempt can never succeed as configured: libpq refused
/// an option, the database or role does not exist, authentication was refused, or the
/// SQLite file cannot be opened. A refused or reset connection, and a server starting
/// up or shutting down, are not in this list: they pass.
pub(crate) fn is_permanent_connect_failure(message: &str) -> bool {
    const PERMANENT: &[&str] = &[
        // libpq's option checks: `invalid sslmode value`, `invalid URI query
        // parameter`, `invalid integer value ... for connection option "port"`,
        // `invalid connection option`, `invalid percent-encoded token`.
        "invalid ",
        "missing \"=\"",
        "does not exist",
        // An unknown `service=` name (pg_service.conf).
        "definition of service",
        "authentication failed",
        "no pg_hba.conf entry",
        "no password supplied",
        "server does not support ssl",
        "unable to open database file",
        "file is not a database",
    ];
    let message = message.to_ascii_lowercase();
    PERMANENT.iter().any(|needle| message.contains(needle))
}

/// Whether a failed connection attempt found nothing listening: the server refused the
/// TCP connection, or its Unix socket does not exist. Retryable (the server may be
/// restarting), but no use waiting for in a pool: see `ConnectOutcomes`.
pub(crate) fn is_refused_connection(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("connection refused")
        || (message.contains("on socket") && message.contains("no such file or directory"))
}

/// A driver's message on one line: libpq ends lines with `\n` and indents hints with a
/// tab (`Connection refused\n\tIs the server running ...`); each line's whitespace is
/// collapsed and the lines are joined with `; `.
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Messages libpq and PostgreSQL give when a connection is gone for good.
const LOST_CONNECTION: &[&str] = &[
    "terminating connection",
    "server closed the connection",
    "connection to server",
    "no connection to the server",
    "the database system is",
    "SSL connection has been closed",
    "could not receive data from server",
    "could not send data to server",
    "connection is closed",
    "Broken pipe",
];

/// SQLite names the columns of a failed UNIQUE constraint (`UNIQUE constraint failed:
/// users.email`) and the name of a failed CHECK; map them to the constraint names that
/// PostgreSQL reports, so callers see one vocabulary.
fn sqlite_constraint_name(message: &str) -> Option<String> {
    let detail = message
        .split_once("constraint failed: ")
        .map(|(_, detail)| detail.trim())?;
    let name = match detail {
        "users.email" => "users_email_unique",
        "users.id" => "users_pkey",
        "job_info.id" => "job_info_pkey",
        "interviews.id" => "interviews_pkey",
        "questions.id" => "questions_pkey",
        other => other,
    };
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_unique_messages_use_postgres_constraint_names() {
        assert_eq!(
            sqlite_constraint_name("UNIQUE constraint failed: users.email").as_deref(),
            Some("users_email_unique")
        );
        assert_eq!(
            sqlite_constraint_name("CHECK constraint failed: questions_difficulty_check")
                .as_deref(),
            Some("questions_difficulty_check")
        );
        assert_eq!(
            sqlite_constraint_name("FOREIGN KEY constraint failed"),
            None
        );
    }

    #[test]
    fn driver_messages_become_one_line() {
        let libpq = "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\
                     \tIs the server running on that host and accepting TCP/IP connections?\n";
        assert_eq!(
            one_line(libpq),
            "connection to server at \"127.0.0.1\", port 1 failed: Connection refused; Is the \
             server running on that host and accepting TCP/IP connections?"
        );
        assert!(is_refused_connection(libpq));
        assert!(is_refused_connection(
            "connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed: No such \
             file or directory"
        ));
        assert!(!is_refused_connection(
            "connection to server at \"127.0.0.1\", port 5432 failed: FATAL: the database \
             system is starting up"
        ));
    }

    #[test]
    fn busy_and_shutdown_messages_are_retryable() {
        for message in [
            "database is locked",
            "terminating connection due to administrator command",
            "deadlock detected",
        ] {
            let error = classify_database_error(DatabaseErrorKind::Unknown, message, None);
            assert!(error.is_some_and(|e| e.is_retryable()), "{message}");
        }
        assert!(
            classify_database_error(DatabaseErrorKind::Unknown, "syntax error", None).is_none()
        );
    }
}
