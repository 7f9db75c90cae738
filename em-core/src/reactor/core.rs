//! The state of one running reactor, owned by its thread: the stop flag and
//! its error, the members it must tell when it stops (connections and
//! servers, known only through the [`Member`] trait), the reactor-wide read
//! buffer, extension state and teardown hooks.
//!
//! Nothing here imports the network engine: the engine registers its
//! connections and servers as [`Member`]s.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use bytes::BytesMut;

use crate::error::{Error, Result};
use crate::reactor::builder::Config;
use crate::reactor::remote::Remote;
use crate::reactor::stats::Counters;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// A connection's number, unique within its reactor run, and across the
/// reactors of a group ([`Builder::run_each`](crate::Builder::run_each)),
/// whose ids carry their reactor's index. Shown as `#N` for a reactor on
/// its own, `#R.N` for connection N of reactor R of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(crate) u64);

/// The low bits of an id count connections; the high ones hold the reactor
/// index plus one in a group (zero for a reactor on its own).
const REACTOR_SHIFT: u32 = 48;

impl ConnectionId {
    /// The number (the reactor's bits included).
    pub fn get(self) -> u64 {
        self.0
    }

    /// The index of the reactor of a group that owns the connection; `None`
    /// for a reactor on its own.
    pub fn reactor_index(self) -> Option<usize> {
        match self.0 >> REACTOR_SHIFT {
            0 => None,
            r => Some(r as usize - 1),
        }
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reactor_index() {
            None => write!(f, "#{}", self.0),
            Some(r) => write!(f, "#{r}.{}", self.0 & ((1 << REACTOR_SHIFT) - 1)),
        }
    }
}

/// What the reactor's core knows of a connection or a server.
pub(crate) trait Member {
    /// The reactor is stopping, or its shutdown grace is over: a server
    /// closes its listener; a connection's driver wakes to end (or to flush
    /// its output during the grace).
    fn reactor_stopping(&self);

    /// Whether the member is gone for good (a stopped server), so that the
    /// core may forget it.
    fn is_gone(&self) -> bool {
        false
    }

    /// Bytes it has queued for sending (a connection's output).
    fn outbound_len(&self) -> usize {
        0
    }

    /// The memory its queued output holds (a connection's output buffer's
    /// capacity, which may be up to twice what is queued).
    fn outbound_memory(&self) -> usize {
        0
    }

    /// Ends it because the memory of the reactor's queued output (`total`)
    /// passed the budget and it holds `queued` of it, the most.
    fn evict_for_budget(&self, queued: usize, total: usize, budget: usize) {
        let _ = (queued, total, budget);
    }
}

/// Counts the output queued on a reactor's connections since its budget
/// (`max_total_outbound`) was last checked; shared by the connections, so
/// that the check comes every `step` bytes queued, whatever the number of
/// connections (each queueing less than a watermark's worth, say).
#[derive(Debug)]
pub(crate) struct OutboundMeter {
    since_check: Cell<usize>,
    step: usize,
}

impl OutboundMeter {
    /// Counts `bytes` just queued; true when the budget should be checked.
    pub(crate) fn queued(&self, bytes: usize) -> bool {
        let since = self.since_check.get() + bytes;
        if since >= self.step {
            self.since_check.set(0);
            true
        } else {
            self.since_check.set(since);
            false
        }
    }
}

/// The state of one running reactor, owned by its thread.
pub(crate) struct Core {
    pub(crate) config: Config,
    stopping: Cell<bool>,
    /// The stop's grace period runs: connections with queued output flush
    /// it before their `unbind(ReactorStopped)`.
    grace: Cell<bool>,
    /// The teardown has run the shutdown hooks and now ends the connections:
    /// until then a stopping connection waits, callbacks held.
    releasing: Cell<bool>,
    error: RefCell<Option<Error>>,
    main_waker: RefCell<Option<Waker>>,
    conns: RefCell<HashMap<ConnectionId, Rc<dyn Member>>>,
    next_conn_id: Cell<u64>,
    servers: RefCell<Vec<Rc<dyn Member>>>,
    /// The read buffer every connection of this reactor reads into; a
    /// connection keeps only input it has not decoded yet.
    read_buffer: Cell<BytesMut>,
    /// State of extensions (timers, defer), one value per type, dropped at
    /// teardown after every `unbind`.
    locals: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
    /// `add_shutdown_hook`: run first at teardown, last registered first,
    /// before the remaining connections get their `unbind`.
    shutdown_hooks: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// Extension teardown: run last registered first, after every `unbind`.
    teardown_hooks: RefCell<Vec<Box<dyn FnOnce()>>>,
    pub(crate) remote: Arc<Remote>,
    pub(crate) counters: Counters,
    outbound_meter: Rc<OutboundMeter>,
}

impl Core {
    pub(crate) fn new(config: Config) -> Self {
        let first_id = config
            .member
            .as_ref()
            .map_or(0, |m| (m.index as u64 + 1) << REACTOR_SHIFT)
            + 1;
        Core {
            outbound_meter: Rc::new(OutboundMeter {
                since_check: Cell::new(0),
                // Overshoot at most an eighth of the budget between checks.
                step: (config.max_total_outbound / 8).max(64 << 10),
            }),
            config,
            stopping: Cell::new(false),
            grace: Cell::new(false),
            releasing: Cell::new(false),
            error: RefCell::new(None),
            main_waker: RefCell::new(None),
            conns: RefCell::new(HashMap::new()),
            next_conn_id: Cell::new(first_id),
            servers: RefCell::new(Vec::new()),
            read_buffer: Cell::new(BytesMut::new()),
            locals: RefCell::new(HashMap::new()),
            shutdown_hooks: RefCell::new(Vec::new()),
            teardown_hooks: RefCell::new(Vec::new()),
            remote: Arc::new(Remote::new(std::thread::current().id())),
            counters: Counters::default(),
        }
    }

    /// The core of the reactor running on this thread, or the typed error
    /// naming `call`.
    pub(crate) fn current(call: &'static str) -> Result<Rc<Core>> {
        CURRENT
            .with(|c| c.borrow().clone())
            .ok_or_else(|| Error::no_reactor(call))
    }

    /// Like [`Core::current`], but also refuses while the reactor stops.
    pub(crate) fn current_accepting(call: &'static str) -> Result<Rc<Core>> {
        let core = Core::current(call)?;
        if core.stopping() {
            return Err(Error::stopping(call));
        }
        Ok(core)
    }

    /// Whether a reactor runs on this thread.
    pub(crate) fn is_installed() -> bool {
        CURRENT.with(|c| c.borrow().is_some())
    }

    /// Makes `core` this thread's reactor; false if one is installed.
    pub(crate) fn install(core: &Rc<Core>) -> bool {
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_some() {
                return false;
            }
            *c = Some(core.clone());
            true
        })
    }

    /// Removes this thread's reactor.
    pub(crate) fn uninstall() {
        let core = CURRENT.with(|c| c.borrow_mut().take());
        drop(core);
    }

    /// Whether the reactor on this thread stops; false where none runs.
    pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Core>) -> R) -> R {
        CURRENT.with(|c| f(c.borrow().as_deref()))
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Whether the stop's grace period (`shutdown_grace`) still runs.
    pub(crate) fn in_grace(&self) -> bool {
        self.grace.get()
    }

    /// Whether the teardown ends the connections now (the shutdown hooks
    /// have run).
    pub(crate) fn releasing(&self) -> bool {
        self.releasing.get()
    }

    pub(crate) fn start_releasing(&self) {
        self.releasing.set(true);
    }

    pub(crate) fn end_grace(&self) {
        self.grace.set(false);
    }

    /// Asks the reactor to stop; `error` (the first one wins) is what `run`
    /// will return.
    pub(crate) fn request_stop(&self, error: Option<Error>) {
        if let Some(e) = error {
            let mut slot = self.error.borrow_mut();
            if slot.is_none() {
                *slot = Some(e);
            }
        }
        if !self.stopping.replace(true) {
            self.remote.set_stopping();
            // Set with the stop, so that no connection polled before the
            // teardown begins misses its grace.
            self.grace.set(!self.config.shutdown_grace.is_zero());
            tracing::debug!("reactor stop requested");
            self.wake_main();
        }
    }

    pub(crate) fn take_error(&self) -> Option<Error> {
        self.error.borrow_mut().take()
    }

    pub(crate) fn set_main_waker(&self, waker: &Waker) {
        *self.main_waker.borrow_mut() = Some(waker.clone());
    }

    pub(crate) fn wake_main(&self) {
        if let Some(w) = self.main_waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// The meter every connection of this reactor counts its queued output
    /// on.
    pub(crate) fn outbound_meter(&self) -> Rc<OutboundMeter> {
        self.outbound_meter.clone()
    }

    pub(crate) fn next_conn_id(&self) -> ConnectionId {
        let id = self.next_conn_id.get();
        self.next_conn_id.set(id + 1);
        ConnectionId(id)
    }

    pub(crate) fn register_conn(&self, id: ConnectionId, conn: Rc<dyn Member>) {
        self.conns.borrow_mut().insert(id, conn);
    }

    pub(crate) fn deregister_conn(&self, id: ConnectionId) {
        let empty = {
            let mut conns = self.conns.borrow_mut();
            conns.remove(&id);
            conns.is_empty()
        };
        if empty && self.stopping() {
            self.wake_main();
        }
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Bytes queued for sending on every connection, now.
    pub(crate) fn outbound_queued(&self) -> usize {
        self.conns.borrow().values().map(|c| c.outbound_len()).sum()
    }

    /// Keeps the memory of the output queued on all connections within
    /// `max_total_outbound`: past it, the connections holding the most are
    /// ended (their queues are freed at once) until the total is back under
    /// it. A scan of every connection: called once per eighth of the budget
    /// queued (see [`OutboundMeter`]).
    pub(crate) fn enforce_outbound_budget(&self) {
        let budget = self.config.max_total_outbound;
        let mut queued: Vec<(usize, Rc<dyn Member>)> = self
            .conns
            .borrow()
            .values()
            .map(|c| (c.outbound_memory(), c.clone()))
            .filter(|(len, _)| *len > 0)
            .collect();
        let mut total: usize = queued.iter().map(|(len, _)| len).sum();
        if total <= budget {
            return;
        }
        queued.sort_unstable_by_key(|(len, _)| std::cmp::Reverse(*len));
        for (len, member) in queued {
            if total <= budget {
                break;
            }
            member.evict_for_budget(len, total, budget);
            total -= len;
        }
    }

    pub(crate) fn has_connections(&self) -> bool {
        !self.conns.borrow().is_empty()
    }

    /// Tells every open connection that the reactor stops (or that its
    /// grace is over); returns how many there were.
    pub(crate) fn stop_connections(&self) -> usize {
        let conns: Vec<_> = self.conns.borrow().values().cloned().collect();
        for conn in &conns {
            conn.reactor_stopping();
        }
        conns.len()
    }

    pub(crate) fn register_server(&self, server: Rc<dyn Member>) {
        let mut servers = self.servers.borrow_mut();
        servers.retain(|s| !s.is_gone());
        servers.push(server);
    }

    pub(crate) fn stop_servers(&self) {
        for server in self.servers.take() {
            server.reactor_stopping();
        }
    }

    /// Takes the reactor-wide read buffer; give it back with
    /// [`put_read_buffer`](Core::put_read_buffer).
    pub(crate) fn take_read_buffer(&self) -> BytesMut {
        self.read_buffer.take()
    }

    pub(crate) fn put_read_buffer(&self, buf: BytesMut) {
        self.read_buffer.set(buf);
    }

    /// The value of type `T` belonging to this reactor, made by `init` on
    /// first use.
    pub(crate) fn local<T: 'static>(&self, init: impl FnOnce() -> T) -> Rc<T> {
        let id = TypeId::of::<T>();
        if let Some(v) = self.locals.borrow().get(&id) {
            if let Ok(v) = v.clone().downcast::<T>() {
                return v;
            }
        }
        let v = Rc::new(init());
        self.locals.borrow_mut().insert(id, v.clone());
        v
    }

    pub(crate) fn add_shutdown_hook(&self, hook: Box<dyn FnOnce()>) {
        self.shutdown_hooks.borrow_mut().push(hook);
    }

    pub(crate) fn pop_shutdown_hook(&self) -> Option<Box<dyn FnOnce()>> {
        self.shutdown_hooks.borrow_mut().pop()
    }

    pub(crate) fn on_teardown(&self, hook: Box<dyn FnOnce()>) {
        self.teardown_hooks.borrow_mut().push(hook);
    }

    pub(crate) fn pop_teardown_hook(&self) -> Option<Box<dyn FnOnce()>> {
        self.teardown_hooks.borrow_mut().pop()
    }

    /// Drops the extension state and frees the read buffer (last step of
    /// the teardown).
    pub(crate) fn release(&self) {
        // Dropped outside the borrow: a value's Drop may reach the reactor.
        let locals = self.locals.take();
        drop(locals);
        let gauges = self.counters.gauges.take();
        drop(gauges);
        self.read_buffer.take();
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("stopping", &self.stopping.get())
            .field("connections", &self.conns.borrow().len())
            .finish_non_exhaustive()
    }
}
