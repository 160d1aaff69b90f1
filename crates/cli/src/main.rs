//! `jobprep`: migrations, the demo, operator reads and benchmarks.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod bridge;
mod demo;
mod error;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jobprep_repo::feed::{self, FeedEvent, FeedInstallation, FeedOptions, Listener};
use jobprep_repo::{Db, DbConfig, Error, JobInfoId, UserId};

use crate::error::CliError;

#[derive(Debug, Parser)]
#[command(
    name = "jobprep",
    version,
    about = "The jobprep data layer: migrations, demo, operator reads"
)]
struct Cli {
    /// postgres://..., sqlite://PATH or a file path. Default: $DATABASE_URL, else the
    /// embedded SQLite file (see docs/configuration.md).
    // Not clap's `env`: clap would then list the option as given in every usage line.
    // Without it, `DbConfig::from_env` reads DATABASE_URL (and the JOBPREP_* settings).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations (adopting an existing app database, restoring our indexes
    /// and drizzle's journal), or show, check or revert them.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Walk the whole product once and show what each step did and which cache tags it reported.
    Demo {
        /// Print one JSON document instead of the readable report.
        #[arg(long)]
        json: bool,
    },
    /// Measure each operation through jobprep against raw SQL, in the same run.
    Bench(bench::BenchArgs),
    /// Install, remove or inspect the PostgreSQL triggers of the cache feed, or print its events.
    CacheFeed {
        #[command(subcommand)]
        action: FeedAction,
    },
    /// Forward the cache feed to an HTTP endpoint (the app's revalidation route).
    CacheBridge(bridge::BridgeArgs),
    /// Read one user (JSON).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Read a user's job infos (JSON).
    JobInfos {
        #[command(subcommand)]
        action: JobInfosAction,
    },
    /// Read the interviews of a job info (JSON).
    Interviews {
        #[command(subcommand)]
        action: InterviewsAction,
    },
    /// Read the questions of a job info (JSON).
    Questions {
        #[command(subcommand)]
        action: ScopedListAction,
    },
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// List every migration and whether it is applied.
    Status,
    /// Revert the most recent migration; stops at the baseline (the original app's schema).
    Revert,
    /// Print the schema as the database's catalog describes it, one line per object.
    Schema,
    /// Report every difference from what jobprep expects; exits non-zero if there is any.
    Check,
    /// Revert every migration and drop the original app's tables; refuses while they hold
    /// rows or drizzle's journal exists.
    DropAppSchema,
}

#[derive(Debug, Subcommand)]
enum FeedAction {
    /// Install (or update) the triggers; safe to run again.
    Install,
    /// Remove the triggers, their functions and tables; the app's tables are untouched.
    Remove,
    /// Whether the triggers are in place: prints installed, absent or partial (with
    /// what is missing). Exits 0 only when installed, or on SQLite (in process: nothing
    /// to install); 1 when absent or partial, so a monitoring check can use it as is.
    Status,
    /// Delete the recorded changes every listener has read (listeners do this
    /// themselves; schedule it when none runs).
    Trim,
    /// Print each event as one JSON line on stdout until interrupted; says on stderr
    /// when it is listening.
    Listen,
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// The user with this id.
    Get {
        /// The user's id (the auth provider's, e.g. `user_2abc...`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum JobInfosAction {
    /// The user's job infos, most recently updated first.
    List {
        /// The user's id.
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum InterviewsAction {
    /// The interviews with a chat id (those held, as the app lists them) under a job
    /// info the user owns, most recently updated first; `--all` adds those without one.
    /// A job info that is missing or someone else's gives an empty list, as in the
    /// library.
    List {
        /// The job info's id (a UUID).
        #[arg(long)]
        job_info: String,
        /// The id of the user who owns the job info.
        #[arg(long)]
        user: String,
        /// Every interview, with a chat id or not.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ScopedListAction {
    /// The rows under a job info the user owns. A job info that is missing or someone
    /// else's gives an empty list, as in the library.
    List {
        /// The job info's id (a UUID).
        #[arg(long)]
        job_info: String,
        /// The id of the user who owns the job info.
        #[arg(long)]
        user: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            let message = error.to_string();
            // One line, whatever the error carried.
            eprintln!(
                "jobprep: {}",
                message.lines().collect::<Vec<_>>().join("; ")
            );
            ExitCode::FAILURE
        }
    }
}

fn config(url: Option<&str>) -> Result<DbConfig, Error> {
    match url.filter(|u| !u.trim().is_empty()) {
        Some(url) => DbConfig::parse(url),
        None => DbConfig::from_env(),
    }
}

fn connect(url: Option<&str>) -> Result<Db, CliError> {
    Ok(Db::from_config(
        config(url)?,
        std::sync::Arc::new(jobprep_repo::NoopSink),
    )?)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(CliError::json("the result"))?;
    println!("{text}");
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let url = cli.database_url.as_deref();
    match cli.command {
        Command::Migrate { action } => {
            let db = connect(url)?;
            match action {
                None => {
                    let report = db.migrate()?;
                    if report.adopted {
                        println!("adopted the existing database (baseline recorded as applied)");
                    }
                    if report.applied.is_empty() {
                        println!("no pending migrations");
                    }
                    for name in &report.applied {
                        println!("applied {name}");
                    }
                    for what in &report.repaired {
                        println!("repaired {what}");
                    }
                }
                Some(MigrateAction::Status) => {
                    for migration in db.migration_status()? {
                        let state = if migration.applied {
                            "applied"
                        } else {
                            "pending"
                        };
                        println!("{state:<8} {}", migration.name);
                    }
                }
                Some(MigrateAction::Schema) => {
                    for line in db.describe_schema()? {
                        println!("{line}");
                    }
                }
                Some(MigrateAction::Revert) => match db.revert_last_migration()? {
                    Some(name) => println!("reverted {name}"),
                    None => println!("nothing to revert"),
                },
                Some(MigrateAction::Check) => {
                    let drift = db.check_schema()?;
                    for item in &drift {
                        let fix = if item.repaired_by_migrate() {
                            "  (jobprep migrate repairs this)"
                        } else {
                            ""
                        };
                        println!("{item}{fix}");
                    }
                    if !drift.is_empty() {
                        eprintln!(
                            "jobprep: {} difference(s) from what jobprep expects",
                            drift.len()
                        );
                        return Ok(ExitCode::FAILURE);
                    }
                    println!("the database matches what jobprep expects");
                }
                Some(MigrateAction::DropAppSchema) => {
                    let dropped = db.drop_app_schema()?;
                    if dropped.is_empty() {
                        println!("nothing to drop");
                    }
                    for name in &dropped {
                        println!("reverted {name}");
                    }
                }
            }
        }
        Command::CacheFeed { action } => {
            let db = connect(url)?;
            match action {
                FeedAction::Install => {
                    db.install_cache_feed()?;
                    println!(
                        "cache feed installed (changes recorded in {})",
                        feed::CHANGES
                    );
                }
                FeedAction::Remove => {
                    db.remove_cache_feed()?;
                    println!("cache feed removed");
                }
                FeedAction::Trim => {
                    let deleted = db.trim_cache_feed()?;
                    println!("trimmed {deleted} recorded changes");
                }
                FeedAction::Status => {
                    let status = db.cache_feed_status()?;
                    println!("{status}");
                    match status {
                        FeedInstallation::Installed | FeedInstallation::InProcess => {}
                        FeedInstallation::Absent | FeedInstallation::Partial { .. } => {
                            return Ok(ExitCode::FAILURE)
                        }
                    }
                }
                FeedAction::Listen => {
                    let listener = Listener::start(&db, FeedOptions::default())?;
                    // Events may be minutes apart: say at once that it is running.
                    eprintln!(
                        "jobprep: listening to the cache feed of {} (one JSON line per event; \
                         Ctrl-C stops)",
                        db.config().url
                    );
                    for event in listener {
                        let line = match event {
                            FeedEvent::Tags(tags) => serde_json::json!({ "tags": tags }),
                            FeedEvent::Reset => serde_json::json!({ "reset": true }),
                        };
                        println!("{line}");
                    }
                }
            }
        }
        Command::CacheBridge(args) => bridge::run(&connect(url)?, args)?,
        Command::Demo { json } => demo::run(config(url)?, json)?,
        Command::Bench(args) => bench::run(config(url)?, args)?,
        Command::User {
            action: UserAction::Get { id },
        } => {
            let db = connect(url)?;
            print_json(&jobprep_users::get(&db, &UserId::new(id)?)?.value)?;
        }
        Command::JobInfos {
            action: JobInfosAction::List { user },
        } => {
            let db = connect(url)?;
            print_json(&jobprep_job_infos::list_for_user(&db, &UserId::new(user)?)?.value)?;
        }
        Command::Interviews {
            action:
                InterviewsAction::List {
                    job_info,
                    user,
                    all,
                },
        } => {
            let (job_info, user) = scope(&job_info, user)?;
            let db = connect(url)?;
            let listed = if all {
                jobprep_interviews::list_all_for_job_info(&db, &user, job_info)?
            } else {
                jobprep_interviews::list_for_job_info(&db, &user, job_info)?
            };
            print_json(&listed.value)?;
        }
        Command::Questions {
            action: ScopedListAction::List { job_info, user },
        } => {
            let (job_info, user) = scope(&job_info, user)?;
            let db = connect(url)?;
            print_json(&jobprep_questions::list_for_job_info(&db, &user, job_info)?.value)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The ids of a list under a job info. Like the library's lists, the command does not
/// ask whether the job info exists: a missing one and someone else's list nothing.
fn scope(job_info: &str, user: String) -> Result<(JobInfoId, UserId), CliError> {
    Ok((job_info.parse()?, UserId::new(user)?))
}
