//! The async use cases (feature `tokio`) on both backends: the same values, cache tags
//! and errors as their synchronous twins.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)]

use jobprep_repo::Error;
use jobprep_testing::backend_tests;
use jobprep_testing::block_on;
use jobprep_users::asynch::{self, AsyncDb};
use jobprep_users::{NewUser, UserId};

backend_tests! {
    fn async_use_cases_match_the_sync_ones(t) {
        let db = AsyncDb::from(t.db.clone());
        let id = UserId::new("user_async").unwrap();
        block_on(async {
            let new = NewUser::new(id.clone(), "Ada", "ada@example.com");
            let user = asynch::upsert(&db, new).await.unwrap();
            assert_eq!(
                t.sink.take_sorted(),
                ["global:users", "id:user_async:users"]
            );

            let read = asynch::get(&db, id.clone()).await.unwrap();
            assert_eq!(read, jobprep_users::get(&t.db, &id).unwrap());
            assert_eq!(read.value, user);

            let bad = NewUser::new(id.clone(), "Ada", "not-an-email");
            let err = asynch::upsert(&db, bad).await.unwrap_err();
            assert!(matches!(err, Error::InvalidInput { field: "email", .. }), "{err:?}");

            assert_eq!(asynch::delete(&db, id.clone()).await.unwrap().id, id);
            assert!(matches!(asynch::delete(&db, id.clone()).await, Err(Error::NotFound { .. })));
            let gone = asynch::get(&db, id.clone()).await.unwrap_err();
            assert!(matches!(gone, Error::NotFound { .. }), "{gone:?}");
        });
    }
}
