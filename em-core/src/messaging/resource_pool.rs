//! `Pool`: a pool of resources (connections, say) handed out one job at a
//! time, FIFO (EventMachine's `EM::Pool`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::messaging::deferred::Deferred;
use crate::messaging::queue::{Pop, Queue};
use crate::reactor::panic;

type OnError<R> = Rc<RefCell<Box<dyn FnMut(R)>>>;

struct Inner<R> {
    idle: Queue<R>,
    /// Resources owned by the pool: idle ones and those lent out.
    size: Cell<usize>,
    on_error: RefCell<Option<OnError<R>>>,
}

/// A pool of resources (EventMachine's `EM::Pool`, rule PL1): each job gets
/// one resource to itself; jobs wait FIFO for a free one.
///
/// * [`perform`](Pool::perform) runs a job with a resource; the job returns a
///   [`Deferred`]. When it succeeds the resource goes back to the pool (to
///   the next waiting job at once). When it fails, the resource is passed
///   to the [`on_error`](Pool::on_error) callback and leaves the pool, or,
///   with no `on_error`, goes back to the pool. A job that panics counts as
///   failed (the panic is contained and logged). A job's deferred dropped
///   unresolved gives the resource back.
/// * [`get`](Pool::get) is the procedural form: `pool.get().await` gives a
///   [`PoolGuard`] that returns the resource when dropped, or reports it
///   failed with [`PoolGuard::fail`].
///
/// A `Pool` is a cheap `Clone` handle and is `!Send`: jobs and callbacks run
/// on the reactor thread.
///
/// ```
/// # use em_core as em;
/// use std::{cell::RefCell, rc::Rc};
/// let used = Rc::new(RefCell::new(Vec::new()));
/// let u = used.clone();
/// em::run(move || -> em::Result<()> {
///     let pool = em::Pool::new();
///     pool.add("conn-1");
///     let u1 = u.clone();
///     pool.perform(move |conn: &&str| {
///         u1.borrow_mut().push(conn.to_string());
///         let d = em::Deferred::<(), ()>::new();
///         d.succeed(()); // the resource goes back to the pool
///         d
///     });
///     let pool2 = pool.clone();
///     em::spawn(async move {
///         let conn = pool2.get().await;
///         u.borrow_mut().push(format!("async {}", *conn));
///         em::stop();
///     })?;
///     Ok(())
/// })?;
/// assert_eq!(*used.borrow(), ["conn-1", "async conn-1"]);
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct Pool<R: 'static> {
    inner: Rc<Inner<R>>,
}

impl<R: 'static> Clone for Pool<R> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
        }
    }
}

impl<R: 'static> Default for Pool<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: 'static> Pool<R> {
    /// An empty pool. Any thread; the pool then belongs to it.
    pub fn new() -> Self {
        Pool {
            inner: Rc::new(Inner {
                idle: Queue::new(),
                size: Cell::new(0),
                on_error: RefCell::new(None),
            }),
        }
    }

    /// Adds `resource`; the first waiting job, if any, gets it at once.
    pub fn add(&self, resource: R) {
        self.inner.size.set(self.inner.size.get() + 1);
        self.inner.idle.push(resource);
    }

    /// Sets the callback that receives each resource whose job failed; the
    /// resource then leaves the pool (close it, or `add` a fresh one). It
    /// runs on the reactor thread, inside the `fail` of the job's deferred.
    pub fn on_error(&self, f: impl FnMut(R) + 'static) {
        *self.inner.on_error.borrow_mut() = Some(Rc::new(RefCell::new(Box::new(f))));
    }

    /// Runs `work` with a free resource: at once if one is idle, else when
    /// one comes back, after the jobs already waiting (FIFO). `work`
    /// returns a [`Deferred`] that decides the resource's fate: success
    /// returns it to the pool, failure goes through [`on_error`](Self::on_error).
    pub fn perform<T, E, F>(&self, work: F)
    where
        T: 'static,
        E: 'static,
        F: FnOnce(&R) -> Deferred<T, E> + 'static,
    {
        let pool = self.clone();
        self.inner.idle.pop(move |resource| {
            let guard = PoolGuard {
                pool,
                resource: Some(resource),
            };
            match panic::catch("pool perform", None, || work(&*guard)) {
                Ok(deferred) => {
                    let lease = Rc::new(RefCell::new(Some(guard)));
                    let on_fail = lease.clone();
                    deferred.callback(move |_| drop(lease.take()));
                    deferred.errback(move |_| {
                        if let Some(guard) = on_fail.take() {
                            guard.fail();
                        }
                    });
                }
                Err(_) => guard.fail(),
            }
        });
    }

    /// A future of a free resource, for procedural code under
    /// [`spawn`](crate::spawn) (em-synchrony's `ConnectionPool`): it waits
    /// FIFO with the jobs of [`perform`](Self::perform). Poll it on the
    /// reactor thread.
    pub fn get(&self) -> Get<R> {
        Get {
            pool: self.clone(),
            pop: self.inner.idle.pop_async(),
        }
    }

    /// How many resources the pool owns: idle ones and those lent out.
    pub fn size(&self) -> usize {
        self.inner.size.get()
    }

    /// How many resources are idle.
    pub fn num_idle(&self) -> usize {
        self.inner.idle.size()
    }

    /// How many jobs (and `get` futures) wait for a resource.
    pub fn num_waiting(&self) -> usize {
        self.inner.idle.num_waiting()
    }

    fn release(&self, resource: R) {
        self.inner.idle.push(resource);
    }

    fn fail(&self, resource: R) {
        let handler = self.inner.on_error.borrow().clone();
        let Some(handler) = handler else {
            self.release(resource);
            return;
        };
        self.inner.size.set(self.inner.size.get() - 1);
        let Ok(mut handler) = handler.try_borrow_mut() else {
            // on_error failed a resource of its own: keep the resource.
            self.inner.size.set(self.inner.size.get() + 1);
            self.release(resource);
            return;
        };
        let _ = panic::catch("pool on_error", None, || (*handler)(resource));
    }
}

impl<R> fmt::Debug for Pool<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.inner.size.get())
            .field("idle", &self.inner.idle)
            .finish_non_exhaustive()
    }
}

/// The future of [`Pool::get`]: a [`PoolGuard`] holding a free resource.
pub struct Get<R: 'static> {
    pool: Pool<R>,
    pop: Pop<R>,
}

impl<R: 'static> Future for Get<R> {
    type Output = PoolGuard<R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PoolGuard<R>> {
        let this = &mut *self;
        Pin::new(&mut this.pop).poll(cx).map(|resource| PoolGuard {
            pool: this.pool.clone(),
            resource: Some(resource),
        })
    }
}

impl<R> fmt::Debug for Get<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get").finish_non_exhaustive()
    }
}

/// A resource lent by a [`Pool`] (from [`Pool::get`], or to a `perform`
/// job): dereferences to it, and gives it back to the pool when dropped, on
/// the reactor thread; [`fail`](PoolGuard::fail) reports it failed instead.
pub struct PoolGuard<R: 'static> {
    pool: Pool<R>,
    resource: Option<R>,
}

impl<R: 'static> PoolGuard<R> {
    /// Reports the resource failed: it goes to the pool's `on_error`
    /// callback and leaves the pool, or back to the pool without `on_error`.
    pub fn fail(mut self) {
        if let Some(resource) = self.resource.take() {
            self.pool.fail(resource);
        }
    }
}

impl<R: 'static> Deref for PoolGuard<R> {
    type Target = R;

    fn deref(&self) -> &R {
        self.resource.as_ref().expect("present until dropped")
    }
}

impl<R: 'static> DerefMut for PoolGuard<R> {
    fn deref_mut(&mut self) -> &mut R {
        self.resource.as_mut().expect("present until dropped")
    }
}

impl<R: 'static> Drop for PoolGuard<R> {
    fn drop(&mut self) {
        if let Some(resource) = self.resource.take() {
            self.pool.release(resource);
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for PoolGuard<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PoolGuard").field(&self.resource).finish()
    }
}
