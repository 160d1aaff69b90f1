//! Tenant isolation, randomized against an in-memory model on both backends: every
//! operation of every user on every row (their own, someone else's, deleted, never
//! existing), directly and inside transactions; at the end the database equals the
//! model.
//!
//! The operations are written once over the owned entities: `Owned` says how an entity
//! is read, changed and deleted by id and what its model holds, `Child` how an
//! interview or a question is inserted and listed under a job info. The operations
//! table instantiates each for each entity.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::panic::AssertUnwindSafe;

use jobprep_interviews::{
    Interview, InterviewChanges, InterviewId, InterviewKey, InterviewWithJobInfo, NewInterview,
};
use jobprep_job_infos::{
    ExperienceLevel, JobInfo, JobInfoChanges, JobInfoId, JobInfoKey, NewJobInfo, RemovedJobInfo,
};
use jobprep_questions::{
    NewQuestion, Question, QuestionChanges, QuestionDifficulty, QuestionId, QuestionKey,
    QuestionWithJobInfo,
};
use jobprep_repo::{Db, Entity, Executor, Result, UserId};
use jobprep_testing::{assert_not_found, backend_tests, user};

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }
    fn text(&mut self, prefix: &str) -> String {
        let spice = ["", "'", "; --", "😀", "/* */", "\\"];
        format!(
            "{prefix} {} {}",
            self.next() % 1000,
            spice[self.below(spice.len())]
        )
    }
    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.below(choices.len())]
    }
    /// `None` (leave as is), `Some(None)` (clear) or `Some(Some(text))`.
    fn nullable_change(&mut self, prefix: &str) -> Option<Option<String>> {
        match self.below(3) {
            0 => None,
            1 => Some(None),
            _ => Some(Some(self.text(prefix))),
        }
    }
    fn duration(&mut self) -> String {
        let (h, m, s) = (self.below(100), self.below(60), self.below(60));
        format!("{h:02}:{m:02}:{s:02}")
    }
}

#[derive(Debug, Clone, PartialEq)]
struct JobModel {
    owner: usize,
    name: String,
    title: Option<String>,
    level: ExperienceLevel,
    description: String,
}

#[derive(Debug, Clone, PartialEq)]
struct InterviewModel {
    job: JobInfoId,
    duration: String,
    chat: Option<String>,
    feedback: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct QuestionModel {
    job: JobInfoId,
    text: String,
    difficulty: QuestionDifficulty,
}

/// The rows of one entity that exist, and the ids of those deleted.
struct Table<I, M> {
    live: BTreeMap<I, M>,
    gone: Vec<I>,
}

impl<I, M> Default for Table<I, M> {
    fn default() -> Self {
        Table {
            live: BTreeMap::new(),
            gone: Vec::new(),
        }
    }
}

impl<I: Copy + Ord, M> Table<I, M> {
    /// An existing id of anyone (most often), a deleted one, or one that never existed.
    fn target(&self, rng: &mut Rng, fresh: impl FnOnce() -> I) -> I {
        let roll = rng.below(100);
        if roll < 80 && !self.live.is_empty() {
            *self.live.keys().nth(rng.below(self.live.len())).unwrap()
        } else if roll < 90 && !self.gone.is_empty() {
            self.gone[rng.below(self.gone.len())]
        } else {
            fresh()
        }
    }
    fn remove(&mut self, id: I) {
        self.live.remove(&id);
        self.gone.push(id);
    }
}

#[derive(Default)]
struct Model {
    jobs: Table<JobInfoId, JobModel>,
    interviews: Table<InterviewId, InterviewModel>,
    questions: Table<QuestionId, QuestionModel>,
}

impl Model {
    fn jobs_of(&self, owner: usize) -> BTreeSet<JobInfoId> {
        let owned = self.jobs.live.iter().filter(|(_, j)| j.owner == owner);
        owned.map(|(id, _)| *id).collect()
    }
    fn job_owner(&self, job: JobInfoId) -> Option<usize> {
        self.jobs.live.get(&job).map(|j| j.owner)
    }
    /// The children of `K` under `jobs`.
    fn under<K: Child>(&self, jobs: &BTreeSet<JobInfoId>) -> BTreeSet<K::Id> {
        let rows = K::table(self).live.iter();
        rows.filter(|(_, row)| jobs.contains(&K::parent(row)))
            .map(|(id, _)| *id)
            .collect()
    }
    /// Removes `job` and its children; returns the children as (interviews, questions).
    fn remove_job(&mut self, job: JobInfoId) -> (BTreeSet<InterviewId>, BTreeSet<QuestionId>) {
        let jobs = BTreeSet::from([job]);
        let (interviews, questions) = (
            self.under::<Interviews>(&jobs),
            self.under::<Questions>(&jobs),
        );
        self.jobs.remove(job);
        interviews.iter().for_each(|id| self.interviews.remove(*id));
        questions.iter().for_each(|id| self.questions.remove(*id));
        (interviews, questions)
    }
}

/// An entity every query scopes to its owner: how it is read, changed and deleted by id,
/// and what the model holds of it.
trait Owned {
    const ENTITY: Entity;
    type Id: Copy + Ord + Debug;
    type Model: Debug;
    type Changes: Debug;
    type Key: Debug + PartialEq;
    type Removed: Debug;
    type Got: Debug;

    fn table(model: &Model) -> &Table<Self::Id, Self::Model>;
    fn table_mut(model: &mut Model) -> &mut Table<Self::Id, Self::Model>;
    fn fresh_id() -> Self::Id;
    /// The job info the existing row `id` is or belongs to.
    fn job_of(model: &Model, id: Self::Id) -> Option<JobInfoId>;
    fn owner(model: &Model, id: Self::Id) -> Option<usize> {
        model.job_owner(Self::job_of(model, id)?)
    }
    /// The key a write of the existing row `id` returns.
    fn key(model: &Model, users: &[UserId], id: Self::Id) -> Self::Key;
    /// Never a change of no field: that is refused as input, before ownership is
    /// looked at, and would test nothing here.
    fn random_changes(rng: &mut Rng) -> Self::Changes;
    fn apply(changes: Self::Changes, row: &mut Self::Model);
    /// Whether a read of the row by `actor` returned what the model holds.
    fn got_matches(got: &Self::Got, row: &Self::Model, actor: &UserId, users: &[UserId]) -> bool;
    /// Checks what deleting the row removed, and forgets it (and its cascade).
    fn forget(model: &mut Model, id: Self::Id, removed: &Self::Removed);
    fn removed_key(removed: &Self::Removed) -> &Self::Key;
    fn key_id(key: &Self::Key) -> Self::Id;

    fn get(ex: &impl Executor, actor: &UserId, id: Self::Id) -> Result<Self::Got>;
    fn update(
        ex: &impl Executor,
        actor: &UserId,
        id: Self::Id,
        changes: &Self::Changes,
    ) -> Result<Self::Key>;
    fn delete(ex: &impl Executor, actor: &UserId, id: Self::Id) -> Result<Self::Removed>;
}

/// An entity under a job info: inserted and listed under one, counted per user.
trait Child: Owned {
    type Form: Debug;
    type Row: Debug;

    fn parent(row: &Self::Model) -> JobInfoId;
    /// The forms of one insert step (questions come in batches, also empty ones).
    fn random_forms(rng: &mut Rng) -> Vec<Self::Form>;
    fn model_of(job: JobInfoId, form: Self::Form) -> Self::Model;
    /// Whether `list_for_job_info` and `count_for_user` include the row (interviews:
    /// only those with a chat id).
    fn listed(row: &Self::Model) -> bool;
    fn row_id(row: &Self::Row) -> Self::Id;
    fn row_matches(row: &Self::Row, model: &Self::Model) -> bool;

    fn insert(
        ex: &impl Executor,
        actor: &UserId,
        job: JobInfoId,
        forms: &[Self::Form],
    ) -> Result<Vec<Self::Key>>;
    fn list(ex: &impl Executor, actor: &UserId, job: JobInfoId) -> Result<Vec<Self::Row>>;
    fn count(ex: &impl Executor, actor: &UserId) -> Result<i64>;
}

struct JobInfos;
struct Interviews;
struct Questions;

fn job_matches(row: &JobInfo, model: &JobModel, users: &[UserId]) -> bool {
    row.user_id == users[model.owner]
        && row.name == model.name
        && row.title == model.title
        && row.experience_level == model.level
        && row.description == model.description
}

fn ids<K: Ord>(keys: impl IntoIterator<Item = K>) -> BTreeSet<K> {
    keys.into_iter().collect()
}

impl Owned for JobInfos {
    const ENTITY: Entity = Entity::JobInfo;
    type Id = JobInfoId;
    type Model = JobModel;
    type Changes = JobInfoChanges;
    type Key = JobInfoKey;
    type Removed = RemovedJobInfo;
    type Got = JobInfo;

    fn table(model: &Model) -> &Table<JobInfoId, JobModel> {
        &model.jobs
    }
    fn table_mut(model: &mut Model) -> &mut Table<JobInfoId, JobModel> {
        &mut model.jobs
    }
    fn fresh_id() -> JobInfoId {
        JobInfoId::generate()
    }
    fn job_of(model: &Model, id: JobInfoId) -> Option<JobInfoId> {
        model.jobs.live.contains_key(&id).then_some(id)
    }
    fn key(model: &Model, users: &[UserId], id: JobInfoId) -> JobInfoKey {
        let user_id = users[model.jobs.live[&id].owner].clone();
        JobInfoKey { id, user_id }
    }
    fn random_changes(rng: &mut Rng) -> JobInfoChanges {
        let changes = JobInfoChanges {
            title: rng.nullable_change("retitled"),
            name: rng.percent(50).then(|| rng.text("renamed")),
            experience_level: rng.percent(50).then(|| rng.pick(ExperienceLevel::ALL)),
            description: rng.percent(50).then(|| rng.text("redescribed")),
        };
        if changes == JobInfoChanges::default() {
            let name = Some(rng.text("renamed"));
            return JobInfoChanges { name, ..changes };
        }
        changes
    }
    fn apply(changes: JobInfoChanges, row: &mut JobModel) {
        row.title = changes.title.unwrap_or(row.title.take());
        row.name = changes.name.unwrap_or(std::mem::take(&mut row.name));
        row.level = changes.experience_level.unwrap_or(row.level);
        row.description = (changes.description).unwrap_or(std::mem::take(&mut row.description));
    }
    fn got_matches(got: &JobInfo, row: &JobModel, _: &UserId, users: &[UserId]) -> bool {
        job_matches(got, row, users)
    }
    fn forget(model: &mut Model, id: JobInfoId, removed: &RemovedJobInfo) {
        let (interviews, questions) = model.remove_job(id);
        assert_eq!(ids(removed.interviews.iter().map(|k| k.id)), interviews);
        assert_eq!(ids(removed.questions.iter().map(|k| k.id)), questions);
    }
    fn removed_key(removed: &RemovedJobInfo) -> &JobInfoKey {
        &removed.key
    }
    fn key_id(key: &JobInfoKey) -> JobInfoId {
        key.id
    }

    fn get(ex: &impl Executor, actor: &UserId, id: JobInfoId) -> Result<JobInfo> {
        jobprep_job_infos::get(ex, actor, id).map(|c| c.value)
    }
    fn update(
        ex: &impl Executor,
        actor: &UserId,
        id: JobInfoId,
        changes: &JobInfoChanges,
    ) -> Result<JobInfoKey> {
        jobprep_job_infos::update(ex, actor, id, changes)
    }
    fn delete(ex: &impl Executor, actor: &UserId, id: JobInfoId) -> Result<RemovedJobInfo> {
        jobprep_job_infos::delete(ex, actor, id)
    }
}

impl Owned for Interviews {
    const ENTITY: Entity = Entity::Interview;
    type Id = InterviewId;
    type Model = InterviewModel;
    type Changes = InterviewChanges;
    type Key = InterviewKey;
    type Removed = InterviewKey;
    type Got = InterviewWithJobInfo;

    fn table(model: &Model) -> &Table<InterviewId, InterviewModel> {
        &model.interviews
    }
    fn table_mut(model: &mut Model) -> &mut Table<InterviewId, InterviewModel> {
        &mut model.interviews
    }
    fn fresh_id() -> InterviewId {
        InterviewId::generate()
    }
    fn job_of(model: &Model, id: InterviewId) -> Option<JobInfoId> {
        model.interviews.live.get(&id).map(|row| row.job)
    }
    fn key(model: &Model, _: &[UserId], id: InterviewId) -> InterviewKey {
        let job_info_id = model.interviews.live[&id].job;
        InterviewKey { id, job_info_id }
    }
    fn random_changes(rng: &mut Rng) -> InterviewChanges {
        let changes = InterviewChanges {
            duration: rng.percent(50).then(|| rng.duration()),
            hume_chat_id: rng.nullable_change("rechat"),
            feedback: rng.nullable_change("feedback"),
        };
        if changes == InterviewChanges::default() {
            let feedback = Some(Some(rng.text("feedback")));
            return InterviewChanges {
                feedback,
                ..changes
            };
        }
        changes
    }
    fn apply(changes: InterviewChanges, row: &mut InterviewModel) {
        row.duration = changes
            .duration
            .unwrap_or(std::mem::take(&mut row.duration));
        row.chat = changes.hume_chat_id.unwrap_or(row.chat.take());
        row.feedback = changes.feedback.unwrap_or(row.feedback.take());
    }
    fn got_matches(got: &Self::Got, row: &InterviewModel, actor: &UserId, _: &[UserId]) -> bool {
        Self::row_matches(&got.interview, row)
            && (got.job_info.id, &got.job_info.user_id) == (row.job, actor)
    }
    fn forget(model: &mut Model, id: InterviewId, _: &InterviewKey) {
        model.interviews.remove(id);
    }
    fn removed_key(removed: &InterviewKey) -> &InterviewKey {
        removed
    }
    fn key_id(key: &InterviewKey) -> InterviewId {
        key.id
    }

    fn get(ex: &impl Executor, actor: &UserId, id: InterviewId) -> Result<Self::Got> {
        jobprep_interviews::get(ex, actor, id).map(|c| c.value)
    }
    fn update(
        ex: &impl Executor,
        actor: &UserId,
        id: InterviewId,
        changes: &InterviewChanges,
    ) -> Result<InterviewKey> {
        jobprep_interviews::update(ex, actor, id, changes)
    }
    fn delete(ex: &impl Executor, actor: &UserId, id: InterviewId) -> Result<InterviewKey> {
        jobprep_interviews::delete(ex, actor, id)
    }
}

impl Child for Interviews {
    type Form = NewInterview;
    type Row = Interview;

    fn parent(row: &InterviewModel) -> JobInfoId {
        row.job
    }
    fn random_forms(rng: &mut Rng) -> Vec<NewInterview> {
        let duration = rng.duration();
        let hume_chat_id = rng.percent(60).then(|| rng.text("chat"));
        vec![NewInterview {
            duration,
            hume_chat_id,
        }]
    }
    fn model_of(job: JobInfoId, form: NewInterview) -> InterviewModel {
        InterviewModel {
            job,
            duration: form.duration,
            chat: form.hume_chat_id,
            feedback: None,
        }
    }
    fn listed(row: &InterviewModel) -> bool {
        row.chat.is_some()
    }
    fn row_id(row: &Interview) -> InterviewId {
        row.id
    }
    fn row_matches(row: &Interview, model: &InterviewModel) -> bool {
        row.job_info_id == model.job
            && row.duration == model.duration
            && row.hume_chat_id == model.chat
            && row.feedback == model.feedback
    }

    fn insert(
        ex: &impl Executor,
        actor: &UserId,
        job: JobInfoId,
        forms: &[NewInterview],
    ) -> Result<Vec<InterviewKey>> {
        jobprep_interviews::insert(ex, actor, job, &forms[0]).map(|key| vec![key])
    }
    fn list(ex: &impl Executor, actor: &UserId, job: JobInfoId) -> Result<Vec<Interview>> {
        jobprep_interviews::list_for_job_info(ex, actor, job).map(|c| c.value)
    }
    fn count(ex: &impl Executor, actor: &UserId) -> Result<i64> {
        jobprep_interviews::count_for_user(ex, actor).map(|c| c.value)
    }
}

impl Owned for Questions {
    const ENTITY: Entity = Entity::Question;
    type Id = QuestionId;
    type Model = QuestionModel;
    type Changes = QuestionChanges;
    type Key = QuestionKey;
    type Removed = QuestionKey;
    type Got = QuestionWithJobInfo;

    fn table(model: &Model) -> &Table<QuestionId, QuestionModel> {
        &model.questions
    }
    fn table_mut(model: &mut Model) -> &mut Table<QuestionId, QuestionModel> {
        &mut model.questions
    }
    fn fresh_id() -> QuestionId {
        QuestionId::generate()
    }
    fn job_of(model: &Model, id: QuestionId) -> Option<JobInfoId> {
        model.questions.live.get(&id).map(|row| row.job)
    }
    fn key(model: &Model, _: &[UserId], id: QuestionId) -> QuestionKey {
        let job_info_id = model.questions.live[&id].job;
        QuestionKey { id, job_info_id }
    }
    fn random_changes(rng: &mut Rng) -> QuestionChanges {
        let changes = QuestionChanges {
            text: rng.percent(70).then(|| rng.text("reworded")),
            difficulty: rng.percent(50).then(|| rng.pick(QuestionDifficulty::ALL)),
        };
        if changes == QuestionChanges::default() {
            let text = Some(rng.text("reworded"));
            return QuestionChanges { text, ..changes };
        }
        changes
    }
    fn apply(changes: QuestionChanges, row: &mut QuestionModel) {
        row.text = changes.text.unwrap_or(std::mem::take(&mut row.text));
        row.difficulty = changes.difficulty.unwrap_or(row.difficulty);
    }
    fn got_matches(got: &Self::Got, row: &QuestionModel, actor: &UserId, _: &[UserId]) -> bool {
        Self::row_matches(&got.question, row)
            && (got.job_info.id, &got.job_info.user_id) == (row.job, actor)
    }
    fn forget(model: &mut Model, id: QuestionId, _: &QuestionKey) {
        model.questions.remove(id);
    }
    fn removed_key(removed: &QuestionKey) -> &QuestionKey {
        removed
    }
    fn key_id(key: &QuestionKey) -> QuestionId {
        key.id
    }

    fn get(ex: &impl Executor, actor: &UserId, id: QuestionId) -> Result<Self::Got> {
        jobprep_questions::get(ex, actor, id).map(|c| c.value)
    }
    fn update(
        ex: &impl Executor,
        actor: &UserId,
        id: QuestionId,
        changes: &QuestionChanges,
    ) -> Result<QuestionKey> {
        jobprep_questions::update(ex, actor, id, changes)
    }
    fn delete(ex: &impl Executor, actor: &UserId, id: QuestionId) -> Result<QuestionKey> {
        jobprep_questions::delete(ex, actor, id)
    }
}

impl Child for Questions {
    type Form = NewQuestion;
    type Row = Question;

    fn parent(row: &QuestionModel) -> JobInfoId {
        row.job
    }
    fn random_forms(rng: &mut Rng) -> Vec<NewQuestion> {
        let form = |rng: &mut Rng| {
            NewQuestion::new(rng.text("question"), rng.pick(QuestionDifficulty::ALL))
        };
        (0..rng.below(4)).map(|_| form(rng)).collect()
    }
    fn model_of(job: JobInfoId, form: NewQuestion) -> QuestionModel {
        QuestionModel {
            job,
            text: form.text,
            difficulty: form.difficulty,
        }
    }
    fn listed(_: &QuestionModel) -> bool {
        true
    }
    fn row_id(row: &Question) -> QuestionId {
        row.id
    }
    fn row_matches(row: &Question, model: &QuestionModel) -> bool {
        row.job_info_id == model.job && row.text == model.text && row.difficulty == model.difficulty
    }

    /// One form through `insert`, any other number through the bulk insert (its own
    /// SQL, with the owner filter repeated).
    fn insert(
        ex: &impl Executor,
        actor: &UserId,
        job: JobInfoId,
        forms: &[NewQuestion],
    ) -> Result<Vec<QuestionKey>> {
        match forms {
            [one] => jobprep_questions::insert(ex, actor, job, one).map(|key| vec![key]),
            many => jobprep_questions::insert_many(ex, actor, job, many),
        }
    }
    fn list(ex: &impl Executor, actor: &UserId, job: JobInfoId) -> Result<Vec<Question>> {
        jobprep_questions::list_for_job_info(ex, actor, job).map(|c| c.value)
    }
    fn count(ex: &impl Executor, actor: &UserId) -> Result<i64> {
        jobprep_questions::count_for_user(ex, actor).map(|c| c.value)
    }
}

/// Runs `$body` with `$ex` bound to the `Db` or, when `$in_tx`, to a transaction that
/// commits whatever the body returned.
macro_rules! on_executor {
    ($db:expr, $in_tx:expr, |$ex:ident| $body:expr) => {
        if $in_tx {
            $db.transaction(|$ex| Ok($body))
                .expect("the transaction commits")
        } else {
            let $ex = $db;
            $body
        }
    };
}

/// Counts of what the run exercised, so that it cannot silently test nothing.
#[derive(Debug, Default)]
struct Coverage {
    cross_tenant_on_live_rows: usize,
    own_writes: usize,
    own_reads: usize,
    in_transaction: usize,
}

/// The state of one randomized run: the handle, the users, the generator, the model
/// of what the database should hold, and what the run exercised.
struct Run<'a> {
    db: &'a Db,
    users: Vec<UserId>,
    rng: Rng,
    model: Model,
    coverage: Coverage,
}

/// One step of the run: who acts, and whether inside a transaction.
struct Step {
    actor: usize,
    in_tx: bool,
}

/// A job info and everything under it, as its owner reads them.
type Subtree = (JobInfo, Vec<Interview>, Vec<Question>);

impl Run<'_> {
    fn subtree(&self, owner: usize, job: JobInfoId) -> Subtree {
        let (db, user) = (self.db, &self.users[owner]);
        let row = jobprep_job_infos::get(db, user, job).unwrap().value;
        let interviews = jobprep_interviews::list_all_for_job_info(db, user, job).unwrap();
        let questions = jobprep_questions::list_for_job_info(db, user, job).unwrap();
        (row, interviews.value, questions.value)
    }

    /// The subtree of `job` when it exists and is not `actor`'s: what a write of
    /// `actor`'s must leave as it was.
    fn foreign_subtree(
        &self,
        job: Option<JobInfoId>,
        actor: usize,
    ) -> Option<(JobInfoId, Subtree)> {
        let job = job?;
        let owner = self.model.job_owner(job).filter(|owner| *owner != actor)?;
        Some((job, self.subtree(owner, job)))
    }
}

/// One kind of step, as a function of the run.
type Operation = fn(&mut Run<'_>, &Step);

/// The operations a step draws from, by name; inserts weighted twice so that rows
/// accumulate.
const OPERATIONS: [(&str, Operation); 18] = [
    ("insert job info", insert_job_info),
    ("insert job info", insert_job_info),
    ("update job info", update::<JobInfos>),
    ("delete job info", delete::<JobInfos>),
    ("get job info", get::<JobInfos>),
    ("list job infos", list_job_infos),
    ("insert interview", insert::<Interviews>),
    ("insert interview", insert::<Interviews>),
    ("update interview", update::<Interviews>),
    ("delete interview", delete::<Interviews>),
    ("get interview", get::<Interviews>),
    ("list and count interviews", list_and_count::<Interviews>),
    ("insert questions", insert::<Questions>),
    ("insert questions", insert::<Questions>),
    ("update question", update::<Questions>),
    ("delete question", delete::<Questions>),
    ("get question", get::<Questions>),
    ("list and count questions", list_and_count::<Questions>),
];

fn tenant_isolation_run(db: &Db, seed: u64, operations: usize) -> Coverage {
    const USERS: usize = 5;
    let mut run = Run {
        db,
        users: (0..USERS)
            .map(|n| user(db, &format!("user_tenant_{n}")))
            .collect(),
        rng: Rng(seed.max(1)), // xorshift is stuck at 0
        model: Model::default(),
        coverage: Coverage::default(),
    };
    for n in 0..operations {
        let actor = run.rng.below(USERS);
        let in_tx = run.rng.percent(25);
        run.coverage.in_transaction += usize::from(in_tx);
        let (name, operation) = OPERATIONS[run.rng.below(OPERATIONS.len())];
        let step = Step { actor, in_tx };
        // A failure names the seed and step, to replay it.
        if let Err(panic) =
            std::panic::catch_unwind(AssertUnwindSafe(|| operation(&mut run, &step)))
        {
            let message = (panic.downcast_ref::<String>().map(String::as_str))
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            let who = &run.users[actor];
            panic!("seed {seed} step {n}: {name} by {who}, in a transaction: {in_tx}: {message}");
        }
    }
    let Run {
        users,
        model,
        coverage,
        ..
    } = run;

    // At the end the database equals the model: every row reads back as modelled, and
    // deleting each user removes exactly the rows the model gives them.
    final_rows_match::<JobInfos>(db, &model, &users);
    final_rows_match::<Interviews>(db, &model, &users);
    final_rows_match::<Questions>(db, &model, &users);
    for (n, id) in users.iter().enumerate() {
        let removed = jobprep_users::delete(db, id).expect("the user exists");
        let jobs = model.jobs_of(n);
        assert_eq!(
            ids(removed.job_infos.iter().map(|k| k.id)),
            jobs,
            "job infos of {id}"
        );
        let interviews = ids(removed.interviews.iter().map(|k| k.id));
        assert_eq!(
            interviews,
            model.under::<Interviews>(&jobs),
            "interviews of {id}"
        );
        let questions = ids(removed.questions.iter().map(|k| k.id));
        assert_eq!(
            questions,
            model.under::<Questions>(&jobs),
            "questions of {id}"
        );
        assert!(removed.job_infos.iter().all(|k| &k.user_id == id));
    }
    coverage
}

fn final_rows_match<K: Owned>(db: &Db, model: &Model, users: &[UserId]) {
    for (id, row) in &K::table(model).live {
        let owner = &users[K::owner(model, *id).unwrap()];
        let got = K::get(db, owner, *id).unwrap();
        assert!(
            K::got_matches(&got, row, owner, users),
            "final {got:?} vs {row:?}"
        );
    }
}

/// A job info for the actor.
fn insert_job_info(run: &mut Run<'_>, step: &Step) {
    let (rng, actor) = (&mut run.rng, &run.users[step.actor]);
    let form = NewJobInfo {
        title: rng.percent(50).then(|| rng.text("title")),
        name: rng.text("name"),
        experience_level: rng.pick(ExperienceLevel::ALL),
        description: rng.text("description"),
    };
    let key = on_executor!(run.db, step.in_tx, |ex| jobprep_job_infos::insert(
        ex, actor, &form
    ))
    .unwrap();
    assert_eq!(&key.user_id, actor);
    let row = JobModel {
        owner: step.actor,
        name: form.name,
        title: form.title,
        level: form.experience_level,
        description: form.description,
    };
    run.model.jobs.live.insert(key.id, row);
    run.coverage.own_writes += 1;
}

/// The actor's list: exactly their job infos.
fn list_job_infos(run: &mut Run<'_>, step: &Step) {
    let actor = &run.users[step.actor];
    let rows = on_executor!(run.db, step.in_tx, |ex| jobprep_job_infos::list_for_user(
        ex, actor
    ))
    .unwrap()
    .value;
    let listed = ids(rows.iter().map(|r| r.id));
    assert_eq!(listed, run.model.jobs_of(step.actor));
    for row in &rows {
        let model = &run.model.jobs.live[&row.id];
        assert!(job_matches(row, model, &run.users), "{row:?} vs {model:?}");
    }
    let any = on_executor!(run.db, step.in_tx, |ex| jobprep_job_infos::user_has_any(
        ex, actor
    ))
    .unwrap()
    .value;
    assert_eq!(any, !listed.is_empty());
    run.coverage.own_reads += 1;
}

/// A read of any row: only its owner sees it, as modelled; anyone else gets `NotFound`.
fn get<K: Owned>(run: &mut Run<'_>, step: &Step) {
    let target = K::table(&run.model).target(&mut run.rng, K::fresh_id);
    let actor = &run.users[step.actor];
    let result = on_executor!(run.db, step.in_tx, |ex| K::get(ex, actor, target));
    match K::owner(&run.model, target) {
        Some(owner) if owner == step.actor => {
            let got = result.unwrap();
            let row = &K::table(&run.model).live[&target];
            assert!(
                K::got_matches(&got, row, actor, &run.users),
                "{got:?} vs {row:?}"
            );
            run.coverage.own_reads += 1;
        }
        owner => {
            run.coverage.cross_tenant_on_live_rows += usize::from(owner.is_some());
            assert_not_found(result, K::ENTITY);
        }
    }
}

/// An update of any row: the owner's applies; anyone else's is `NotFound` and changes
/// nothing under the row's job info.
fn update<K: Owned>(run: &mut Run<'_>, step: &Step) {
    let target = K::table(&run.model).target(&mut run.rng, K::fresh_id);
    let changes = K::random_changes(&mut run.rng);
    let owner = K::owner(&run.model, target);
    let before = run.foreign_subtree(K::job_of(&run.model, target), step.actor);
    let actor = &run.users[step.actor];
    let result = on_executor!(run.db, step.in_tx, |ex| K::update(
        ex, actor, target, &changes
    ));
    if owner == Some(step.actor) {
        assert_eq!(result.unwrap(), K::key(&run.model, &run.users, target));
        K::apply(
            changes,
            K::table_mut(&mut run.model).live.get_mut(&target).unwrap(),
        );
        run.coverage.own_writes += 1;
    } else {
        assert_not_found(result, K::ENTITY);
        unchanged(run, before);
    }
}

/// A delete of any row: the owner's goes, with exactly its modelled cascade; anyone
/// else's is `NotFound` and changes nothing under the row's job info.
fn delete<K: Owned>(run: &mut Run<'_>, step: &Step) {
    let target = K::table(&run.model).target(&mut run.rng, K::fresh_id);
    let owner = K::owner(&run.model, target);
    let before = run.foreign_subtree(K::job_of(&run.model, target), step.actor);
    let actor = &run.users[step.actor];
    let result = on_executor!(run.db, step.in_tx, |ex| K::delete(ex, actor, target));
    if owner == Some(step.actor) {
        let removed = result.unwrap();
        assert_eq!(
            K::removed_key(&removed),
            &K::key(&run.model, &run.users, target)
        );
        K::forget(&mut run.model, target, &removed);
        assert_not_found(K::get(run.db, actor, target), K::ENTITY);
        run.coverage.own_writes += 1;
    } else {
        assert_not_found(result, K::ENTITY);
        unchanged(run, before);
    }
}

/// After another user's refused write: the subtree it aimed at reads as before.
fn unchanged(run: &mut Run<'_>, before: Option<(JobInfoId, Subtree)>) {
    if let Some((job, before)) = before {
        let owner = run.model.job_owner(job).unwrap();
        let after = run.subtree(owner, job);
        assert_eq!(after, before, "another user's write changed a row");
        run.coverage.cross_tenant_on_live_rows += 1;
    }
}

/// Children under any job info: only under the actor's own; under anyone else's (or a
/// missing one) `NotFound` for the job info, and nothing written.
fn insert<K: Child>(run: &mut Run<'_>, step: &Step) {
    let job = run.model.jobs.target(&mut run.rng, JobInfoId::generate);
    let forms = K::random_forms(&mut run.rng);
    let owner = run.model.job_owner(job);
    let before = run.foreign_subtree(Some(job), step.actor);
    let actor = &run.users[step.actor];
    let result = on_executor!(run.db, step.in_tx, |ex| K::insert(ex, actor, job, &forms));
    if owner == Some(step.actor) {
        let keys = result.unwrap();
        assert_eq!(keys.len(), forms.len());
        for (key, form) in keys.iter().zip(forms) {
            let id = K::key_id(key);
            K::table_mut(&mut run.model)
                .live
                .insert(id, K::model_of(job, form));
            assert_eq!(
                key,
                &K::key(&run.model, &run.users, id),
                "the key names the job info"
            );
        }
        run.coverage.own_writes += 1;
    } else {
        assert_not_found(result, Entity::JobInfo);
        unchanged(run, before);
    }
}

/// The children under any job info (the actor's own only), and the actor's count.
fn list_and_count<K: Child>(run: &mut Run<'_>, step: &Step) {
    let job = run.model.jobs.target(&mut run.rng, JobInfoId::generate);
    let actor = &run.users[step.actor];
    let rows = on_executor!(run.db, step.in_tx, |ex| K::list(ex, actor, job)).unwrap();
    let owner = run.model.job_owner(job);
    let listed = |jobs: &BTreeSet<JobInfoId>| -> BTreeSet<K::Id> {
        let rows = K::table(&run.model).live.iter();
        rows.filter(|(_, row)| jobs.contains(&K::parent(row)) && K::listed(row))
            .map(|(id, _)| *id)
            .collect()
    };
    let expected = if owner == Some(step.actor) {
        listed(&BTreeSet::from([job]))
    } else {
        run.coverage.cross_tenant_on_live_rows += usize::from(owner.is_some());
        BTreeSet::new()
    };
    assert_eq!(ids(rows.iter().map(K::row_id)), expected, "listed");
    for row in &rows {
        let model = &K::table(&run.model).live[&K::row_id(row)];
        assert!(K::row_matches(row, model), "{row:?} vs {model:?}");
    }
    let count = on_executor!(run.db, step.in_tx, |ex| K::count(ex, actor)).unwrap();
    let expected = listed(&run.model.jobs_of(step.actor)).len();
    assert_eq!(count, i64::try_from(expected).unwrap(), "counted");
}

backend_tests! {
    fn randomized_operations_never_cross_tenants(t) {
        let seed = std::env::var("JOBPREP_TENANT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_1e55_c0ff_ee42_u64);
        let coverage = tenant_isolation_run(&t.db, seed, 500);
        // The run must have exercised what it claims to test.
        assert!(coverage.cross_tenant_on_live_rows >= 100, "{coverage:?}");
        assert!(coverage.own_writes >= 60, "{coverage:?}");
        assert!(coverage.own_reads >= 20, "{coverage:?}");
        assert!(coverage.in_transaction >= 50, "{coverage:?}");
    }
}
