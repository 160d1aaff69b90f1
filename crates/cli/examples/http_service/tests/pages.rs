//! Lists answer bounded pages that follow their cursor.

use super::*;

backend_tests!(lists_answer_bounded_pages_that_follow_their_cursor,);

fn lists_answer_bounded_pages_that_follow_their_cursor(t: &TestDb) {
    let server = Server::start(&t.url, dev_auth());
    let http = Client::new(&server);
    let job = ada_with_a_job(&http);
    for name in ["B", "C", "D", "E"] {
        let form = json!({"name": name, "experienceLevel": "junior", "description": "d"});
        expect(http.post("/job-infos", ADA, form), 201);
    }
    let whole = expect(http.get("/job-infos", ADA), 200);
    assert_eq!(
        whole["items"].as_array().unwrap().len(),
        5,
        "the default page holds all five"
    );
    assert_eq!(whole["next"], Value::Null);

    // Pages of two, followed by their cursors, are the whole list in its order.
    let mut names = Vec::new();
    let mut path = "/job-infos?limit=2".to_owned();
    loop {
        let page = expect(http.get(&path, ADA), 200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        names.extend(items.iter().map(|j| j["name"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/job-infos?limit=2&after={next}"),
            None => break,
        }
    }
    let in_order: Vec<&str> = whole["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, in_order);

    let questions = format!("/job-infos/{job}/questions");
    let three = json!([
        {"text": "Q1", "difficulty": "easy"},
        {"text": "Q2", "difficulty": "easy"},
        {"text": "Q3", "difficulty": "easy"},
    ]);
    expect(http.post(&questions, ADA, three), 201);
    let first = expect(http.get(&format!("{questions}?limit=2"), ADA), 200);
    assert_eq!(texts(&first["items"]), ["Q1", "Q2"]);
    let next = first["next"].as_str().unwrap();
    let rest = expect(
        http.get(&format!("{questions}?limit=2&after={next}"), ADA),
        200,
    );
    assert_eq!(texts(&rest["items"]), ["Q3"]);
    assert_eq!(rest["next"], Value::Null);
    let interviews = format!("/job-infos/{job}/interviews?limit=1");
    assert_eq!(
        expect(http.get(&interviews, ADA), 200),
        json!({"items": [], "next": null})
    );

    // Bad paging is a 400 in the one body, naming the parameter.
    expect_invalid(http.get("/job-infos?limit=0", ADA), "limit");
    expect_invalid(http.get("/job-infos?limit=1001", ADA), "limit");
    expect_invalid(http.get("/job-infos?limit=many", ADA), "limit");
    expect_invalid(http.get("/job-infos?after=not-a-cursor", ADA), "cursor");
    expect_invalid(http.get(&format!("{questions}?page=2"), ADA), "page");
}
