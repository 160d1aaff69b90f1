//! A TCP proxy on loopback that counts round trips between a client and PostgreSQL,
//! and can add latency each way. A round trip is a burst of client bytes that follows
//! server bytes (or opens the connection): a client that waits for each answer before
//! it sends again, as libpq does outside pipeline mode, makes one per request, so the
//! count is deterministic whatever the machine's speed.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A proxy to the test server and a one-connection `Db` through it (TLS off, so the
/// count is the protocol's alone).
pub fn through_proxy(t: &jobprep_testing::TestDb) -> (RoundTripProxy, jobprep_repo::Db) {
    let url = url::Url::parse(&t.url).unwrap();
    let proxy = RoundTripProxy::start(upstream_of(&url), Duration::ZERO);
    let via = via_port(
        &url,
        proxy.port(),
        "sslmode=disable&jobprep_pool_max_size=1",
    );
    (proxy, jobprep_repo::Db::connect(via.as_str()).unwrap())
}

/// The server a PostgreSQL URL names.
pub fn upstream_of(url: &url::Url) -> SocketAddr {
    (url.host_str().unwrap(), url.port().unwrap_or(5432))
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap()
}

/// `url` pointed at a proxy on loopback `port`, with the connection options `query`.
pub fn via_port(url: &url::Url, port: u16, query: &str) -> url::Url {
    let mut via = url.clone();
    via.set_host(Some("127.0.0.1")).unwrap();
    via.set_port(Some(port)).unwrap();
    via.set_query(Some(query));
    via
}

/// The proxy: it listens on an ephemeral loopback port until dropped.
pub struct RoundTripProxy {
    address: SocketAddr,
    round_trips: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    cut: Arc<Cut>,
}

/// A one-shot network failure between a request and its answer.
#[derive(Default)]
struct Cut {
    /// The bytes that pick the request to cut after, while armed.
    armed: Mutex<Option<Vec<u8>>>,
    /// Answers dropped so far.
    done: AtomicU64,
}

impl RoundTripProxy {
    /// Forwards every connection to `upstream`, delaying each chunk by `delay` in
    /// each direction.
    pub fn start(upstream: SocketAddr, delay: Duration) -> RoundTripProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let address = listener.local_addr().expect("proxy address");
        let round_trips = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(Cut::default());
        let (counter, stopped, cuts) = (round_trips.clone(), stop.clone(), cut.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let server = TcpStream::connect(upstream).expect("reach upstream");
                        relay(client, server, counter.clone(), cuts.clone(), delay);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        RoundTripProxy {
            address,
            round_trips,
            stop,
            cut,
        }
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Arms a one-shot cut: the next request (a burst of client bytes) that contains
    /// `pattern` reaches the server, and the server's answer to it is dropped and the
    /// connection closed both ways, as a network failure between the two would: the
    /// server ran the request, the client never hears how it ended.
    pub fn cut_answer_to(&self, pattern: &[u8]) {
        *self.cut.armed.lock().unwrap() = Some(pattern.to_vec());
    }

    /// Answers dropped by [`RoundTripProxy::cut_answer_to`] so far.
    pub fn cuts(&self) -> u64 {
        self.cut.done.load(Ordering::SeqCst)
    }

    /// Round trips so far, over every connection.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::SeqCst)
    }
}

impl Drop for RoundTripProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies both ways on two threads; the client's side counts a round trip when it
/// speaks after the server did.
fn relay(
    client: TcpStream,
    server: TcpStream,
    round_trips: Arc<AtomicU64>,
    cut: Arc<Cut>,
    delay: Duration,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // true: the server spoke last (or nobody has yet).
    let server_last = Arc::new(AtomicBool::new(true));
    // Set when this connection sent the request whose answer is to be dropped.
    let cutting = Arc::new(AtomicBool::new(false));
    let pipe = |mut from: TcpStream, mut to: TcpStream, from_client: bool| {
        let (server_last, round_trips) = (server_last.clone(), round_trips.clone());
        let (cut, cutting) = (cut.clone(), cutting.clone());
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if from_client {
                    if server_last.swap(false, Ordering::SeqCst) {
                        round_trips.fetch_add(1, Ordering::SeqCst);
                    }
                    let mut armed = cut.armed.lock().unwrap();
                    let hit = armed.as_ref().is_some_and(|pattern| {
                        buffer[..n]
                            .windows(pattern.len())
                            .any(|w| w == &pattern[..])
                    });
                    if hit {
                        *armed = None;
                        cutting.store(true, Ordering::SeqCst);
                    }
                } else if cutting.load(Ordering::SeqCst) {
                    // The answer: dropped, and the connection gone both ways.
                    cut.done.fetch_add(1, Ordering::SeqCst);
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                    break;
                } else {
                    server_last.store(true, Ordering::SeqCst);
                }
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
    };
    let (client_reader, server_reader) = match (client.try_clone(), server.try_clone()) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return,
    };
    pipe(client_reader, server, true);
    pipe(server_reader, client, false);
}

/// `scripts/latency-proxy.py`, the project's latency proxy, run by `python3` in front
/// of the test server: it adds `delay_ms` each way and counts round trips. Killed on
/// drop.
pub struct ScriptProxy {
    child: std::process::Child,
    port: u16,
    count_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl ScriptProxy {
    pub fn start(upstream: SocketAddr, delay_ms: f64) -> ScriptProxy {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("a folder for the count");
        let count_file = dir.path().join("round-trips");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/latency-proxy.py"
        );
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .arg("--upstream")
            .arg(upstream.to_string())
            .args(["--port", "0", "--delay-ms", &delay_ms.to_string()])
            .arg("--count-file")
            .arg(&count_file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs scripts/latency-proxy.py");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("the proxy's stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .expect("the proxy says where it listens");
        let port = first
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not a `listening` line: {first:?}"));
        ScriptProxy {
            child,
            port,
            count_file,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Round trips so far, over every connection (the proxy writes the count before it
    /// forwards the burst that made it, so a call that returned is counted).
    pub fn round_trips(&self) -> u64 {
        let text = std::fs::read_to_string(&self.count_file).expect("the proxy's count");
        text.trim().parse().expect("a count")
    }
}

impl Drop for ScriptProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`through_proxy`] through `scripts/latency-proxy.py`, adding `delay_ms` each way.
pub fn through_script_proxy(
    t: &jobprep_testing::TestDb,
    delay_ms: f64,
) -> (ScriptProxy, jobprep_repo::Db) {
    through_script_proxy_with(t, delay_ms, "sslmode=disable")
}

/// [`through_script_proxy`] with the connection options `query` (`sslmode=...`).
pub fn through_script_proxy_with(
    t: &jobprep_testing::TestDb,
    delay_ms: f64,
    query: &str,
) -> (ScriptProxy, jobprep_repo::Db) {
    let url = url::Url::parse(&t.url).unwrap();
    let proxy = ScriptProxy::start(upstream_of(&url), delay_ms);
    let via = via_port(
        &url,
        proxy.port(),
        &format!("{query}&jobprep_pool_max_size=1"),
    );
    (proxy, jobprep_repo::Db::connect(via.as_str()).unwrap())
}
