//! Running an operation on several client threads for a while, and summing up.

use std::time::{Duration, Instant};

use crate::error::CliError;

/// A small xorshift generator: each client picks rows at random, reproducibly.
pub struct Rng(u64);

impl Rng {
    pub fn for_client(client: usize) -> Self {
        Rng(0x9E37_79B9_7F4A_7C15 ^ ((client as u64 + 1) * 0x2545_F491))
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// What one side did: units (calls, or rows), time, and each call's latency (µs).
#[derive(Default)]
pub struct Side {
    pub units: u64,
    pub elapsed: Duration,
    pub latencies: Vec<u32>,
}

impl Side {
    pub fn add(&mut self, part: Side) {
        self.units += part.units;
        self.elapsed += part.elapsed;
        self.latencies.extend(part.latencies);
    }

    pub fn rate(&self) -> f64 {
        self.units as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `p` quantile of the latencies, once sorted.
    pub fn percentile(&mut self, p: f64) -> u64 {
        self.latencies.sort_unstable();
        if self.latencies.is_empty() {
            return 0;
        }
        let last = self.latencies.len() - 1;
        let index = ((last as f64 * p).round() as usize).min(last);
        u64::from(self.latencies[index])
    }
}

/// Runs a call on `clients` threads for `duration`. `make` builds each client's call
/// (with its own connection, for the baseline); each call returns the units it did.
pub fn drive<F>(
    clients: usize,
    duration: Duration,
    make: impl Fn() -> Result<F, jobprep_repo::Error> + Sync,
) -> Result<Side, CliError>
where
    F: FnMut(&mut Rng) -> Result<u64, jobprep_repo::Error>,
{
    let started = Instant::now();
    let results: Vec<Result<(u64, Vec<u32>), CliError>> = std::thread::scope(|scope| {
        let handles = (0..clients)
            .map(|client| {
                let make = &make;
                // Named, so a profiler tells the measured calls from seeding and setup.
                std::thread::Builder::new()
                    .name(format!("bench-client-{client}"))
                    .spawn_scoped(scope, move || {
                        let mut call = make()?;
                        let mut rng = Rng::for_client(client);
                        let deadline = Instant::now() + duration;
                        let (mut units, mut latencies) = (0, Vec::with_capacity(65_536));
                        while Instant::now() < deadline {
                            let t = Instant::now();
                            units += call(&mut rng)?;
                            latencies
                                .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        }
                        Ok((units, latencies))
                    })
            })
            .collect::<std::io::Result<Vec<_>>>();
        let Ok(handles) = handles else {
            return vec![Err(CliError::Bench(
                "could not start a client thread".into(),
            ))];
        };
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(CliError::Bench("a client thread panicked".into())))
            })
            .collect()
    });
    let mut side = Side {
        elapsed: started.elapsed(),
        ..Side::default()
    };
    for result in results {
        let (units, latencies) = result?;
        side.units += units;
        side.latencies.extend(latencies);
    }
    Ok(side)
}
