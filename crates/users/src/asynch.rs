//! The use cases of this crate as `async fn`s over an [`AsyncDb`] (feature `tokio`).
//! Each takes owned arguments and runs its synchronous twin on a worker thread of the
//! `AsyncDb` (see [`jobprep_repo::asynch`]); cache tags and errors are the same.

pub use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::Cached;

use crate::{NewUser, RemovedUser, User, UserId};

jobprep_repo::async_twins! {
    upsert(user: &NewUser) -> User;
    get(id: &UserId) -> Cached<User>;
    delete(id: &UserId) -> RemovedUser;
}
