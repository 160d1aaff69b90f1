//! Every refusal answers the one error body; question lists within their caps and the quota.

use super::*;

backend_tests!(
    every_refusal_answers_the_one_error_body,
    question_lists_are_capped_and_within_the_quota,
);

fn every_refusal_answers_the_one_error_body(t: &TestDb) {
    let server = Server::start(&t.url, dev_auth());
    let http = Client::new(&server);
    let job = ada_with_a_job(&http);
    let form = json!({"name": "DBA", "experienceLevel": "junior", "description": "Backups"});
    let as_type = |content_type: Option<&str>| {
        let ada = [(USER_HEADER, ADA.to_owned())];
        http.send_as("POST", "/job-infos", &ada, content_type, form.to_string())
    };

    // Bodies come as JSON: another type, or none, is a 415 and writes nothing.
    for content_type in [Some("text/plain"), None, Some("application/jsonx")] {
        let refused = expect_error(as_type(content_type), 415, None);
        assert!(
            refused["error"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{refused}"
        );
    }
    assert_eq!(ada_jobs(&http), 1, "a refused body wrote");
    expect(as_type(Some("application/json; charset=utf-8")), 201);
    expect(as_type(Some("Application/JSON")), 201);
    // A request without a body needs no type: it reads as {}.
    let interviews = format!("/job-infos/{job}/interviews");
    let ada = [(USER_HEADER, ADA.to_owned())];
    expect(
        http.send_as("POST", &interviews, &ada, None, String::new()),
        201,
    );

    // An array, or null, where an object is expected: the body is to blame, in the
    // API's words; nothing is written.
    let positional = json!(["T", "Name", "junior", "desc"]);
    let refused = expect_invalid(http.post("/job-infos", ADA, positional), "");
    assert_eq!(refused["error"], "expected a JSON object, found an array");
    let refused = expect_invalid(
        http.call("POST", "/job-infos", Some(ADA), Some(Value::Null)),
        "",
    );
    assert_eq!(refused["error"], "expected a JSON object, found null");
    assert_eq!(ada_jobs(&http), 3);
    let path = format!("/job-infos/{job}");
    expect_invalid(http.patch(&path, ADA, json!(["x"])), "");
    expect_invalid(
        http.put("/users/me", ADA, json!(["Eve", "eve@example.com"])),
        "",
    );
    // A wrong type inside: the field's path, no Rust type names.
    let wrong = json!({"name": 5, "experienceLevel": "junior", "description": "x"});
    let refused = expect_invalid(http.post("/job-infos", ADA, wrong), "name");
    assert_eq!(refused["error"], "expected a string, found the number 5");
    let refused = expect_invalid(
        http.post("/job-infos", ADA, json!({"name": "x"})),
        "experienceLevel",
    );
    assert_eq!(refused["error"], "experienceLevel is required");

    // Change forms: a misspelt field, null where the column cannot be NULL, nothing
    // to change. The job info is unchanged.
    let before = expect(http.get(&path, ADA), 200);
    let misspelt = expect_invalid(
        http.patch(&path, ADA, json!({"experience_level": "senior"})),
        "experience_level",
    );
    let error = misspelt["error"].as_str().unwrap();
    assert!(
        error.starts_with("unknown field experience_level; expected one of ")
            && error.contains("experienceLevel"),
        "{misspelt}"
    );
    let null = expect_invalid(http.patch(&path, ADA, json!({"name": null})), "name");
    assert_eq!(null["error"], "expected a string, found null");
    expect_invalid(http.patch(&path, ADA, json!({})), "");
    assert_eq!(expect(http.get(&path, ADA), 200), before);
    let refused = expect_invalid(
        http.post(&interviews, ADA, json!({"duration": null})),
        "duration",
    );
    assert_eq!(refused["error"], "expected a string, found null");
    expect_invalid(
        http.post(&interviews, ADA, json!({"humeChatID": "x"})),
        "humeChatID",
    );

    // Syntax errors keep their prefix; trailing text is the body's.
    let trailing = http.raw("POST", "/job-infos", Some(ADA), format!("{form} x"));
    let trailing = expect_error(trailing, 400, Some(""));
    assert!(
        trailing["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body: "),
        "{trailing}"
    );

    // x-user-id must be a user id that fits x-cache-tags: no comma, no whitespace.
    let refused = json!({"error": "not authenticated"});
    for id in ["user_ada,user_eve", "user ada", "user_ada,"] {
        let profile = json!({"name": "Eve", "email": "eve@example.com"});
        assert_eq!(
            expect(http.put("/users/me", id, profile), 401),
            refused,
            "{id}"
        );
        assert!(!stored(t, id), "{id} was stored");
    }
    assert_eq!(expect(http.get("/job-infos", "user_ada,"), 401), refused);

    // The router's own answers: an unknown route, a method the route does not take,
    // a body over the limit.
    expect_error(http.get("/no/such/route", ADA), 404, None);
    let method = http.call("DELETE", "/users/me/usage", Some(ADA), None);
    assert_eq!(method.allow.as_deref(), Some("GET,HEAD"), "{method:?}");
    expect_error(method, 405, None);
    expect_error(http.call("GET", "/webhooks/auth", None, None), 405, None);
    let huge =
        json!({"name": "x".repeat(BODY_LIMIT), "experienceLevel": "junior", "description": "x"});
    let too_large = expect_error(http.post("/job-infos", ADA, huge), 413, None);
    assert_eq!(too_large["limit"], BODY_LIMIT);
    assert!(
        too_large["error"]
            .as_str()
            .unwrap()
            .contains(&BODY_LIMIT.to_string()),
        "{too_large}"
    );
    assert_eq!(ada_jobs(&http), 3);

    drop(http);
    server.stop();
}

fn question_lists_are_capped_and_within_the_quota(t: &TestDb) {
    const QUOTA: u32 = 5;
    let server = Server::start_with_quota(&t.url, dev_auth(), QUOTA);
    let http = Client::new(&server);
    let job = ada_with_a_job(&http);
    let questions = format!("/job-infos/{job}/questions");
    let question = |text: &str| json!({"text": text, "difficulty": "easy"});
    let count = || {
        let usage = expect(http.get("/users/me/usage", ADA), 200);
        usage["questions"].as_i64().unwrap()
    };

    // An empty list, a list over the cap, a list that is not of objects.
    let empty = expect_invalid(http.post(&questions, ADA, json!([])), "");
    assert_eq!(empty["error"], "the list of questions is empty");
    let cap = MAX_QUESTIONS_PER_REQUEST;
    let many: Vec<Value> = (0..=cap).map(|i| question(&format!("Q{i}"))).collect();
    let too_many = expect_error(http.post(&questions, ADA, json!(many)), 413, Some(""));
    assert_eq!(too_many["limit"], cap);
    assert_eq!(
        too_many["error"],
        format!("at most {cap} questions per request")
    );
    let positional = json!([question("Fine."), ["Positional?", "easy"]]);
    let refused = expect_invalid(http.post(&questions, ADA, positional), "[1]");
    assert_eq!(refused["error"], "expected a JSON object, found an array");
    let refused = expect_invalid(http.post(&questions, ADA, json!("text")), "");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("a list of them"),
        "{refused}"
    );

    // Every check inside a list names the element: deserialization and the library's.
    let blank = json!([question("Fine."), question(" ")]);
    let refused = expect_invalid(http.post(&questions, ADA, blank), "[1].text");
    assert_eq!(refused["error"], "invalid text: must not be empty");
    let unknown = json!([question("Fine."), {"text": "x", "difficulty": "easy", "level": 1}]);
    expect_invalid(http.post(&questions, ADA, unknown), "[1].level");
    let missing = json!([{"difficulty": "easy"}]);
    let refused = expect_invalid(http.post(&questions, ADA, missing), "[0].text");
    assert_eq!(refused["error"], "text is required");
    let impossible = json!([question("Fine."), {"text": "x", "difficulty": "impossible"}]);
    let refused = expect_invalid(http.post(&questions, ADA, impossible), "[1].difficulty");
    assert_eq!(
        refused["error"],
        "expected one of easy, medium, hard, found impossible"
    );
    assert_eq!(count(), 0, "a refused list wrote");

    // The quota: a list that fits, then one that would go over is refused whole, and
    // a single question too once the quota is used up.
    let keys = expect(
        http.post(
            &questions,
            ADA,
            json!([question("A"), question("B"), question("C")]),
        ),
        201,
    );
    assert_eq!(keys.as_array().unwrap().len(), 3);
    let over = json!([question("D"), question("E"), question("F")]);
    let quota = expect_error(http.post(&questions, ADA, over), 403, None);
    assert_eq!(
        quota,
        json!({"error": format!("question quota of {QUOTA} reached"), "limit": QUOTA})
    );
    assert_eq!(count(), 3, "a list over the quota wrote");
    expect(
        http.post(&questions, ADA, json!([question("D"), question("E")])),
        201,
    );
    let quota = expect_error(http.post(&questions, ADA, question("F")), 403, None);
    assert_eq!(quota["limit"], QUOTA);
    let listed = expect(http.get(&questions, ADA), 200)["items"].clone();
    assert_eq!(texts(&listed), ["A", "B", "C", "D", "E"]);

    drop(http);
    server.stop();
}
