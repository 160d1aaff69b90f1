//! Tenant isolation, randomized against an in-memory model on both backends: every
//! operation of every user on every row (their own, someone else's, deleted, never
//! existing), directly and inside transactions; at the end the database equals the
//! model.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use jobprep_interviews::{Interview, InterviewChanges, InterviewId, NewInterview};
use jobprep_job_infos::{ExperienceLevel, JobInfo, JobInfoChanges, JobInfoId, NewJobInfo};
use jobprep_questions::{NewQuestion, Question, QuestionChanges, QuestionDifficulty, QuestionId};
use jobprep_repo::{Db, Entity, UserId};
use jobprep_testing::{assert_not_found, backend_tests, user_on as user};

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

#[derive(Default)]
struct Model {
    jobs: BTreeMap<JobInfoId, JobModel>,
    interviews: BTreeMap<InterviewId, InterviewModel>,
    questions: BTreeMap<QuestionId, QuestionModel>,
    gone_jobs: Vec<JobInfoId>,
    gone_interviews: Vec<InterviewId>,
    gone_questions: Vec<QuestionId>,
}

impl Model {
    fn interview_owner(&self, id: InterviewId) -> Option<usize> {
        self.interviews.get(&id).map(|i| self.jobs[&i.job].owner)
    }
    fn question_owner(&self, id: QuestionId) -> Option<usize> {
        self.questions.get(&id).map(|q| self.jobs[&q.job].owner)
    }
    fn jobs_of(&self, owner: usize) -> BTreeSet<JobInfoId> {
        self.jobs
            .iter()
            .filter(|(_, j)| j.owner == owner)
            .map(|(id, _)| *id)
            .collect()
    }
    fn interviews_under(&self, jobs: &BTreeSet<JobInfoId>) -> BTreeSet<InterviewId> {
        self.interviews
            .iter()
            .filter(|(_, i)| jobs.contains(&i.job))
            .map(|(id, _)| *id)
            .collect()
    }
    fn questions_under(&self, jobs: &BTreeSet<JobInfoId>) -> BTreeSet<QuestionId> {
        self.questions
            .iter()
            .filter(|(_, q)| jobs.contains(&q.job))
            .map(|(id, _)| *id)
            .collect()
    }
    fn remove_job(&mut self, id: JobInfoId) {
        self.jobs.remove(&id);
        self.gone_jobs.push(id);
        let interviews: Vec<_> = self
            .interviews
            .iter()
            .filter(|(_, i)| i.job == id)
            .map(|(k, _)| *k)
            .collect();
        for key in interviews {
            self.interviews.remove(&key);
            self.gone_interviews.push(key);
        }
        let questions: Vec<_> = self
            .questions
            .iter()
            .filter(|(_, q)| q.job == id)
            .map(|(k, _)| *k)
            .collect();
        for key in questions {
            self.questions.remove(&key);
            self.gone_questions.push(key);
        }
    }
}

/// An existing id of anyone (most often), a deleted one, or one that never existed.
fn pick<K: Copy>(rng: &mut Rng, live: Vec<K>, gone: &[K], fresh: impl FnOnce() -> K) -> K {
    let roll = rng.below(100);
    if roll < 80 && !live.is_empty() {
        live[rng.below(live.len())]
    } else if roll < 90 && !gone.is_empty() {
        gone[rng.below(gone.len())]
    } else {
        fresh()
    }
}

fn job_matches(row: &JobInfo, model: &JobModel, users: &[UserId]) -> bool {
    row.user_id == users[model.owner]
        && row.name == model.name
        && row.title == model.title
        && row.experience_level == model.level
        && row.description == model.description
}

fn interview_matches(row: &Interview, model: &InterviewModel) -> bool {
    row.job_info_id == model.job
        && row.duration == model.duration
        && row.hume_chat_id == model.chat
        && row.feedback == model.feedback
}

fn question_matches(row: &Question, model: &QuestionModel) -> bool {
    row.job_info_id == model.job && row.text == model.text && row.difficulty == model.difficulty
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

/// One step of the run: who acts, whether inside a transaction, and its name in
/// failure messages (seed and step, to replay it).
struct Step {
    actor: usize,
    in_tx: bool,
    ctx: String,
}

/// A job info to act on: mostly a live one, sometimes a deleted or never-existing one.
fn job_target(rng: &mut Rng, model: &Model) -> JobInfoId {
    pick(
        rng,
        model.jobs.keys().copied().collect(),
        &model.gone_jobs,
        JobInfoId::generate,
    )
}

/// The operations a step draws from, writes weighted twice where rows are made.
const OPERATIONS: [fn(&mut Run<'_>, &Step); 18] = [
    insert_job_info,
    insert_job_info,
    update_job_info,
    delete_job_info,
    get_job_info,
    list_job_infos,
    insert_interview,
    insert_interview,
    update_interview,
    delete_interview,
    get_interview,
    list_and_count_interviews,
    insert_questions,
    insert_questions,
    update_question,
    delete_question,
    get_question,
    list_and_count_questions,
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
    for step in 0..operations {
        let actor = run.rng.below(USERS);
        let in_tx = run.rng.percent(25);
        run.coverage.in_transaction += usize::from(in_tx);
        let ctx = format!(
            "seed {seed} step {step} actor {} in_tx {in_tx}",
            run.users[actor]
        );
        let operation = OPERATIONS[run.rng.below(OPERATIONS.len())];
        operation(&mut run, &Step { actor, in_tx, ctx });
    }
    let Run {
        users,
        model,
        coverage,
        ..
    } = run;

    // At the end the database equals the model: every row reads back as modelled, and
    // deleting each user removes exactly the rows the model gives them.
    for (id, job) in &model.jobs {
        let row = jobprep_job_infos::get(db, &users[job.owner], *id)
            .unwrap()
            .value;
        assert!(job_matches(&row, job, &users), "final {row:?} vs {job:?}");
    }
    for (id, interview) in &model.interviews {
        let owner = &users[model.jobs[&interview.job].owner];
        let row = jobprep_interviews::get(db, owner, *id)
            .unwrap()
            .value
            .interview;
        assert!(
            interview_matches(&row, interview),
            "final {row:?} vs {interview:?}"
        );
    }
    for (id, question) in &model.questions {
        let owner = &users[model.jobs[&question.job].owner];
        let row = jobprep_questions::get(db, owner, *id)
            .unwrap()
            .value
            .question;
        assert!(
            question_matches(&row, question),
            "final {row:?} vs {question:?}"
        );
    }
    for (n, id) in users.iter().enumerate() {
        let removed = jobprep_users::delete(db, id).expect("the user exists");
        let jobs = model.jobs_of(n);
        let removed_jobs: BTreeSet<_> = removed.job_infos.iter().map(|k| k.id).collect();
        let removed_interviews: BTreeSet<_> = removed.interviews.iter().map(|k| k.id).collect();
        let removed_questions: BTreeSet<_> = removed.questions.iter().map(|k| k.id).collect();
        assert_eq!(removed_jobs, jobs, "final job infos of {id}");
        assert_eq!(
            removed_interviews,
            model.interviews_under(&jobs),
            "final interviews of {id}"
        );
        assert_eq!(
            removed_questions,
            model.questions_under(&jobs),
            "final questions of {id}"
        );
        assert!(removed.job_infos.iter().all(|k| &k.user_id == id));
    }
    coverage
}

/// A job info for the actor.
fn insert_job_info(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let levels = ExperienceLevel::ALL;
    let form = NewJobInfo {
        title: rng.percent(50).then(|| rng.text("title")),
        name: rng.text("name"),
        experience_level: levels[rng.below(levels.len())],
        description: rng.text("description"),
    };
    let key = on_executor!(db, in_tx, |ex| jobprep_job_infos::insert(ex, actor, &form)).unwrap();
    assert_eq!(&key.user_id, actor, "{ctx}");
    model.jobs.insert(
        key.id,
        JobModel {
            owner: a,
            name: form.name,
            title: form.title,
            level: form.experience_level,
            description: form.description,
        },
    );
    coverage.own_writes += 1;
}

/// An update of any job info: the owner's applies, anyone else's is `NotFound` and changes nothing.
fn update_job_info(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let levels = ExperienceLevel::ALL;
    let target = job_target(rng, model);
    let changes = JobInfoChanges {
        title: match rng.below(3) {
            0 => None,
            1 => Some(None),
            _ => Some(Some(rng.text("retitled"))),
        },
        name: rng.percent(50).then(|| rng.text("renamed")),
        experience_level: rng.percent(50).then(|| levels[rng.below(levels.len())]),
        description: rng.percent(50).then(|| rng.text("redescribed")),
    };
    // A change of no field is refused as input, before ownership is looked at.
    let changes = if changes == JobInfoChanges::default() {
        JobInfoChanges {
            name: Some(rng.text("renamed")),
            ..changes
        }
    } else {
        changes
    };
    let owner = model.jobs.get(&target).map(|j| j.owner);
    let before = owner.map(|o| jobprep_job_infos::get(db, &users[o], target).unwrap().value);
    let result = on_executor!(db, in_tx, |ex| jobprep_job_infos::update(
        ex, actor, target, &changes
    ));
    if owner == Some(a) {
        let key = result.unwrap();
        assert_eq!((key.id, &key.user_id), (target, actor), "{ctx}");
        let job = model.jobs.get_mut(&target).unwrap();
        if let Some(title) = changes.title {
            job.title = title;
        }
        if let Some(name) = changes.name {
            job.name = name;
        }
        if let Some(level) = changes.experience_level {
            job.level = level;
        }
        if let Some(description) = changes.description {
            job.description = description;
        }
        coverage.own_writes += 1;
    } else {
        assert_not_found(result, Entity::JobInfo, ctx);
        if let (Some(o), Some(before)) = (owner, before) {
            let after = jobprep_job_infos::get(db, &users[o], target).unwrap().value;
            assert_eq!(
                after, before,
                "{ctx}: another user's update changed the row"
            );
            coverage.cross_tenant_on_live_rows += 1;
        }
    }
}

/// A delete of any job info: the owner's cascades exactly as modelled, anyone else's changes nothing.
fn delete_job_info(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let target = job_target(rng, model);
    let owner = model.jobs.get(&target).map(|j| j.owner);
    let before = owner.map(|o| {
        (
            jobprep_job_infos::get(db, &users[o], target).unwrap().value,
            jobprep_questions::list_for_job_info(db, &users[o], target)
                .unwrap()
                .value,
        )
    });
    let result = on_executor!(db, in_tx, |ex| jobprep_job_infos::delete(ex, actor, target));
    if owner == Some(a) {
        let removed = result.unwrap();
        assert_eq!(
            (removed.key.id, &removed.key.user_id),
            (target, actor),
            "{ctx}"
        );
        let jobs = BTreeSet::from([target]);
        let interviews: BTreeSet<_> = removed.interviews.iter().map(|k| k.id).collect();
        let questions: BTreeSet<_> = removed.questions.iter().map(|k| k.id).collect();
        assert_eq!(interviews, model.interviews_under(&jobs), "{ctx}");
        assert_eq!(questions, model.questions_under(&jobs), "{ctx}");
        model.remove_job(target);
        assert_not_found(
            jobprep_job_infos::get(db, actor, target),
            Entity::JobInfo,
            ctx,
        );
        coverage.own_writes += 1;
    } else {
        assert_not_found(result, Entity::JobInfo, ctx);
        if let (Some(o), Some(before)) = (owner, before) {
            let after = (
                jobprep_job_infos::get(db, &users[o], target).unwrap().value,
                jobprep_questions::list_for_job_info(db, &users[o], target)
                    .unwrap()
                    .value,
            );
            assert_eq!(
                after, before,
                "{ctx}: another user's delete touched the row"
            );
            coverage.cross_tenant_on_live_rows += 1;
        }
    }
}

/// A read of any job info: only the owner sees it.
fn get_job_info(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let target = job_target(rng, model);
    let result = on_executor!(db, in_tx, |ex| jobprep_job_infos::get(ex, actor, target));
    match model.jobs.get(&target) {
        Some(job) if job.owner == a => {
            let row = result.unwrap().value;
            assert!(job_matches(&row, job, users), "{ctx}: {row:?} vs {job:?}");
            coverage.own_reads += 1;
        }
        other => {
            coverage.cross_tenant_on_live_rows += usize::from(other.is_some());
            assert_not_found(result, Entity::JobInfo, ctx);
        }
    }
}

/// The actor's list: exactly their job infos.
fn list_job_infos(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        model,
        coverage,
        ..
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let rows = on_executor!(db, in_tx, |ex| jobprep_job_infos::list_for_user(ex, actor))
        .unwrap()
        .value;
    let ids: BTreeSet<_> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids, model.jobs_of(a), "{ctx}");
    for row in &rows {
        assert!(
            job_matches(row, &model.jobs[&row.id], users),
            "{ctx}: {row:?}"
        );
    }
    let any = on_executor!(db, in_tx, |ex| jobprep_job_infos::user_has_any(ex, actor))
        .unwrap()
        .value;
    assert_eq!(any, !ids.is_empty(), "{ctx}");
    coverage.own_reads += 1;
}

/// An interview under any job info: only under the actor's own.
fn insert_interview(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let target = job_target(rng, model);
    let form = NewInterview {
        duration: format!(
            "{:02}:{:02}:{:02}",
            rng.below(100),
            rng.below(60),
            rng.below(60)
        ),
        hume_chat_id: rng.percent(60).then(|| rng.text("chat")),
    };
    let owner = model.jobs.get(&target).map(|j| j.owner);
    let result = on_executor!(db, in_tx, |ex| jobprep_interviews::insert(
        ex, actor, target, &form
    ));
    if owner == Some(a) {
        let key = result.unwrap();
        assert_eq!(key.job_info_id, target, "{ctx}");
        model.interviews.insert(
            key.id,
            InterviewModel {
                job: target,
                duration: form.duration,
                chat: form.hume_chat_id,
                feedback: None,
            },
        );
        coverage.own_writes += 1;
    } else {
        coverage.cross_tenant_on_live_rows += usize::from(owner.is_some());
        assert_not_found(result, Entity::JobInfo, ctx);
    }
}

/// An update of any interview: the owner's applies, anyone else's changes nothing.
fn update_interview(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let target = pick(
        rng,
        model.interviews.keys().copied().collect(),
        &model.gone_interviews,
        InterviewId::generate,
    );
    let changes = InterviewChanges {
        duration: rng.percent(50).then(|| {
            format!(
                "{:02}:{:02}:{:02}",
                rng.below(100),
                rng.below(60),
                rng.below(60)
            )
        }),
        hume_chat_id: match rng.below(3) {
            0 => None,
            1 => Some(None),
            _ => Some(Some(rng.text("rechat"))),
        },
        feedback: match rng.below(3) {
            0 => None,
            1 => Some(None),
            _ => Some(Some(rng.text("feedback"))),
        },
    };
    let changes = if changes == InterviewChanges::default() {
        InterviewChanges {
            feedback: Some(Some(rng.text("feedback"))),
            ..changes
        }
    } else {
        changes
    };
    let owner = model.interview_owner(target);
    let before = owner.map(|o| {
        jobprep_interviews::get(db, &users[o], target)
            .unwrap()
            .value
    });
    let result = on_executor!(db, in_tx, |ex| jobprep_interviews::update(
        ex, actor, target, &changes
    ));
    if owner == Some(a) {
        let key = result.unwrap();
        assert_eq!(key.id, target, "{ctx}");
        let interview = model.interviews.get_mut(&target).unwrap();
        if let Some(duration) = changes.duration {
            interview.duration = duration;
        }
        if let Some(chat) = changes.hume_chat_id {
            interview.chat = chat;
        }
        if let Some(feedback) = changes.feedback {
            interview.feedback = feedback;
        }
        coverage.own_writes += 1;
    } else {
        assert_not_found(result, Entity::Interview, ctx);
        if let (Some(o), Some(before)) = (owner, before) {
            let after = jobprep_interviews::get(db, &users[o], target)
                .unwrap()
                .value;
            assert_eq!(
                after, before,
                "{ctx}: another user's update changed the interview"
            );
            coverage.cross_tenant_on_live_rows += 1;
        }
    }
}

/// A delete of any interview: the owner's goes, anyone else's stays.
fn delete_interview(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let target = pick(
        rng,
        model.interviews.keys().copied().collect(),
        &model.gone_interviews,
        InterviewId::generate,
    );
    let owner = model.interview_owner(target);
    let before = owner.map(|o| {
        jobprep_interviews::get(db, &users[o], target)
            .unwrap()
            .value
    });
    let result = on_executor!(db, in_tx, |ex| jobprep_interviews::delete(
        ex, actor, target
    ));
    if owner == Some(a) {
        assert_eq!(result.unwrap().id, target, "{ctx}");
        model.interviews.remove(&target);
        model.gone_interviews.push(target);
        coverage.own_writes += 1;
    } else {
        assert_not_found(result, Entity::Interview, ctx);
        if let (Some(o), Some(before)) = (owner, before) {
            let after = jobprep_interviews::get(db, &users[o], target)
                .unwrap()
                .value;
            assert_eq!(
                after, before,
                "{ctx}: another user's delete touched the interview"
            );
            coverage.cross_tenant_on_live_rows += 1;
        }
    }
}

/// A read of any interview: only the owner sees it.
fn get_interview(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let target = pick(
        rng,
        model.interviews.keys().copied().collect(),
        &model.gone_interviews,
        InterviewId::generate,
    );
    let result = on_executor!(db, in_tx, |ex| jobprep_interviews::get(ex, actor, target));
    match model.interview_owner(target) {
        Some(o) if o == a => {
            let got = result.unwrap().value;
            assert!(
                interview_matches(&got.interview, &model.interviews[&target]),
                "{ctx}: {got:?}"
            );
            assert_eq!(
                (got.job_info.id, &got.job_info.user_id),
                (got.interview.job_info_id, actor),
                "{ctx}"
            );
            coverage.own_reads += 1;
        }
        other => {
            coverage.cross_tenant_on_live_rows += usize::from(other.is_some());
            assert_not_found(result, Entity::Interview, ctx);
        }
    }
}

/// The interviews under any job info, and the actor's count.
fn list_and_count_interviews(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let target = job_target(rng, model);
    let rows = on_executor!(db, in_tx, |ex| jobprep_interviews::list_for_job_info(
        ex, actor, target
    ))
    .unwrap()
    .value;
    let owner = model.jobs.get(&target).map(|j| j.owner);
    let expected: BTreeSet<InterviewId> = if owner == Some(a) {
        model
            .interviews
            .iter()
            .filter(|(_, i)| i.job == target && i.chat.is_some())
            .map(|(k, _)| *k)
            .collect()
    } else {
        coverage.cross_tenant_on_live_rows += usize::from(owner.is_some());
        BTreeSet::new()
    };
    let ids: BTreeSet<_> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids, expected, "{ctx}: interviews listed");
    for row in &rows {
        assert!(
            interview_matches(row, &model.interviews[&row.id]),
            "{ctx}: {row:?}"
        );
    }
    let count = on_executor!(db, in_tx, |ex| jobprep_interviews::count_for_user(
        ex, actor
    ))
    .unwrap()
    .value;
    let jobs = model.jobs_of(a);
    let expected_count = model
        .interviews
        .values()
        .filter(|i| jobs.contains(&i.job) && i.chat.is_some())
        .count();
    assert_eq!(
        count,
        i64::try_from(expected_count).unwrap(),
        "{ctx}: interview count"
    );
}

/// Questions, one or in bulk, under any job info: only under the actor's own.
fn insert_questions(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let difficulties = QuestionDifficulty::ALL;
    let target = job_target(rng, model);
    let batch: Vec<NewQuestion> = (0..rng.below(4))
        .map(|_| {
            NewQuestion::new(
                rng.text("question"),
                difficulties[rng.below(difficulties.len())],
            )
        })
        .collect();
    let owner = model.jobs.get(&target).map(|j| j.owner);
    let result = if batch.len() == 1 {
        on_executor!(db, in_tx, |ex| jobprep_questions::insert(
            ex, actor, target, &batch[0]
        ))
        .map(|k| vec![k])
    } else {
        on_executor!(db, in_tx, |ex| jobprep_questions::insert_many(
            ex, actor, target, &batch
        ))
    };
    if owner == Some(a) {
        let keys = result.unwrap();
        assert_eq!(keys.len(), batch.len(), "{ctx}");
        for (key, question) in keys.into_iter().zip(batch) {
            assert_eq!(key.job_info_id, target, "{ctx}");
            model.questions.insert(
                key.id,
                QuestionModel {
                    job: target,
                    text: question.text,
                    difficulty: question.difficulty,
                },
            );
        }
        coverage.own_writes += 1;
    } else {
        coverage.cross_tenant_on_live_rows += usize::from(owner.is_some());
        assert_not_found(result, Entity::JobInfo, ctx);
    }
}

/// An update of any question: the owner's applies, anyone else's changes nothing.
fn update_question(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let difficulties = QuestionDifficulty::ALL;
    let target = pick(
        rng,
        model.questions.keys().copied().collect(),
        &model.gone_questions,
        QuestionId::generate,
    );
    let changes = QuestionChanges {
        text: rng.percent(70).then(|| rng.text("reworded")),
        difficulty: rng
            .percent(50)
            .then(|| difficulties[rng.below(difficulties.len())]),
    };
    let changes = if changes == QuestionChanges::default() {
        QuestionChanges {
            text: Some(rng.text("reworded")),
            ..changes
        }
    } else {
        changes
    };
    let owner = model.question_owner(target);
    let before = owner.map(|o| jobprep_questions::get(db, &users[o], target).unwrap().value);
    let result = on_executor!(db, in_tx, |ex| jobprep_questions::update(
        ex, actor, target, &changes
    ));
    if owner == Some(a) {
        assert_eq!(result.unwrap().id, target, "{ctx}");
        let question = model.questions.get_mut(&target).unwrap();
        if let Some(text) = changes.text {
            question.text = text;
        }
        if let Some(difficulty) = changes.difficulty {
            question.difficulty = difficulty;
        }
        coverage.own_writes += 1;
    } else {
        assert_not_found(result, Entity::Question, ctx);
        if let (Some(o), Some(before)) = (owner, before) {
            let after = jobprep_questions::get(db, &users[o], target).unwrap().value;
            assert_eq!(
                after, before,
                "{ctx}: another user's update changed the question"
            );
            coverage.cross_tenant_on_live_rows += 1;
        }
    }
}

/// A delete of any question: the owner's goes, anyone else's stays.
fn delete_question(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let target = pick(
        rng,
        model.questions.keys().copied().collect(),
        &model.gone_questions,
        QuestionId::generate,
    );
    let owner = model.question_owner(target);
    let before = owner.map(|o| jobprep_questions::get(db, &users[o], target).unwrap().value);
    let result = on_executor!(db, in_tx, |ex| jobprep_questions::delete(ex, actor, target));
    if owner == Some(a) {
        assert_eq!(result.unwrap().id, target, "{ctx}");
        model.questions.remove(&target);
        model.gone_questions.push(target);
        coverage.own_writes += 1;
    } else {
        assert_not_found(result, Entity::Question, ctx);
        if let (Some(o), Some(before)) = (owner, before) {
            let after = jobprep_questions::get(db, &users[o], target).unwrap().value;
            assert_eq!(
                after, before,
                "{ctx}: another user's delete touched the question"
            );
            coverage.cross_tenant_on_live_rows += 1;
        }
    }
}

/// A read of any question: only the owner sees it.
fn get_question(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let target = pick(
        rng,
        model.questions.keys().copied().collect(),
        &model.gone_questions,
        QuestionId::generate,
    );
    let result = on_executor!(db, in_tx, |ex| jobprep_questions::get(ex, actor, target));
    match model.question_owner(target) {
        Some(o) if o == a => {
            let got = result.unwrap().value;
            assert!(
                question_matches(&got.question, &model.questions[&target]),
                "{ctx}: {got:?}"
            );
            assert_eq!(
                (got.job_info.id, &got.job_info.user_id),
                (got.question.job_info_id, actor),
                "{ctx}"
            );
            coverage.own_reads += 1;
        }
        other => {
            coverage.cross_tenant_on_live_rows += usize::from(other.is_some());
            assert_not_found(result, Entity::Question, ctx);
        }
    }
}

/// The questions under any job info, and the actor's count.
fn list_and_count_questions(run: &mut Run<'_>, step: &Step) {
    let Run {
        db,
        users,
        rng,
        model,
        coverage,
    } = run;
    let db: &Db = db;
    let a = step.actor;
    let actor = &users[step.actor];
    let in_tx = step.in_tx;
    let ctx = &step.ctx;
    let target = job_target(rng, model);
    let rows = on_executor!(db, in_tx, |ex| jobprep_questions::list_for_job_info(
        ex, actor, target
    ))
    .unwrap()
    .value;
    let owner = model.jobs.get(&target).map(|j| j.owner);
    let expected = if owner == Some(a) {
        model.questions_under(&BTreeSet::from([target]))
    } else {
        coverage.cross_tenant_on_live_rows += usize::from(owner.is_some());
        BTreeSet::new()
    };
    let ids: BTreeSet<_> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids, expected, "{ctx}: questions listed");
    for row in &rows {
        assert!(
            question_matches(row, &model.questions[&row.id]),
            "{ctx}: {row:?}"
        );
    }
    let count = on_executor!(db, in_tx, |ex| jobprep_questions::count_for_user(ex, actor))
        .unwrap()
        .value;
    let expected_count = model.questions_under(&model.jobs_of(a)).len();
    assert_eq!(
        count,
        i64::try_from(expected_count).unwrap(),
        "{ctx}: question count"
    );
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
