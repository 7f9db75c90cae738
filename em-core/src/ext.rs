//! Hooks for em's own crates (`em-timers`, `em-defer`): reactor-local state,
//! teardown hooks and panic containment. Not part of the user-facing API;
//! everything here runs on the reactor thread.

use std::any::Any;
use std::rc::Rc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::panic;
use crate::reactor::Core;

/// The value of type `T` that belongs to the reactor running on this thread,
/// made by `init` on first use and dropped when that reactor stops (after
/// every connection's `unbind`). Errors with `is_no_reactor()` naming
/// `call` where no reactor runs.
pub fn reactor_local<T: 'static>(call: &'static str, init: impl FnOnce() -> T) -> Result<Rc<T>> {
    Ok(Core::current(call)?.local(init))
}

/// Runs `hook` when the reactor on this thread stops, after every
/// connection's `unbind` and before reactor-local values are dropped; hooks
/// run last registered first. Errors with `is_no_reactor()` naming `call`.
pub fn on_teardown(call: &'static str, hook: impl FnOnce() + 'static) -> Result<()> {
    Core::current(call)?.on_teardown(Box::new(hook));
    Ok(())
}

/// Runs a user callback, containing a panic: it is logged at error level
/// naming `callback`, and its message is returned as the error.
pub fn catch<R>(callback: &'static str, f: impl FnOnce() -> R) -> std::result::Result<R, String> {
    panic::catch(callback, None, f)
}

/// The text of a caught panic's payload (`&str` or `String`; anything else
/// is named as such). Any thread.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    panic::message(payload)
}

/// The reactor's `max_timers` option. Errors with `is_no_reactor()`.
pub fn max_timers(call: &'static str) -> Result<Option<usize>> {
    Ok(Core::current(call)?.config.max_timers)
}

/// The error for a timer that would pass the `max_timers` cap of `max`
/// (`is_too_many_timers()`).
pub fn too_many_timers(max: usize) -> Error {
    Error::too_many_timers(max)
}

/// The reactor's `threadpool_size` option. Errors with `is_no_reactor()`.
pub fn threadpool_size(call: &'static str) -> Result<usize> {
    Ok(Core::current(call)?.config.threadpool_size)
}

/// The reactor's `shutdown_timeout` option. Errors with `is_no_reactor()`.
pub fn shutdown_timeout(call: &'static str) -> Result<Option<Duration>> {
    Ok(Core::current(call)?.config.shutdown_timeout)
}
