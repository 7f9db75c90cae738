//! `next_tick` benchmarks (criterion), each against its raw-tokio twin on a
//! current-thread runtime with a `LocalSet`:
//!
//! * `chain`: a tick that re-schedules itself, N times (tokio: a
//!   `spawn_local` task that spawns the next);
//! * `fan`: N ticks queued at once, then run (tokio: N `spawn_local`s).
//!
//! Run with `cargo bench -p em-core --bench next_tick`. Times are per tick.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const N: u64 = 100_000;

fn em_chain(left: Rc<Cell<u64>>) {
    let n = left.get();
    if n == 0 {
        em_core::stop();
    } else {
        left.set(n - 1);
        em_core::next_tick(move || em_chain(left));
    }
}

/// Runs `body` inside a reactor and times from the first tick to `stop`.
fn time_em(body: impl FnOnce(Rc<Cell<Option<Instant>>>) + 'static) -> Duration {
    let start = Rc::new(Cell::new(None));
    let s = start.clone();
    em_core::run(move || {
        s.set(Some(Instant::now()));
        body(s.clone());
    })
    .expect("reactor");
    start.get().expect("started").elapsed()
}

fn em_fan(n: u64) -> Duration {
    time_em(move |_| {
        let ran = Rc::new(Cell::new(0));
        for _ in 0..n {
            let ran = ran.clone();
            em_core::next_tick(move || {
                ran.set(ran.get() + 1);
                if ran.get() == n {
                    em_core::stop();
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

fn time_tokio(fan: bool, n: u64) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let start = Instant::now();
        let done = Rc::new(tokio::sync::Notify::new());
        if fan {
            let ran = Rc::new(Cell::new(0));
            for _ in 0..n {
                let (ran, done) = (ran.clone(), done.clone());
                tokio::task::spawn_local(async move {
                    ran.set(ran.get() + 1);
                    if ran.get() == n {
                        done.notify_one();
                    }
                });
            }
        } else {
            tokio_chain(Rc::new(Cell::new(n)), done.clone());
        }
        done.notified().await;
        start.elapsed()
    })
}

fn next_tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("next_tick");
    g.throughput(Throughput::Elements(N));
    g.sample_size(20);
    g.bench_function(BenchmarkId::new("chain", "em"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| time_em(|_| em_chain(Rc::new(Cell::new(N)))))
                .sum()
        })
    });
    g.bench_function(BenchmarkId::new("chain", "tokio_spawn_local"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| time_tokio(false, N)).sum())
    });
    g.bench_function(BenchmarkId::new("fan", "em"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| em_fan(N)).sum())
    });
    g.bench_function(BenchmarkId::new("fan", "tokio_spawn_local"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| time_tokio(true, N)).sum())
    });
    g.finish();
}

criterion_group!(benches, next_tick);
criterion_main!(benches);
