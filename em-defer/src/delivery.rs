//! The reactor side of defer: the replies (callbacks, errbacks, futures)
//! waiting for their ops, the delivery of result batches, and what happens
//! to both when the reactor stops. One [`Defer`] per reactor, kept with
//! `em::extension::reactor_local`; everything here runs on the reactor thread.

use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use em_core::extension as ext;

use crate::options::{DeferBackend, DeferConfig};
use crate::task::{OpTask, Reply};
use crate::thread_pool::{Job, Pool};

/// The most result slots a spare batch keeps between bursts.
const SPARE_CAPACITY: usize = 4096;

/// Defer's state in one reactor.
#[derive(Default)]
pub(crate) struct Defer {
    /// Created by the first op.
    pool: OnceCell<Started>,
    replies: RefCell<Replies>,
    /// The spare allocation for a batch of results.
    spare: Cell<Vec<Job>>,
    /// Results taken from the pool but not delivered because a callback
    /// stopped the reactor; delivered at teardown only if it waits.
    held: RefCell<Vec<Job>>,
    /// Set at teardown: ops submitted from then on never run.
    closed: Cell<bool>,
    /// Whether a `next_tick` will kick the pool.
    kick_pending: Cell<bool>,
    /// The reactor's backend, read on first use.
    backend: Cell<Option<DeferBackend>>,
}

struct Started {
    pool: Pool,
    shutdown_timeout: Option<Duration>,
}

impl Defer {
    /// This reactor's defer state, made on first use. Errors with
    /// `is_no_reactor()` naming `call`.
    pub(crate) fn current(call: &'static str) -> em_core::Result<Rc<Defer>> {
        ext::reactor_local(call, Defer::default)
    }

    /// Whether nothing is queued, running or waiting for delivery.
    pub(crate) fn finished(&self) -> bool {
        self.replies.borrow().len == 0
    }

    /// Sends `op` to the pool; `reply` waits here for its outcome.
    pub(crate) fn submit<F, T, R>(
        self: &Rc<Self>,
        call: &'static str,
        op: F,
        reply: R,
    ) -> em_core::Result<()>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: Reply<T>,
    {
        em_core::extension::check_accepting(call)?;
        if self.backend(call)? == DeferBackend::TokioBlocking {
            return self.submit_to_tokio(op, reply);
        }
        let pool = self.pool(call)?;
        let slot = self.replies.borrow_mut().insert(Box::new(reply));
        let job = Box::new(OpTask::<F, T, R>::new(slot, op));
        if self.kick_pending.replace(true) {
            pool.submit(job, false);
        } else {
            // The first op since the last kick starts at once if a thread
            // is idle; a `next_tick` then wakes the pool once for every op
            // deferred after it.
            pool.submit(job, true);
            em_core::next_tick(kick);
        }
        Ok(())
    }

    /// The backend of this reactor's defers, read once.
    fn backend(self: &Rc<Self>, call: &'static str) -> em_core::Result<DeferBackend> {
        if let Some(backend) = self.backend.get() {
            return Ok(backend);
        }
        let backend = ext::option::<DeferConfig>(call)?.backend;
        self.backend.set(Some(backend));
        if backend == DeferBackend::TokioBlocking {
            let me = self.clone();
            ext::on_teardown(call, move || me.teardown())?;
        }
        Ok(backend)
    }

    /// [`DeferBackend::TokioBlocking`]: the op runs under `spawn_blocking`,
    /// and a local task delivers its outcome when it ends.
    fn submit_to_tokio<F, T, R>(self: &Rc<Self>, op: F, reply: R) -> em_core::Result<()>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: Reply<T>,
    {
        let slot = self.replies.borrow_mut().insert(Box::new(reply));
        let mut job: Job = Box::new(OpTask::<F, T, R>::new(slot, op));
        let running = tokio::task::spawn_blocking(move || {
            job.run();
            job
        });
        let me = self.clone();
        tokio::task::spawn_local(async move {
            // A `JoinError` means the runtime is shutting down: the reply
            // is dropped with the reactor's state.
            if let Ok(job) = running.await {
                if !me.closed.get() {
                    me.deliver(job);
                }
            }
        });
        Ok(())
    }

    /// Puts the pool's threads on the ops deferred since the last kick.
    fn kick(&self) {
        self.kick_pending.set(false);
        if let Some(started) = self.pool.get() {
            started.pool.kick();
        }
    }

    fn pool(self: &Rc<Self>, call: &'static str) -> em_core::Result<&Pool> {
        if let Some(started) = self.pool.get() {
            return Ok(&started.pool);
        }
        let config = ext::option::<DeferConfig>(call)?;
        let (size, shutdown_timeout) = (config.threadpool_size, config.shutdown_timeout);
        let pool = Pool::new(em_core::handle()?, size, collect);
        let me = self.clone();
        ext::on_teardown(call, move || me.teardown())?;
        tracing::debug!(size, ?shutdown_timeout, "defer pool created");
        Ok(&self
            .pool
            .get_or_init(|| Started {
                pool,
                shutdown_timeout,
            })
            .pool)
    }

    /// Delivers the batch of results waiting in the pool.
    fn collect(&self) {
        let Some(started) = self.pool.get() else {
            return;
        };
        let mut batch = self.spare.take();
        started.pool.take_results(&mut batch);
        let mut results = batch.drain(..);
        for job in results.by_ref() {
            self.deliver(job);
            if em_core::stopping() {
                break;
            }
        }
        // A callback stopped the reactor: keep the rest for teardown.
        self.held.borrow_mut().extend(results);
        if batch.capacity() > SPARE_CAPACITY {
            batch.shrink_to(SPARE_CAPACITY);
        }
        self.spare.set(batch);
    }

    fn deliver(&self, job: Job) {
        let reply = self.replies.borrow_mut().remove(job.slot());
        match reply {
            Some(reply) => job.deliver(reply),
            None => debug_assert!(false, "a defer result without a reply"),
        }
    }

    /// The teardown hook: stops the pool, waits for running ops if the
    /// reactor has a `shutdown_timeout`, delivers what finished in time (or
    /// drops it), and drops every reply still waiting.
    fn teardown(&self) {
        self.closed.set(true);
        let Some(started) = self.pool.get() else {
            // No pool (or the tokio backend): drop the replies still waiting.
            let replies = self.replies.take();
            drop(replies);
            return;
        };
        let wait = started.shutdown_timeout;
        let shutdown = started.pool.shut_down(wait);
        let mut finished = self.held.take();
        finished.extend(shutdown.finished);
        tracing::debug!(
            threads = started.pool.threads_started(),
            unstarted = shutdown.unstarted.len(),
            finished = finished.len(),
            still_running = shutdown.still_running,
            ?wait,
            "defer pool stopped"
        );
        if wait.is_some() {
            if shutdown.still_running > 0 {
                tracing::warn!(
                    still_running = shutdown.still_running,
                    ?wait,
                    "defer ops still running at the end of the shutdown timeout; their callbacks never run"
                );
            }
            for job in finished {
                self.deliver(job);
            }
        } else {
            drop(finished);
        }
        drop(shutdown.unstarted);
        // Taken out first: dropping a reply may run user code that calls
        // back into defer.
        let replies = self.replies.take();
        drop(replies);
    }
}

/// Queued with `next_tick` by the first op deferred since the last kick.
fn kick() {
    if let Ok(defer) = Defer::current("defer") {
        defer.kick();
    }
}

/// Scheduled through `Handle::schedule` by the worker that starts a batch.
fn collect() {
    if let Ok(defer) = Defer::current("defer") {
        defer.collect();
    }
}

/// The replies waiting for their ops, by slot (a slab: freed slots are
/// reused, so a slot number is an index).
#[derive(Default)]
struct Replies {
    slots: Vec<Slot>,
    free: Option<usize>,
    len: usize,
}

enum Slot {
    Waiting(Box<dyn Any>),
    Free(Option<usize>),
}

impl Replies {
    fn insert(&mut self, reply: Box<dyn Any>) -> usize {
        self.len += 1;
        match self.free {
            Some(i) => {
                let Slot::Free(next) = std::mem::replace(&mut self.slots[i], Slot::Waiting(reply))
                else {
                    unreachable!("the free list points at a free slot");
                };
                self.free = next;
                i
            }
            None => {
                self.slots.push(Slot::Waiting(reply));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, i: usize) -> Option<Box<dyn Any>> {
        let slot = self.slots.get_mut(i)?;
        if let Slot::Free(_) = slot {
            return None;
        }
        let Slot::Waiting(reply) = std::mem::replace(slot, Slot::Free(self.free)) else {
            unreachable!("checked above");
        };
        self.free = Some(i);
        self.len -= 1;
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_counted() {
        let mut r = Replies::default();
        let a = r.insert(Box::new(1u8));
        let b = r.insert(Box::new(2u8));
        assert_eq!((a, b, r.len), (0, 1, 2));
        assert!(r.remove(a).is_some());
        assert!(r.remove(a).is_none(), "a slot is removed once");
        assert_eq!(r.len, 1);
        let c = r.insert(Box::new(3u8));
        assert_eq!(c, a, "a freed slot is reused");
        assert_eq!(*r.remove(b).unwrap().downcast::<u8>().unwrap(), 2);
        assert_eq!(*r.remove(c).unwrap().downcast::<u8>().unwrap(), 3);
        assert_eq!(r.len, 0);
        assert!(r.remove(99).is_none());
    }
}
