//! One client connection: em's handler for it, and the state its
//! requests share (the exchanges in flight, oldest first; whether it may
//! be reused; what ended it). Responses are matched to requests in order,
//! which is what makes pipelining work. Reactor thread only.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use em_core::{Conn, Connection, UnbindReason};

use crate::client::error::{ClientError, ClientErrorKind, ClientResult};
use crate::client::exchange::Exchange;
use crate::client::pool::{Origin, Pool, PoolKey};
use crate::codec::body::BodyLength;
use crate::codec::client::{ClientCodec, ClientFrame, RequestOut};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Resolving is done; the TCP connect runs.
    Connecting,
    /// Connected; the TLS handshake runs.
    Handshaking,
    /// Ready for requests.
    Open,
    Closed,
}

/// What a connection's requests, its pool and its handler share.
pub(crate) struct ConnShared {
    conn: OnceCell<Conn<ClientCodec>>,
    pub(crate) key: PoolKey,
    pool: Weak<Pool>,
    st: RefCell<State>,
    /// Being set up (a proxy's tunnel answered): not yet idle when no
    /// request is in flight.
    in_setup: Cell<bool>,
    /// In its client's pool: kept when idle (otherwise closed).
    pooled: Cell<bool>,
    /// Requests that will use it once it is set up: the one opening it
    /// and those waiting to be pipelined on it.
    reserved: Cell<usize>,
    /// On its pool's list of idle connections (the pool's to keep).
    pub(crate) listed_idle: Cell<bool>,
    /// Its origin's lists in the pool, once it joins them (the pool's to
    /// set): the pool finds them from here without hashing its key.
    pub(crate) origin: RefCell<Weak<Origin>>,
}

struct State {
    phase: Phase,
    /// Why the connection ended (for whoever waits on it), or the error
    /// the client chose before closing it (a timeout of its own).
    failure: Option<(ClientErrorKind, String)>,
    /// The task establishing the connection, or one waiting for output
    /// to drain.
    waiter: Option<Waker>,
    /// Requests waiting for the setup to end, to be pipelined on it.
    setup_waiters: Vec<Waker>,
    in_flight: VecDeque<Rc<Exchange>>,
    /// The connection may carry another request after the current ones.
    reusable: bool,
    /// A request's body is being written over time: nothing may be
    /// pipelined behind it.
    writing_body: bool,
    paused: bool,
}

impl std::fmt::Debug for ConnShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.st.borrow();
        f.debug_struct("ConnShared")
            .field("key", &self.key)
            .field("phase", &st.phase)
            .field("in_flight", &st.in_flight.len())
            .finish()
    }
}

impl ConnShared {
    pub(crate) fn new(key: PoolKey, pool: Weak<Pool>) -> Rc<ConnShared> {
        Rc::new(ConnShared {
            conn: OnceCell::new(),
            key,
            pool,
            st: RefCell::new(State {
                phase: Phase::Connecting,
                failure: None,
                waiter: None,
                setup_waiters: Vec::new(),
                in_flight: VecDeque::new(),
                reusable: true,
                writing_body: false,
                paused: false,
            }),
            in_setup: Cell::new(true),
            pooled: Cell::new(false),
            reserved: Cell::new(1),
            listed_idle: Cell::new(false),
            origin: RefCell::new(Weak::new()),
        })
    }

    pub(crate) fn set_conn(&self, conn: Conn<ClientCodec>) {
        let _ = self.conn.set(conn);
    }

    pub(crate) fn conn(&self) -> Option<&Conn<ClientCodec>> {
        self.conn.get()
    }

    /// The setup is over: the connection carries requests now, in the
    /// pool (`pooled`) or for one request.
    pub(crate) fn set_up(&self, pooled: bool) {
        self.in_setup.set(false);
        self.pooled.set(pooled);
        self.reserved.set(self.reserved.get().saturating_sub(1));
        Self::wake_setup_waiters(&mut self.st.borrow_mut());
    }

    /// Still being set up, and promised to `at_most` requests or fewer:
    /// another pipelinable request may wait for it
    /// ([`join_setup`](Self::join_setup)) rather than open a connection of
    /// its own.
    pub(crate) fn joinable(&self, at_most: usize) -> bool {
        self.in_setup.get()
            && self.st.borrow().phase != Phase::Closed
            && self.reserved.get() <= at_most
    }

    /// Waits, as one of its reserved requests, until the setup is over;
    /// the error that ended the connection if it failed.
    pub(crate) async fn join_setup(&self) -> ClientResult<()> {
        struct Unreserve<'a>(&'a Cell<usize>);
        impl Drop for Unreserve<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get().saturating_sub(1));
            }
        }
        self.reserved.set(self.reserved.get() + 1);
        let _unreserve = Unreserve(&self.reserved);
        poll_fn(|cx| {
            let mut st = self.st.borrow_mut();
            if st.phase == Phase::Closed || st.failure.is_some() {
                drop(st);
                return Poll::Ready(Err(self.failure()));
            }
            if !self.in_setup.get() {
                return Poll::Ready(Ok(()));
            }
            st.setup_waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    fn wake_setup_waiters(st: &mut State) {
        for w in st.setup_waiters.drain(..) {
            w.wake();
        }
    }

    /// Open and set up (a connection still being set up is neither open
    /// nor idle to its pool).
    pub(crate) fn is_open(&self) -> bool {
        self.st.borrow().phase == Phase::Open && !self.in_setup.get()
    }

    /// Open, set up, reusable and carrying `at_most` requests or fewer, with no
    /// body being written.
    pub(crate) fn available(&self, at_most: usize) -> bool {
        let st = self.st.borrow();
        st.phase == Phase::Open
            && !self.in_setup.get()
            && st.reusable
            && !st.writing_body
            && st.in_flight.len() <= at_most
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.st.borrow().in_flight.len()
    }

    fn wake(st: &mut State) {
        if let Some(w) = st.waiter.take() {
            w.wake();
        }
    }

    /// The error that ended the connection, for one of its waiters.
    fn failure(&self) -> ClientError {
        let st = self.st.borrow();
        let (kind, detail) = st
            .failure
            .clone()
            .unwrap_or((ClientErrorKind::Closed, String::new()));
        ClientError::new(kind, detail)
    }

    /// Waits until the connect (or the TLS handshake) is done.
    pub(crate) async fn ready(&self) -> ClientResult<()> {
        poll_fn(|cx| {
            let mut st = self.st.borrow_mut();
            match st.phase {
                Phase::Open => Poll::Ready(Ok(())),
                Phase::Closed => {
                    drop(st);
                    Poll::Ready(Err(self.failure()))
                }
                Phase::Connecting | Phase::Handshaking => {
                    st.waiter = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Starts TLS on the open connection; [`ready`](Self::ready) waits for
    /// the handshake.
    pub(crate) fn start_tls(&self, options: &em_core::TlsOptions) -> ClientResult<()> {
        let conn = self.conn().expect("a connection is set before it is used");
        conn.start_tls(options)
            .map_err(|e| ClientError::new(ClientErrorKind::Tls, e.to_string()))?;
        self.st.borrow_mut().phase = Phase::Handshaking;
        Ok(())
    }

    /// Writes a request whose response `exchange` will receive.
    pub(crate) fn send(&self, exchange: Rc<Exchange>, out: RequestOut<'_>) -> ClientResult<()> {
        let conn = self.conn().expect("a connection is set before it is used");
        {
            let mut st = self.st.borrow_mut();
            if st.phase != Phase::Open {
                drop(st);
                return Err(self.failure());
            }
            st.in_flight.push_back(exchange);
        }
        conn.send_data(out);
        Ok(())
    }

    /// Writes more of a request's body.
    pub(crate) fn send_body(&self, out: RequestOut<'_>) -> ClientResult<()> {
        let conn = self.conn().expect("a connection is set before it is used");
        if conn.is_closed() {
            return Err(self.failure());
        }
        conn.send_data(out);
        Ok(())
    }

    /// Marks a body as being written over time (nothing is pipelined
    /// behind it) or done.
    pub(crate) fn set_writing_body(&self, on: bool) {
        self.st.borrow_mut().writing_body = on;
    }

    /// Waits until the output queued is below the low watermark (a body
    /// writer's backpressure).
    pub(crate) async fn drained(&self) -> ClientResult<()> {
        poll_fn(|cx| {
            let Some(conn) = self.conn() else {
                return Poll::Ready(Ok(()));
            };
            if conn.is_closed() {
                return Poll::Ready(Err(self.failure()));
            }
            if !conn.is_above_high_watermark() {
                return Poll::Ready(Ok(()));
            }
            self.st.borrow_mut().waiter = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    pub(crate) fn set_inactivity_timeout(&self, timeout: Duration) {
        if let Some(conn) = self.conn() {
            conn.set_comm_inactivity_timeout(timeout);
        }
    }

    /// Closes the connection; its exchanges fail with `kind`. It leaves
    /// its pool at once, so that no request picks it while it closes.
    pub(crate) fn close_with(&self, kind: ClientErrorKind, detail: impl Into<String>) {
        {
            let mut st = self.st.borrow_mut();
            if st.phase == Phase::Closed {
                return;
            }
            if st.failure.is_none() {
                st.failure = Some((kind, detail.into()));
            }
            st.reusable = false;
            Self::wake_setup_waiters(&mut st);
        }
        if let Some(pool) = self.pool.upgrade() {
            pool.remove(self);
        }
        if let Some(conn) = self.conn() {
            conn.close_connection();
        }
    }

    /// A reader took buffered body bytes: reading resumes if it paused.
    pub(crate) fn reader_caught_up(&self) {
        let mut st = self.st.borrow_mut();
        if st.paused {
            st.paused = false;
            drop(st);
            if let Some(conn) = self.conn() {
                conn.resume();
            }
        }
    }

    /// An exchange's reader went away before its response ended.
    pub(crate) fn abandoned(&self, exchange: &Rc<Exchange>) {
        let others = {
            let st = self.st.borrow();
            st.in_flight.iter().any(|e| !Rc::ptr_eq(e, exchange))
        };
        if others {
            // Requests are pipelined behind it: read its response and
            // drop it, so that theirs follow.
            self.reader_caught_up();
        } else {
            self.close_with(ClientErrorKind::Closed, "the response was dropped");
        }
    }

    // Events from em.

    /// The socket was connected before em got it (attached after a SOCKS5
    /// handshake): ready at once.
    #[cfg(feature = "socks")]
    pub(crate) fn attached(&self) {
        let mut st = self.st.borrow_mut();
        if st.phase == Phase::Connecting {
            st.phase = Phase::Open;
        }
    }

    fn on_connected(&self) {
        let mut st = self.st.borrow_mut();
        if st.phase == Phase::Connecting {
            st.phase = Phase::Open;
        }
        Self::wake(&mut st);
    }

    fn on_handshake(&self) {
        let mut st = self.st.borrow_mut();
        st.phase = Phase::Open;
        Self::wake(&mut st);
    }

    fn on_drained(&self) {
        let mut st = self.st.borrow_mut();
        Self::wake(&mut st);
    }

    fn on_frame(self: &Rc<Self>, conn: &Conn<ClientCodec>, frame: ClientFrame) {
        let front = self.st.borrow().in_flight.front().cloned();
        let Some(exchange) = front else {
            // The codec refuses bytes with no request waiting, so this is
            // its error for them.
            if let ClientFrame::Error(e) = frame {
                let (kind, detail) = frame_error(&e);
                self.close_with(kind, detail);
            }
            return;
        };
        match frame {
            ClientFrame::Head(head) => {
                let empty = head.body == BodyLength::Empty;
                if !head.keep_alive {
                    self.st.borrow_mut().reusable = false;
                }
                exchange.deliver_head(head);
                if empty {
                    exchange.deliver_end();
                    self.finish_front(conn);
                }
            }
            ClientFrame::Body(chunk) => {
                if exchange.deliver_chunk(chunk) {
                    let mut st = self.st.borrow_mut();
                    if !st.paused {
                        st.paused = true;
                        conn.pause();
                    }
                }
            }
            ClientFrame::BodyEnd => {
                exchange.deliver_end();
                self.finish_front(conn);
            }
            ClientFrame::Error(e) => {
                let (kind, detail) = frame_error(&e);
                self.close_with(kind, detail);
            }
        }
    }

    /// The oldest exchange's response is complete.
    fn finish_front(self: &Rc<Self>, conn: &Conn<ClientCodec>) {
        let (idle, reusable) = {
            let mut st = self.st.borrow_mut();
            st.in_flight.pop_front();
            if st.paused {
                // The pause held back this response's body; the next one
                // is read at its own reader's pace.
                st.paused = false;
                conn.resume();
            }
            (st.in_flight.is_empty(), st.reusable)
        };
        if !idle || self.in_setup.get() {
            return;
        }
        if !reusable {
            conn.close_connection();
            return;
        }
        let keep = self.pooled.get() && self.pool.upgrade().is_some_and(|pool| pool.idle(self));
        if !keep {
            self.st.borrow_mut().reusable = false;
            conn.close_connection();
        }
    }

    fn on_unbind(self: &Rc<Self>, reason: UnbindReason) {
        let (exchanges, kind, detail) = {
            let mut st = self.st.borrow_mut();
            let before = st.phase;
            st.phase = Phase::Closed;
            let (kind, detail) = st
                .failure
                .clone()
                .unwrap_or_else(|| describe(&reason, before));
            st.failure = Some((kind, detail.clone()));
            Self::wake(&mut st);
            Self::wake_setup_waiters(&mut st);
            (std::mem::take(&mut st.in_flight), kind, detail)
        };
        for exchange in exchanges {
            exchange.fail(ClientError::new(kind, detail.clone()));
        }
        if let Some(pool) = self.pool.upgrade() {
            pool.remove(self);
        }
    }
}

/// The error kind and detail a connection's end means for its requests.
fn describe(reason: &UnbindReason, phase: Phase) -> (ClientErrorKind, String) {
    match reason {
        UnbindReason::ConnectFailed(e) => (ClientErrorKind::Connect, e.to_string()),
        UnbindReason::ConnectTimeout => (ClientErrorKind::ConnectTimeout, String::new()),
        UnbindReason::Tls(e) => (ClientErrorKind::Tls, e.to_string()),
        UnbindReason::InactivityTimeout if phase == Phase::Open => {
            (ClientErrorKind::InactivityTimeout, String::new())
        }
        UnbindReason::InactivityTimeout => (ClientErrorKind::ConnectTimeout, String::new()),
        UnbindReason::Codec(e) => (ClientErrorKind::Protocol, e.to_string()),
        UnbindReason::PeerClosed => (ClientErrorKind::Closed, "the server closed it".into()),
        other => (ClientErrorKind::Closed, other.to_string()),
    }
}

/// The error kind and detail a codec error means for a response: the
/// connection ending inside a head or a body is [`ClientErrorKind::Closed`]
/// (the response was cut short, not malformed), anything else
/// [`ClientErrorKind::Protocol`]. The detail leaves out the codec's words
/// for its kind, which are the server's ("bad request", "request body
/// truncated") and would misname a response's fault.
fn frame_error(e: &crate::error::HttpError) -> (ClientErrorKind, String) {
    use crate::error::ErrorKind;
    let kind = match e.kind() {
        ErrorKind::Truncated => ClientErrorKind::Closed,
        _ => ClientErrorKind::Protocol,
    };
    let detail = if e.detail().is_empty() {
        e.to_string()
    } else {
        e.detail().to_owned()
    };
    (kind, detail)
}

/// em's handler of a client connection.
pub(crate) struct ClientConn {
    pub(crate) shared: Rc<ConnShared>,
    pub(crate) max_header_size: usize,
    pub(crate) max_headers: usize,
}

impl Connection for ClientConn {
    type Codec = ClientCodec;

    fn codec(&self) -> ClientCodec {
        ClientCodec::new(self.max_header_size, self.max_headers)
    }

    fn connection_completed(&mut self, _conn: &Conn<ClientCodec>) {
        self.shared.on_connected();
    }

    fn ssl_handshake_completed(&mut self, _conn: &Conn<ClientCodec>) {
        self.shared.on_handshake();
    }

    fn receive_data(&mut self, conn: &Conn<ClientCodec>, frame: ClientFrame) {
        self.shared.on_frame(conn, frame);
    }

    fn outbound_drained(&mut self, _conn: &Conn<ClientCodec>) {
        self.shared.on_drained();
    }

    fn unbind(&mut self, _conn: &Conn<ClientCodec>, reason: UnbindReason) {
        self.shared.on_unbind(reason);
    }
}
