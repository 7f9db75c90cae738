//! What a reactor counts: connections, bytes, frames, how connections
//! ended, ticks, and gauges its extensions add (pending timers). Counting
//! costs a `Cell` increment where it happens; reading is [`stats`].

use std::cell::{Cell, RefCell};
use std::fmt;

use crate::error::Result;
use crate::reactor::core::Core;

/// A gauge an extension registered: read when stats are taken.
pub(crate) type Gauge = Box<dyn Fn() -> u64>;

/// The counters a reactor keeps, updated where things happen.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) accepted: Cell<u64>,
    pub(crate) connected: Cell<u64>,
    pub(crate) bytes_read: Cell<u64>,
    pub(crate) bytes_written: Cell<u64>,
    pub(crate) frames_decoded: Cell<u64>,
    pub(crate) bytes_proxied: Cell<u64>,
    pub(crate) bytes_spliced: Cell<u64>,
    pub(crate) ticks_run: Cell<u64>,
    pub(crate) ended: [Cell<u64>; ENDINGS],
    /// Gauges registered by extensions, read when stats are taken.
    pub(crate) gauges: RefCell<Vec<(&'static str, Gauge)>>,
}

impl Counters {
    /// Counts a connection that ended `how`.
    pub(crate) fn ended(&self, how: Ending) {
        add(&self.ended[how as usize], 1);
    }
}

/// How many kinds of ending [`Ended`] counts.
pub(crate) const ENDINGS: usize = 13;

/// The kinds of ending, in [`Ended`]'s order (the network engine maps each
/// `UnbindReason` to one).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ending {
    Closed,
    PeerClosed,
    ConnectFailed,
    Io,
    Codec,
    Panicked,
    ReactorStopped,
    InactivityTimeout,
    ConnectTimeout,
    OutboundOverflow,
    Detached,
    Tls,
    Exited,
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &Cell<u64>, n: u64) {
    counter.set(counter.get().wrapping_add(n));
}

/// How connections ended, by [`UnbindReason`](crate::UnbindReason) kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ended {
    /// `Closed`: closed locally.
    pub closed: u64,
    /// `PeerClosed`.
    pub peer_closed: u64,
    /// `ConnectFailed`.
    pub connect_failed: u64,
    /// `Io`: a transport error, such as a reset.
    pub io: u64,
    /// `Codec`: the codec rejected the input.
    pub codec: u64,
    /// `Panicked`: a callback or the codec panicked.
    pub panicked: u64,
    /// `ReactorStopped`.
    pub reactor_stopped: u64,
    /// `InactivityTimeout`.
    pub inactivity_timeout: u64,
    /// `ConnectTimeout`.
    pub connect_timeout: u64,
    /// `OutboundOverflow`: the connection's cap, or the reactor's budget.
    pub outbound_overflow: u64,
    /// `Detached`.
    pub detached: u64,
    /// `Tls`: a TLS handshake failed.
    pub tls: u64,
    /// `Exited`: a child process ([`popen`](crate::popen)) closed its
    /// output and exited.
    pub exited: u64,
}

impl Ended {
    fn from_counters(c: &[Cell<u64>; ENDINGS]) -> Self {
        let v = |i: usize| c[i].get();
        Ended {
            closed: v(0),
            peer_closed: v(1),
            connect_failed: v(2),
            io: v(3),
            codec: v(4),
            panicked: v(5),
            reactor_stopped: v(6),
            inactivity_timeout: v(7),
            connect_timeout: v(8),
            outbound_overflow: v(9),
            detached: v(10),
            tls: v(11),
            exited: v(12),
        }
    }

    /// How many connections ended, whatever the reason.
    pub fn total(&self) -> u64 {
        self.closed
            + self.peer_closed
            + self.connect_failed
            + self.io
            + self.codec
            + self.panicked
            + self.reactor_stopped
            + self.inactivity_timeout
            + self.connect_timeout
            + self.outbound_overflow
            + self.detached
            + self.tls
            + self.exited
    }
}

/// A snapshot of what the reactor on this thread has counted since it
/// started, from [`stats`]. `Display` prints it as one line of
/// `key=value` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections open now (pending connects included).
    pub connections_open: usize,
    /// Connections accepted by servers (refused ones not included).
    pub connections_accepted: u64,
    /// Client connects that completed.
    pub connections_connected: u64,
    /// Bytes read from transports.
    pub bytes_read: u64,
    /// Bytes written to transports.
    pub bytes_written: u64,
    /// Bytes queued for sending, on every connection, now.
    pub outbound_queued: usize,
    /// Frames decoded and delivered to `receive_data`.
    pub frames_decoded: u64,
    /// Bytes proxies moved from their sources to their targets
    /// ([`Conn::proxy_incoming_to`](crate::Conn::proxy_incoming_to)).
    pub bytes_proxied: u64,
    /// The part of `bytes_proxied` that moved kernel to kernel with
    /// `splice(2)` (see [`Builder::proxy_splice`](crate::Builder::proxy_splice)).
    pub bytes_spliced: u64,
    /// How connections ended, by reason.
    pub ended: Ended,
    /// `next_tick` closures run (closures from other threads included),
    /// counted as each pass of them ends.
    pub ticks_run: u64,
    /// Timers pending now (one-shot and periodic), once em-timers has been
    /// used on this reactor.
    pub timers_pending: u64,
    /// Other gauges extensions registered, by name.
    pub gauges: Vec<(&'static str, u64)>,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.ended;
        write!(
            f,
            "connections_open={} accepted={} connected={} bytes_read={} bytes_written={} \
             outbound_queued={} frames_decoded={} bytes_proxied={} bytes_spliced={} \
             ticks_run={} timers_pending={} \
             ended_closed={} ended_peer_closed={} ended_connect_failed={} ended_io={} \
             ended_codec={} ended_panicked={} ended_reactor_stopped={} \
             ended_inactivity_timeout={} ended_connect_timeout={} ended_outbound_overflow={} \
             ended_detached={} ended_tls={} ended_exited={}",
            self.connections_open,
            self.connections_accepted,
            self.connections_connected,
            self.bytes_read,
            self.bytes_written,
            self.outbound_queued,
            self.frames_decoded,
            self.bytes_proxied,
            self.bytes_spliced,
            self.ticks_run,
            self.timers_pending,
            e.closed,
            e.peer_closed,
            e.connect_failed,
            e.io,
            e.codec,
            e.panicked,
            e.reactor_stopped,
            e.inactivity_timeout,
            e.connect_timeout,
            e.outbound_overflow,
            e.detached,
            e.tls,
            e.exited,
        )?;
        for (name, value) in &self.gauges {
            write!(f, " {name}={value}")?;
        }
        Ok(())
    }
}

/// What the reactor on this thread has counted so far: a snapshot. Reactor
/// thread only; errors with `is_no_reactor()` elsewhere.
///
/// ```
/// # use em_core as em;
/// use std::{cell::RefCell, rc::Rc};
/// let seen = Rc::new(RefCell::new(None));
/// let s = seen.clone();
/// em::run(move || {
///     em::next_tick(move || {
///         // Ticks are counted when their pass ends: look on a later one.
///         em::next_tick(move || {
///             *s.borrow_mut() = Some(em::stats().unwrap());
///             em::stop();
///         });
///     });
/// })?;
/// let stats = seen.borrow().clone().unwrap();
/// assert!(stats.ticks_run >= 1);
/// assert_eq!(stats.connections_open, 0);
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn stats() -> Result<Stats> {
    let core = Core::current("stats")?;
    let c = &core.counters;
    let mut timers_pending = 0;
    let mut gauges = Vec::new();
    for (name, gauge) in c.gauges.borrow().iter() {
        if *name == "timers_pending" {
            timers_pending = gauge();
        } else {
            gauges.push((*name, gauge()));
        }
    }
    Ok(Stats {
        connections_open: core.connection_count(),
        connections_accepted: c.accepted.get(),
        connections_connected: c.connected.get(),
        bytes_read: c.bytes_read.get(),
        bytes_written: c.bytes_written.get(),
        outbound_queued: core.outbound_queued(),
        frames_decoded: c.frames_decoded.get(),
        bytes_proxied: c.bytes_proxied.get(),
        bytes_spliced: c.bytes_spliced.get(),
        ended: Ended::from_counters(&c.ended),
        ticks_run: c.ticks_run.get(),
        timers_pending,
        gauges,
    })
}
