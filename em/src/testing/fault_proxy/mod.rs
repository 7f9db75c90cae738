//! `FaultProxy`: a TCP proxy for tests that injects faults (Toxiproxy's
//! model) between the code under test and the server it talks to.
//!
//! The engine lives on the reactor thread: a [`Proxy`] (its server, its
//! toxics, its connections) kept in a per-thread registry, a
//! [`Link`](link::Link) per proxied connection, and a
//! [`Lane`](lane::Lane) per direction of each. [`FaultProxy`] is the
//! test thread's face: each call runs on the reactor and waits for it.

mod lane;
mod link;
mod toxic;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use em_core::{Endpoint, Server};

use super::reactor::{TestReactor, ANSWER_LIMIT};
use link::{ClientSide, Link};
pub use toxic::{Direction, Toxic, ToxicId};

/// Proxies and toxics, numbered process-wide.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The proxies running on this (reactor) thread, by id.
    static PROXIES: RefCell<HashMap<u64, Rc<Proxy>>> = RefCell::new(HashMap::new());
}

/// A TCP proxy for tests that injects faults: the code under test connects
/// to [`local_addr`](FaultProxy::local_addr) instead of its server, and the
/// test adds and removes [`Toxic`]s (latency, bandwidth, black holes,
/// resets, …) while connections are open (Toxiproxy's model, in process).
///
/// Each connection accepted gets its own connection to the upstream
/// address. With no toxic on a direction, bytes move as em's forwarding
/// proxy moves them (`proxy_incoming_to`, kernel to kernel with
/// `splice(2)` on Linux), at no extra cost; a toxic on a direction moves
/// that direction of every open and later connection to the reactor,
/// through the toxics in the order they were added, and back to the
/// kernel once its last toxic is removed. No byte is lost or reordered
/// across these switches. Reading from a sender holds while its receiver
/// is behind (above its high watermark) or 1 MiB waits in the toxics.
///
/// Closes travel as em's proxy carries them: when one side closes, the
/// other is closed once the bytes before the close have left (after the
/// toxics, on a toxic direction). There is no half-close: a peer that
/// shuts down its sending side ends the connection, as em's connections
/// close on the peer's end of stream.
///
/// `FaultProxy` is `Send`: create and drive it from the test's thread. Its
/// methods run on the reactor thread it was started on and return once
/// they took effect there. It stops on [`stop`](FaultProxy::stop) or when
/// dropped: it stops listening and closes the connections it proxies.
///
/// What it does is logged with `tracing` at debug level (connection ids,
/// peers, toxics on and off, closes and resets).
///
/// ```
/// use em::testing::{FaultProxy, TestReactor, Toxic};
/// use std::io::{Read, Write};
/// use std::time::{Duration, Instant};
///
/// // An echo server on a reactor of its own.
/// let server = TestReactor::start();
/// let echo = server.block_on(|| {
///     let echo = em::start_server("127.0.0.1:0", em::handler(|conn, data| conn.send_data(data)))
///         .unwrap();
///     echo.local_addr().inet().unwrap()
/// });
///
/// let proxy = FaultProxy::start(echo);
/// proxy.add_toxic(Toxic::latency(Duration::from_millis(50)));
///
/// let mut client = std::net::TcpStream::connect(proxy.local_addr())?;
/// let sent = Instant::now();
/// client.write_all(b"ping")?;
/// let mut reply = [0; 4];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"ping");
/// assert!(sent.elapsed() >= Duration::from_millis(50));
/// proxy.stop();
/// server.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FaultProxy {
    id: u64,
    handle: em_core::Handle,
    addr: SocketAddr,
    /// The reactor it started for itself ([`start`](FaultProxy::start)).
    own: Option<TestReactor>,
    stopped: bool,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (anything [`em::connect`](em_core::connect)
    /// takes: a `SocketAddr`, `"host:port"`, …) on a reactor thread of its
    /// own, listening on 127.0.0.1 with a port the kernel picks. Call from
    /// any thread but a reactor's. Panics if it cannot listen.
    pub fn start(upstream: impl Into<Endpoint>) -> FaultProxy {
        let reactor = TestReactor::start();
        let mut proxy = FaultProxy::start_on(&reactor, upstream);
        proxy.own = Some(reactor);
        proxy
    }

    /// Starts a proxy to `upstream` on `reactor`, listening on 127.0.0.1
    /// with a port the kernel picks: on a
    /// [paused](TestReactor::paused) reactor, the toxics' times are
    /// exact, moved by [`advance`](TestReactor::advance). Stop (or drop)
    /// it before the reactor. Call from any thread but `reactor`'s. Panics
    /// if it cannot listen.
    pub fn start_on(reactor: &TestReactor, upstream: impl Into<Endpoint>) -> FaultProxy {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        FaultProxy::try_start_on(reactor, listen, upstream)
            .unwrap_or_else(|e| panic!("FaultProxy: cannot listen on {listen}: {e}"))
    }

    /// [`start_on`](FaultProxy::start_on) listening on `listen` (any port,
    /// 0 for one the kernel picks). Call from any thread but `reactor`'s.
    /// Errors (an `em::Error`) if it cannot listen there.
    pub fn try_start_on(
        reactor: &TestReactor,
        listen: SocketAddr,
        upstream: impl Into<Endpoint>,
    ) -> em_core::Result<FaultProxy> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let upstream = upstream.into();
        let addr = reactor.block_on(move || -> em_core::Result<SocketAddr> {
            let proxy = Rc::new(Proxy {
                id,
                upstream,
                listen: Cell::new(listen),
                server: RefCell::new(None),
                toxics: RefCell::new(Vec::new()),
                links: RefCell::new(Vec::new()),
                seeds: Cell::new(id),
            });
            proxy.listen()?;
            PROXIES.with(|p| p.borrow_mut().insert(id, proxy.clone()));
            Ok(proxy.listen.get())
        })?;
        tracing::debug!(%addr, "fault proxy: listening");
        Ok(FaultProxy {
            id,
            handle: reactor.handle(),
            addr,
            own: None,
            stopped: false,
        })
    }

    /// The address the code under test connects to. The same while the
    /// proxy is [down](FaultProxy::set_down). Any thread.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds `toxic` on its direction of every connection, open and to
    /// come, after the toxics already there, and returns its id for
    /// [`remove_toxic`](FaultProxy::remove_toxic). Runs on the reactor;
    /// returns once it acts. Panics if the reactor has stopped.
    pub fn add_toxic(&self, toxic: Toxic) -> ToxicId {
        let id = ToxicId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        self.on_reactor(move |proxy| {
            proxy.toxics.borrow_mut().push((id, toxic.clone()));
            for link in proxy.live_links() {
                link.add_toxic(id, toxic.kind.clone(), toxic.direction);
            }
        });
        id
    }

    /// Removes toxic `id` from every connection: what it held moves on at
    /// once, in order; a direction left with no toxic goes back to the
    /// kernel's path. Whether the proxy had it. Runs on the reactor;
    /// returns once it acts. Panics if the reactor has stopped.
    pub fn remove_toxic(&self, id: ToxicId) -> bool {
        self.on_reactor(move |proxy| {
            let mut toxics = proxy.toxics.borrow_mut();
            let Some(i) = toxics.iter().position(|(t, _)| *t == id) else {
                return false;
            };
            let (_, toxic) = toxics.remove(i);
            drop(toxics);
            for link in proxy.live_links() {
                link.remove_toxic(id, toxic.direction);
            }
            true
        })
    }

    /// The bytes its toxics hold now, over every connection and both
    /// directions: bytes read from one side and not yet handed to the
    /// other (a latency's, a bandwidth limit's, a black hole's). A test
    /// waits for it to know that the proxy has the bytes before it moves a
    /// paused clock. Runs on the reactor. Panics if the reactor has
    /// stopped.
    pub fn held_bytes(&self) -> usize {
        self.on_reactor(|proxy| proxy.live_links().iter().map(|l| l.held_bytes()).sum())
    }

    /// Takes the proxy down (`true`: it stops listening, so connects are
    /// refused, and closes every connection it proxies) or up again
    /// (`false`: it listens again on the same address; its toxics still
    /// apply). Toxiproxy's `enabled`, inverted. Runs on the reactor;
    /// returns once it acts. Panics if the reactor has stopped, or if it
    /// cannot listen again.
    pub fn set_down(&self, down: bool) {
        self.on_reactor(move |proxy| {
            if down {
                proxy.down();
            } else if proxy.server.borrow().is_none() {
                if let Err(e) = proxy.listen() {
                    panic!("FaultProxy::set_down(false): cannot listen again: {e}");
                }
            }
        });
    }

    /// Stops the proxy: it stops listening and closes the connections it
    /// proxies, on the reactor, and returns once that is done; a reactor
    /// it started for itself stops too. Dropping it does the same. If the
    /// reactor has stopped already, there is nothing left to do.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let id = self.id;
        let (done, stopped) = mpsc::channel();
        // The reactor may have stopped first: then there is nothing to do.
        let scheduled = self.handle.schedule(move || {
            if let Some(proxy) = PROXIES.with(|p| p.borrow_mut().remove(&id)) {
                proxy.down();
            }
            let _ = done.send(());
        });
        if scheduled.is_ok() {
            // Not listening any more once this returns (or the reactor
            // stopped meanwhile).
            let _ = stopped.recv_timeout(ANSWER_LIMIT);
        }
        if let Some(reactor) = self.own.take() {
            drop(reactor);
        }
    }

    /// Runs `f` on the reactor with the proxy, and returns its result.
    fn on_reactor<T: Send + 'static>(&self, f: impl FnOnce(&Rc<Proxy>) -> T + Send + 'static) -> T {
        let id = self.id;
        let (tx, rx) = mpsc::channel();
        self.handle
            .schedule(move || {
                let proxy = PROXIES.with(|p| p.borrow().get(&id).cloned());
                let _ = tx.send(proxy.map(|proxy| f(&proxy)));
            })
            .unwrap_or_else(|e| panic!("FaultProxy: the reactor is gone: {e}"));
        match rx.recv_timeout(ANSWER_LIMIT) {
            Ok(Some(value)) => value,
            Ok(None) => panic!("FaultProxy: the proxy was stopped"),
            Err(_) => panic!("FaultProxy: no answer from the reactor within {ANSWER_LIMIT:?}"),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.finish();
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("own_reactor", &self.own.is_some())
            .finish()
    }
}

/// A fault proxy's engine, on its reactor thread.
struct Proxy {
    id: u64,
    upstream: Endpoint,
    /// Where it listens (the port the kernel picked, once bound).
    listen: Cell<SocketAddr>,
    server: RefCell<Option<Server>>,
    /// The toxics, in the order they were added.
    toxics: RefCell<Vec<(ToxicId, Toxic)>>,
    links: RefCell<Vec<Weak<Link>>>,
    seeds: Cell<u64>,
}

impl Proxy {
    fn listen(self: &Rc<Self>) -> em_core::Result<()> {
        let weak = Rc::downgrade(self);
        let server = em_core::start_server(self.listen.get(), move || ClientSide {
            proxy: weak.clone(),
            link: None,
        })?;
        if let Some(addr) = server.local_addr().inet() {
            self.listen.set(addr);
        }
        tracing::debug!(proxy = self.id, addr = %self.listen.get(), "fault proxy: up");
        *self.server.borrow_mut() = Some(server);
        Ok(())
    }

    fn down(&self) {
        if let Some(server) = self.server.borrow_mut().take() {
            server.stop();
        }
        for link in self.live_links() {
            link.close();
        }
        tracing::debug!(proxy = self.id, "fault proxy: down");
    }

    fn live_links(&self) -> Vec<Rc<Link>> {
        self.links
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// A seed for a connection's random draws (jitter, slice sizes).
    fn next_seed(&self) -> u64 {
        let seed = self
            .seeds
            .get()
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(1);
        self.seeds.set(seed);
        seed
    }
}
