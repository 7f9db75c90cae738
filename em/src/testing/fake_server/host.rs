//! Where a fake server runs: its reactor (its own, or the test's), the
//! signal that stops it, and the connections it must close when stopped.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use bytes::BytesMut;
use em_core::{Conn, Handler, Server, UnbindReason};
use tokio::sync::oneshot;

use crate::testing::TestReactor;

/// The test-thread side of a running fake: dropping it stops the fake
/// (the reactor side hears the stop signal), then the reactor if the fake
/// owns one.
pub(super) struct Host {
    // Dropped first: the signal is on its way before the reactor stops.
    stop: Option<oneshot::Sender<()>>,
    own: Option<TestReactor>,
}

/// The reactor side's end of the stop signal: resolves when the fake's
/// [`Host`] is dropped.
pub(super) type StopSignal = oneshot::Receiver<()>;

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
            own,
        };
        (host, value)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        drop(self.stop.take());
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
    signal: StopSignal,
    server: Server,
    conns: Conns,
) -> em_core::Result<()> {
    em_core::spawn(async move {
        // A dropped sender is the signal too.
        let _ = signal.await;
        server.stop();
        let open: Vec<Conn> = conns.borrow_mut().drain(..).collect();
        for conn in open {
            conn.close_connection();
        }
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
