//! em's primitives timed as a whole process, for comparison with other
//! runtimes: `micro BENCH [N]`. Prints one line:
//! `MICRO system=em bench=BENCH n=N elapsed_ms=… ns_per_op=…`.
//!
//! Benches, each with a raw-tokio twin so that ratios come from one run:
//!
//! * `tick-chain` (a `next_tick` that re-schedules itself N times, default
//!   1,000,000) and `tick-fan` (N `next_tick`s scheduled at once, then run);
//!   twins `tokio-spawn-chain` and `tokio-spawn-fan` (`spawn_local`).
//! * `timers [N]` (1,000,000 one-shot timers with random delays in
//!   [0, 1000] ms, all fired; adds `cpu_ms=`, `late_ms=`, `peak_rss_kb=`),
//!   `timers-cancel [N]` and `periodic` (a 10 ms timer over 2 s; adds
//!   `fires=`, `mean_drift_ms=`); twins `tokio-timers`,
//!   `tokio-timers-cancel` and `tokio-periodic` (a task and a `Sleep` per
//!   timer; tokio's `Interval`).
//! * `defer [N]` (100,000 trivial ops) and `defer-latency [N]` (one round
//!   trip at a time; adds `p50_ns=`, `p99_ns=`); twins `tokio-defer` and
//!   `tokio-defer-latency` (`spawn_blocking` plus a local task awaiting it).
//!   `defer-tokio-backend [N]` runs `defer` on em's other backend, tokio's
//!   blocking pool, against the same twin.
//! * `pair [N]` (1,000,000 ping-pong round trips of a 64-byte message between
//!   two callback handlers joined by `connect_pair`; adds `msgs_per_sec=`);
//!   twin `tokio-duplex` (two `spawn_local` tasks joined by
//!   `tokio::io::duplex`).
//! * `popen [MIB]` (1024 MiB through `cat`, its stdin and back from its
//!   stdout; adds `mb_per_sec=`, `cpu_ms=`); twin `tokio-popen`
//!   (`tokio::process::Command` with piped stdin and stdout).

mod defer;
mod pair;
mod popen;
mod timers;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use clap::{Parser, ValueEnum};

/// Times one of em's primitives.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Which benchmark.
    bench: Bench,
    /// Operations (default 1,000,000).
    n: Option<u64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Bench {
    /// A next_tick that re-schedules itself N times.
    TickChain,
    /// N next_ticks scheduled at once, then run.
    TickFan,
    /// Baseline: a spawn_local task that spawns the next, N times.
    TokioSpawnChain,
    /// Baseline: N spawn_local tasks spawned at once, then run.
    TokioSpawnFan,
    /// N one-shot timers, random delays in [0, 1000] ms, all fired: cpu_ms, late_ms, peak_rss_kb.
    Timers,
    /// Baseline: N spawn_local tasks, each sleeping then calling its closure.
    TokioTimers,
    /// N timers scheduled, then all cancelled.
    TimersCancel,
    /// Baseline: N sleeping spawn_local tasks, then all aborted.
    TokioTimersCancel,
    /// A 10 ms periodic timer over 2 s: fires, mean_drift_ms.
    Periodic,
    /// Reference: tokio's Interval (10 ms, default burst) over 2 s.
    TokioPeriodic,
    // (em-timers benches: add variants here)
    /// N trivial ops deferred at once (default 100,000); stop after the last callback.
    Defer,
    /// Baseline: N spawn_blocking ops, each awaited by a spawn_local task that runs the callback.
    TokioDefer,
    /// N defer ops at once on em's tokio backend (spawn_blocking), em under run_local.
    DeferTokioBackend,
    /// N defer round trips one at a time (default 10,000): p50/p99.
    DeferLatency,
    /// Baseline: N spawn_blocking round trips one at a time: p50/p99.
    TokioDeferLatency,
    // (em-defer benches: add variants here)
    /// N 64-byte ping-pong round trips through an in-memory pair (default 1,000,000): msgs_per_sec.
    Pair,
    /// Baseline: the same through two spawn_local tasks and tokio::io::duplex.
    TokioDuplex,
    /// N MiB through `cat` with em::popen (default 1024): mb_per_sec, cpu_ms.
    Popen,
    /// Baseline: the same with tokio::process::Command, piped stdin and stdout.
    TokioPopen,
}

fn chain(left: Rc<Cell<u64>>) {
    let n = left.get();
    if n == 0 {
        em::stop();
    } else {
        left.set(n - 1);
        em::next_tick(move || chain(left));
    }
}

fn tick_chain(n: u64) -> em::Result<()> {
    em::Reactor::builder()
        .stop_on_panic(true)
        .run(move || chain(Rc::new(Cell::new(n))))
}

fn tick_fan(n: u64) -> em::Result<()> {
    em::Reactor::builder().stop_on_panic(true).run(move || {
        let ran = Rc::new(Cell::new(0u64));
        for _ in 0..n {
            let ran = ran.clone();
            em::next_tick(move || {
                ran.set(ran.get() + 1);
                if ran.get() == n {
                    em::stop();
                }
            });
        }
    })
}

fn tokio_chain(left: Rc<Cell<u64>>, done: Rc<tokio::sync::Notify>) {
    let n = left.get();
    if n == 0 {
        done.notify_one();
    } else {
        left.set(n - 1);
        tokio::task::spawn_local(async move { tokio_chain(left, done) });
    }
}

fn tokio_baseline(bench: Bench, n: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let done = Rc::new(tokio::sync::Notify::new());
        if let Bench::TokioSpawnChain = bench {
            tokio_chain(Rc::new(Cell::new(n)), done.clone());
        } else {
            let ran = Rc::new(Cell::new(0u64));
            for _ in 0..n {
                let (ran, done) = (ran.clone(), done.clone());
                tokio::task::spawn_local(async move {
                    ran.set(ran.get() + 1);
                    if ran.get() == n {
                        done.notify_one();
                    }
                });
            }
        }
        done.notified().await;
    });
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let n = args.n.unwrap_or(1_000_000).max(1);
    let start = Instant::now();
    match args.bench {
        Bench::TickChain => tick_chain(n)?,
        Bench::TickFan => tick_fan(n)?,
        b @ (Bench::TokioSpawnChain | Bench::TokioSpawnFan) => tokio_baseline(b, n),
        Bench::Timers => return timers::em_timers(n),
        Bench::TokioTimers => return timers::tokio_timers(n),
        Bench::TimersCancel => return timers::em_timers_cancel(n),
        Bench::TokioTimersCancel => return timers::tokio_timers_cancel(n),
        Bench::Periodic => return timers::em_periodic(),
        Bench::TokioPeriodic => return timers::tokio_periodic(),
        // (em-timers benches: add arms here)
        Bench::Defer => return defer::em_throughput(args.n.unwrap_or(defer::THROUGHPUT_N)),
        Bench::TokioDefer => return defer::tokio_throughput(args.n.unwrap_or(defer::THROUGHPUT_N)),
        Bench::DeferTokioBackend => {
            return defer::em_throughput_tokio_backend(args.n.unwrap_or(defer::THROUGHPUT_N))
        }
        Bench::DeferLatency => return defer::em_latency(args.n.unwrap_or(defer::LATENCY_N)),
        Bench::TokioDeferLatency => {
            return defer::tokio_latency(args.n.unwrap_or(defer::LATENCY_N))
        } // (em-defer benches: add arms here)
        Bench::Pair => return pair::em_pair(args.n.unwrap_or(pair::N)),
        Bench::TokioDuplex => return pair::tokio_duplex(args.n.unwrap_or(pair::N)),
        Bench::Popen => return popen::em_popen(args.n.unwrap_or(popen::MIB)),
        Bench::TokioPopen => return popen::tokio_popen(args.n.unwrap_or(popen::MIB)),
    }
    let elapsed = start.elapsed();
    let name = args
        .bench
        .to_possible_value()
        .expect("named")
        .get_name()
        .to_owned();
    let system = if name.starts_with("tokio") {
        "tokio"
    } else {
        "em"
    };
    em_examples::out!(
        "MICRO system={system} bench={name} n={n} elapsed_ms={:.1} ns_per_op={:.1}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / n as f64
    );
    Ok(())
}
