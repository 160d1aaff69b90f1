//! The async use cases (feature `tokio`) on both backends: the same values, cache tags
//! and errors as their synchronous twins.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)]

use jobprep_questions::asynch::{self, AsyncDb};
use jobprep_questions::{NewQuestion, QuestionChanges, QuestionDifficulty, UserId};
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
            let one = NewQuestion::new("Explain MVCC.", QuestionDifficulty::Hard);
            let key = asynch::insert(&db, owner.clone(), job, one).await.unwrap();
            let id = key.id;
            assert_eq!(
                t.sink.take_sorted(),
                [
                    "global:questions".to_owned(),
                    format!("id:{id}:questions"),
                    format!("jobInfo:{}:questions", job),
                ]
            );
            let many = ["Design a rate limiter.", "What is a B-tree?"]
                .map(|text| NewQuestion::new(text, QuestionDifficulty::Medium))
                .to_vec();
            assert_eq!(asynch::insert_many(&db, owner.clone(), job, many).await.unwrap().len(), 2);
            assert_eq!(asynch::count_for_user(&db, owner.clone()).await.unwrap().value, 3);

            let changes = QuestionChanges {
                difficulty: Some(QuestionDifficulty::Easy),
                ..Default::default()
            };
            assert_eq!(asynch::update(&db, owner.clone(), id, changes).await.unwrap(), key);
            let read = asynch::get(&db, owner.clone(), id).await.unwrap();
            assert_eq!(read, jobprep_questions::get(&t.db, &owner, id).unwrap());
            assert_eq!(read.value.question.difficulty, QuestionDifficulty::Easy);
            let list = asynch::list_for_job_info(&db, owner.clone(), job).await.unwrap();
            assert_eq!(list, jobprep_questions::list_for_job_info(&t.db, &owner, job).unwrap());
            assert_eq!(list.value.len(), 3);

            let blank = NewQuestion::new(" ", QuestionDifficulty::Easy);
            let err = asynch::insert(&db, owner.clone(), job, blank).await.unwrap_err();
            assert!(matches!(err, Error::InvalidInput { field: "text", .. }), "{err:?}");
            let err = asynch::get(&db, stranger.clone(), id).await.unwrap_err();
            assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
            let other = NewQuestion::new("Sneaky?", QuestionDifficulty::Easy);
            let err = asynch::insert(&db, stranger, job, other).await.unwrap_err();
            assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

            assert_eq!(asynch::delete(&db, owner.clone(), id).await.unwrap(), key);
            assert_eq!(asynch::count_for_user(&db, owner.clone()).await.unwrap().value, 2);

            t.sink.take();
            let within = NewQuestion::new("Within the plan.", QuestionDifficulty::Easy);
            let key = asynch::insert_within_quota(&db, owner.clone(), job, within.clone(), 3).await.unwrap();
            assert_eq!(t.sink.take_sorted().len(), 3, "the tags of the new question");
            assert_eq!(key.job_info_id, job);
            let err = asynch::insert_within_quota(&db, owner.clone(), job, within, 3).await.unwrap_err();
            assert!(matches!(err, Error::QuotaExceeded { limit: 3, .. }) && !err.is_retryable(), "{err:?}");
            assert!(t.sink.take().is_empty());
            assert_eq!(asynch::count_for_user(&db, owner).await.unwrap().value, 3);
        });
    }
}
