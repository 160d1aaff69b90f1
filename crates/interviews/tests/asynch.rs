//! The async use cases (feature `tokio`) on both backends: the same values, cache tags
//! and errors as their synchronous twins.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)]

use jobprep_interviews::asynch::{self, AsyncDb};
use jobprep_interviews::{InterviewChanges, NewInterview, UserId};
use jobprep_repo::Error;
use jobprep_testing::block_on;
use jobprep_testing::{backend_tests, job_info, user};

backend_tests! {
    fn async_use_cases_match_the_sync_ones(t) {
        let db = AsyncDb::from(t.db.clone());
        let owner = user(&t.db, "user_async");
        let job = job_info(&t.db, &owner, "SRE");
        let stranger = UserId::new("user_stranger").unwrap();
        block_on(async {
            let key = asynch::insert(&db, owner.clone(), job, NewInterview::new()).await.unwrap();
            let id = key.id;
            assert_eq!(
                t.sink.take_sorted(),
                [
                    "global:interviews".to_owned(),
                    format!("id:{id}:interviews"),
                    format!("jobInfo:{}:interviews", job),
                ]
            );
            // Only interviews with a chat id are listed and counted.
            assert!(asynch::list_for_job_info(&db, owner.clone(), job).await.unwrap().value.is_empty());
            let changes = InterviewChanges {
                hume_chat_id: Some(Some("chat_1".into())),
                duration: Some("00:10:00".into()),
                feedback: Some(Some("Good".into())),
            };
            assert_eq!(asynch::update(&db, owner.clone(), id, changes).await.unwrap(), key);
            assert_eq!(asynch::count_for_user(&db, owner.clone()).await.unwrap().value, 1);

            let read = asynch::get(&db, owner.clone(), id).await.unwrap();
            assert_eq!(read, jobprep_interviews::get(&t.db, &owner, id).unwrap());
            assert_eq!(read.value.interview.feedback.as_deref(), Some("Good"));
            let list = asynch::list_for_job_info(&db, owner.clone(), job).await.unwrap();
            assert_eq!(list, jobprep_interviews::list_for_job_info(&t.db, &owner, job).unwrap());
            assert_eq!(list.value, [read.value.interview]);

            let bad = InterviewChanges {
                duration: Some("ten minutes".into()),
                ..Default::default()
            };
            let err = asynch::update(&db, owner.clone(), id, bad).await.unwrap_err();
            assert!(matches!(err, Error::InvalidInput { field: "duration", .. }), "{err:?}");
            let err = asynch::get(&db, stranger.clone(), id).await.unwrap_err();
            assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
            let err = asynch::delete(&db, stranger, id).await.unwrap_err();
            assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

            assert_eq!(asynch::delete(&db, owner.clone(), id).await.unwrap(), key);
            assert_eq!(asynch::count_for_user(&db, owner.clone()).await.unwrap().value, 0);

            t.sink.take();
            let with_chat = NewInterview::new().with_hume_chat_id("chat_2");
            asynch::insert_within_quota(&db, owner.clone(), job, with_chat, 1).await.unwrap();
            let pending = asynch::insert_within_quota(&db, owner.clone(), job, NewInterview::new(), 1).await.unwrap();
            assert_eq!(t.sink.take().len(), 2, "one batch per write");
            let chat = InterviewChanges { hume_chat_id: Some(Some("chat_3".into())), ..Default::default() };
            let err = asynch::update_within_quota(&db, owner.clone(), pending.id, chat, 1).await.unwrap_err();
            assert!(matches!(err, Error::QuotaExceeded { limit: 1, .. }) && !err.is_retryable(), "{err:?}");
            assert!(t.sink.take().is_empty());
            assert_eq!(asynch::count_for_user(&db, owner).await.unwrap().value, 1);
        });
    }
}
