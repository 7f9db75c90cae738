//! The seam through which crates extend a reactor: em's own `em-timers` and
//! `em-defer` are built on it, and a third-party crate can be built the same
//! way. Application code never needs it, and the `em` facade does not
//! re-export it: only a crate that depends on `em-core` itself reaches it,
//! on purpose.
//!
//! An extension gets:
//!
//! * **Options** on [`Builder`]: a type implementing [`ReactorOption`], set
//!   with [`configure`] from an extension trait on `Builder` (em-timers'
//!   `TimerOptions::max_timers`, em-defer's `DeferOptions::threadpool_size`)
//!   and read back on the reactor thread with [`option`]. `Builder::build`
//!   runs each option's [`check`](ReactorOption::check).
//! * **State** per reactor: [`reactor_local`], made on first use and
//!   dropped at teardown, after every connection's `unbind`.
//! * **Teardown**: [`on_teardown`] hooks, run last registered first, after
//!   every `unbind` and before the state is dropped.
//! * **Panic containment** for the callbacks it runs: [`catch`] reports a
//!   panic to the error handler (and honours `stop_on_panic`) exactly as
//!   em-core does for its own callbacks.
//!
//! Everything here runs on the reactor thread, except [`configure`] (any
//! thread, on a builder) and [`panic_message`] (any thread).
//!
//! ```
//! # use em_core as em;
//! use em::extension::{self, ReactorOption};
//!
//! /// A made-up extension option: how loud the extension is.
//! #[derive(Debug, Clone, Default)]
//! struct Volume(u8);
//!
//! impl ReactorOption for Volume {
//!     fn check(&self) -> Result<(), String> {
//!         if self.0 > 11 { Err("volume goes up to 11".into()) } else { Ok(()) }
//!     }
//! }
//!
//! let builder = extension::configure(em::Reactor::builder(), |v: &mut Volume| v.0 = 7);
//! builder.run(|| -> em::Result<()> {
//!     assert_eq!(extension::option::<Volume>("volume")?.0, 7);
//!     em::stop();
//!     Ok(())
//! })?;
//! let too_loud = extension::configure(em::Reactor::builder(), |v: &mut Volume| v.0 = 12);
//! assert!(too_loud.build().unwrap_err().is_config());
//! # Ok::<(), em_core::Error>(())
//! ```

use std::any::Any;
use std::fmt;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::reactor::builder::Builder;
use crate::reactor::core::Core;
use crate::reactor::panic;

/// An option an extension adds to [`Builder`]: one value per type, its
/// `Default` when never set.
pub trait ReactorOption: Any + Clone + Default + fmt::Debug + Send + Sync {
    /// Checked by `Builder::build`: an `Err` makes `build` fail with an
    /// error that `is_config()`, carrying the text.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Changes option `T` of `builder` with `f` (starting from the value set
/// before, or the default). Any thread.
pub fn configure<T: ReactorOption>(mut builder: Builder, f: impl FnOnce(&mut T)) -> Builder {
    builder.config.options.update(f);
    builder
}

/// The value of option `T` of the reactor running on this thread. Errors
/// with `is_no_reactor()` naming `call` where no reactor runs.
pub fn option<T: ReactorOption>(call: &'static str) -> Result<T> {
    Ok(Core::current(call)?.config.options.get::<T>())
}

/// Checks that a call may create something on the reactor running on this
/// thread, as em-core's own calls do: errors with `is_no_reactor()` where
/// none runs and `is_stopping()` once it stops (every call that would
/// create a timer, an op, a connection, a server or a task refuses then).
pub fn check_accepting(call: &'static str) -> Result<()> {
    Core::current_accepting(call).map(drop)
}

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

/// Adds a gauge to the reactor's [`stats`](crate::stats): `read` is called
/// (on the reactor thread) each time stats are taken. The name
/// `"timers_pending"` fills [`Stats::timers_pending`](crate::Stats::timers_pending);
/// any other shows in [`Stats::gauges`](crate::Stats::gauges). Dropped at
/// teardown. Errors with `is_no_reactor()` naming `call`.
pub fn register_gauge(
    call: &'static str,
    name: &'static str,
    read: impl Fn() -> u64 + 'static,
) -> Result<()> {
    Core::current(call)?
        .counters
        .gauges
        .borrow_mut()
        .push((name, Box::new(read)));
    Ok(())
}

/// Runs a user callback, containing a panic: it is reported to the error
/// handler (or logged at error level) naming `callback`, the reactor stops
/// if it was built with `stop_on_panic`, and the panic's message is
/// returned as the error.
pub fn catch<R>(callback: &'static str, f: impl FnOnce() -> R) -> std::result::Result<R, String> {
    panic::catch(callback, None, f)
}

/// The text of a caught panic's payload (`&str` or `String`; anything else
/// is named as such). Any thread.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    panic::message(payload)
}

/// The error for a timer that would pass a cap of `max` pending timers
/// (`is_too_many_timers()`).
pub fn too_many_timers(max: usize) -> Error {
    Error::too_many_timers(max)
}

/// Gives the calling thread back every core the process had before
/// [`Builder::pin_to_cores`](crate::Builder::pin_to_cores) pinned a group's
/// reactors (a no-op when nothing was pinned). For an extension's worker
/// threads (em-defer's pool): started from a pinned reactor thread, they
/// would otherwise inherit its single core. Any thread.
pub fn unpin_current_thread() {
    crate::reactor::group::affinity::unpin_current_thread();
}
