//! The summary the HTTP client programs (`http_get`, `hyper_get`) print at
//! the end of a run, in one format so that `bench/http_client.sh` reads
//! both the same way: a header line and a line of figures (requests,
//! failures, seconds, requests/s, MB/s, latency percentiles in ms, and the
//! process's CPU time per request in µs).

use std::io::{self, Write};
use std::time::Duration;

/// What a run measured: each successful request's latency, the body bytes
/// received and the failures. Gathered on one thread.
#[derive(Debug, Default)]
pub struct Summary {
    latencies_us: Vec<u32>,
    bytes: u64,
    failed: u64,
}

impl Summary {
    /// A summary with room for `requests` latencies.
    pub fn with_capacity(requests: usize) -> Summary {
        Summary {
            latencies_us: Vec::with_capacity(requests),
            ..Summary::default()
        }
    }

    /// Records a successful request: how long it took (request sent to
    /// the body's last byte) and its body's length.
    pub fn ok(&mut self, latency: Duration, body_bytes: u64) {
        let us = latency.as_micros().min(u128::from(u32::MAX)) as u32;
        self.latencies_us.push(us);
        self.bytes += body_bytes;
    }

    /// Records a failed request.
    pub fn failed(&mut self) {
        self.failed += 1;
    }

    /// Prints the table to stdout, the run having taken `elapsed`. The CPU
    /// figure is this process's whole CPU time (user and system, from
    /// start to now) per request.
    pub fn print(mut self, elapsed: Duration) {
        self.latencies_us.sort_unstable();
        let lat = &self.latencies_us;
        let pct = |p: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
            f64::from(lat[i]) / 1000.0
        };
        let ok = lat.len() as u64;
        let requests = ok + self.failed;
        let secs = elapsed.as_secs_f64();
        let cpu_us = process_cpu_seconds().map_or(f64::NAN, |c| c * 1e6 / requests.max(1) as f64);
        let mut out = io::stdout().lock();
        let _ = writeln!(
            out,
            "{:>10} {:>7} {:>9} {:>11} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "requests",
            "failed",
            "seconds",
            "requests/s",
            "MB/s",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "max_ms",
            "cpu_us/req"
        );
        let _ = writeln!(
            out,
            "{:>10} {:>7} {:>9.3} {:>11.1} {:>9.1} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>10.2}",
            requests,
            self.failed,
            secs,
            ok as f64 / secs,
            self.bytes as f64 / 1e6 / secs,
            pct(0.50),
            pct(0.90),
            pct(0.99),
            lat.last().map_or(0.0, |&m| f64::from(m) / 1000.0),
            cpu_us,
        );
    }
}

/// This process's CPU time so far, user plus system, from
/// `/proc/self/stat` (in clock ticks of 1/100 s, Linux's `USER_HZ`);
/// `None` off Linux.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The name (field 2) may hold spaces: count from after its `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}
