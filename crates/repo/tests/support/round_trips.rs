//! A TCP proxy on loopback that counts round trips between a client and PostgreSQL,
//! and can add latency each way. A round trip is a burst of client bytes that follows
//! server bytes (or opens the connection): a client that waits for each answer before
//! it sends again, as libpq does outside pipeline mode, makes one per request, so the
//! count is deterministic whatever the machine's speed.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The proxy: it listens on an ephemeral loopback port until dropped.
pub struct RoundTripProxy {
    address: SocketAddr,
    round_trips: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
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
        let (counter, stopped) = (round_trips.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let server = TcpStream::connect(upstream).expect("reach upstream");
                        relay(client, server, counter.clone(), delay);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        RoundTripProxy {
            address,
            round_trips,
            stop,
        }
    }

    pub fn port(&self) -> u16 {
        self.address.port()
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
fn relay(client: TcpStream, server: TcpStream, round_trips: Arc<AtomicU64>, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // true: the server spoke last (or nobody has yet).
    let server_last = Arc::new(AtomicBool::new(true));
    let pipe = |mut from: TcpStream, mut to: TcpStream, from_client: bool| {
        let (server_last, round_trips) = (server_last.clone(), round_trips.clone());
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
