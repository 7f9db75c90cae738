//! One connection to Redis that stays up: connect, and after every end
//! reconnect with a back-off, telling the session above (commands, or
//! subscriptions) when it is up and when it went down.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use em_core::{Backoff, Conn, Connection, Endpoint, UnbindReason};

use crate::codec::{Frame, RespCodec};
use crate::options::Options;

/// A listener for the connection coming up.
type OnUp = Box<dyn FnMut()>;
/// A listener for the connection going down, with the reason.
type OnDown = Box<dyn FnMut(&str)>;

/// What runs over a [`Link`]: the command client or the subscriber.
pub(crate) trait Session: 'static {
    /// The connection is up (first time or again): send what must be sent
    /// first (resubscribe).
    fn up(&self, conn: &Conn<RespCodec>);
    /// A frame arrived.
    fn frame(&self, conn: &Conn<RespCodec>, frame: Frame);
    /// Nothing is waiting for the server: once the program has dropped its
    /// last handle, the connection may close.
    fn idle(&self) -> bool;
    /// The connection is down: fail what waits on it.
    fn down(&self, why: &str);
}

/// Where the link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The first connect is in progress: output is queued by em until it
    /// completes.
    Connecting,
    /// Connected.
    Up,
    /// Down, waiting for the next reconnect (or connecting again).
    Reconnecting,
    /// Closed for good (by the program, or the reactor stopped).
    Closed,
}

pub(crate) struct Link<S> {
    endpoint: Endpoint,
    phase: Cell<Phase>,
    conn: RefCell<Option<Conn<RespCodec>>>,
    backoff: RefCell<Backoff>,
    reconnects: Cell<u64>,
    max_reply: usize,
    on_up: RefCell<Vec<OnUp>>,
    on_down: RefCell<Vec<OnDown>>,
    /// The program dropped its last handle: close once idle.
    released: Cell<bool>,
    /// Connected now (a close for good keeps it until the unbind).
    up: Cell<bool>,
    pub(crate) session: S,
}

/// The program's handle on a [`Link`] (inside `Client`, `Subscriber`):
/// when the last one is dropped, the connection closes once nothing waits
/// on the server any more (replies due still come, and their callbacks
/// run), and stops reconnecting.
pub(crate) struct Owner<S: Session>(pub(crate) Rc<Link<S>>);

impl<S: Session> Drop for Owner<S> {
    fn drop(&mut self) {
        self.0.released.set(true);
        self.0.close_if_idle();
    }
}

impl<S: Session> std::ops::Deref for Owner<S> {
    type Target = Link<S>;
    fn deref(&self) -> &Link<S> {
        &self.0
    }
}

impl<S: Session> Link<S> {
    /// Starts connecting; reactor thread.
    pub(crate) fn start(
        endpoint: Endpoint,
        options: &Options,
        session: S,
    ) -> em_core::Result<Rc<Link<S>>> {
        let link = Rc::new(Link {
            endpoint: endpoint.clone(),
            phase: Cell::new(Phase::Connecting),
            conn: RefCell::new(None),
            backoff: RefCell::new(Backoff::new(options.reconnect_min, options.reconnect_max)),
            reconnects: Cell::new(0),
            max_reply: options.max_reply,
            on_up: RefCell::new(Vec::new()),
            on_down: RefCell::new(Vec::new()),
            released: Cell::new(false),
            up: Cell::new(false),
            session,
        });
        let conn = em_core::connect(endpoint, LinkConn { link: link.clone() })?;
        *link.conn.borrow_mut() = Some(conn);
        Ok(link)
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// The connection, when output sent now will reach the server (up, or
    /// the first connect in progress).
    pub(crate) fn writable(&self) -> Option<Conn<RespCodec>> {
        match self.phase.get() {
            Phase::Connecting | Phase::Up => self.conn.borrow().clone(),
            Phase::Reconnecting | Phase::Closed => None,
        }
    }

    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects.get()
    }

    /// Calls `f` each time the connection comes up.
    pub(crate) fn on_up(&self, f: impl FnMut() + 'static) {
        self.on_up.borrow_mut().push(Box::new(f));
    }

    /// Calls `f` with the reason each time the connection goes down.
    pub(crate) fn on_down(&self, f: impl FnMut(&str) + 'static) {
        self.on_down.borrow_mut().push(Box::new(f));
    }

    fn notify_up(&self) {
        let mut listeners = std::mem::take(&mut *self.on_up.borrow_mut());
        for f in &mut listeners {
            f();
        }
        let mut slot = self.on_up.borrow_mut();
        listeners.append(&mut slot);
        *slot = listeners;
    }

    fn notify_down(&self, why: &str) {
        let mut listeners = std::mem::take(&mut *self.on_down.borrow_mut());
        for f in &mut listeners {
            f(why);
        }
        let mut slot = self.on_down.borrow_mut();
        listeners.append(&mut slot);
        *slot = listeners;
    }

    fn close_if_idle(&self) {
        if self.released.get() && self.session.idle() {
            self.close();
        }
    }

    /// Closes for good: no reconnect.
    pub(crate) fn close(&self) {
        self.phase.set(Phase::Closed);
        if let Some(conn) = self.conn.borrow().as_ref() {
            conn.close_connection_after_writing();
        }
    }
}

/// The em handler under a [`Link`].
struct LinkConn<S> {
    link: Rc<Link<S>>,
}

impl<S: Session> Connection for LinkConn<S> {
    type Codec = RespCodec;

    fn codec(&self) -> RespCodec {
        RespCodec::new(self.link.max_reply)
    }

    fn connection_completed(&mut self, conn: &Conn<RespCodec>) {
        let link = &self.link;
        if link.phase.get() == Phase::Closed {
            // Closed while connecting: `close` armed a close after writing,
            // so what was queued goes out first.
            return;
        }
        tracing::debug!(conn = %conn.id(), peer = ?conn.peer_addr(), "redis: connected");
        link.phase.set(Phase::Up);
        link.up.set(true);
        link.backoff.borrow_mut().reset();
        link.session.up(conn);
        link.notify_up();
    }

    fn receive_data(&mut self, conn: &Conn<RespCodec>, frame: Frame) {
        self.link.session.frame(conn, frame);
        self.link.close_if_idle();
    }

    fn unbind(&mut self, conn: &Conn<RespCodec>, reason: UnbindReason) {
        let link = &self.link;
        let why = reason.to_string();
        let was_up = link.up.replace(false);
        let stopping = matches!(reason, UnbindReason::ReactorStopped);
        let for_good = link.phase.get() == Phase::Closed || link.released.get() || stopping;
        // The phase first: the callbacks below see the link down.
        link.phase.set(if for_good {
            Phase::Closed
        } else {
            Phase::Reconnecting
        });
        link.session.down(&why);
        if was_up {
            link.notify_down(&why);
        }
        // A callback above may have closed it, or dropped the last handle.
        if for_good || link.phase.get() == Phase::Closed || link.released.get() {
            link.phase.set(Phase::Closed);
            return;
        }
        let delay: Duration = link.backoff.borrow_mut().next_delay();
        tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), reason = %why, retry_in = ?delay,
            "redis: connection lost; reconnecting");
        link.reconnects.set(link.reconnects.get() + 1);
        if let Err(e) = conn.reconnect_after(delay, link.endpoint.clone()) {
            tracing::warn!(conn = %conn.id(), error = %e, "redis: cannot reconnect");
            link.phase.set(Phase::Closed);
        }
    }
}
