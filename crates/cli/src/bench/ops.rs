//! The operations `jobprep bench` measures, each run two ways: through jobprep's use
//! cases on a pooled `Db` (tags, executor, pool), and as the baseline, the same
//! repository functions on one connection of the client's own. The difference is the
//! cost of the layer above the queries; the queries themselves cannot drift apart.

use jobprep_interviews::NewInterview;
use jobprep_job_infos::{ExperienceLevel, NewJobInfo};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::{interviews, job_infos, questions, users, Connection, Db, Error};

use super::drive::Rng;
use super::Dataset;

/// Reads first, on the seeded dataset they are meant to measure; then the writes,
/// which grow the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Operation {
    GetJobInfo,
    ListJobInfos,
    ListInterviews,
    CountInterviewsForUser,
    UpsertUser,
    InsertJobInfo,
    InsertQuestion,
    BulkInsertQuestions,
}

impl Operation {
    pub const ALL: [Operation; 8] = [
        Operation::GetJobInfo,
        Operation::ListJobInfos,
        Operation::ListInterviews,
        Operation::CountInterviewsForUser,
        Operation::UpsertUser,
        Operation::InsertJobInfo,
        Operation::InsertQuestion,
        Operation::BulkInsertQuestions,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GetJobInfo => "get_job_info",
            Operation::ListJobInfos => "list_job_infos",
            Operation::ListInterviews => "list_interviews",
            Operation::CountInterviewsForUser => "count_interviews_for_user",
            Operation::UpsertUser => "upsert_user",
            Operation::InsertJobInfo => "insert_job_info",
            Operation::InsertQuestion => "insert_question",
            Operation::BulkInsertQuestions => "bulk_insert_questions",
        }
    }
}

/// Rows a `bulk_insert_questions` call writes.
pub const BULK_ROWS: usize = 1000;

/// What the write operations write, made once per client.
pub struct Inputs {
    job: NewJobInfo,
    question: NewQuestion,
    batch: Vec<NewQuestion>,
}

impl Inputs {
    pub fn new() -> Self {
        Inputs {
            job: NewJobInfo::new(
                "Bench job",
                ExperienceLevel::Senior,
                "A job for the benchmark",
            )
            .with_title("Bench title"),
            question: NewQuestion::new(
                "How do you size a connection pool?",
                QuestionDifficulty::Medium,
            ),
            batch: (0..BULK_ROWS)
                .map(|n| {
                    NewQuestion::new(
                        format!("Generated question {n}"),
                        QuestionDifficulty::ALL[n % 3],
                    )
                })
                .collect(),
        }
    }
}

/// One call of `op` on `$on`, with `users`, `job_infos`, `interviews` and `questions`
/// as the caller has them in scope: the feature crates (over a `Db`) or the repository
/// modules (over a connection). One body for both, so the two runs make the same calls.
/// Evaluates to the units done (rows for the bulk insert, else 1).
macro_rules! one_call {
    ($op:expr, $on:expr, $data:expr, $inputs:expr, $rng:expr) => {{
        let (user, job) = $data.pick_job($rng);
        match $op {
            Operation::GetJobInfo => {
                job_infos::get($on, user, job)?;
            }
            Operation::ListJobInfos => {
                job_infos::list_for_user($on, user)?;
            }
            Operation::ListInterviews => {
                interviews::list_for_job_info($on, user, job)?;
            }
            Operation::CountInterviewsForUser => {
                interviews::count_for_user($on, user)?;
            }
            Operation::UpsertUser => {
                users::upsert($on, $data.pick_user($rng))?;
            }
            Operation::InsertJobInfo => {
                job_infos::insert($on, user, &$inputs.job)?;
            }
            Operation::InsertQuestion => {
                questions::insert($on, user, job, &$inputs.question)?;
            }
            Operation::BulkInsertQuestions => {
                questions::insert_many($on, user, job, &$inputs.batch)?;
                return Ok(BULK_ROWS as u64);
            }
        }
        Ok(1)
    }};
}

/// One call of `op` through jobprep's use cases; returns the units done (rows for
/// the bulk insert, else 1).
pub fn through_jobprep(
    op: Operation,
    db: &Db,
    data: &Dataset,
    inputs: &Inputs,
    rng: &mut Rng,
) -> Result<u64, Error> {
    use jobprep_interviews as interviews;
    use jobprep_job_infos as job_infos;
    use jobprep_questions as questions;
    use jobprep_users as users;
    one_call!(op, db, data, inputs, rng)
}

/// One call of `op` as the baseline: the repository function on a bare connection.
pub fn baseline(
    op: Operation,
    conn: &mut Connection,
    data: &Dataset,
    inputs: &Inputs,
    rng: &mut Rng,
) -> Result<u64, Error> {
    one_call!(op, conn, data, inputs, rng)
}

/// The seed's interviews: held ones, so that lists and counts find them.
pub fn seed_interview(user: usize, job: usize, n: usize) -> NewInterview {
    let mut interview = NewInterview::new().with_hume_chat_id(format!("chat_{user}_{job}_{n}"));
    interview.duration = "00:10:00".into();
    interview
}
