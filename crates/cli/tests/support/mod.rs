//! What the CLI's test files share.

use std::process::{Command, Output};

/// Runs the `jobprep` binary on `url` with `args`, ignoring any `DATABASE_URL` around.
pub fn jobprep(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jobprep"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run jobprep")
}
