//! The async use cases (feature `tokio`) on both backends: the same values, cache tags
//! and errors as their synchronous twins.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)]

use jobprep_job_infos::asynch::{self, AsyncDb};
use jobprep_job_infos::{ExperienceLevel, JobInfoChanges, NewJobInfo, UserId};
use jobprep_repo::Error;
use jobprep_testing::block_on;
use jobprep_testing::{backend_tests, user};

backend_tests! {
    fn async_use_cases_match_the_sync_ones(t) {
        let db = AsyncDb::from(t.db.clone());
        let owner = user(&t.db, "user_async");
        let stranger = UserId::new("user_stranger").unwrap();
        block_on(async {
            let job = NewJobInfo::new("SRE", ExperienceLevel::Senior, "On call");
            let key = asynch::insert(&db, owner.clone(), job).await.unwrap();
            let id = key.id;
            assert_eq!(
                t.sink.take_sorted(),
                [
                    "global:jobInfos".to_owned(),
                    format!("id:{id}:jobInfos"),
                    "user:user_async:jobInfos".to_owned(),
                ]
            );
            assert!(asynch::user_has_any(&db, owner.clone()).await.unwrap().value);

            let changes = JobInfoChanges {
                name: Some("Staff SRE".into()),
                ..Default::default()
            };
            assert_eq!(asynch::update(&db, owner.clone(), id, changes).await.unwrap(), key);

            let read = asynch::get(&db, owner.clone(), id).await.unwrap();
            assert_eq!(read, jobprep_job_infos::get(&t.db, &owner, id).unwrap());
            assert_eq!(read.value.name, "Staff SRE");
            let list = asynch::list_for_user(&db, owner.clone()).await.unwrap();
            assert_eq!(list, jobprep_job_infos::list_for_user(&t.db, &owner).unwrap());
            assert_eq!(list.value, [read.value]);

            let err = asynch::get(&db, stranger.clone(), id).await.unwrap_err();
            assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
            let err = asynch::delete(&db, stranger, id).await.unwrap_err();
            assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

            assert_eq!(asynch::delete(&db, owner.clone(), id).await.unwrap().key, key);
            assert!(!asynch::user_has_any(&db, owner).await.unwrap().value);
        });
    }
}
