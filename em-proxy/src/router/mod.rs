//! ProxyMachine's content router: [`Router`] holds the options and
//! starts it; [`Route`] and [`Remote`] (in `route.rs`) are what the
//! routing function answers; the engine, a handler for the client and
//! one for its backend, is in `session.rs`.

mod route;
mod session;

use std::fmt;
use std::net::ToSocketAddrs;
use std::rc::Rc;
use std::time::Duration;

use em_core::{Endpoint, TlsOptions};

pub use route::{Remote, Route};

use crate::error::{Error, Result};
use crate::server::{ProxyServer, Shared};

type OnError = Rc<dyn Fn(&Endpoint)>;
type RouteFn = Box<dyn Fn(&[u8]) -> Route>;

/// The router's setup, shared by its sessions.
pub(crate) struct Setup {
    pub(crate) route: RouteFn,
    pub(crate) retries: u32,
    pub(crate) retry_delay: Duration,
    pub(crate) max_buffer: usize,
    pub(crate) bufsize: usize,
    pub(crate) on_connect_error: Option<OnError>,
    pub(crate) on_inactivity_error: Option<OnError>,
    pub(crate) tls: Option<TlsOptions>,
    pub(crate) shared: Rc<Shared>,
}

/// A content router (ProxyMachine): a function sees each client's first
/// bytes and answers a [`Route`]; once routed, the buffered bytes are
/// replayed to the backend and the two sockets are joined with em's
/// `proxy_incoming_to` (spliced, kernel to kernel, where em can).
///
/// The function is called on the reactor thread with everything the
/// client sent so far, on every chunk, until it answers something other
/// than [`Route::Noop`]. A panic in it ends that client's session only.
/// A client that sends more than [`max_buffer`](Router::max_buffer)
/// bytes without being routed is closed.
///
/// ```no_run
/// use em_proxy::{Route, Router};
///
/// em_core::run(|| {
///     let router = Router::new().start("127.0.0.1:8080", |first: &[u8]| {
///         match first.iter().position(|&b| b == b'\n') {
///             None => Route::Noop,
///             Some(_) if first.starts_with(b"GET /a") => Route::remote("127.0.0.1:8081"),
///             Some(_) if first.starts_with(b"GET /b") => Route::remote("127.0.0.1:8082"),
///             Some(_) => Route::CloseWith("no route\n".into()),
///         }
///     })?;
///     router.stop_on_signals(std::time::Duration::from_secs(10))?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Router {
    retries: u32,
    retry_delay: Duration,
    max_buffer: usize,
    bufsize: usize,
    on_connect_error: Option<OnError>,
    on_inactivity_error: Option<OnError>,
    tls: Option<TlsOptions>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .field("max_buffer", &self.max_buffer)
            .field("bufsize", &self.bufsize)
            .finish_non_exhaustive()
    }
}

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

impl Router {
    /// A router with ProxyMachine's defaults: a refused connect is retried
    /// 10 times, 0.1 s apart; at most 64 KiB buffered before a route;
    /// relays hold at 1 MiB waiting.
    pub fn new() -> Router {
        Router {
            retries: 10,
            retry_delay: Duration::from_millis(100),
            max_buffer: 64 * 1024,
            bufsize: 1 << 20,
            on_connect_error: None,
            on_inactivity_error: None,
            tls: None,
        }
    }

    /// Retries a refused connect `retries` times, `delay` apart, before
    /// giving up (`on_connect_error`). A connect that times out is not
    /// retried.
    pub fn retries(mut self, retries: u32, delay: Duration) -> Router {
        self.retries = retries;
        self.retry_delay = delay;
        self
    }

    /// The most bytes buffered while the route is unknown (default
    /// 64 KiB); a client past it is closed. Errors (on start) if zero.
    pub fn max_buffer(mut self, bytes: usize) -> Router {
        self.max_buffer = bytes;
        self
    }

    /// The relays' backpressure limit once joined (default 1 MiB; em's
    /// `proxy_incoming_to` bufsize). Errors (on start) if zero.
    pub fn bufsize(mut self, bytes: usize) -> Router {
        self.bufsize = bytes;
        self
    }

    /// Runs, on the reactor thread, with the route's endpoint, when a
    /// backend cannot be reached: refused past the retries, or not
    /// connected within the route's connect timeout (ProxyMachine's
    /// `proxy_connect_error`). The client has been closed.
    pub fn on_connect_error(mut self, f: impl Fn(&Endpoint) + 'static) -> Router {
        self.on_connect_error = Some(Rc::new(f));
        self
    }

    /// Runs, on the reactor thread, with the route's endpoint, when a
    /// backend stayed silent past the route's inactivity timeout
    /// (ProxyMachine's `proxy_inactivity_error`). Both sides are closed.
    pub fn on_inactivity_error(mut self, f: impl Fn(&Endpoint) + 'static) -> Router {
        self.on_inactivity_error = Some(Rc::new(f));
        self
    }

    /// Serves clients over TLS: each accepted connection starts em's TLS
    /// with `options` (a certificate chain and a key, at least) before the
    /// routing function sees a byte; backends stay plain, and bytes are
    /// copied through the reactor (TLS cannot be spliced). Errors (on
    /// start) if the options cannot make a server.
    pub fn tls(mut self, options: TlsOptions) -> Router {
        self.tls = Some(options);
        self
    }

    /// Starts the router on `listen` (port 0 for a free port), with
    /// `route` deciding each client's fate. Reactor thread.
    ///
    /// Errors: [`is_no_reactor`](Error::is_no_reactor) off the reactor
    /// thread, [`is_bind`](Error::is_bind) if `listen` cannot be bound,
    /// [`is_config`](Error::is_config) for a zero `max_buffer` or
    /// `bufsize`, or TLS options that cannot make a server.
    pub fn start<A, F>(self, listen: A, route: F) -> Result<ProxyServer>
    where
        A: ToSocketAddrs + fmt::Debug,
        F: Fn(&[u8]) -> Route + 'static,
    {
        if self.max_buffer == 0 {
            return Err(Error::config("max_buffer", "must be at least 1 byte"));
        }
        if self.bufsize == 0 {
            return Err(Error::config("bufsize", "must be at least 1 byte"));
        }
        if let Some(tls) = &self.tls {
            tls.check_server()
                .map_err(|e| Error::config("tls", e.to_string()))?;
        }
        let shared = Shared::new();
        let setup = Rc::new(Setup {
            route: Box::new(route),
            retries: self.retries,
            retry_delay: self.retry_delay,
            max_buffer: self.max_buffer,
            bufsize: self.bufsize,
            on_connect_error: self.on_connect_error,
            on_inactivity_error: self.on_inactivity_error,
            tls: self.tls,
            shared: shared.clone(),
        });
        let server = em_core::start_server(listen, move || session::Front::new(setup.clone()))
            .map_err(|e| Error::em("Router::start", e))?;
        tracing::info!(addr = %server.local_addr(), "router listening");
        Ok(ProxyServer::new(shared, server))
    }
}
