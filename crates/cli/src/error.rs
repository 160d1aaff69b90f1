//! Why a `jobprep` command failed: jobprep's own errors, and the command's.

/// The error of a `jobprep` command. Library errors keep their meaning (and their
/// `is_retryable`); the rest belong to the command itself.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Jobprep(#[from] jobprep_repo::Error),

    /// A result that could not be written as JSON.
    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },

    /// The command cannot run as asked (a precondition it checks itself).
    #[error("{0}")]
    Refused(String),

    /// `cache-bridge` cannot go on (its listener stopped).
    #[error("cache-bridge: {0}")]
    Bridge(String),

    /// A benchmark could not be set up or run to its end.
    #[error("benchmark: {0}")]
    Bench(String),
}

impl CliError {
    pub fn json(what: &'static str) -> impl FnOnce(serde_json::Error) -> CliError {
        move |source| CliError::Json { what, source }
    }
}

impl From<diesel::result::Error> for CliError {
    fn from(error: diesel::result::Error) -> Self {
        CliError::Jobprep(error.into())
    }
}
