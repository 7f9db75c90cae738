//! [`ProxyServer`], the handle of a running proxy or router: its address,
//! its counters, stopping, draining, and the signals that do both.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use em_core::{Addr, Conn, ConnectionId, Signal};
use tokio_util::codec::BytesCodec;

use crate::error::{Error, Result};
use crate::stats::{Counters, Stats};

/// Which way a spliced (or core-copied) relay moves bytes, for the
/// counters: em counts them on the source connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// Client to backend.
    In,
    /// Backend to client.
    Out,
}

/// What the sessions of one server share: counters, the open-session
/// count, the relays in flight and whoever waits for a drain.
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    server: OnceCell<em_core::Server>,
    open: Cell<u64>,
    /// Connections whose input em relays on its own (`proxy_incoming_to`):
    /// their bytes are read from them live and added to the totals when
    /// they end.
    relays: RefCell<HashMap<ConnectionId, (Conn<BytesCodec>, Way)>>,
    drained: RefCell<Vec<Box<dyn FnOnce()>>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("open", &self.open.get())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new() -> Rc<Shared> {
        Rc::new(Shared {
            counters: Counters::default(),
            server: OnceCell::new(),
            open: Cell::new(0),
            relays: RefCell::new(HashMap::new()),
            drained: RefCell::new(Vec::new()),
        })
    }

    /// A client session began.
    pub(crate) fn session_opened(&self) {
        self.open.set(self.open.get() + 1);
        crate::stats::add(&self.counters.clients_accepted, 1);
    }

    /// A client session ended: runs the drain waiters once none is open.
    pub(crate) fn session_closed(&self) {
        self.open.set(self.open.get().saturating_sub(1));
        self.check_drained();
    }

    fn check_drained(&self) {
        if self.open.get() == 0 {
            let waiters = std::mem::take(&mut *self.drained.borrow_mut());
            for waiter in waiters {
                waiter();
            }
        }
    }

    /// `conn`'s input is relayed by em now, `way`.
    pub(crate) fn relay_started(&self, conn: &Conn<BytesCodec>, way: Way) {
        self.relays
            .borrow_mut()
            .insert(conn.id(), (conn.clone(), way));
    }

    /// `conn` ended: its relayed bytes go to the totals.
    pub(crate) fn relay_ended(&self, conn: &Conn<BytesCodec>) {
        if let Some((conn, way)) = self.relays.borrow_mut().remove(&conn.id()) {
            self.count_relayed(conn.proxied_bytes(), way);
        }
    }

    fn count_relayed(&self, n: u64, way: Way) {
        let c = &self.counters;
        match way {
            Way::In => crate::stats::add(&c.bytes_from_clients, n),
            Way::Out => crate::stats::add(&c.bytes_to_clients, n),
        }
    }

    fn stats(&self) -> Stats {
        let mut stats = self.counters.snapshot();
        stats.clients_open = self.open.get();
        for (conn, way) in self.relays.borrow().values() {
            let n = conn.proxied_bytes();
            match way {
                Way::In => stats.bytes_from_clients += n,
                Way::Out => stats.bytes_to_clients += n,
            }
        }
        stats
    }
}

/// A running proxy ([`Proxy`](crate::Proxy), [`Duplex`](crate::Duplex)) or
/// router ([`Router`](crate::Router)): its address and counters, and the
/// ways it stops. A reactor-thread handle (`!Send`), cheap to clone; the
/// server runs until stopped whether or not a handle is kept.
#[derive(Clone)]
pub struct ProxyServer {
    shared: Rc<Shared>,
}

impl fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyServer")
            .field(
                "local_addr",
                &self.shared.server.get().map(|s| s.local_addr()),
            )
            .field("open_sessions", &self.open_sessions())
            .finish()
    }
}

impl ProxyServer {
    pub(crate) fn new(shared: Rc<Shared>, server: em_core::Server) -> Self {
        let _ = shared.server.set(server);
        ProxyServer { shared }
    }

    fn server(&self) -> &em_core::Server {
        self.shared.server.get().expect("set when started")
    }

    /// The address it listens on (the port chosen, for port 0).
    pub fn local_addr(&self) -> Addr {
        self.server().local_addr()
    }

    /// Stops accepting: new connects are refused at once; open sessions
    /// carry on. Idempotent. Reactor thread.
    pub fn stop(&self) {
        self.server().stop();
    }

    /// Whether it stopped accepting ([`stop`](ProxyServer::stop),
    /// [`drain`](ProxyServer::drain), or the reactor stopped).
    pub fn is_stopped(&self) -> bool {
        self.server().is_stopped()
    }

    /// The client sessions open now.
    pub fn open_sessions(&self) -> u64 {
        self.shared.open.get()
    }

    /// Its counters now, relayed bytes included. Reactor thread.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Drains gracefully (ProxyMachine's SIGQUIT): stops accepting, then
    /// runs `done` on the reactor thread once no session is open (at once,
    /// from here, if none is). Sessions are not hurried: a drain waits as
    /// long as they last.
    pub fn drain(&self, done: impl FnOnce() + 'static) {
        self.stop();
        self.shared.drained.borrow_mut().push(Box::new(done));
        self.shared.check_drained();
    }

    /// Traps the signals a proxy daemon answers (ProxyMachine's, with
    /// [`em_core::trap`]): **SIGQUIT** drains (stop accepting, wait for
    /// every open session, then stop the reactor); **SIGTERM** and
    /// **SIGINT** drain too, but stop the reactor after `grace` at the
    /// latest (ProxyMachine waits 10 s), and a second SIGTERM or SIGINT
    /// stops it at once. Stopping the reactor ends the sessions left.
    /// Reactor thread; the handlers are installed when this returns.
    ///
    /// Errors where no reactor runs or a handler cannot be installed.
    pub fn stop_on_signals(&self, grace: Duration) -> Result<()> {
        let this = self.clone();
        em_core::trap(Signal::QUIT, move || {
            tracing::info!(
                open = this.open_sessions(),
                "SIGQUIT: draining (no new connections; waiting for open sessions)"
            );
            this.drain(em_core::stop);
        })
        .map_err(|e| Error::em("stop_on_signals", e))?;
        let stopping = Rc::new(Cell::new(false));
        for signal in [Signal::TERM, Signal::INT] {
            let this = self.clone();
            let stopping = stopping.clone();
            em_core::trap(signal, move || {
                if stopping.replace(true) {
                    tracing::info!(%signal, "second signal: stopping now");
                    em_core::stop();
                    return;
                }
                tracing::info!(
                    %signal,
                    open = this.open_sessions(),
                    grace_s = grace.as_secs_f64(),
                    "stopping (no new connections; open sessions get the grace period)"
                );
                this.drain(em_core::stop);
                if let Err(e) = em_timers::add_timer(grace, em_core::stop) {
                    tracing::warn!(error = %e, "no grace timer; stopping now");
                    em_core::stop();
                }
            })
            .map_err(|e| Error::em("stop_on_signals", e))?;
        }
        Ok(())
    }
}
