//! The server: binding, the two handler styles over one connection engine
//! (`connection`), answering (`responder`, `handler`), and graceful stop.

pub(crate) mod connection;
pub(crate) mod handler;
pub(crate) mod responder;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::net::ToSocketAddrs;
use std::rc::{Rc, Weak};
use std::task::Poll;
use std::time::Duration;

use em_core::{Addr, ConnectionId, TlsOptions};

use crate::limits::Limits;
use connection::{ConnCore, HttpConnection, WakerSlot};
use handler::{AsyncHandler, AsyncShared, Handler};
use responder::RequestHandler;

/// What a server's connections share.
pub(crate) struct Shared {
    pub(crate) limits: Rc<Limits>,
    pub(crate) tls: Option<TlsOptions>,
    /// Graceful stop under way: no keep-alive, close when idle.
    pub(crate) draining: Cell<bool>,
    conns: RefCell<HashMap<ConnectionId, Weak<ConnCore>>>,
    /// Woken when the last connection ends (the graceful stop's wait).
    emptied: WakerSlot,
}

impl Shared {
    pub(crate) fn register(&self, id: ConnectionId, core: Weak<ConnCore>) {
        self.conns.borrow_mut().insert(id, core);
    }

    pub(crate) fn unregister(&self, id: ConnectionId) {
        let mut conns = self.conns.borrow_mut();
        conns.remove(&id);
        if conns.is_empty() {
            drop(conns);
            self.emptied.wake();
        }
    }

    fn live(&self) -> Vec<Rc<ConnCore>> {
        self.conns
            .borrow()
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }
}

/// Configures a server before it starts: limits and TLS. Plain data until
/// [`serve`](ServerBuilder::serve), which runs on the reactor thread.
///
/// ```
/// use em_http::Limits;
///
/// em_core::run(|| -> em_core::Result<()> {
///     em_http::builder()
///         .limits(Limits::default().max_body_size(64 * 1024))
///         .serve("127.0.0.1:0", |_req| async { "small bodies only\n" })?;
///     em_core::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    limits: Limits,
    tls: Option<TlsOptions>,
}

/// A server builder with the default [`Limits`] and no TLS.
pub fn builder() -> ServerBuilder {
    ServerBuilder::default()
}

impl ServerBuilder {
    /// The limits every connection of the server gets.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves https: every accepted connection starts TLS with `options`
    /// (em's [`TlsOptions`], a certificate and key) before its first request.
    pub fn tls(mut self, options: TlsOptions) -> Self {
        self.tls = Some(options);
        self
    }

    fn shared(self) -> Rc<Shared> {
        Rc::new(Shared {
            limits: Rc::new(self.limits),
            tls: self.tls,
            draining: Cell::new(false),
            conns: RefCell::new(HashMap::new()),
            emptied: WakerSlot::default(),
        })
    }

    /// Serves `handler` (the async style, see [`Handler`]) on `addr`.
    /// Reactor thread only; errors as `em::start_server` does.
    pub fn serve<A, H>(self, addr: A, handler: H) -> em_core::Result<HttpServer>
    where
        A: ToSocketAddrs + fmt::Debug,
        H: Handler,
    {
        let shared = AsyncShared::new(handler);
        self.serve_callbacks(addr, move || AsyncHandler(shared.clone()))
    }

    /// Serves the callback style on `addr`: `factory` makes one
    /// [`RequestHandler`] per connection. Reactor thread only.
    pub fn serve_callbacks<A, F, H>(self, addr: A, mut factory: F) -> em_core::Result<HttpServer>
    where
        A: ToSocketAddrs + fmt::Debug,
        F: FnMut() -> H + 'static,
        H: RequestHandler,
    {
        let shared = self.shared();
        let for_conns = shared.clone();
        let server = em_core::start_server(addr, move || {
            HttpConnection::new(factory(), for_conns.clone())
        })?;
        Ok(HttpServer { server, shared })
    }
}

/// Serves `handler` on `addr` with the default limits: the async style,
/// one `!Send` future per request on the reactor. Reactor thread only.
///
/// ```
/// em_core::run(|| -> em_core::Result<()> {
///     let server = em_http::serve("127.0.0.1:0", |request: http::Request<em_http::Body>| async move {
///         match request.uri().path() {
///             "/" => (http::StatusCode::OK, "Hello, World!"),
///             _ => (http::StatusCode::NOT_FOUND, "no such page\n"),
///         }
///     })?;
///     assert!(server.local_addr().inet().is_some());
///     em_core::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn serve<A, H>(addr: A, handler: H) -> em_core::Result<HttpServer>
where
    A: ToSocketAddrs + fmt::Debug,
    H: Handler,
{
    builder().serve(addr, handler)
}

/// Serves the callback style on `addr` with the default limits: `factory`
/// makes one [`RequestHandler`] per connection. Reactor thread only.
pub fn serve_callbacks<A, F, H>(addr: A, factory: F) -> em_core::Result<HttpServer>
where
    A: ToSocketAddrs + fmt::Debug,
    F: FnMut() -> H + 'static,
    H: RequestHandler,
{
    builder().serve_callbacks(addr, factory)
}

/// A running HTTP server. `!Send`: used on the reactor thread that started
/// it. Dropping it does not stop it (as em's `Server`); the reactor's stop
/// does.
pub struct HttpServer {
    server: em_core::Server,
    shared: Rc<Shared>,
}

impl HttpServer {
    /// The address it listens on (with the port the system chose for `:0`).
    pub fn local_addr(&self) -> Addr {
        self.server.local_addr()
    }

    /// The connections open now.
    pub fn connection_count(&self) -> usize {
        self.shared.conns.borrow().len()
    }

    /// The limits its connections get.
    pub fn limits(&self) -> Limits {
        *self.shared.limits
    }

    /// Stops accepting, and closes every connection now (responses in
    /// progress are cut short). See [`shutdown`](HttpServer::shutdown) for
    /// the graceful way.
    pub fn stop(&self) {
        self.server.stop();
        self.shared.draining.set(true);
        for core in self.shared.live() {
            core.conn.close_connection();
        }
    }

    /// Graceful stop: stops accepting at once; idle keep-alive connections
    /// close now; a connection with requests in flight closes after their
    /// responses (the last says `Connection: close`); whatever is still
    /// open after `grace` (a long stream, a stuck handler) is closed then.
    /// The future resolves once every connection is closed; it need not be
    /// awaited for the stop to proceed. Reactor thread only.
    pub fn shutdown(&self, grace: Duration) -> impl std::future::Future<Output = ()> + 'static {
        self.server.stop();
        self.shared.draining.set(true);
        for core in self.shared.live() {
            core.drain();
        }
        let shared = self.shared.clone();
        let timer = em_timers::add_timer(grace, move || {
            for core in shared.live() {
                tracing::debug!(conn = %core.id(), "graceful stop: grace over, closing");
                core.conn.close_connection();
            }
        })
        .ok();
        let shared = self.shared.clone();
        async move {
            poll_fn(|cx| {
                if shared.conns.borrow().is_empty() {
                    return Poll::Ready(());
                }
                shared.emptied.register(cx.waker());
                Poll::Pending
            })
            .await;
            if let Some(timer) = timer {
                timer.cancel();
            }
        }
    }
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("local_addr", &self.local_addr())
            .field("connections", &self.connection_count())
            .finish()
    }
}
