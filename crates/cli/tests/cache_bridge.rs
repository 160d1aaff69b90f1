//! `jobprep cache-feed` and `jobprep cache-bridge`, run as an operator runs them,
//! against a real database and a local HTTP receiver started by the test.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection as _;
use jobprep_job_infos::{ExperienceLevel, NewJobInfo};
use jobprep_repo::Backend;
use jobprep_testing::{user, TestDb};
use support::jobprep;

mod support;

const SECRET: &str = "s3cret-for-tests";
const PATIENCE: Duration = Duration::from_secs(30);
const GLOBALS: [&str; 4] = [
    "global:users",
    "global:jobInfos",
    "global:interviews",
    "global:questions",
];

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    secret: Option<String>,
    tags: Vec<String>,
}

/// A tiny HTTP/1.1 server on its own thread: records every request, answers 503 to
/// the first `failures` of them and 200 to the rest.
struct Receiver {
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(listener: TcpListener, failures: usize) -> Receiver {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            let mut served = 0;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let status = if served < failures {
                    "503 Service Unavailable"
                } else {
                    seen.lock().unwrap().push(request);
                    "200 OK"
                };
                served += 1;
                let _ = (&stream).write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        Receiver { requests }
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    fn tags(&self) -> BTreeSet<String> {
        self.requests().into_iter().flat_map(|r| r.tags).collect()
    }

    /// Waits until every tag of `expected` has arrived.
    fn wait_for(&self, expected: &[String]) {
        let started = Instant::now();
        while !expected.iter().all(|tag| self.tags().contains(tag)) {
            assert!(
                started.elapsed() < PATIENCE,
                "missing {expected:?}; received {:?}",
                self.requests()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<Received> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut secret = None;
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "x-jobprep-secret" => secret = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().ok()?,
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let body: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let tags = body["tags"]
        .as_array()?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    Some(Received { secret, tags })
}

/// The bridge as a child process, killed when dropped.
struct Bridge(Child);

impl Bridge {
    fn start(url: &str, endpoint: &str) -> Bridge {
        let child = Command::new(env!("CARGO_BIN_EXE_jobprep"))
            .args([
                "--database-url",
                url,
                "cache-bridge",
                "--endpoint",
                endpoint,
            ])
            .args(["--max-backoff-secs", "1"])
            .env("JOBPREP_BRIDGE_SECRET", SECRET)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Bridge(child)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn postgres() -> Option<TestDb> {
    let t = TestDb::new(Backend::Postgres)?;
    let installed = jobprep(&t.url, &["cache-feed", "install"]);
    assert!(installed.status.success(), "{installed:?}");
    Some(t)
}

fn write_a_job_info(t: &TestDb, who: &str) -> Vec<String> {
    let me = user(&t.db, who);
    t.sink.take();
    let job = NewJobInfo::new("Backend", ExperienceLevel::Junior, "Rust");
    jobprep_job_infos::insert(&t.db, &me, &job).unwrap();
    t.sink.take_sorted()
}

#[test]
fn every_batch_arrives_with_the_secret() {
    let Some(t) = postgres() else { return };
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}/api/revalidate", server.local_addr().unwrap());
    let receiver = Receiver::start(server, 0);
    let _bridge = Bridge::start(&t.url, &endpoint);

    // The bridge starts with a reset: the app flushes what it may have missed.
    let globals: Vec<String> = GLOBALS.map(String::from).to_vec();
    receiver.wait_for(&globals);
    let through_jobprep = write_a_job_info(&t, "user_bridge_one");
    receiver.wait_for(&through_jobprep);
    // A write by the original app, in plain SQL.
    let mut app = diesel::PgConnection::establish(&t.url).unwrap();
    app.batch_execute("UPDATE users SET name = 'Renamed by the app' WHERE id = 'user_bridge_one'")
        .unwrap();
    let by_the_app = vec![
        "global:users".to_string(),
        "id:user_bridge_one:users".to_string(),
    ];
    receiver.wait_for(&by_the_app);

    let requests = receiver.requests();
    assert!(
        requests.iter().all(|r| r.secret.as_deref() == Some(SECRET)),
        "{requests:?}"
    );
}

#[test]
fn a_receiver_that_is_down_gets_every_unacknowledged_batch_later() {
    let Some(t) = postgres() else { return };
    // A port with nobody listening: connections are refused until the receiver starts.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}/api/revalidate");
    let _bridge = Bridge::start(&t.url, &endpoint);
    // Give the bridge time to start listening (its reset is already being retried).
    std::thread::sleep(Duration::from_secs(2));
    let while_down = write_a_job_info(&t, "user_bridge_down");
    std::thread::sleep(Duration::from_secs(2));

    // Up again, but answering 503 twice before it acknowledges anything.
    let receiver = Receiver::start(TcpListener::bind(("127.0.0.1", port)).unwrap(), 2);
    let mut expected: Vec<String> = GLOBALS.map(String::from).to_vec();
    expected.extend(while_down);
    receiver.wait_for(&expected);
    assert!(receiver
        .requests()
        .iter()
        .all(|r| r.secret.as_deref() == Some(SECRET)));
}

#[test]
fn cache_feed_listen_prints_each_batch_as_a_json_line() {
    let Some(t) = postgres() else { return };
    let me = user(&t.db, "user_feed_listen");
    let mut child = Bridge(
        Command::new(env!("CARGO_BIN_EXE_jobprep"))
            .args(["--database-url", &t.url, "cache-feed", "listen"])
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    // Write until the listener, which starts in its own time, prints a batch.
    let started = Instant::now();
    let line = loop {
        assert!(
            started.elapsed() < PATIENCE,
            "cache-feed listen printed nothing"
        );
        let job = NewJobInfo::new("Backend", ExperienceLevel::Junior, "Rust");
        jobprep_job_infos::insert(&t.db, &me, &job).unwrap();
        if let Ok(line) = received.recv_timeout(Duration::from_millis(500)) {
            break line;
        }
    };
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let tags: Vec<&str> = event["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"global:jobInfos"), "{line}");
    assert!(tags.contains(&"user:user_feed_listen:jobInfos"), "{line}");
}

#[test]
fn cache_feed_commands_on_both_backends() {
    if let Some(t) = TestDb::new(Backend::Postgres) {
        assert_eq!(
            stdout(&jobprep(&t.url, &["cache-feed", "status"])).trim(),
            "absent"
        );
        for _ in 0..2 {
            let out = jobprep(&t.url, &["cache-feed", "install"]);
            assert!(out.status.success(), "{out:?}");
        }
        assert_eq!(
            stdout(&jobprep(&t.url, &["cache-feed", "status"])).trim(),
            "installed"
        );
        // Within 30 s of the install a trim does nothing.
        assert_eq!(
            stdout(&jobprep(&t.url, &["cache-feed", "trim"])).trim(),
            "trimmed 0 recorded changes"
        );
        let out = jobprep(&t.url, &["cache-feed", "remove"]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            stdout(&jobprep(&t.url, &["cache-feed", "status"])).trim(),
            "absent"
        );
    }
    let t = TestDb::new(Backend::Sqlite).unwrap();
    assert!(stdout(&jobprep(&t.url, &["cache-feed", "status"]))
        .starts_with("in process (SQLite: nothing to install"));
    let out = jobprep(&t.url, &["cache-feed", "install"]);
    assert_eq!(out.status.code(), Some(1));
    let out = jobprep(&t.url, &["cache-feed", "trim"]);
    assert_eq!(out.status.code(), Some(1));
    // The bridge needs PostgreSQL: on SQLite it would only see its own commits.
    let out = Command::new(env!("CARGO_BIN_EXE_jobprep"))
        .args(["--database-url", &t.url, "cache-bridge"])
        .args(["--endpoint", "http://127.0.0.1:9/"])
        .env("JOBPREP_BRIDGE_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PostgreSQL"));
}
