//! Paginated lists on both backends: the pages of a list are the list, in its order,
//! each row once, ties on the timestamp broken by id; inserts meanwhile shift nothing;
//! another user's rows never appear; bad limits and cursors are `InvalidInput`.
#![allow(clippy::unwrap_used)]

use jobprep_interviews::NewInterview;
use jobprep_job_infos::{Cursor, Page, PageRequest};
use jobprep_questions::{NewQuestion, QuestionDifficulty};
use jobprep_repo::page::MAX_PAGE_SIZE;
use jobprep_repo::Result;
use jobprep_testing::{backend_tests, job_form, refused_field, user};

/// Reads every page of `size` through `read` and returns the rows, checking that only
/// the last page is short and has no cursor.
fn all_pages<T: Clone>(size: u32, read: impl Fn(&PageRequest) -> Result<Page<T>>) -> Vec<T> {
    let mut request = PageRequest::first(size);
    let mut rows = Vec::new();
    loop {
        let page = read(&request).unwrap();
        assert!(page.items.len() <= size as usize);
        rows.extend(page.items.iter().cloned());
        match page.next {
            Some(cursor) => {
                assert_eq!(
                    page.items.len(),
                    size as usize,
                    "only the last page is short"
                );
                request = PageRequest::after(size, cursor);
            }
            None => return rows,
        }
    }
}

backend_tests! {
    fn job_info_pages_are_the_list_in_its_order_and_only_the_owners(t) {
        let owner = user(&t.db, "user_owner");
        let other = user(&t.db, "user_other");
        for i in 0..7 {
            jobprep_job_infos::insert(&t.db, &owner, &job_form(&format!("Job {i}"))).unwrap();
        }
        jobprep_job_infos::insert(&t.db, &other, &job_form("Not yours")).unwrap();
        let list = jobprep_job_infos::list_for_user(&t.db, &owner).unwrap().value;
        for size in [1, 3, 7, 50] {
            let paged = all_pages(size, |p| jobprep_job_infos::list_page_for_user(&t.db, &owner, p).map(|c| c.value));
            assert_eq!(paged, list, "pages of {size}");
        }
        // The same tags as the whole list, so a cache can keep pages beside it.
        let page = jobprep_job_infos::list_page_for_user(&t.db, &owner, &PageRequest::first(2)).unwrap();
        assert_eq!(page.tags, jobprep_job_infos::list_for_user(&t.db, &owner).unwrap().tags);

        // A job info inserted between two pages sorts first and shifts no page.
        let first = page.value;
        jobprep_job_infos::insert(&t.db, &owner, &job_form("Newest")).unwrap();
        let rest = all_pages(2, |p| {
            let p = PageRequest { after: p.after.or(first.next), ..p.clone() };
            jobprep_job_infos::list_page_for_user(&t.db, &owner, &p).map(|c| c.value)
        });
        let seen: Vec<_> = first.items.iter().chain(&rest).cloned().collect();
        assert_eq!(seen, list, "each row once, none shifted");
    }

    fn interview_and_question_pages_are_their_lists_with_ties_broken_by_id(t) {
        let owner = user(&t.db, "user_owner");
        let job = jobprep_job_infos::insert(&t.db, &owner, &job_form("Backend")).unwrap();
        for i in 0..5 {
            let held = NewInterview::new().with_hume_chat_id(format!("chat_{i}"));
            jobprep_interviews::insert(&t.db, &owner, job.id, &held).unwrap();
            jobprep_interviews::insert(&t.db, &owner, job.id, &NewInterview::new()).unwrap();
        }
        let held = jobprep_interviews::list_for_job_info(&t.db, &owner, job.id).unwrap().value;
        let every = jobprep_interviews::list_all_for_job_info(&t.db, &owner, job.id).unwrap().value;
        assert_eq!((held.len(), every.len()), (5, 10));
        assert_eq!(all_pages(2, |p| jobprep_interviews::list_page_for_job_info(&t.db, &owner, job.id, p).map(|c| c.value)), held);
        assert_eq!(all_pages(3, |p| jobprep_interviews::list_all_page_for_job_info(&t.db, &owner, job.id, p).map(|c| c.value)), every);

        // One bulk insert: the rows share their createdAt, so the id orders them.
        let asked: Vec<NewQuestion> = (0..10).map(|i| NewQuestion::new(format!("Q{i}"), QuestionDifficulty::Easy)).collect();
        jobprep_questions::insert_many(&t.db, &owner, job.id, &asked).unwrap();
        let questions = jobprep_questions::list_for_job_info(&t.db, &owner, job.id).unwrap().value;
        assert_eq!(questions.len(), 10);
        for size in [1, 3, 4, 10, 11] {
            assert_eq!(all_pages(size, |p| jobprep_questions::list_page_for_job_info(&t.db, &owner, job.id, p).map(|c| c.value)), questions, "pages of {size}");
        }

        // Someone else's job info: an empty page, as the lists give an empty list.
        let stranger = user(&t.db, "user_stranger");
        let foreign = jobprep_questions::list_page_for_job_info(&t.db, &stranger, job.id, &PageRequest::first(5)).unwrap().value;
        assert!(foreign.items.is_empty() && foreign.next.is_none());
        let foreign = jobprep_interviews::list_all_page_for_job_info(&t.db, &stranger, job.id, &PageRequest::first(5)).unwrap().value;
        assert!(foreign.items.is_empty() && foreign.next.is_none());
    }

    fn bad_limits_and_cursors_are_invalid_input(t) {
        let owner = user(&t.db, "user_owner");
        for limit in [0, MAX_PAGE_SIZE + 1] {
            let refused = jobprep_job_infos::list_page_for_user(&t.db, &owner, &PageRequest::first(limit));
            assert_eq!(refused_field(&refused), Some("limit"));
        }
        assert!(jobprep_job_infos::list_page_for_user(&t.db, &owner, &PageRequest::first(MAX_PAGE_SIZE)).is_ok());
        for text in ["", "x", "12_", "_0190b6a4000070008000000000000001", "99999999999999999999_0190b6a4000070008000000000000001", "1_not-a-uuid"] {
            assert_eq!(refused_field(&text.parse::<Cursor>()), Some("cursor"), "{text:?}");
        }
        // A cursor travels as its text, in JSON too.
        jobprep_job_infos::insert(&t.db, &owner, &job_form("One")).unwrap();
        jobprep_job_infos::insert(&t.db, &owner, &job_form("Two")).unwrap();
        let next = jobprep_job_infos::list_page_for_user(&t.db, &owner, &PageRequest::first(1)).unwrap().value.next.unwrap();
        assert_eq!(next.to_string().parse::<Cursor>().unwrap(), next);
        let request: PageRequest = serde_json::from_str(&format!(r#"{{"limit":1,"after":"{next}"}}"#)).unwrap();
        assert_eq!(request, PageRequest::after(1, next));
        assert!(serde_json::from_str::<PageRequest>(r#"{"limit":1,"after":"nope"}"#).is_err());
        let last = jobprep_job_infos::list_page_for_user(&t.db, &owner, &request).unwrap().value;
        assert_eq!(last.items.len(), 1);
        assert_eq!(last.items[0].name, "One");
        assert!(last.next.is_none());
    }
}

#[test]
fn a_page_serializes_as_its_items_and_the_next_cursor() {
    let page: Page<u8> = Page {
        items: vec![1],
        next: None,
    };
    assert_eq!(
        serde_json::to_string(&page).unwrap(),
        r#"{"items":[1],"next":null}"#
    );
}
