//! The pool: up to `threadpool_size` std threads, started on demand, taking
//! ops from one FIFO queue and handing finished ones back in batches.
//!
//! All of the pool's state sits under one mutex, so a busy worker takes it
//! once per op: to hand back the op it finished and take the next. A
//! finished op goes into the result batch; the worker that turns the batch
//! from empty to non-empty asks the reactor (through
//! [`Handle::schedule`](em_core::Handle::schedule)) to collect it. The
//! reactor takes the whole batch at once, so however many ops finish while
//! it is busy, it is woken once. Workers wait on a condition variable only
//! when the queue is empty, and are signalled only when one is waiting and
//! no other thread will take the op: at once for the first op of a burst,
//! by one [`kick`](Pool::kick) for the rest.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use em_core::Handle;

use crate::error::DeferError;
use crate::task::Task;

/// A finished or queued op.
pub(crate) type Job = Box<dyn Task>;

/// The reactor side's handle on its pool. Reactor thread only.
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Idle workers wait here for ops.
    work: Condvar,
    /// Waits for the pool to go quiet: the stopping reactor for running ops,
    /// and (with `test-util`) the clock guard for every op in flight.
    quiet: Condvar,
    handle: Handle,
    /// Runs on the reactor thread to collect a batch of results.
    collect: fn(),
    size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// The reactor stops and waits for running ops; their results are kept.
    Draining,
    /// The reactor stopped; results are dropped.
    Closed,
}

struct State {
    queue: VecDeque<Job>,
    results: Vec<Job>,
    running: usize,
    /// Threads started and not yet exited.
    threads: usize,
    /// Threads waiting on `work` and not yet signalled.
    idle: usize,
    /// Signals sent on `work` and not yet taken by a waking worker (a wake
    /// without one is spurious).
    signals: usize,
    quiet_waiters: usize,
    phase: Phase,
    started: usize,
    /// Whether a clock guard is holding tokio's paused clock.
    #[cfg(feature = "test-util")]
    clock_guard: bool,
}

impl State {
    fn in_flight(&self) -> usize {
        self.queue.len() + self.running + self.results.len()
    }

    /// For the queued ops: how many idle threads to wake, and how many
    /// threads to start (the pool has at most `size`).
    fn plan(&self, size: usize) -> (usize, usize) {
        // Threads that are neither running an op nor idle are starting,
        // signalled, or between two ops: they take queued ops first.
        let busy_soon = self.threads - self.running - self.idle;
        let unclaimed = self.queue.len().saturating_sub(busy_soon);
        let wake = unclaimed.min(self.idle);
        let start = (unclaimed - wake).min(size - self.threads);
        (wake, start)
    }
}

/// What a stopping reactor finds in its pool.
pub(crate) struct Shutdown {
    /// Ops that never started, dropped unrun.
    pub(crate) unstarted: Vec<Job>,
    /// Ops that finished (within the shutdown timeout, if any).
    pub(crate) finished: Vec<Job>,
    /// Ops still running; their results are dropped on their threads.
    pub(crate) still_running: usize,
}

impl Pool {
    /// A pool of at most `size` threads, none started yet. `collect` runs on
    /// the reactor (scheduled through `handle`) when results are waiting.
    pub(crate) fn new(handle: Handle, size: usize, collect: fn()) -> Self {
        Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    results: Vec::new(),
                    running: 0,
                    threads: 0,
                    idle: 0,
                    signals: 0,
                    quiet_waiters: 0,
                    phase: Phase::Open,
                    started: 0,
                    #[cfg(feature = "test-util")]
                    clock_guard: false,
                }),
                work: Condvar::new(),
                quiet: Condvar::new(),
                handle,
                collect,
                size: size.max(1),
            }),
        }
    }

    /// Queues `job` (FIFO). With `start`, an idle thread (if any) is woken
    /// for it at once; otherwise the job waits for the next
    /// [`kick`](Pool::kick). Reactor thread only.
    pub(crate) fn submit(&self, job: Job, start: bool) {
        let mut st = self.shared.lock();
        debug_assert_eq!(st.phase, Phase::Open);
        st.queue.push_back(job);
        #[cfg(feature = "test-util")]
        self.shared.guard_clock(&mut st);
        if start && st.idle > 0 {
            st.idle -= 1;
            st.signals += 1;
            drop(st);
            self.shared.work.notify_one();
        }
    }

    /// Puts threads on the queued ops: wakes as many idle threads as there
    /// are ops nobody will take otherwise, and starts more (up to `size`)
    /// if the idle ones are too few. Reactor thread only.
    pub(crate) fn kick(&self) {
        let mut st = self.shared.lock();
        let (wake, start) = st.plan(self.shared.size);
        let all = wake == st.idle;
        st.idle -= wake;
        st.signals += wake;
        st.threads += start;
        let first = st.started + 1;
        st.started += start;
        drop(st);
        if all && wake > 1 {
            self.shared.work.notify_all();
        } else {
            for _ in 0..wake {
                self.shared.work.notify_one();
            }
        }
        for n in first..first + start {
            self.start_thread(n);
        }
    }

    fn start_thread(&self, n: usize) {
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("em-defer-{n}"))
            .spawn(move || {
                // Not on the core of the (possibly pinned) reactor that
                // started it.
                em_core::extension::unpin_current_thread();
                shared.work_loop()
            });
        match spawned {
            Ok(_) => tracing::debug!(
                thread = n,
                size = self.shared.size,
                "defer pool thread started"
            ),
            Err(e) => {
                let mut st = self.shared.lock();
                st.threads -= 1;
                if st.threads > 0 {
                    tracing::warn!(error = %e, threads = st.threads, "cannot start another defer pool thread; going on with fewer");
                    return;
                }
                // Nobody would ever run the queued ops: fail them.
                tracing::error!(error = %e, "cannot start a defer pool thread; failing the queued ops");
                let kind = e.kind();
                let mut failed: Vec<Job> = st.queue.drain(..).collect();
                for job in &mut failed {
                    job.fail(DeferError::spawn(std::io::Error::new(kind, e.to_string())));
                }
                let first = st.results.is_empty();
                st.results.append(&mut failed);
                drop(st);
                if first {
                    self.shared.schedule_collect();
                }
            }
        }
    }

    /// Moves the finished ops into `into` (which must be empty), leaving it
    /// the spare allocation. Reactor thread only.
    pub(crate) fn take_results(&self, into: &mut Vec<Job>) {
        let mut st = self.shared.lock();
        std::mem::swap(&mut st.results, into);
        if st.quiet_waiters > 0 && st.in_flight() == 0 {
            self.shared.quiet.notify_all();
        }
    }

    /// Stops the pool: drops the queue, waits up to `wait` (if any) for the
    /// running ops, and returns what it found. Idle threads exit now, busy
    /// ones after their op. Reactor thread only; blocks it for up to `wait`.
    pub(crate) fn shut_down(&self, wait: Option<Duration>) -> Shutdown {
        let mut st = self.shared.lock();
        let unstarted: Vec<Job> = st.queue.drain(..).collect();
        st.phase = if wait.is_some() {
            Phase::Draining
        } else {
            Phase::Closed
        };
        self.shared.work.notify_all();
        if let Some(wait) = wait {
            let deadline = Instant::now() + wait;
            st.quiet_waiters += 1;
            while st.running > 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                st = self
                    .shared
                    .quiet
                    .wait_timeout(st, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            st.quiet_waiters -= 1;
        }
        st.phase = Phase::Closed;
        let finished = std::mem::take(&mut st.results);
        let still_running = st.running;
        // Releases a clock guard.
        self.shared.quiet.notify_all();
        Shutdown {
            unstarted,
            finished,
            still_running,
        }
    }

    /// How many threads the pool has started so far (for the logs).
    pub(crate) fn threads_started(&self) -> usize {
        self.shared.lock().started
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Ops run outside the lock and never panic under it, so a poisoned
        // lock still guards consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn schedule_collect(&self) {
        if self.handle.schedule(self.collect).is_err() {
            tracing::debug!("defer results finished after the reactor stopped; dropped");
        }
    }

    /// A pool thread: runs queued ops one at a time until the pool stops.
    fn work_loop(&self) {
        let mut st = self.lock();
        let mut finished: Option<Job> = None;
        loop {
            if let Some(job) = finished.take() {
                st.running -= 1;
                if st.running == 0 && st.quiet_waiters > 0 {
                    self.quiet.notify_all();
                }
                match st.phase {
                    Phase::Open => {
                        st.results.push(job);
                        if st.results.len() == 1 {
                            drop(st);
                            self.schedule_collect();
                            st = self.lock();
                        }
                    }
                    Phase::Draining => st.results.push(job),
                    Phase::Closed => {
                        drop(st);
                        drop(job);
                        st = self.lock();
                    }
                }
            }
            if st.phase == Phase::Open {
                if let Some(mut job) = st.queue.pop_front() {
                    st.running += 1;
                    drop(st);
                    job.run();
                    finished = Some(job);
                    st = self.lock();
                    continue;
                }
            } else {
                st.threads -= 1;
                return;
            }
            st.idle += 1;
            loop {
                st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                if st.signals > 0 {
                    // `submit` counted this thread out of `idle`.
                    st.signals -= 1;
                    break;
                }
                if st.phase != Phase::Open {
                    st.idle -= 1;
                    break;
                }
            }
        }
    }
}

#[cfg(feature = "test-util")]
impl Shared {
    /// Keeps tokio's paused clock from auto-advancing while ops are in
    /// flight: a `spawn_blocking` task (which tokio's test-util counts as
    /// blocking work) that waits until the pool is quiet.
    fn guard_clock(self: &Arc<Self>, st: &mut State) {
        if st.clock_guard || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        st.clock_guard = true;
        let shared = self.clone();
        drop(tokio::task::spawn_blocking(move || {
            let mut st = shared.lock();
            st.quiet_waiters += 1;
            while st.phase == Phase::Open && st.in_flight() > 0 {
                st = shared
                    .quiet
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            st.quiet_waiters -= 1;
            st.clock_guard = false;
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Forget, OpTask};

    fn job() -> Job {
        Box::new(OpTask::<_, (), Forget>::new(0, || {}))
    }

    fn state(queued: usize, threads: usize, running: usize, idle: usize) -> State {
        State {
            queue: (0..queued).map(|_| job()).collect(),
            results: Vec::new(),
            running,
            threads,
            idle,
            signals: 0,
            quiet_waiters: 0,
            phase: Phase::Open,
            started: threads,
            #[cfg(feature = "test-util")]
            clock_guard: false,
        }
    }

    #[test]
    fn a_burst_starts_threads_up_to_the_pool_size() {
        assert_eq!(state(25, 0, 0, 0).plan(20), (0, 20));
        assert_eq!(state(2, 0, 0, 0).plan(20), (0, 2));
    }

    #[test]
    fn idle_threads_are_woken_before_new_ones_start() {
        assert_eq!(state(2, 3, 0, 3).plan(20), (2, 0));
        assert_eq!(state(5, 3, 0, 3).plan(4), (3, 1));
    }

    #[test]
    fn threads_between_ops_or_starting_count_as_taking_the_queue() {
        // Three threads: one running, one idle, one about to look at the
        // queue; three ops queued: the third thread takes one.
        assert_eq!(state(3, 3, 1, 1).plan(20), (1, 1));
        assert_eq!(state(1, 2, 1, 0).plan(20), (0, 0));
    }

    #[test]
    fn a_full_pool_starts_nothing_more() {
        assert_eq!(state(10, 3, 3, 0).plan(3), (0, 0));
    }

    #[test]
    fn ops_in_flight_count_queued_running_and_finished() {
        let mut st = state(2, 3, 1, 0);
        st.results.push(job());
        assert_eq!(st.in_flight(), 4);
    }
}
