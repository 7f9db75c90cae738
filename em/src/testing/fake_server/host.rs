//! Where a fake server runs: its reactor (its own, or the test's), the
//! signal that stops it, and the connections it must close when stopped.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::mpsc;

use bytes::BytesMut;
use em_core::{Conn, Handler, Server, UnbindReason};
use tokio::sync::oneshot;

use crate::testing::{TestReactor, ANSWER_LIMIT};

/// The test-thread side of a running fake: dropping it stops the fake
/// (the reactor side hears the stop signal, stops, and drops its
/// [`StopSignal`], which the drop waits for), then the reactor if the fake
/// owns one.
pub(super) struct Host {
    stop: Option<oneshot::Sender<()>>,
    stopped: mpsc::Receiver<()>,
    own: Option<TestReactor>,
}

/// The reactor side of the stop: [`wait`](StopSignal::wait) resolves when
/// the fake's [`Host`] is dropped; dropping the signal, once the fake has
/// stopped, tells the host so.
pub(super) struct StopSignal {
    signal: oneshot::Receiver<()>,
    // Never sent on: its drop is the message.
    _stopped: mpsc::Sender<()>,
}

impl StopSignal {
    /// Resolves when the host is dropped.
    pub(super) async fn wait(&mut self) {
        // A dropped sender is the signal.
        let _ = (&mut self.signal).await;
    }
}

impl Host {
    /// Runs `setup` on `reactor` (or on a new [`TestReactor`] the host then
    /// owns), giving it the stop signal, and returns the host with what
    /// `setup` returned. Test thread. Panics if `setup` fails (the fake
    /// cannot listen), with its error.
    pub(super) fn launch<T, F>(what: &str, reactor: Option<&TestReactor>, setup: F) -> (Host, T)
    where
        F: FnOnce(StopSignal) -> em_core::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (stop, signal) = oneshot::channel();
        let (stopped_tx, stopped) = mpsc::channel();
        let signal = StopSignal {
            signal,
            _stopped: stopped_tx,
        };
        let own = match reactor {
            Some(_) => None,
            None => Some(TestReactor::start()),
        };
        let reactor = reactor.or(own.as_ref()).expect("a reactor, given or owned");
        let value = reactor
            .block_on(move || setup(signal))
            .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
        let host = Host {
            stop: Some(stop),
            stopped,
            own,
        };
        (host, value)
    }
}

impl Drop for Host {
    /// Stops the fake and waits (up to [`ANSWER_LIMIT`]) until it has: its
    /// listener is closed and its connections asked to close when this
    /// returns. A reactor that stopped first stopped the fake with it.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Err(mpsc::RecvTimeoutError::Timeout) = self.stopped.recv_timeout(ANSWER_LIMIT) {
            tracing::warn!("fake server: no answer from its reactor to the stop");
        }
        // `own`, if any, drops next: TestReactor's Drop stops the reactor
        // and fails the test on a panic it contained.
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("own_reactor", &self.own.is_some())
            .finish()
    }
}

/// The connections a fake accepted and has not seen end; reactor thread.
pub(super) type Conns = Rc<RefCell<Vec<Conn>>>;

/// Spawns, on the reactor thread, the task that holds `server` until the
/// stop signal, then stops it and closes every connection in `conns`.
pub(super) fn hold_until_stopped(
    mut signal: StopSignal,
    server: Server,
    conns: Conns,
) -> em_core::Result<()> {
    em_core::spawn(async move {
        signal.wait().await;
        server.stop();
        let open: Vec<Conn> = conns.borrow_mut().drain(..).collect();
        for conn in open {
            conn.close_connection();
        }
        drop(signal);
    })?;
    Ok(())
}

/// A handler that registers its connection in a [`Conns`] list (so that a
/// stop can close it) and passes every callback on to `inner`. Reactor
/// thread.
pub(super) struct Tracked<H> {
    pub(super) conns: Conns,
    pub(super) inner: H,
}

impl<H: Handler> Handler for Tracked<H> {
    fn post_init(&mut self, conn: &Conn) {
        {
            let mut conns = self.conns.borrow_mut();
            conns.retain(|c| !c.is_closed());
            conns.push(conn.clone());
        }
        self.inner.post_init(conn)
    }

    fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
        self.inner.receive_data(conn, data)
    }

    fn outbound_drained(&mut self, conn: &Conn) {
        self.inner.outbound_drained(conn)
    }

    fn unbind(&mut self, conn: &Conn, reason: UnbindReason) {
        self.conns.borrow_mut().retain(|c| c.id() != conn.id());
        self.inner.unbind(conn, reason)
    }
}
