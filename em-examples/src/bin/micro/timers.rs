//! Timer benches: em's one timer store per reactor against raw tokio's
//! task-and-`Sleep`-per-timer, in one process each so that CPU time and
//! peak RSS are the bench's own.
//!
//! * `timers [N]` / `tokio-timers [N]`: N one-shot timers (default
//!   1,000,000) with pseudo-random delays in [0, 1000] ms, all scheduled
//!   from one callback, then all fired.
//! * `timers-cancel [N]` / `tokio-timers-cancel [N]`: N timers scheduled,
//!   then all cancelled (tokio: every `JoinHandle` aborted).
//! * `periodic` / `tokio-periodic`: a 10 ms periodic timer over 2 s (tokio:
//!   an `Interval` starting one period from now, default burst behaviour).
//!
//! Each prints the `MICRO` line with extra fields: `cpu_ms` (the process's
//! user + system CPU time, from /proc/self/stat, 10 ms resolution) and
//! `peak_rss_kb` (VmHWM from /proc/self/status). `timers` adds `late_ms`
//! (how late the last timer fired after its deadline), `max_late_ms` (the
//! worst of all timers), `setup_ms` (how long the one callback that adds
//! every timer held the reactor: a timer due before it returned cannot fire
//! before then) and `max_late_after_setup_ms` (the worst lateness counted
//! from the deadline or the end of that callback, whichever is later: how
//! well the timers keep up once the reactor is free). `periodic` adds
//! `fires`, `mean_drift_ms` and `last_drift_ms` (fire k's lateness against
//! `start + k × 10 ms`).

use em::TimerOptions;
use std::cell::Cell;
use std::error::Error;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The delays of the timers: xorshift64*, the same sequence every run.
struct Delays(u64);

impl Delays {
    fn new() -> Self {
        Delays(0x9E37_79B9_7F4A_7C15)
    }

    /// The next delay, in whole milliseconds in [0, 1000].
    fn next_ms(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % 1001
    }
}

/// Every timer's callback reports here.
struct Fired {
    n: u64,
    start: Instant,
    count: Cell<u64>,
    /// When the scheduling callback returned (since the start).
    setup_done: Cell<Duration>,
    last_late: Cell<Duration>,
    max_late: Cell<Duration>,
    /// The worst lateness against the deadline or the end of the
    /// scheduling, whichever is later.
    max_late_after_setup: Cell<Duration>,
}

impl Fired {
    fn new(n: u64, start: Instant) -> Rc<Self> {
        Rc::new(Fired {
            n,
            start,
            count: Cell::new(0),
            setup_done: Cell::new(Duration::ZERO),
            last_late: Cell::new(Duration::ZERO),
            max_late: Cell::new(Duration::ZERO),
            max_late_after_setup: Cell::new(Duration::ZERO),
        })
    }

    /// A timer due `due_us` after the start fired; true for the last one.
    fn fire(&self, due_us: u64) -> bool {
        let now = self.start.elapsed();
        let due = Duration::from_micros(due_us);
        let late = now.saturating_sub(due);
        self.last_late.set(late);
        if late > self.max_late.get() {
            self.max_late.set(late);
        }
        let late_after_setup = now.saturating_sub(due.max(self.setup_done.get()));
        if late_after_setup > self.max_late_after_setup.get() {
            self.max_late_after_setup.set(late_after_setup);
        }
        self.count.set(self.count.get() + 1);
        self.count.get() == self.n
    }
}

/// Schedules `n` timers through `add(delay, due_us)`: each timer's deadline
/// is taken from a clock read every 256 timers, so it is at most that
/// batch's scheduling time early (a few microseconds).
fn schedule_all(n: u64, start: Instant, mut add: impl FnMut(Duration, u64)) {
    let mut delays = Delays::new();
    let mut now_us = 0;
    for i in 0..n {
        if i % 256 == 0 {
            now_us = start.elapsed().as_micros() as u64;
        }
        let delay = delays.next_ms();
        add(Duration::from_millis(delay), now_us + delay * 1000);
    }
}

/// The process's user + system CPU time, from /proc/self/stat (in clock
/// ticks of 10 ms, the Linux default).
pub(crate) fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses: state is
    // field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
    Duration::from_millis(ticks * 10)
}

/// Peak resident set size in KiB (VmHWM from /proc/self/status).
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print(system: &str, bench: &str, n: u64, elapsed: Duration, extra: &str) {
    em_examples::out!(
        "MICRO system={system} bench={bench} n={n} elapsed_ms={:.1} ns_per_op={:.1} cpu_ms={:.0}{extra} peak_rss_kb={}",
        ms(elapsed),
        elapsed.as_nanos() as f64 / n as f64,
        ms(cpu_time()),
        peak_rss_kb()
    );
}

fn late_fields(fired: &Fired) -> String {
    format!(
        " late_ms={:.1} max_late_ms={:.1} setup_ms={:.1} max_late_after_setup_ms={:.1}",
        ms(fired.last_late.get()),
        ms(fired.max_late.get()),
        ms(fired.setup_done.get()),
        ms(fired.max_late_after_setup.get())
    )
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, Box<dyn Error>> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `timers`: N one-shot timers in one em timer store.
pub(crate) fn em_timers(n: u64) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let fired = Fired::new(n, start);
    let f = fired.clone();
    em::Reactor::builder()
        .stop_on_panic(true)
        .max_timers(None)
        .run(move || -> em::Result<()> {
            let mut result = Ok(());
            schedule_all(n, start, |delay, due_us| {
                let f = f.clone();
                let added = em::add_timer(delay, move || {
                    if f.fire(due_us) {
                        em::stop();
                    }
                });
                if let Err(e) = added {
                    result = Err(e);
                }
            });
            f.setup_done.set(start.elapsed());
            result
        })?;
    assert_eq!(fired.count.get(), n, "every timer fired");
    print("em", "timers", n, start.elapsed(), &late_fields(&fired));
    Ok(())
}

/// `tokio-timers`: N `spawn_local` tasks, each sleeping then calling its
/// closure.
pub(crate) fn tokio_timers(n: u64) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let fired = Fired::new(n, start);
    let f = fired.clone();
    let rt = tokio_runtime()?;
    tokio::task::LocalSet::new().block_on(&rt, async move {
        let done = Rc::new(tokio::sync::Notify::new());
        schedule_all(n, start, |delay, due_us| {
            let (f, done) = (f.clone(), done.clone());
            let callback = move || {
                if f.fire(due_us) {
                    done.notify_one();
                }
            };
            tokio::task::spawn_local(async move {
                tokio::time::sleep(delay).await;
                callback();
            });
        });
        f.setup_done.set(start.elapsed());
        done.notified().await;
    });
    drop(rt);
    assert_eq!(fired.count.get(), n, "every timer fired");
    print(
        "tokio",
        "tokio-timers",
        n,
        start.elapsed(),
        &late_fields(&fired),
    );
    Ok(())
}

/// `timers-cancel`: N timers scheduled, then all cancelled.
pub(crate) fn em_timers_cancel(n: u64) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    em::Reactor::builder()
        .stop_on_panic(true)
        .max_timers(None)
        .run(move || -> em::Result<()> {
            let mut timers = Vec::with_capacity(n as usize);
            let mut result = Ok(());
            schedule_all(n, start, |delay, _| {
                match em::add_timer(delay, || unreachable!("cancelled")) {
                    Ok(t) => timers.push(t),
                    Err(e) => result = Err(e),
                }
            });
            for t in &timers {
                t.cancel();
            }
            em::stop();
            result
        })?;
    print("em", "timers-cancel", n, start.elapsed(), "");
    Ok(())
}

/// `tokio-timers-cancel`: N sleeping tasks spawned, then all aborted; the
/// time includes the runtime dropping them.
pub(crate) fn tokio_timers_cancel(n: u64) -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let rt = tokio_runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut tasks = Vec::with_capacity(n as usize);
        schedule_all(n, start, |delay, _| {
            tasks.push(tokio::task::spawn_local(async move {
                tokio::time::sleep(delay).await;
                unreachable!("cancelled");
            }));
        });
        for t in &tasks {
            t.abort();
        }
        // Let the runtime reap the aborted tasks.
        tokio::task::yield_now().await;
    });
    drop(local);
    drop(rt);
    print("tokio", "tokio-timers-cancel", n, start.elapsed(), "");
    Ok(())
}

/// How long the periodic benches run, and their interval.
const PERIOD_RUN: Duration = Duration::from_secs(2);
const PERIOD: Duration = Duration::from_millis(10);

/// Fire times of a periodic timer, as drift against `start + k × PERIOD`.
#[derive(Default)]
struct Drift {
    fires: Cell<u64>,
    total: Cell<Duration>,
    last: Cell<Duration>,
}

impl Drift {
    fn fire(&self, start: Instant) {
        let k = self.fires.get() + 1;
        self.fires.set(k);
        let drift = start.elapsed().saturating_sub(PERIOD * k as u32);
        self.total.set(self.total.get() + drift);
        self.last.set(drift);
    }

    fn fields(&self) -> String {
        let fires = self.fires.get().max(1);
        format!(
            " fires={} mean_drift_ms={:.2} last_drift_ms={:.2}",
            self.fires.get(),
            ms(self.total.get()) / fires as f64,
            ms(self.last.get())
        )
    }
}

/// `periodic`: a 10 ms `add_periodic_timer` over 2 s.
pub(crate) fn em_periodic() -> Result<(), Box<dyn Error>> {
    let drift = Rc::new(Drift::default());
    let d = drift.clone();
    let start = Instant::now();
    em::Reactor::builder()
        .stop_on_panic(true)
        .run(move || -> em::Result<()> {
            let start = Instant::now();
            em::add_timer(PERIOD_RUN, em::stop)?;
            em::add_periodic_timer(PERIOD, move |_| d.fire(start))?;
            Ok(())
        })?;
    let n = drift.fires.get();
    print("em", "periodic", n, start.elapsed(), &drift.fields());
    Ok(())
}

/// `tokio-periodic`: tokio's `Interval`, first tick one period from now.
pub(crate) fn tokio_periodic() -> Result<(), Box<dyn Error>> {
    let drift = Rc::new(Drift::default());
    let d = drift.clone();
    let start = Instant::now();
    let rt = tokio_runtime()?;
    rt.block_on(async move {
        let begin = tokio::time::Instant::now();
        let mut interval = tokio::time::interval_at(begin + PERIOD, PERIOD);
        let end = tokio::time::sleep_until(begin + PERIOD_RUN);
        tokio::pin!(end);
        loop {
            tokio::select! {
                biased;
                _ = &mut end => break,
                _ = interval.tick() => d.fire(begin.into_std()),
            }
        }
    });
    let n = drift.fires.get();
    print(
        "tokio",
        "tokio-periodic",
        n,
        start.elapsed(),
        &drift.fields(),
    );
    Ok(())
}
