//! The product's flow end to end, ownership, and concurrent requests.

use super::*;

backend_tests!(http_service_serves_the_product_flow,);

fn http_service_serves_the_product_flow(t: &TestDb) {
    let started = Instant::now();
    let server = Server::start(&t.url, dev_auth());
    let http = Client::new(&server);

    // Who is calling (development mode): no header, or one that is not a user id, is
    // 401.
    let anonymous = expect(http.call("GET", "/users/me", None, None), 401);
    assert_eq!(anonymous, json!({"error": "not authenticated"}));
    expect(http.get("/job-infos", ""), 401);

    // Users: upsert from the body, the id from the header.
    expect(http.get("/users/me", ADA), 404);
    let profile = json!({"name": "Ada", "email": "ada@example.com"});
    let ada = expect(http.put("/users/me", ADA, profile), 200);
    assert_eq!(ada["id"], ADA);
    assert!(
        ada["createdAt"].is_string() && ada["imageUrl"].is_null(),
        "{ada}"
    );
    let me = http.get("/users/me", ADA);
    assert_eq!(me.tags.as_deref(), Some("id:user_ada:users"));
    assert_eq!(expect(me, 200)["email"], "ada@example.com");
    let bad = json!({"name": "Ada", "email": "nope"});
    expect_invalid(http.put("/users/me", ADA, bad), "email");
    let stolen = json!({"name": "Eve", "email": "ada@example.com"});
    let taken = expect_error(http.put("/users/me", EVE, stolen), 409, None);
    assert_eq!(taken["constraint"], "users_email_unique");
    let own = json!({"name": "Eve", "email": "eve@example.com"});
    expect(http.put("/users/me", EVE, own), 200);

    // Job infos.
    let form = json!({
        "name": "Backend engineer",
        "title": "Senior backend engineer",
        "experienceLevel": "mid-level",
        "description": "Rust and PostgreSQL",
    });
    let key = expect(http.post("/job-infos", ADA, form), 201);
    assert_eq!(key["userId"], ADA);
    let job = key["id"].as_str().unwrap().to_owned();
    let blank = json!({"name": " ", "experienceLevel": "junior", "description": "x"});
    expect_invalid(http.post("/job-infos", ADA, blank), "name");
    let wizard = json!({"name": "x", "experienceLevel": "wizard", "description": "x"});
    expect_invalid(http.post("/job-infos", ADA, wizard), "experienceLevel");
    let incomplete = json!({"name": "x", "experienceLevel": "junior"});
    let missing = expect_invalid(http.post("/job-infos", ADA, incomplete), "description");
    assert_eq!(missing["error"], "description is required");
    let malformed = http.raw("POST", "/job-infos", Some(ADA), r#"{"name": "#.into());
    // The field is where the JSON broke off.
    let malformed = expect_error(malformed, 400, Some("name"));
    let error = malformed["error"].as_str().unwrap();
    assert!(
        error.starts_with("invalid JSON body: ") && error.contains("EOF"),
        "{malformed}"
    );
    expect_invalid(http.get("/job-infos/not-a-uuid", ADA), "jobInfoId");
    let changes = json!({"title": null, "name": "Staff backend engineer"});
    assert_eq!(
        expect(http.patch(&format!("/job-infos/{job}"), ADA, changes), 200),
        key
    );
    let read = http.get(&format!("/job-infos/{job}"), ADA);
    assert_eq!(read.tags, Some(format!("id:{job}:jobInfos")));
    let read = expect(read, 200);
    assert_eq!(read["name"], "Staff backend engineer");
    assert_eq!(read["experienceLevel"], "mid-level");
    assert!(read["title"].is_null(), "{read}");

    // Interviews: started, then finished with a chat id, duration and feedback.
    let interviews = format!("/job-infos/{job}/interviews");
    let started_one = expect(http.post(&interviews, ADA, json!({})), 201);
    assert_eq!(started_one["jobInfoId"], job.as_str());
    let interview = started_one["id"].as_str().unwrap().to_owned();
    // Only interviews with a chat id are listed.
    assert_eq!(
        expect(http.get(&interviews, ADA), 200),
        json!({"items": [], "next": null})
    );
    let finished = json!({
        "humeChatId": "chat_1",
        "duration": "00:21:09",
        "feedback": "Solid answers.",
    });
    expect(
        http.patch(&format!("/interviews/{interview}"), ADA, finished),
        200,
    );
    let too_vague = json!({"duration": "soon"});
    let reply = http.patch(&format!("/interviews/{interview}"), ADA, too_vague);
    expect_invalid(reply, "duration");
    let read = expect(http.get(&format!("/interviews/{interview}"), ADA), 200);
    assert_eq!(read["humeChatId"], "chat_1");
    assert_eq!(read["duration"], "00:21:09");
    assert_eq!(read["feedback"], "Solid answers.");
    assert_eq!(read["jobInfo"]["id"], job.as_str());
    let listed = expect(http.get(&interviews, ADA), 200)["items"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], interview.as_str());

    // Questions: one, or many at once.
    let questions = format!("/job-infos/{job}/questions");
    let one = json!({"text": "Explain MVCC.", "difficulty": "hard"});
    assert_eq!(
        expect(http.post(&questions, ADA, one), 201)["jobInfoId"],
        job.as_str()
    );
    let many = json!([
        {"text": "Design a rate limiter.", "difficulty": "medium"},
        {"text": "What is a B-tree?", "difficulty": "easy"},
    ]);
    let keys = expect(http.post(&questions, ADA, many), 201);
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    let one_bad = json!([
        {"text": "Fine.", "difficulty": "easy"},
        {"text": "Bad.", "difficulty": "impossible"},
    ]);
    expect_invalid(http.post(&questions, ADA, one_bad), "[1].difficulty");
    let empty = json!({"text": "", "difficulty": "easy"});
    expect_invalid(http.post(&questions, ADA, empty), "text");
    let listed = expect(http.get(&questions, ADA), 200)["items"].clone();
    assert_eq!(
        texts(&listed),
        [
            "Explain MVCC.",
            "Design a rate limiter.",
            "What is a B-tree?"
        ]
    );
    let question = listed[0]["id"].as_str().unwrap().to_owned();
    let easier = json!({"difficulty": "medium"});
    expect(
        http.patch(&format!("/questions/{question}"), ADA, easier),
        200,
    );
    let read = expect(http.get(&format!("/questions/{question}"), ADA), 200);
    assert_eq!(read["difficulty"], "medium");
    let usage = json!({"interviews": 1, "questions": 3});
    assert_eq!(expect(http.get("/users/me/usage", ADA), 200), usage);

    // Everything of Ada's is invisible to Eve: 404 or empty, never Ada's data.
    assert_eq!(
        expect(http.get("/job-infos", EVE), 200),
        json!({"items": [], "next": null})
    );
    for path in [
        format!("/job-infos/{job}"),
        format!("/interviews/{interview}"),
        format!("/questions/{question}"),
    ] {
        expect(http.get(&path, EVE), 404);
        // A change of nothing is refused before the row is looked up.
        expect_invalid(http.patch(&path, EVE, json!({})), "");
        let change = if path.starts_with("/job-infos") {
            json!({"name": "Eve's now"})
        } else if path.starts_with("/interviews") {
            json!({"feedback": "Eve's now"})
        } else {
            json!({"text": "Eve's now"})
        };
        expect_error(http.patch(&path, EVE, change), 404, None);
        expect_error(http.delete(&path, EVE), 404, None);
    }
    let empty = json!({"items": [], "next": null});
    assert_eq!(expect(http.get(&interviews, EVE), 200), empty);
    assert_eq!(expect(http.get(&questions, EVE), 200), empty);
    let sneaky = json!({"text": "Mine now?", "difficulty": "easy"});
    expect(http.post(&questions, EVE, sneaky), 404);
    expect(http.post(&interviews, EVE, json!({})), 404);
    let nothing = json!({"interviews": 0, "questions": 0});
    assert_eq!(expect(http.get("/users/me/usage", EVE), 200), nothing);
    assert_eq!(
        expect(http.get("/job-infos", ADA), 200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    expect_error(http.get("/no/such/route", ADA), 404, None);

    // Concurrent requests, from as many threads at once: every one succeeds and every
    // write is visible afterwards.
    let concurrent = Instant::now();
    let barrier = Barrier::new(CONCURRENT);
    let statuses: Vec<[u16; 3]> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONCURRENT)
            .map(|i| {
                let (http, barrier, questions, job) = (&http, &barrier, &questions, &job);
                scope.spawn(move || {
                    barrier.wait();
                    let text = format!("Concurrent question {i}");
                    let question = json!({"text": text, "difficulty": "easy"});
                    let name = format!("Job {i}");
                    let form =
                        json!({"name": name, "experienceLevel": "junior", "description": "Load"});
                    [
                        http.post(questions, ADA, question).status,
                        http.post("/job-infos", ADA, form).status,
                        http.get(&format!("/job-infos/{job}"), ADA).status,
                    ]
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == [201, 201, 200]),
        "{statuses:?}"
    );
    let concurrent = concurrent.elapsed();
    let listed = expect(http.get(&questions, ADA), 200)["items"].clone();
    let texts = texts(&listed);
    assert_eq!(texts.len(), 3 + CONCURRENT);
    for i in 0..CONCURRENT {
        let text = format!("Concurrent question {i}");
        assert!(texts.contains(&text.as_str()), "{text} is missing");
    }
    let jobs = expect(http.get("/job-infos", ADA), 200);
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1 + CONCURRENT);

    // Deleting the job info takes its interviews and questions along.
    let removed = expect(http.delete(&format!("/job-infos/{job}"), ADA), 200);
    assert_eq!(removed["interviews"].as_array().unwrap().len(), 1);
    assert_eq!(
        removed["questions"].as_array().unwrap().len(),
        3 + CONCURRENT
    );
    expect(http.get(&format!("/job-infos/{job}"), ADA), 404);
    expect(http.get(&format!("/interviews/{interview}"), ADA), 404);
    let nothing = json!({"interviews": 0, "questions": 0});
    assert_eq!(expect(http.get("/users/me/usage", ADA), 200), nothing);

    drop(http);
    server.stop();
    eprintln!(
        "{}: whole flow {:?}, {CONCURRENT} concurrent clients {:?}",
        t.db.backend(),
        started.elapsed(),
        concurrent
    );
}
