//! Reactor-thread values reachable from other threads by id: what lets a
//! `Send` sender (`ChannelSender`, `QueueSender`) name a `!Send` channel or
//! queue in a closure it schedules through [`Handle`](crate::Handle).
//!
//! The map is thread-local and holds weak references: a value that is gone
//! by the time the closure runs is simply not found.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static VALUES: RefCell<HashMap<u64, Weak<dyn Any>>> = RefCell::new(HashMap::new());
}

/// Registers `value` on this thread and returns its id (unique in the
/// process).
pub(crate) fn register<T: 'static>(value: &Rc<T>) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let any: Rc<dyn Any> = value.clone();
    let weak = Rc::downgrade(&any);
    VALUES.with(|v| v.borrow_mut().insert(id, weak));
    id
}

/// The value registered under `id` on this thread, if it still lives.
pub(crate) fn resolve<T: 'static>(id: u64) -> Option<Rc<T>> {
    let any = VALUES.with(|v| v.borrow().get(&id).and_then(Weak::upgrade))?;
    any.downcast::<T>().ok()
}

/// Forgets `id` (called when the value drops).
pub(crate) fn unregister(id: u64) {
    let _ = VALUES.try_with(|v| v.borrow_mut().remove(&id));
}
