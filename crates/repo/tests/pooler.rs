//! Through a transaction-mode pooler (issue "Reliability", item 2).
//!
//! Run by `bash scripts/pgbouncer.sh`, which starts PgBouncer with `pool_mode =
//! transaction` and fewer server connections than clients, and sets:
//!
//! - `JOBPREP_PGBOUNCER_URL`: `postgres://USER@HOST:PORT/DB` through PgBouncer, on a
//!   database the script created; each test creates a scratch database of its own
//!   beside it (named `DB_...`) and drops it at the end;
//! - `JOBPREP_PGBOUNCER_POOL_SIZE`: PgBouncer's `default_pool_size`, the number of server
//!   connections per database.
//!
//! The tests: concurrent mixed load in pooler-safe mode, where every call must succeed
//! and the rows must be exactly the acknowledged ones; and one interleaving that moves
//! a client to another server connection between two statements, which breaks
//! prepared statements without pooler-safe mode and is harmless with it.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, SimpleConnection};
use diesel::prelude::*;
use jobprep_repo::job_infos::{self, JobInfoChanges, NewJobInfo};
use jobprep_repo::users::{self, NewUser};
use jobprep_repo::{Db, Error, Executor, ExperienceLevel, JobInfoId, UserId};
use jobprep_schema::{job_info, users as users_table};

const THREADS: usize = 8;
const OPS_PER_THREAD: usize = 300;
/// Every test stops by itself after this, whatever happens.
const WATCHDOG: Duration = Duration::from_secs(120);

fn watchdog() {
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        eprintln!("pooler: a test is still running after {WATCHDOG:?}; aborting");
        std::process::exit(101);
    });
}

fn env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set: this test needs a transaction-mode PgBouncer; run \
                 `bash scripts/pgbouncer.sh`, which starts one"
            )
        })
}

/// A connection for bookkeeping through PgBouncer: simple queries and unnamed
/// statements only, so it works whatever server connection it lands on.
fn pooler_connection(url: &str) -> PgConnection {
    let mut conn = PgConnection::establish(url).unwrap();
    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
    conn
}

/// A database of one test's own, created and dropped through PgBouncer.
struct Scratch {
    base_url: String,
    name: String,
    url: String,
}

impl Scratch {
    fn new(label: &str) -> Scratch {
        let base_url = env("JOBPREP_PGBOUNCER_URL");
        let (prefix, base) = base_url
            .rsplit_once('/')
            .filter(|(_, db)| !db.is_empty() && !db.contains(['?', '"']))
            .unwrap_or_else(|| panic!("JOBPREP_PGBOUNCER_URL must end in /DATABASE: {base_url}"));
        let name = format!("{base}_{label}");
        let url = format!("{prefix}/{name}");
        // One statement per call: a multi-statement query is a transaction block.
        let mut admin = pooler_connection(&base_url);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        Scratch {
            base_url,
            name,
            url,
        }
    }
}

impl Scratch {
    /// Migrations refuse to run through a transaction-mode pooler; as users are told,
    /// they run on the server directly.
    fn migrate_directly(&self) {
        let direct =
            jobprep_testing::database_url(&jobprep_testing::postgres_admin_url(), &self.name);
        Db::connect(&direct).unwrap().migrate().unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // WITH (FORCE) also ends PgBouncer's server connections to it.
        if let Ok(mut conn) = PgConnection::establish(&self.base_url) {
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A small deterministic generator, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// What one thread's acknowledged calls say the database holds.
#[derive(Debug, Default)]
struct Expected {
    /// User id and the name of its latest acknowledged upsert.
    users: BTreeMap<UserId, String>,
    /// Job info id, its owner and the name of its latest acknowledged write.
    jobs: BTreeMap<JobInfoId, (UserId, String)>,
    /// Users written only inside transactions that rolled back.
    rolled_back: Vec<UserId>,
    ops: BTreeMap<&'static str, usize>,
    errors: Vec<String>,
}

fn new_job(name: &str) -> NewJobInfo {
    NewJobInfo::new(
        name,
        ExperienceLevel::MidLevel,
        "Through a transaction pooler.",
    )
}

fn pick<K: Clone, V>(rng: &mut Rng, map: &BTreeMap<K, V>) -> Option<K> {
    (!map.is_empty()).then(|| map.keys().nth(rng.below(map.len())).unwrap().clone())
}

/// One thread's mixed operations; every call must succeed (a rollback on purpose must
/// fail with the closure's own error), and every read must see this thread's writes.
fn mixed_load(db: &Db, run: &str, t: usize) -> Expected {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1).wrapping_mul(0x1000_0001));
    let mut e = Expected::default();
    let mut serial = 0usize;
    let mut next = |what: &str| {
        serial += 1;
        format!("{run}-t{t}-{what}{serial}")
    };
    for _ in 0..OPS_PER_THREAD {
        let choice = rng.below(15);
        let op: &'static str = match choice {
            _ if e.users.is_empty() => "upsert new user",
            0..=1 => "upsert new user",
            2 => "upsert existing user",
            3..=5 if !e.users.is_empty() => "insert job info",
            6..=7 if !e.jobs.is_empty() => "update job info",
            8..=10 if !e.jobs.is_empty() => "read",
            11..=12 => "transaction",
            13 => "rolled-back transaction",
            _ => "insert job info",
        };
        *e.ops.entry(op).or_default() += 1;
        let outcome: Result<(), String> = match op {
            "upsert new user" | "upsert existing user" => {
                let id = match op {
                    "upsert existing user" => pick(&mut rng, &e.users).unwrap(),
                    _ => UserId::new(next("u")).unwrap(),
                };
                let name = next("name");
                let new = NewUser::new(id.clone(), &name, format!("{id}@pooler.example"));
                match db.write(|c, _| users::upsert(c, &new)) {
                    Ok(user) if user.name == name => {
                        e.users.insert(id, name);
                        Ok(())
                    }
                    Ok(user) => Err(format!("upsert returned {user:?}, expected name {name}")),
                    Err(error) => Err(format!("{op}: {error}")),
                }
            }
            "insert job info" => {
                let owner = pick(&mut rng, &e.users).unwrap();
                let name = next("job");
                match db.write(|c, _| job_infos::insert(c, &owner, &new_job(&name))) {
                    Ok(key) if key.user_id == owner => {
                        e.jobs.insert(key.id, (owner, name));
                        Ok(())
                    }
                    Ok(key) => Err(format!("insert returned {key:?} for owner {owner}")),
                    Err(error) => Err(format!("{op}: {error}")),
                }
            }
            "update job info" => {
                let id = pick(&mut rng, &e.jobs).unwrap();
                let owner = e.jobs[&id].0.clone();
                let name = next("renamed");
                let changes = JobInfoChanges {
                    name: Some(name.clone()),
                    ..Default::default()
                };
                match db.write(|c, _| job_infos::update(c, &owner, id, &changes)) {
                    Ok(key) if key.id == id => {
                        e.jobs.insert(id, (owner, name));
                        Ok(())
                    }
                    Ok(key) => Err(format!("update returned {key:?} for {id}")),
                    Err(error) => Err(format!("{op}: {error}")),
                }
            }
            "read" => {
                let id = pick(&mut rng, &e.jobs).unwrap();
                let (owner, name) = e.jobs[&id].clone();
                let expected: HashSet<(JobInfoId, String)> = e
                    .jobs
                    .iter()
                    .filter(|(_, (o, _))| *o == owner)
                    .map(|(id, (_, n))| (*id, n.clone()))
                    .collect();
                let got = db.read(|c| job_infos::get(c, &owner, id)).and_then(|one| {
                    let all = db.read(|c| job_infos::list_for_user(c, &owner))?;
                    let user = db.read(|c| users::get(c, &owner))?;
                    Ok((one, all, user))
                });
                match got {
                    Ok((one, all, user)) => {
                        let listed: HashSet<(JobInfoId, String)> =
                            all.into_iter().map(|j| (j.id, j.name)).collect();
                        if one.name != name || listed != expected || user.name != e.users[&owner] {
                            Err(format!(
                                "read of {owner} does not show this thread's writes: \
                                 job {id} named {:?} (expected {name:?}), {} listed \
                                 (expected {})",
                                one.name,
                                listed.len(),
                                expected.len()
                            ))
                        } else {
                            Ok(())
                        }
                    }
                    Err(error) => Err(format!("{op}: {error}")),
                }
            }
            "transaction" => {
                let id = UserId::new(next("u")).unwrap();
                let user_name = next("name");
                let names = [next("job"), next("job"), next("job")];
                let renamed = next("renamed");
                let result = db.transaction(|tx| {
                    let new = NewUser::new(id.clone(), &user_name, format!("{id}@pooler.example"));
                    tx.write(|c, _| users::upsert(c, &new))?;
                    let mut keys = Vec::new();
                    for name in &names {
                        keys.push(tx.write(|c, _| job_infos::insert(c, &id, &new_job(name)))?);
                    }
                    let changes = JobInfoChanges {
                        name: Some(renamed.clone()),
                        ..Default::default()
                    };
                    tx.write(|c, _| job_infos::update(c, &id, keys[0].id, &changes))?;
                    // Read back inside the transaction: same server connection.
                    let seen = tx.read(|c| job_infos::list_for_user(c, &id))?;
                    Ok((keys, seen.len()))
                });
                match result {
                    Ok((keys, 3)) => {
                        e.users.insert(id.clone(), user_name);
                        for (i, (key, name)) in keys.iter().zip(names).enumerate() {
                            let name = if i == 0 { renamed.clone() } else { name };
                            e.jobs.insert(key.id, (id.clone(), name));
                        }
                        Ok(())
                    }
                    Ok((_, seen)) => Err(format!("transaction saw {seen} of its 3 job infos")),
                    Err(error) => Err(format!("{op}: {error}")),
                }
            }
            "rolled-back transaction" => {
                let id = UserId::new(next("gone")).unwrap();
                let result: Result<(), Error> = db.transaction(|tx| {
                    let new = NewUser::new(id.clone(), "Gone", format!("{id}@pooler.example"));
                    tx.write(|c, _| users::upsert(c, &new))?;
                    tx.write(|c, _| job_infos::insert(c, &id, &new_job("gone")))?;
                    Err(Error::Config("rolled back on purpose".into()))
                });
                match result {
                    Err(Error::Config(reason)) if reason == "rolled back on purpose" => {
                        e.rolled_back.push(id);
                        Ok(())
                    }
                    other => Err(format!("{op}: expected the closure's error, got {other:?}")),
                }
            }
            other => unreachable!("{other}"),
        };
        if let Err(message) = outcome {
            e.errors.push(message);
        }
    }
    e
}

#[test]
#[ignore = "needs a transaction-mode PgBouncer: run `bash scripts/pgbouncer.sh`"]
fn concurrent_mixed_load_through_a_transaction_pooler() {
    watchdog();
    let scratch = Scratch::new("load");
    let db = Db::builder(&scratch.url)
        .pooler_safe(true)
        .max_size(THREADS as u32)
        .build()
        .unwrap();
    assert!(
        matches!(db.migrate(), Err(jobprep_repo::Error::Config(_))),
        "no migrations through the pooler"
    );
    scratch.migrate_directly();
    let run = "pooler";
    let started = Instant::now();
    let handles: Vec<JoinHandle<Expected>> = (0..THREADS)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || mixed_load(&db, run, t))
        })
        .collect();
    let results: Vec<Expected> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let elapsed = started.elapsed();

    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for (op, n) in results.iter().flat_map(|r| &r.ops) {
        *ops.entry(op).or_default() += n;
    }
    let errors: Vec<&String> = results.iter().flat_map(|r| &r.errors).collect();
    println!(
        "pooler load: {THREADS} threads x {OPS_PER_THREAD} operations in {:.2}s through PgBouncer, pool of {THREADS}",
        elapsed.as_secs_f64()
    );
    println!("  operations: {ops:?}");
    println!("  failed operations: {}", errors.len());
    for error in errors.iter().take(10) {
        println!("    {error}");
    }

    // The database holds exactly what was acknowledged.
    let expected_users: HashMap<UserId, String> =
        results.iter().flat_map(|r| r.users.clone()).collect();
    let expected_jobs: HashMap<JobInfoId, (UserId, String)> =
        results.iter().flat_map(|r| r.jobs.clone()).collect();
    let rolled_back: HashSet<UserId> = results.iter().flat_map(|r| r.rolled_back.clone()).collect();
    let mut conn = pooler_connection(&scratch.url);
    let pattern = format!("{run}-%");
    let present_users: HashMap<UserId, String> = users_table::table
        .filter(users_table::id.like(&pattern))
        .select((users_table::id, users_table::name))
        .load::<(UserId, String)>(&mut conn)
        .unwrap()
        .into_iter()
        .collect();
    let present_jobs: HashMap<JobInfoId, (UserId, String)> = job_info::table
        .filter(job_info::user_id.like(&pattern))
        .select((job_info::id, job_info::user_id, job_info::name))
        .load::<(JobInfoId, UserId, String)>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|(id, owner, name)| (id, (owner, name)))
        .collect();
    let leaked = rolled_back
        .iter()
        .filter(|id| present_users.contains_key(*id))
        .count();
    println!(
        "  acknowledged: {} users, {} job infos, {} transactions rolled back; \
         in the database: {} users, {} job infos",
        expected_users.len(),
        expected_jobs.len(),
        rolled_back.len(),
        present_users.len(),
        present_jobs.len()
    );
    assert!(
        errors.is_empty(),
        "{} operations failed: {errors:#?}",
        errors.len()
    );
    assert_eq!(leaked, 0, "rows of rolled-back transactions were committed");
    assert_eq!(present_users.len(), expected_users.len());
    assert_eq!(present_jobs.len(), expected_jobs.len());
    assert!(
        present_users == expected_users,
        "users differ from the acknowledged writes"
    );
    assert!(
        present_jobs == expected_jobs,
        "job infos differ from the acknowledged writes"
    );
}

/// A transaction on a connection of its own that holds one PgBouncer server connection
/// (BEGIN has been sent, nothing else) until released.
struct Holder {
    release: mpsc::Sender<()>,
    handle: JoinHandle<jobprep_repo::Result<()>>,
}

fn hold_a_server_connection(url: &str) -> Holder {
    let db = Db::builder(url)
        .pooler_safe(true)
        .max_size(1)
        .build()
        .unwrap();
    let (began, has_begun) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        db.transaction(|_tx| {
            began.send(()).unwrap();
            released.recv_timeout(Duration::from_secs(60)).ok();
            Ok(())
        })
    });
    has_begun
        .recv_timeout(Duration::from_secs(20))
        .expect("no PgBouncer server connection became free for a holder within 20s");
    Holder { release, handle }
}

impl Holder {
    fn finish(self) {
        self.release.send(()).unwrap();
        self.handle.join().unwrap().unwrap();
    }
}

/// Runs the same point read twice on one client connection, with PgBouncer made to
/// serve the second on a different server connection than the first: every other
/// server connection is held by an open transaction at each step. Returns the two
/// results.
fn same_read_on_two_server_connections(
    label: &str,
    pooler_safe: bool,
) -> (jobprep_repo::Result<()>, jobprep_repo::Result<()>) {
    let servers: usize = env("JOBPREP_PGBOUNCER_POOL_SIZE").parse().unwrap();
    assert!(
        servers >= 2,
        "the interleaving needs at least 2 server connections"
    );
    let scratch = Scratch::new(label);
    let setup = Db::builder(&scratch.url).pooler_safe(true).build().unwrap();
    scratch.migrate_directly();
    let alice = UserId::new("user_pooler_alice").unwrap();
    let new = NewUser::new(alice.clone(), "Alice", "alice@pooler.example");
    setup.write(|c, _| users::upsert(c, &new)).unwrap();
    drop(setup);

    // The client under test: one connection, prepared statements cached unless
    // pooler-safe.
    let client = Db::builder(&scratch.url)
        .pooler_safe(pooler_safe)
        .max_size(1)
        .build()
        .unwrap();
    let read = || client.read(|c| users::get(c, &alice)).map(|_| ());
    // A new connection's first checkout runs its statements unprepared; from the second
    // on they are prepared and cached, which is what this interleaving is about.
    read().unwrap();

    // All server connections but one (call it X) are held: the first read runs on X.
    let first_holders: Vec<Holder> = (1..servers)
        .map(|_| hold_a_server_connection(&scratch.url))
        .collect();
    let first = read();
    // Hold X, free the others, and hold all of those but one: the second read runs on
    // a server connection that is not X.
    let mut second_holders = vec![hold_a_server_connection(&scratch.url)];
    first_holders.into_iter().for_each(Holder::finish);
    second_holders.extend((2..servers).map(|_| hold_a_server_connection(&scratch.url)));
    let second = read();
    second_holders.into_iter().for_each(Holder::finish);
    (first, second)
}

#[test]
#[ignore = "needs a transaction-mode PgBouncer: run `bash scripts/pgbouncer.sh`"]
fn without_pooler_safe_mode_a_cached_prepared_statement_breaks_on_another_server_connection() {
    watchdog();
    let (first, second) = same_read_on_two_server_connections("unsafe", false);
    println!("pooler-safe off: first read {first:?}; second read {second:?}");
    first.unwrap();
    let error = second.expect_err(
        "the second read ran on another server connection and should not find the \
         statement prepared on the first",
    );
    let message = error.to_string();
    assert!(
        matches!(error, Error::Database(_))
            && message.contains("prepared statement")
            && message.contains("does not exist"),
        "{error:?}"
    );
}

#[test]
#[ignore = "needs a transaction-mode PgBouncer: run `bash scripts/pgbouncer.sh`"]
fn with_pooler_safe_mode_the_same_interleaving_succeeds() {
    watchdog();
    let (first, second) = same_read_on_two_server_connections("safe", true);
    println!("pooler-safe on: first read {first:?}; second read {second:?}");
    first.unwrap();
    second.unwrap();
}

/// A statement timeout through the pooler: PgBouncer refuses it as a start-up option,
/// so jobprep sets it per transaction (`SET LOCAL`). A call stuck behind a lock times
/// out and says so, and the setting stays with jobprep's transactions: a plain client
/// through the same pooler, on the same few server connections, sees none.
#[test]
#[ignore = "needs a transaction-mode PgBouncer: run `bash scripts/pgbouncer.sh`"]
fn a_statement_timeout_through_the_pooler_times_out_and_stays_in_its_transaction() {
    watchdog();
    let scratch = Scratch::new("deadline");
    scratch.migrate_directly();
    let db = Db::builder(&scratch.url)
        .pooler_safe(true)
        .statement_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let me = UserId::new("user_pooler_deadline").unwrap();
    let new = NewUser::new(me.clone(), "Before", "pooler_deadline@example.com");
    db.write(|c, _| users::upsert(c, &new)).unwrap();

    let direct =
        jobprep_testing::database_url(&jobprep_testing::postgres_admin_url(), &scratch.name);
    let mut holder = PgConnection::establish(&direct).unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let started = Instant::now();
    let renamed = NewUser::new(me.clone(), "Renamed", "pooler_deadline@example.com");
    let error = db.write(|c, _| users::upsert(c, &renamed)).unwrap_err();
    let waited = started.elapsed();
    holder.batch_execute("ROLLBACK").unwrap();
    println!("through the pooler, a call behind a lock failed after {waited:?}: {error}");
    assert!(error.is_retryable(), "{error:?}");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");

    // Many calls, so that they cover every server connection of the pool; then a plain
    // client reads the session's setting on each of them.
    for _ in 0..20 {
        db.read(|c| users::get(c, &me)).unwrap();
    }
    let pool_size: usize = env("JOBPREP_PGBOUNCER_POOL_SIZE").parse().unwrap();
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement_timeout: String,
    }
    for _ in 0..pool_size * 4 {
        let mut plain = pooler_connection(&scratch.url);
        let setting: Setting = diesel::sql_query("SHOW statement_timeout")
            .get_result(&mut plain)
            .unwrap();
        assert_eq!(setting.statement_timeout, "0", "jobprep's timeout leaked");
    }
    db.write(|c, _| users::upsert(c, &renamed)).unwrap();
}

#[path = "support/round_trips.rs"]
mod round_trips;

/// Round trips through the pooler in pooler-safe mode, counted by the project's latency
/// proxy in front of PgBouncer: statements are never prepared by name there, so each
/// goes out as parse, bind and execute together, and every use case stays one round
/// trip, the locking ones included (their functions run inside one statement).
#[test]
#[ignore = "needs a transaction-mode PgBouncer: run `bash scripts/pgbouncer.sh`"]
fn through_the_pooler_every_use_case_is_one_round_trip() {
    watchdog();
    let scratch = Scratch::new("round_trips");
    scratch.migrate_directly();
    let pooler = url::Url::parse(&scratch.url).unwrap();
    let proxy = round_trips::ScriptProxy::start(round_trips::upstream_of(&pooler), 0.5);
    let via = round_trips::via_port(&pooler, proxy.port(), "sslmode=disable");
    let db = Db::builder(via.as_str())
        .pooler_safe(true)
        .max_size(1)
        .build()
        .unwrap();
    let me = UserId::new("user_pooler_rtt").unwrap();
    let warm = |f: &mut dyn FnMut() -> jobprep_repo::Result<()>| -> u64 {
        f().unwrap();
        f().unwrap();
        let before = proxy.round_trips();
        f().unwrap();
        proxy.round_trips() - before
    };
    let form = NewUser::new(me.clone(), "P", "p@pooler.example");
    let upserted = warm(&mut || jobprep_users::upsert(&db, &form).map(drop));
    let got = warm(&mut || jobprep_users::get(&db, &me).map(drop));
    let job = jobprep_job_infos::insert(&db, &me, &new_job("Pooler")).unwrap();
    let question =
        jobprep_questions::NewQuestion::new("Why?", jobprep_questions::QuestionDifficulty::Easy);
    let quota = warm(&mut || {
        jobprep_questions::insert_within_quota(&db, &me, job.id, &question, 1000).map(drop)
    });
    let doomed: Vec<JobInfoId> = (0..3)
        .map(|_| {
            jobprep_job_infos::insert(&db, &me, &new_job("Doomed"))
                .unwrap()
                .id
        })
        .collect();
    let mut next = doomed.into_iter();
    let deleted = warm(&mut || {
        let id = next.next().unwrap();
        jobprep_job_infos::delete(&db, &me, id).map(drop)
    });
    println!(
        "through the pooler: upsert {upserted}, get {got}, quota insert {quota}, delete {deleted}"
    );
    assert_eq!((upserted, got, quota, deleted), (1, 1, 1, 1));
}
