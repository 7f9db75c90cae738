//! Proxies (EventMachine's `enable_proxy` and `proxy_incoming_to`): the
//! bytes a connection reads go to another connection's output as they
//! are, past both codecs and `receive_data`.
//!
//! The state lives with the two connections, out of line (in their rare
//! state), so that a connection that never proxies pays one byte for the
//! feature ([`ConnState::proxy_roles`]):
//!
//! * the **source** holds a [`Link`]: its target, the backpressure limit,
//!   the bytes still to move (a proxy with a length), the count;
//! * the **target** holds a [`Sink`]: which source feeds it (one at a
//!   time, EventMachine's "busy target"), and the kernel pipe that
//!   spliced bytes wait in. The target's own pump empties the pipe, before
//!   its queued output, so bytes leave in the order they were read.
//!
//! How bytes move (splice or copy, and when to switch) is the stream
//! pump's business (`driver/stream/proxy.rs`); this file is the API and
//! the bookkeeping.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use crate::error::{Error, Result};
use crate::net::conn::{AnyConn, Conn, ConnState};
use crate::net::driver::splice::Pipe;
use crate::reactor::core::ConnectionId;

/// [`ConnState::proxy_roles`]: its input goes to a target (or went, and
/// the pump has not yet seen the proxy end).
pub(crate) const SOURCE: u8 = 1;
/// [`ConnState::proxy_roles`]: it has a [`Sink`] (a source feeds it, or its
/// pipe still holds bytes).
pub(crate) const TARGET: u8 = 2;

/// A connection's proxy state, in its rare state.
#[derive(Default)]
pub(crate) struct ProxyState {
    /// As a source: the proxy running now.
    pub(crate) link: Option<Rc<Link>>,
    /// As a source: the count of the last proxy, once it ended.
    pub(crate) last_proxied: u64,
    /// As a target.
    pub(crate) sink: Option<Rc<Sink>>,
}

/// A running proxy, held by its source.
pub(crate) struct Link {
    pub(crate) target: Rc<dyn AnyConn>,
    /// The target's sink.
    pub(crate) sink: Rc<Sink>,
    /// Reading holds while the target's backlog is above it; 0: never.
    pub(crate) bufsize: usize,
    /// The bytes still to move before `proxy_completed`; `None`: no limit.
    pub(crate) remaining: Cell<Option<u64>>,
    /// The bytes moved so far (`proxied_bytes`).
    pub(crate) proxied: Cell<u64>,
}

impl Link {
    /// Counts `n` bytes moved; whether that was the last of its length.
    pub(crate) fn moved(&self, n: usize) -> bool {
        self.proxied.set(self.proxied.get() + n as u64);
        match self.remaining.get() {
            None => false,
            Some(left) => {
                let left = left.saturating_sub(n as u64);
                self.remaining.set(Some(left));
                left == 0
            }
        }
    }

    /// The most bytes to move now (the rest of its length), capped at
    /// `max`.
    pub(crate) fn allowance(&self, max: usize) -> usize {
        self.remaining.get().map_or(max, |left| {
            usize::try_from(left).unwrap_or(usize::MAX).min(max)
        })
    }

    /// Bytes on their way out of the target: queued, and in its pipe.
    pub(crate) fn backlog(&self) -> usize {
        self.target.state().outbound.borrow().len() + self.sink.piped.get()
    }

    /// Whether the source must hold its input: the backlog is above the
    /// limit.
    pub(crate) fn over_limit(&self) -> bool {
        self.bufsize > 0 && self.backlog() > self.bufsize
    }
}

/// A proxy's target side.
#[derive(Default)]
pub(crate) struct Sink {
    /// The source proxying to it now.
    pub(crate) source: RefCell<Option<(ConnectionId, Weak<dyn AnyConn>)>>,
    /// The source's limit (see [`Link::bufsize`]).
    pub(crate) bufsize: Cell<usize>,
    /// The pipe spliced bytes wait in, made on the first splice.
    pub(crate) pipe: RefCell<Option<Pipe>>,
    /// The bytes in the pipe.
    pub(crate) piped: Cell<usize>,
    /// No pipe can be made (out of descriptors, not Linux): copy only.
    pub(crate) no_pipe: Cell<bool>,
}

impl Sink {
    /// Whether its source, if it still has one, may read again: the
    /// backlog `backlog` is not above the limit.
    pub(crate) fn within_limit(&self, backlog: usize) -> bool {
        let limit = self.bufsize.get();
        limit == 0 || backlog <= limit
    }
}

/// The proxy `state` runs as a source, if any.
pub(crate) fn link(state: &ConnState) -> Option<Rc<Link>> {
    state.peek_proxy(|p| p.and_then(|p| p.link.clone()))
}

/// `state`'s sink, if it is (or was) a target.
pub(crate) fn sink(state: &ConnState) -> Option<Rc<Sink>> {
    state.peek_proxy(|p| p.and_then(|p| p.sink.clone()))
}

/// The bytes waiting in `state`'s pipe.
pub(crate) fn piped(state: &ConnState) -> usize {
    if state.proxy_roles.get() & TARGET == 0 {
        return 0;
    }
    sink(state).map_or(0, |sink| sink.piped.get())
}

/// Ends the proxy `link` of source `state` (stopped, completed, or its
/// target gone): the target is free again, and the count is kept. The
/// source's pump sees it on its next step.
pub(crate) fn unlink(state: &ConnState, link: &Link) {
    state.with_proxy(|p| {
        if p.link.as_deref().is_some_and(|l| std::ptr::eq(l, link)) {
            p.link = None;
        }
        p.last_proxied = link.proxied.get();
    });
    let mut source = link.sink.source.borrow_mut();
    if source.as_ref().is_some_and(|(id, _)| *id == state.id) {
        *source = None;
    }
}

/// The connection behind `state` has ended: a proxy it ran stops (its
/// target is free again), and a proxy to it loses its target, so its
/// source is woken to run `proxy_target_unbound`; bytes in its pipe are
/// dropped with its other output.
pub(crate) fn connection_ended(state: &ConnState) {
    if state.proxy_roles.get() == 0 {
        return;
    }
    state.proxy_roles.set(0);
    if let Some(link) = link(state) {
        unlink(state, &link);
    }
    let sink = state.peek_proxy(|p| p.and_then(|p| p.sink.take()));
    if let Some(sink) = sink {
        sink.pipe.borrow_mut().take();
        sink.piped.set(0);
        let source = sink.source.borrow().as_ref().and_then(|(_, s)| s.upgrade());
        if let Some(source) = source {
            source.state().wake();
        }
    }
}

/// Starts a proxy from `from` to `to` (see [`Conn::proxy_incoming_to`]).
fn start<A: 'static, B: 'static>(
    call: &'static str,
    from: &Conn<A>,
    to: &Conn<B>,
    bufsize: usize,
    length: Option<u64>,
) -> Result<()> {
    let (src, dst) = (from.state(), to.state());
    if let Some(refused) = src.refusal() {
        return Err(refused);
    }
    to.may_queue(call)?;
    for (state, which) in [(src, "source"), (dst, "target")] {
        let mut transport = state.transport.borrow_mut();
        if transport
            .as_mut()
            .is_some_and(|t| t.byte_stream().is_none())
        {
            return Err(Error::unsupported(
                call,
                format!("the {which} connection is not a byte stream"),
            ));
        }
    }
    let sink = dst.with_proxy(|p| p.sink.get_or_insert_with(Rc::default).clone());
    if let Some((busy_with, _)) = *sink.source.borrow() {
        if busy_with != src.id {
            return Err(Error::busy_target(call, dst.id, busy_with));
        }
    }
    // EventMachine's StartProxy: a proxy already running from `from`
    // stops first (to this target or another).
    if let Some(old) = link(src) {
        unlink(src, &old);
    }
    let link = Rc::new(Link {
        target: to.any(),
        sink: sink.clone(),
        bufsize,
        remaining: Cell::new(length),
        proxied: Cell::new(0),
    });
    *sink.source.borrow_mut() = Some((src.id, Rc::downgrade(&from.any())));
    sink.bufsize.set(bufsize);
    src.with_proxy(|p| {
        p.link = Some(link);
        p.last_proxied = 0;
    });
    src.proxy_roles.set(src.proxy_roles.get() | SOURCE);
    dst.proxy_roles.set(dst.proxy_roles.get() | TARGET);
    tracing::debug!(source = %src.id, target = %dst.id, bufsize, ?length, "proxy started");
    // The source's pump may be in this very poll (a proxy started from its
    // own `receive_data`): make it look again.
    src.wake_again();
    Ok(())
}

impl<C: 'static> Conn<C> {
    /// Proxies this connection's input to `target` (EventMachine's
    /// `proxy_incoming_to`): from now on the bytes it reads are queued on
    /// `target` as they are, past both connections' codecs, and
    /// `receive_data` is not called. `target` may have
    /// another codec type. Output still flows both ways as usual: a two-way
    /// proxy is two calls, one on each connection.
    ///
    /// * **Backpressure**. With `bufsize > 0`, reading holds while the
    ///   target's backlog (its [`outbound_data_size`](Conn::outbound_data_size))
    ///   is above `bufsize`, and resumes once it drains to `bufsize`: a
    ///   slow target slows the source, through TCP, instead of growing
    ///   memory; the backlog stays within `bufsize` plus one read (at most
    ///   256 KiB). With `bufsize == 0`, as in EventMachine, nothing holds
    ///   the source back, except that the target's
    ///   [`max_outbound`](Conn::set_max_outbound) still applies: a target
    ///   that falls that far behind ends with `OutboundOverflow`. This
    ///   hold is not [`pause`](Conn::pause): `is_paused` stays what the
    ///   program set, and a proxy never resumes a paused connection.
    /// * **Input not delivered yet** when the proxy starts (the start of an
    ///   unfinished frame, or frames held while paused) goes to the target
    ///   first, in order. Once the proxy ends, decoding starts again from a
    ///   fresh codec ([`Connection::codec`](crate::Connection::codec)), as
    ///   the old one's state described bytes that went elsewhere.
    /// * **The target goes away** (it ends): the source's
    ///   [`proxy_target_unbound`](crate::Connection::proxy_target_unbound)
    ///   runs once, after the target's `unbind`, and input goes to
    ///   `receive_data` again. While the target is closing
    ///   (`close_connection_after_writing`), the source's input waits
    ///   for that.
    /// * **The count** ([`proxied_bytes`](Conn::proxied_bytes)) starts
    ///   at zero with every proxy.
    /// * A proxy already running from this connection stops first (it
    ///   keeps at most one target).
    ///
    /// Between two plain TCP or Unix-domain sockets on Linux, the bytes
    /// move kernel to kernel with `splice(2)` whenever the target has no
    /// output queued, and are copied through the reactor otherwise; the
    /// two ways are indistinguishable but for the CPU they cost
    /// ([`Builder::proxy_splice`](crate::Builder::proxy_splice) turns
    /// splicing off).
    ///
    /// Errors: `is_busy_target()` if `target` already receives another
    /// connection's proxy (EventMachine's "busy target"; one source per
    /// target); `is_closed()` if this connection or `target` is closed or
    /// closing; `is_unsupported()` if `target` is a pipe's read end, or
    /// either is not a byte stream. Nothing changes on an error.
    ///
    /// ```
    /// # use em_core as em;
    /// use em::{Conn, Connection, UnbindReason};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::BytesCodec;
    ///
    /// /// The proxy's client side: forwards to a backend it connects to.
    /// struct Front { backend: em::Addr }
    /// impl Connection for Front {
    ///     type Codec = BytesCodec;
    ///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
    ///     fn post_init(&mut self, conn: &Conn<BytesCodec>) {
    ///         let back = em::connect(&self.backend, Back(conn.clone())).expect("connect");
    ///         conn.proxy_incoming_to(&back, 1 << 20).expect("proxy to the backend");
    ///     }
    ///     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    /// }
    ///
    /// /// The proxy's backend side: forwards the replies to the client.
    /// struct Back(Conn<BytesCodec>);
    /// impl Connection for Back {
    ///     type Codec = BytesCodec;
    ///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
    ///     fn post_init(&mut self, conn: &Conn<BytesCodec>) {
    ///         conn.proxy_incoming_to(&self.0, 1 << 20).expect("proxy to the client");
    ///     }
    ///     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    ///     fn unbind(&mut self, _: &Conn<BytesCodec>, _: UnbindReason) {
    ///         self.0.close_connection_after_writing();
    ///     }
    /// }
    ///
    /// /// A client of the proxy: sends a line, stops at the echo.
    /// struct Hello;
    /// impl Connection for Hello {
    ///     type Codec = BytesCodec;
    ///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
    ///     fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
    ///         conn.send_data(bytes::Bytes::from_static(b"hello"));
    ///     }
    ///     fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
    ///         assert_eq!(&data[..], b"hello");
    ///         em::stop();
    ///     }
    /// }
    ///
    /// em::run(|| -> em::Result<()> {
    ///     let echo = em::start_server("127.0.0.1:0", em::handler(|c, d| c.send_data(d)))?;
    ///     let backend = echo.local_addr();
    ///     let proxy = em::start_server("127.0.0.1:0", move || Front {
    ///         backend: backend.clone(),
    ///     })?;
    ///     em::connect(proxy.local_addr(), Hello)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn proxy_incoming_to<T: 'static>(&self, target: &Conn<T>, bufsize: usize) -> Result<()> {
        start("proxy_incoming_to", self, target, bufsize, None)
    }

    /// [`proxy_incoming_to`](Conn::proxy_incoming_to) for `length` bytes
    /// only (EventMachine's `enable_proxy` with a length): once exactly
    /// `length` bytes have gone to `target`, the proxy stops,
    /// [`proxy_completed`](crate::Connection::proxy_completed) runs, and
    /// the bytes after them go to `receive_data` (through a fresh codec).
    /// `length == 0` means no limit, as in EventMachine. The same errors.
    pub fn proxy_incoming_to_with_length<T: 'static>(
        &self,
        target: &Conn<T>,
        bufsize: usize,
        length: u64,
    ) -> Result<()> {
        let length = (length > 0).then_some(length);
        start("proxy_incoming_to", self, target, bufsize, length)
    }

    /// Stops the proxy from this connection (EventMachine's
    /// `stop_proxying`): input goes to `receive_data` again, through a
    /// fresh codec, and the target is free for another source. Bytes
    /// already handed to the target still leave, in order. No
    /// `proxy_completed` runs. A no-op when not proxying.
    pub fn stop_proxying(&self) {
        let state = self.state();
        if let Some(link) = link(state) {
            unlink(state, &link);
            tracing::debug!(source = %state.id, proxied = link.proxied.get(), "proxy stopped");
            state.wake_again();
        }
    }

    /// Whether this connection's input is proxied now.
    pub fn is_proxying(&self) -> bool {
        link(self.state()).is_some()
    }

    /// The bytes the current proxy from this connection moved to its
    /// target, or the last one once it ended (EventMachine's
    /// `get_proxied_bytes`): exact, whichever way they moved; back to
    /// zero when a proxy starts. Readable in `unbind`. 0 if it never
    /// proxied.
    pub fn proxied_bytes(&self) -> u64 {
        self.state().peek_proxy(|p| {
            p.map_or(0, |p| {
                p.link
                    .as_ref()
                    .map_or(p.last_proxied, |link| link.proxied.get())
            })
        })
    }
}

/// EventMachine's `EM.enable_proxy(from, to, bufsize, length)`: proxies
/// `from`'s input to `to`, `length` bytes of it (0: all of it). The same as
/// [`from.proxy_incoming_to_with_length(to, bufsize, length)`](Conn::proxy_incoming_to_with_length),
/// with the same errors.
pub fn enable_proxy<A: 'static, B: 'static>(
    from: &Conn<A>,
    to: &Conn<B>,
    bufsize: usize,
    length: u64,
) -> Result<()> {
    let length = (length > 0).then_some(length);
    start("enable_proxy", from, to, bufsize, length)
}

/// EventMachine's `EM.disable_proxy(from)`: the same as
/// [`from.stop_proxying()`](Conn::stop_proxying).
pub fn disable_proxy<A: 'static>(from: &Conn<A>) {
    from.stop_proxying();
}
