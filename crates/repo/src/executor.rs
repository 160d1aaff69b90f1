//! Where a repository call runs: the [`Executor`] trait, and [`Tx`], a transaction in
//! progress. The handle ([`Db`](crate::Db), [`Session`](crate::Session)) implements
//! `Executor` too.

use std::cell::RefCell;

use crate::config::Backend;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::tags::{CacheTag, Cached};

pub(crate) mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Tx<'_> {}
}

/// Where a repository call runs: on the [`Db`](crate::Db) (a pooled connection per call) or inside
/// a caller's transaction ([`Tx`]). Every repository and use-case function takes
/// `&impl Executor`, so the same call works in both places.
pub trait Executor: sealed::Sealed {
    /// Runs a read. On a [`Db`](crate::Db) with read replicas it may run on a replica, and run
    /// again on the primary if the replica fails mid-way: reads must not write.
    fn read<T>(&self, f: impl Fn(&mut Connection) -> Result<T>) -> Result<T>;

    /// Runs a write; the tags `f` pushes are reported once the write has committed.
    /// A write that needs several statements wraps them in its own transaction (a
    /// savepoint inside a [`Tx`]).
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T>;

    /// [`Executor::write`] for a write that has the same effect when it runs twice: an
    /// insert of a row whose id was chosen before (see
    /// [`job_infos::insert_with_id`](crate::job_infos::insert_with_id)), an upsert, an
    /// update that sets values. On a [`Db`](crate::Db), a write whose connection broke
    /// before its answer came ([`Error::OutcomeUnknown`]) runs once more on a fresh
    /// connection, which settles it: it answers that second run's outcome, or
    /// `OutcomeUnknown` again if that could not be had either (the server is down).
    /// Inside a [`Tx`] it is a plain `write`: the transaction's commit decides.
    fn write_idempotent<T>(
        &self,
        f: impl Fn(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        self.write(f)
    }

    /// The backend the calls run on.
    fn backend(&self) -> Backend;

    /// Runs a repository write and reports the tags `rule` gives for what it returned:
    /// the shape of every write use case.
    fn write_tagged<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T>,
        rule: impl FnOnce(&T) -> Vec<CacheTag>,
    ) -> Result<T> {
        self.write(|conn, tags| tagged(f, rule, conn, tags))
    }

    /// [`Executor::write_tagged`] for a write that has the same effect when it runs
    /// twice (see [`Executor::write_idempotent`]).
    fn write_tagged_idempotent<T, F, R>(&self, f: F, rule: R) -> Result<T>
    where
        F: Fn(&mut Connection) -> Result<T>,
        R: Fn(&T) -> Vec<CacheTag>,
    {
        self.write_idempotent(|conn, tags| tagged(&f, &rule, conn, tags))
    }

    /// Runs a repository read and returns it with the tags `rule` gives for it: the
    /// shape of every read use case.
    fn read_cached<T>(
        &self,
        f: impl Fn(&mut Connection) -> Result<T>,
        rule: impl FnOnce(&T) -> Vec<CacheTag>,
    ) -> Result<Cached<T>> {
        let value = self.read(f)?;
        let tags = rule(&value);
        Ok(Cached::new(value, tags))
    }
}

/// Runs `f` and adds the tags `rule` gives for its value.
fn tagged<T>(
    f: impl FnOnce(&mut Connection) -> Result<T>,
    rule: impl FnOnce(&T) -> Vec<CacheTag>,
    conn: &mut Connection,
    tags: &mut Vec<CacheTag>,
) -> Result<T> {
    let value = f(conn)?;
    tags.extend(rule(&value));
    Ok(value)
}

/// A transaction in progress, handed to the closure of [`Db::transaction`](crate::Db::transaction).
pub struct Tx<'c> {
    backend: Backend,
    conn: RefCell<&'c mut Connection>,
    pending: RefCell<Vec<CacheTag>>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("pending_tags", &self.pending.borrow().len())
            .finish()
    }
}

impl<'c> Tx<'c> {
    /// A transaction on `conn`, which the caller has begun.
    pub(crate) fn new(conn: &'c mut Connection) -> Self {
        Tx {
            backend: conn.backend(),
            conn: RefCell::new(conn),
            pending: RefCell::new(Vec::new()),
        }
    }

    /// The tags of the writes made so far, to report once the transaction commits.
    pub(crate) fn into_pending(self) -> Vec<CacheTag> {
        self.pending.into_inner()
    }

    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // Repository closures receive the connection, never the `Tx`, so this borrow
        // cannot be re-entered; the check keeps that a recoverable error regardless.
        let mut conn = self.conn.try_borrow_mut().map_err(|_| {
            Error::Misuse("a transaction was used from inside one of its own calls".into())
        })?;
        let result = f(&mut conn);
        conn.note_outcome(&result);
        result
    }
}

impl Executor for Tx<'_> {
    fn read<T>(&self, f: impl Fn(&mut Connection) -> Result<T>) -> Result<T> {
        self.run(f)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection, &mut Vec<CacheTag>) -> Result<T>,
    ) -> Result<T> {
        let mut tags = Vec::new();
        let value = self.run(|conn| f(conn, &mut tags))?;
        self.pending.borrow_mut().extend(tags);
        Ok(value)
    }

    fn backend(&self) -> Backend {
        self.backend
    }
}
