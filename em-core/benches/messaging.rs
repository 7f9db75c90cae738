//! Messaging benchmarks (criterion), each against its tokio twin on a
//! current-thread runtime with a `LocalSet`, in the same run:
//!
//! * `fanout`: 1,000,000 messages to 10 subscribers: `em::Channel`
//!   (synchronous delivery) vs `tokio::sync::broadcast` (10 receiver tasks;
//!   the sender yields while 2,048 messages are unread, so none lags);
//! * `queue_batch`: 1,000,000 pushes then 1,000,000 pops: `em::Queue` with
//!   `pop` callbacks vs an unbounded `tokio::sync::mpsc` with `recv().await`;
//! * `queue_task`: a consumer task awaits 1,000,000 items while the producer
//!   pushes them: `Queue::pop_async` vs `mpsc::UnboundedReceiver::recv`.
//!
//! Run with `cargo bench -p em-core --bench messaging`. Times are per run
//! of 1,000,000 messages (throughput in elements per second).

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const N: u64 = 1_000_000;
const SUBSCRIBERS: usize = 10;
/// The broadcast channel's capacity.
const CAPACITY: usize = 4096;

/// Runs `body` in a fresh reactor and returns the time it reports.
fn in_em(body: impl FnOnce(Rc<Cell<Duration>>) + 'static) -> Duration {
    let took = Rc::new(Cell::new(Duration::ZERO));
    let t = took.clone();
    em_core::run(move || body(t)).expect("reactor");
    took.get()
}

/// Runs `f` on a current-thread runtime with a `LocalSet`.
fn in_tokio<F: std::future::Future<Output = Duration>>(f: impl FnOnce() -> F) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, f())
}

fn em_fanout() -> Duration {
    in_em(|took| {
        let ch = em_core::Channel::<u64>::new();
        let sums: Vec<Rc<Cell<u64>>> = (0..SUBSCRIBERS).map(|_| Rc::default()).collect();
        for sum in &sums {
            let sum = sum.clone();
            ch.subscribe(move |v| sum.set(sum.get() + black_box(v)));
        }
        let start = Instant::now();
        for i in 0..N {
            ch.push(i);
        }
        took.set(start.elapsed());
        for sum in sums {
            assert_eq!(sum.get(), N * (N - 1) / 2);
        }
        em_core::stop();
    })
}

fn tokio_fanout() -> Duration {
    in_tokio(|| async {
        let (tx, _) = tokio::sync::broadcast::channel::<u64>(CAPACITY);
        let mut receivers = Vec::new();
        for _ in 0..SUBSCRIBERS {
            let mut rx = tx.subscribe();
            receivers.push(tokio::task::spawn_local(async move {
                let mut sum = 0u64;
                while let Ok(v) = rx.recv().await {
                    sum += black_box(v);
                }
                sum
            }));
        }
        let start = Instant::now();
        for i in 0..N {
            tx.send(i).expect("receivers");
            // Flow control: let the receivers catch up before any can lag.
            while tx.len() >= CAPACITY / 2 {
                tokio::task::yield_now().await;
            }
        }
        drop(tx);
        for r in receivers {
            assert_eq!(r.await.expect("receiver"), N * (N - 1) / 2);
        }
        start.elapsed()
    })
}

fn em_queue_batch() -> Duration {
    in_em(|took| {
        let q = em_core::Queue::<u64>::new();
        let sum = Rc::new(Cell::new(0));
        let start = Instant::now();
        for i in 0..N {
            q.push(i);
        }
        for _ in 0..N {
            let sum = sum.clone();
            q.pop(move |v| sum.set(sum.get() + black_box(v)));
        }
        took.set(start.elapsed());
        assert_eq!(sum.get(), N * (N - 1) / 2);
        em_core::stop();
    })
}

fn tokio_queue_batch() -> Duration {
    in_tokio(|| async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let start = Instant::now();
        for i in 0..N {
            tx.send(i).expect("receiver");
        }
        let mut sum = 0;
        for _ in 0..N {
            sum += black_box(rx.recv().await.expect("item"));
        }
        let took = start.elapsed();
        assert_eq!(sum, N * (N - 1) / 2);
        took
    })
}

fn em_queue_task() -> Duration {
    in_em(|took| {
        let q = em_core::Queue::<u64>::new();
        let q2 = q.clone();
        let start = Instant::now();
        em_core::spawn(async move {
            let mut sum = 0;
            for _ in 0..N {
                sum += black_box(q2.pop_async().await);
            }
            assert_eq!(sum, N * (N - 1) / 2);
            took.set(start.elapsed());
            em_core::stop();
        })
        .expect("spawn");
        for i in 0..N {
            q.push(i);
        }
    })
}

fn tokio_queue_task() -> Duration {
    in_tokio(|| async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let start = Instant::now();
        let consumer = tokio::task::spawn_local(async move {
            let mut sum = 0;
            for _ in 0..N {
                sum += black_box(rx.recv().await.expect("item"));
            }
            sum
        });
        for i in 0..N {
            tx.send(i).expect("receiver");
        }
        assert_eq!(consumer.await.expect("consumer"), N * (N - 1) / 2);
        start.elapsed()
    })
}

/// A benchmark: its case, who runs it, and one timed run.
type Case = (&'static str, &'static str, fn() -> Duration);

fn messaging(c: &mut Criterion) {
    let mut g = c.benchmark_group("messaging");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    let cases: [Case; 6] = [
        ("fanout_10", "em_channel", em_fanout),
        ("fanout_10", "tokio_broadcast", tokio_fanout),
        ("queue_batch", "em_queue", em_queue_batch),
        ("queue_batch", "tokio_mpsc", tokio_queue_batch),
        ("queue_task", "em_queue", em_queue_task),
        ("queue_task", "tokio_mpsc", tokio_queue_task),
    ];
    for (case, who, f) in cases {
        g.bench_function(BenchmarkId::new(case, who), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| f()).sum())
        });
    }
    g.finish();
}

criterion_group!(benches, messaging);
criterion_main!(benches);
