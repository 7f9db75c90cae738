//! How a `Send` sender reaches a `!Send` value on its reactor's thread: the
//! one mechanism behind [`ChannelSender`](crate::ChannelSender) and
//! [`QueueSender`](crate::QueueSender).
//!
//! The value registers itself in a thread-local map of weak references the
//! first time a sender is made, and is named by a process-unique id. A
//! [`RemoteRef`] carries that id and the reactor's [`Handle`]; what it sends
//! is a `Send` closure that runs on the reactor thread, through
//! [`Handle::schedule`], with the value if it still lives. Each reference
//! also shares a flag the value clears when it drops, so that a send after
//! that fails at once (`is_receiver_gone`) instead of vanishing; a value
//! dropped between the send and its tick is simply not found, and the
//! closure's captures are dropped.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::reactor::remote::Handle;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static VALUES: RefCell<HashMap<u64, Weak<dyn Any>>> = RefCell::new(HashMap::new());
}

/// Embedded in a value that senders may name: its id once registered, and
/// its unregistration when the value drops.
#[derive(Debug, Default)]
pub(crate) struct Registration {
    id: Cell<Option<u64>>,
    /// Cleared when the value drops; shared with every [`RemoteRef`].
    alive: RefCell<Option<Arc<AtomicBool>>>,
}

impl Registration {
    /// The id of `value` (whose field this is) and its liveness flag,
    /// registering it on this thread the first time.
    fn register<V: 'static>(&self, value: &Rc<V>) -> (u64, Arc<AtomicBool>) {
        if let (Some(id), Some(alive)) = (self.id.get(), &*self.alive.borrow()) {
            return (id, alive.clone());
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let any: Rc<dyn Any> = value.clone();
        let weak = Rc::downgrade(&any);
        VALUES.with(|v| v.borrow_mut().insert(id, weak));
        self.id.set(Some(id));
        let alive = Arc::new(AtomicBool::new(true));
        *self.alive.borrow_mut() = Some(alive.clone());
        (id, alive)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(alive) = self.alive.get_mut() {
            alive.store(false, Ordering::Release);
        }
        if let Some(id) = self.id.get() {
            let _ = VALUES.try_with(|v| v.borrow_mut().remove(&id));
        }
    }
}

/// The value registered under `id` on this thread, if it still lives.
fn resolve<V: 'static>(id: u64) -> Option<Rc<V>> {
    let any = VALUES.with(|v| v.borrow().get(&id).and_then(Weak::upgrade))?;
    any.downcast::<V>().ok()
}

/// A `Send + Sync` reference to a `!Send` value `V` on a reactor thread.
pub(crate) struct RemoteRef<V> {
    handle: Handle,
    id: u64,
    alive: Arc<AtomicBool>,
    /// What the value is, for the error once it is gone ("channel").
    what: &'static str,
    _value: PhantomData<fn(V)>,
}

impl<V: 'static> RemoteRef<V> {
    /// A reference to `value` (a `what`, for errors: "channel"), whose
    /// [`Registration`] is `registration`. Reactor thread only: errors with
    /// `is_no_reactor()` naming `call` elsewhere.
    pub(crate) fn new(
        call: &'static str,
        what: &'static str,
        value: &Rc<V>,
        registration: &Registration,
    ) -> Result<Self> {
        let handle = crate::handle().map_err(|_| Error::no_reactor(call))?;
        let (id, alive) = registration.register(value);
        Ok(RemoteRef {
            handle,
            id,
            alive,
            what,
            _value: PhantomData,
        })
    }

    /// Runs `f` with the value on the reactor thread, at a later tick
    /// (through [`Handle::schedule`]); not at all if the value is gone by
    /// then. Any thread. Errors, naming `call`, with `is_receiver_gone()`
    /// once the value has dropped, `is_stopping()` once the reactor begins
    /// to stop, and `is_not_running()` once the reactor has stopped.
    pub(crate) fn send(
        &self,
        call: &'static str,
        f: impl FnOnce(Rc<V>) + Send + 'static,
    ) -> Result<()> {
        if !self.alive.load(Ordering::Acquire) {
            return Err(Error::receiver_gone(call, self.what));
        }
        let id = self.id;
        self.handle.schedule(move || {
            if let Some(value) = resolve::<V>(id) {
                f(value);
            }
        })
    }
}

impl<V> Clone for RemoteRef<V> {
    fn clone(&self) -> Self {
        RemoteRef {
            handle: self.handle.clone(),
            id: self.id,
            alive: self.alive.clone(),
            what: self.what,
            _value: PhantomData,
        }
    }
}

impl<V> fmt::Debug for RemoteRef<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteRef")
            .field("handle", &self.handle)
            .field("id", &self.id)
            .finish()
    }
}
