#![doc = include_str!("../README.md")]

use jobprep_repo::{cache_rules, users as repo, Cached, Executor, Result};

pub use jobprep_repo::users::{NewUser, RemovedUser, User};
pub use jobprep_repo::UserId;

#[cfg(feature = "tokio")]
pub mod asynch;

/// Signs a user up or refreshes their profile (name, email, imageUrl) from the auth
/// provider, with its `createdAt` and `updatedAt` when the form carries them (see
/// [`NewUser::with_provider_timestamps`]). Reports the tags in [the crate's table](crate#cache-tags).
/// This is the one to call; `jobprep_repo::users::upsert(conn, ..)`
/// is the query it runs, for combining several queries in one write of your own.
pub fn upsert(db: &impl Executor, user: &NewUser) -> Result<User> {
    jobprep_repo::span!("users.upsert");
    // Running it twice has one effect: a lost answer is settled by running it again.
    db.write_tagged_idempotent(
        |conn| repo::upsert(conn, user),
        |row| cache_rules::user_write(&row.id),
    )
}

/// The user with this id; cache it under the tags it returns ([the crate's table](crate#cache-tags)).
pub fn get(db: &impl Executor, id: &UserId) -> Result<Cached<User>> {
    jobprep_repo::span!("users.get");
    db.read_cached(|conn| repo::get(conn, id), |_| cache_rules::user_read(id))
}

/// Deletes the user and, by cascade, everything they own; `Error::NotFound` when
/// there is no such user. Reports the user's tags and those of every removed row.
pub fn delete(db: &impl Executor, id: &UserId) -> Result<RemovedUser> {
    jobprep_repo::span!("users.delete");
    db.write_tagged(|conn| repo::delete(conn, id), cache_rules::user_removed)
}
