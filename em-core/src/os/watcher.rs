//! What the watcher kinds share ([`watch_file`](crate::watch_file),
//! [`watch_process`](crate::watch_process)): the lifecycle of one watch,
//! written once.
//!
//! * An event reaches the handler on the reactor thread, only while the
//!   watch still watches, with a panic contained like any callback's (the
//!   error handler sees it; `stop_on_panic` applies).
//! * `unbind` runs exactly once: right after an event that ends the watch
//!   (the watched file deleted, the process exited), right after a panic,
//!   after `stop_watching` (once the current callback of the watch has
//!   returned, or on a later tick, never inside `stop_watching`), or at the
//!   reactor's teardown. The handler is dropped after it.
//! * The reactor's teardown ends every live watch of each kind: each gets
//!   its `unbind` before `run` returns.
//!
//! A kind provides the handle its callbacks get ([`Watch`]): how to call
//! its handler's `unbind`, and how to stop its events at their source.
//! Everything here runs on the reactor thread.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::rc::{Rc, Weak};

use crate::reactor::core::Core;
use crate::reactor::panic;
use crate::reactor::ticks;

/// A watcher kind's handle, as the callbacks get it: cheap to clone (an
/// `Rc`), holding the watch's [`Lifecycle`].
pub(crate) trait Watch: Clone + 'static {
    /// The user's handler, as a trait object (`dyn FileWatcher`).
    type Handler: ?Sized + 'static;

    /// The watch's lifecycle.
    fn lifecycle(&self) -> &Lifecycle<Self>;

    /// Calls the handler's `unbind`.
    fn unbind(handler: &mut Self::Handler, watch: &Self);

    /// Stops the watch's events at their source (removes the inotify
    /// watch, drops the pidfd). Called once, when the watch ends; events
    /// already on their way are dropped by the lifecycle.
    fn release(&self);
}

/// Where a watch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Events reach the handler.
    Watching,
    /// Ended (its source released); its `unbind` is due.
    Ending,
    /// `unbind` has run; the handler is dropped.
    Ended,
}

/// The lifecycle of one watch of kind `W`: its handler and its state.
pub(crate) struct Lifecycle<W: Watch> {
    id: u64,
    handler: RefCell<Option<Box<W::Handler>>>,
    state: Cell<State>,
    live: Weak<Live<W>>,
}

impl<W: Watch> Lifecycle<W> {
    /// The lifecycle of a new watch numbered `id` (from
    /// [`Live::next_id`]), watching, with `handler`.
    pub(crate) fn new(live: &Rc<Live<W>>, id: u64, handler: Box<W::Handler>) -> Self {
        Lifecycle {
            id,
            handler: RefCell::new(Some(handler)),
            state: Cell::new(State::Watching),
            live: Rc::downgrade(live),
        }
    }

    /// The watch's number, unique per kind within a reactor run.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether events still reach the handler.
    pub(crate) fn is_watching(&self) -> bool {
        self.state.get() == State::Watching
    }
}

/// Runs the callback `f` of `watch`'s handler for one event, named
/// `callback` for a panic report, if the watch still watches (an event
/// that was on its way when the watch ended is dropped). `last` is an
/// event that ends the watch (the file deleted, the process exited): the
/// watch has ended when the callback runs (`is_watching()` is false) and
/// `unbind` follows it at once. So does it after a panic, and after a
/// `stop_watching` made inside the callback.
pub(crate) fn deliver<W: Watch>(
    watch: &W,
    callback: &'static str,
    last: bool,
    f: impl FnOnce(&mut W::Handler, &W),
) {
    let lifecycle = watch.lifecycle();
    if !lifecycle.is_watching() {
        return;
    }
    if last {
        lifecycle.state.set(State::Ending);
        watch.release();
    }
    let outcome = {
        // Events come from the tick queue or a task of their own, never
        // from inside a callback of this watch, so the handler is free.
        let Ok(mut slot) = lifecycle.handler.try_borrow_mut() else {
            debug_assert!(false, "a watch event inside a callback of the same watch");
            return;
        };
        let Some(handler) = slot.as_deref_mut() else {
            return;
        };
        panic::catch(callback, None, || f(handler, watch))
    };
    if outcome.is_err() {
        end(watch);
    } else if lifecycle.state.get() == State::Ending {
        finish(watch);
    }
}

/// Ends `watch` (its `stop_watching`): no event reaches the handler from
/// now on, and `unbind` follows once, after the current callback of this
/// watch if one runs, otherwise on a later tick (never inside this call).
/// A no-op once the watch has ended.
pub(crate) fn stop<W: Watch>(watch: &W) {
    let lifecycle = watch.lifecycle();
    if !lifecycle.is_watching() {
        return;
    }
    lifecycle.state.set(State::Ending);
    watch.release();
    if lifecycle.handler.try_borrow_mut().is_ok() {
        let watch = watch.clone();
        // If the reactor stops before this tick runs, its teardown
        // finishes the watch instead.
        ticks::next_tick(move || finish(&watch));
    }
    // Otherwise a callback of this watch runs: `deliver` finishes it when
    // the callback returns.
}

/// Ends `watch` and runs its `unbind` now.
fn end<W: Watch>(watch: &W) {
    let lifecycle = watch.lifecycle();
    if lifecycle.is_watching() {
        lifecycle.state.set(State::Ending);
        watch.release();
    }
    finish(watch);
}

/// Runs the `unbind` that is due, once, then drops the handler and forgets
/// the watch.
fn finish<W: Watch>(watch: &W) {
    let lifecycle = watch.lifecycle();
    if lifecycle.state.get() != State::Ending {
        return;
    }
    lifecycle.state.set(State::Ended);
    let handler = lifecycle.handler.borrow_mut().take();
    if let Some(mut handler) = handler {
        let _ = panic::catch("unbind", None, || W::unbind(&mut handler, watch));
        // Dropped outside the borrow: the handler may hold handles.
        drop(handler);
    }
    if let Some(live) = lifecycle.live.upgrade() {
        live.watches.borrow_mut().remove(&lifecycle.id);
    }
}

/// The live watches of kind `W` on one reactor, by number: what the
/// teardown ends, and where events find their watch.
pub(crate) struct Live<W: Watch> {
    watches: RefCell<BTreeMap<u64, W>>,
    next_id: Cell<u64>,
}

impl<W: Watch> Live<W> {
    /// The live watches of kind `W` on `core`'s reactor, set up on first
    /// use with a teardown hook that ends them.
    pub(crate) fn of(core: &Core) -> Rc<Live<W>> {
        let mut created = false;
        let live = core.local(|| {
            created = true;
            Live {
                watches: RefCell::new(BTreeMap::new()),
                next_id: Cell::new(1),
            }
        });
        if created {
            let at_teardown = live.clone();
            core.on_teardown(Box::new(move || at_teardown.end_all()));
        }
        live
    }

    /// A number for a new watch.
    pub(crate) fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Adds a watch just made.
    pub(crate) fn insert(&self, watch: W) {
        let id = watch.lifecycle().id();
        self.watches.borrow_mut().insert(id, watch);
    }

    /// The live watch numbered `id` (how a file watch's event, tagged on
    /// another thread, finds its watch).
    #[cfg_attr(not(feature = "file-watch"), allow(dead_code))]
    pub(crate) fn get(&self, id: u64) -> Option<W> {
        self.watches.borrow().get(&id).cloned()
    }

    /// The reactor stops: every live watch ends and gets its `unbind`, in
    /// the order the watches were made.
    fn end_all(&self) {
        loop {
            // One at a time, outside the borrow: an `unbind` may look at
            // the other watches.
            let first = self.watches.borrow().values().next().cloned();
            let Some(watch) = first else { break };
            end(&watch);
            // `finish` forgot it, unless its lifecycle had already ended.
            self.watches.borrow_mut().remove(&watch.lifecycle().id());
        }
    }
}

impl<W: Watch> fmt::Debug for Lifecycle<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lifecycle")
            .field("id", &self.id)
            .field("state", &self.state.get())
            .finish()
    }
}
