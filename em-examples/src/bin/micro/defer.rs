//! The defer benches: `defer [N]` (N trivial ops deferred at once, each
//! callback counting, stop after the last; default 100,000),
//! `defer-tokio-backend [N]` (the same through em's
//! `DeferBackend::TokioBlocking`, with the reactor hosted by `run_local` in a
//! runtime whose blocking pool has 20 threads) and its raw-tokio
//! twin `tokio-defer` (`spawn_blocking` plus a `spawn_local` task awaiting
//! its `JoinHandle`, then the callback, on a current-thread runtime whose
//! blocking pool has em's default size, 20); `defer-latency [N]` and
//! `tokio-defer-latency [N]` (N round trips one at a time, default 10,000,
//! reporting the median and 99th percentile).
//!
//! Each prints the `MICRO` line, with extra fields: `batches` (how many
//! batches the results came back in: a callback that starts a batch queues a
//! `next_tick`, which runs only after the whole batch), `p50_ns`, `p99_ns`.

use em::{DeferBackend, DeferOptions};
use std::cell::{Cell, RefCell};
use std::error::Error;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Ops of `defer` and `tokio-defer` by default.
pub(crate) const THROUGHPUT_N: u64 = 100_000;
/// Round trips of `defer-latency` and `tokio-defer-latency` by default.
pub(crate) const LATENCY_N: u64 = 10_000;
/// The pool size of both systems (em's default `threadpool_size`).
const POOL: usize = 20;

/// A trivial op: the callback gets a value that depends on the input.
fn op(i: u64) -> u64 {
    black_box(i).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

struct Count {
    n: u64,
    done: Cell<u64>,
    sum: Cell<u64>,
    batches: Cell<u64>,
    in_batch: Cell<bool>,
}

impl Count {
    fn new(n: u64) -> Rc<Self> {
        Rc::new(Count {
            n,
            done: Cell::new(0),
            sum: Cell::new(0),
            batches: Cell::new(0),
            in_batch: Cell::new(false),
        })
    }

    /// Counts one delivered value; true after the last.
    fn count(self: &Rc<Self>, value: u64, batching: bool) -> bool {
        self.sum.set(self.sum.get().wrapping_add(value));
        if batching && !self.in_batch.replace(true) {
            self.batches.set(self.batches.get() + 1);
            let me = self.clone();
            em::next_tick(move || me.in_batch.set(false));
        }
        self.done.set(self.done.get() + 1);
        self.done.get() == self.n
    }
}

fn print(system: &str, bench: &str, n: u64, elapsed: Duration, extra: &str) {
    em_examples::out!(
        "MICRO system={system} bench={bench} n={n} elapsed_ms={:.1} ns_per_op={:.1}{extra}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / n as f64
    );
}

/// The run block of the throughput benches: defers `n` ops, each counted
/// by its callback; the last one stops the reactor.
fn defer_all(n: u64, count: &Rc<Count>, batching: bool) -> em::Result<()> {
    for i in 0..n {
        let c = count.clone();
        em::defer(
            move || op(i),
            move |v| {
                if c.count(v, batching) {
                    em::stop();
                }
            },
        )?;
    }
    Ok(())
}

/// `defer`: N ops deferred from the run block.
pub(crate) fn em_throughput(n: u64) -> Result<(), Box<dyn Error>> {
    let n = n.max(1);
    let count = Count::new(n);
    let c = count.clone();
    let start = Instant::now();
    em::Reactor::builder()
        .stop_on_panic(true)
        .threadpool_size(POOL)
        .run(move || defer_all(n, &c, true))?;
    let elapsed = start.elapsed();
    assert_eq!(count.done.get(), n);
    black_box(count.sum.get());
    let extra = format!(" batches={}", count.batches.get());
    print("em", "defer", n, elapsed, &extra);
    Ok(())
}

/// `defer-tokio-backend`: N ops deferred from the run block through
/// `DeferBackend::TokioBlocking`, em hosted in a runtime of the program's
/// own (`run_local`) whose blocking pool has `POOL` threads: what a program
/// that wants tokio's limits and tooling to apply to defers runs.
pub(crate) fn em_throughput_tokio_backend(n: u64) -> Result<(), Box<dyn Error>> {
    let n = n.max(1);
    let count = Count::new(n);
    let c = count.clone();
    let start = Instant::now();
    let rt = tokio_runtime()?;
    let local = tokio::task::LocalSet::new();
    let reactor = em::Reactor::builder()
        .stop_on_panic(true)
        .defer_backend(DeferBackend::TokioBlocking)
        .build()?;
    local.block_on(&rt, reactor.run_local(move || defer_all(n, &c, false)))?;
    let elapsed = start.elapsed();
    assert_eq!(count.done.get(), n);
    black_box(count.sum.get());
    print("em", "defer-tokio-backend", n, elapsed, "");
    Ok(())
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, Box<dyn Error>> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(POOL)
        .build()?)
}

/// `tokio-defer`: N `spawn_blocking`s, each awaited by a `spawn_local` task
/// that then runs the callback.
pub(crate) fn tokio_throughput(n: u64) -> Result<(), Box<dyn Error>> {
    let n = n.max(1);
    let count = Count::new(n);
    let c = count.clone();
    let start = Instant::now();
    let rt = tokio_runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let done = Rc::new(tokio::sync::Notify::new());
        for i in 0..n {
            let (c, done) = (c.clone(), done.clone());
            let join = tokio::task::spawn_blocking(move || op(i));
            tokio::task::spawn_local(async move {
                let v = join.await.expect("the op panicked");
                if c.count(v, false) {
                    done.notify_one();
                }
            });
        }
        done.notified().await;
    });
    drop(local);
    drop(rt);
    let elapsed = start.elapsed();
    assert_eq!(count.done.get(), n);
    black_box(count.sum.get());
    print("tokio", "tokio-defer", n, elapsed, "");
    Ok(())
}

/// Round-trip times, in nanoseconds.
#[derive(Default)]
struct Latencies(RefCell<Vec<u64>>);

impl Latencies {
    fn record(&self, since: Instant) {
        self.0.borrow_mut().push(since.elapsed().as_nanos() as u64);
    }

    fn len(&self) -> u64 {
        self.0.borrow().len() as u64
    }

    fn fields(&self) -> String {
        let mut v = self.0.borrow().clone();
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        format!(" p50_ns={} p99_ns={}", at(0.50), at(0.99))
    }
}

fn em_round_trip(left: u64, lat: Rc<Latencies>) -> em::Result<()> {
    let sent = Instant::now();
    em::defer(
        move || op(left),
        move |v| {
            lat.record(sent);
            black_box(v);
            if left == 1 {
                em::stop();
            } else if let Err(e) = em_round_trip(left - 1, lat) {
                tracing::error!(error = %e, "defer failed");
                em::stop();
            }
        },
    )
}

/// `defer-latency`: N round trips, each deferred when the last came back.
pub(crate) fn em_latency(n: u64) -> Result<(), Box<dyn Error>> {
    let n = n.max(1);
    let lat = Rc::new(Latencies::default());
    let l = lat.clone();
    let start = Instant::now();
    em::Reactor::builder()
        .stop_on_panic(true)
        .threadpool_size(POOL)
        .run(move || em_round_trip(n, l))?;
    let elapsed = start.elapsed();
    assert_eq!(lat.len(), n);
    print("em", "defer-latency", n, elapsed, &lat.fields());
    Ok(())
}

fn tokio_round_trip(left: u64, lat: Rc<Latencies>, done: Rc<tokio::sync::Notify>) {
    let sent = Instant::now();
    let join = tokio::task::spawn_blocking(move || op(left));
    tokio::task::spawn_local(async move {
        let v = join.await.expect("the op panicked");
        lat.record(sent);
        black_box(v);
        if left == 1 {
            done.notify_one();
        } else {
            tokio_round_trip(left - 1, lat, done);
        }
    });
}

/// `tokio-defer-latency`: N `spawn_blocking` round trips, one at a time.
pub(crate) fn tokio_latency(n: u64) -> Result<(), Box<dyn Error>> {
    let n = n.max(1);
    let lat = Rc::new(Latencies::default());
    let l = lat.clone();
    let start = Instant::now();
    let rt = tokio_runtime()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let done = Rc::new(tokio::sync::Notify::new());
        tokio_round_trip(n, l, done.clone());
        done.notified().await;
    });
    drop(local);
    drop(rt);
    let elapsed = start.elapsed();
    assert_eq!(lat.len(), n);
    print("tokio", "tokio-defer-latency", n, elapsed, &lat.fields());
    Ok(())
}
