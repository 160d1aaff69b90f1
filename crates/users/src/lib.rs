#![doc = include_str!("../README.md")]

use jobprep_repo::{cache_rules, users as repo, CacheTag, Cached, Entity, Executor, Result};

pub use jobprep_repo::users::{NewUser, RemovedUser, User};
pub use jobprep_repo::UserId;

#[cfg(feature = "tokio")]
pub mod asynch;

/// Signs a user up or refreshes their profile (name, email, imageUrl) from the auth
/// provider, with its `createdAt` and `updatedAt` when the form carries them (see
/// [`NewUser::with_provider_timestamps`]). Reports `global:users` and
/// `id:{userId}:users`.
pub fn upsert(db: &impl Executor, user: &NewUser) -> Result<User> {
    jobprep_repo::span!("users.upsert");
    db.write(|conn, tags| {
        let row = repo::upsert(conn, user)?;
        tags.extend(cache_rules::user_write(&row.id));
        Ok(row)
    })
}

/// The user with this id; cache it under `id:{userId}:users`.
pub fn get(db: &impl Executor, id: &UserId) -> Result<Cached<User>> {
    jobprep_repo::span!("users.get");
    let user = db.read(|conn| repo::get(conn, id))?;
    Ok(Cached::new(user, vec![CacheTag::id(id, Entity::User)]))
}

/// Deletes the user and, by cascade, everything they own. `None` when there was no
/// such user. Reports the user's tags and those of every removed row.
pub fn delete(db: &impl Executor, id: &UserId) -> Result<Option<RemovedUser>> {
    jobprep_repo::span!("users.delete");
    db.write(|conn, tags| {
        let removed = repo::delete(conn, id)?;
        if let Some(removed) = &removed {
            tags.extend(cache_rules::user_removed(removed));
        }
        Ok(removed)
    })
}
