//! em-proxy's intercepting proxy: [`Proxy`] starts it, [`Session`] is what
//! the setup closure configures for each client (backends and callbacks),
//! [`Data`] and [`Finish`] are what the callbacks answer. The engine, one
//! handler for the client and one per backend, is in `session.rs`.

mod session;

use std::fmt;
use std::net::ToSocketAddrs;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use em_core::{Addr, Conn, Endpoint, TlsOptions};
use tokio_util::codec::BytesCodec;

use crate::backend::{BackendSpec, MirrorHealth, Role};
use crate::error::{Error, Result};
use crate::server::{ProxyServer, Shared};

/// What [`Session::on_data`] does with a chunk of the client's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Send these bytes to every backend: each server, and each mirror
    /// while it keeps up (em-proxy's returning the data).
    All(Bytes),
    /// Send these bytes to the backends named, only (em-proxy's
    /// `[data, [:srv1]]`).
    To(Bytes, Vec<String>),
    /// Send nothing (em-proxy's returning `nil`).
    Drop,
}

impl From<Bytes> for Data {
    fn from(bytes: Bytes) -> Data {
        Data::All(bytes)
    }
}

/// What happens to the client when a server of its session ends, as
/// [`Session::on_finish`] answers (em-proxy's `:close` and `:keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Finish {
    /// Close the client once its queued output has left (the default).
    #[default]
    Close,
    /// Keep the client connected (another server may still answer).
    Keep,
}

pub(crate) type OnData = Box<dyn FnMut(Bytes) -> Data>;
pub(crate) type OnResponse = Box<dyn FnMut(&str, Bytes) -> Option<Bytes>>;
pub(crate) type OnConnect = Box<dyn FnMut(&str)>;
pub(crate) type OnFinish = Box<dyn FnMut(&str) -> Finish>;

/// One client's proxy session, as the setup closure of [`Proxy::start`]
/// sees it (em-proxy's `conn` in `Proxy.start { |conn| … }`): the backends
/// to open and the callbacks to run. Configured once, on the reactor
/// thread, right after the client is accepted; the callbacks then run on
/// the reactor thread too, for this client only.
///
/// Without callbacks, bytes move unchanged: with one server and no
/// mirror, kernel to kernel (em's splice path) both ways; with mirrors,
/// the client's bytes are copied to each, and the server's replies still
/// take the splice path.
pub struct Session {
    pub(crate) client: Conn<BytesCodec>,
    pub(crate) backends: Vec<BackendSpec>,
    pub(crate) on_data: Option<OnData>,
    pub(crate) on_response: Option<OnResponse>,
    pub(crate) on_connect: Option<OnConnect>,
    pub(crate) on_finish: Option<OnFinish>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("client", &self.client.id())
            .field("backends", &self.backends)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a server for this session (em-proxy's `conn.server(:name,
    /// host:, port:)`): it gets the client's bytes, and its replies go to
    /// the client. `endpoint` is anything em connects to: `"host:port"`, a
    /// `SocketAddr`, an [`Addr`], or [`Endpoint::unix`] for a Unix-domain
    /// socket. A second backend with the same name is ignored (and
    /// logged).
    pub fn server(&mut self, name: &str, endpoint: impl Into<Endpoint>) -> &mut Self {
        self.add(name, endpoint.into(), Role::Relay)
    }

    /// Opens a mirror for this session (duplex mode): it gets a copy of
    /// the client's bytes; its replies are read and dropped; it never
    /// slows the client nor ends the session. While its queue is past its
    /// watermark ([`Proxy::mirror_watermark`]) copies are dropped and
    /// counted; once it has failed, new sessions skip it until a back-off
    /// delay has passed ([`Proxy::mirror_backoff`]).
    pub fn mirror(&mut self, name: &str, endpoint: impl Into<Endpoint>) -> &mut Self {
        self.add(name, endpoint.into(), Role::Mirror)
    }

    fn add(&mut self, name: &str, endpoint: Endpoint, role: Role) -> &mut Self {
        if self.backends.iter().any(|b| &*b.name == name) {
            tracing::warn!(
                conn = %self.client.id(),
                peer = ?self.client.peer_addr(),
                backend = name,
                "a backend of this name is already open; ignored"
            );
        } else {
            self.backends.push(BackendSpec {
                name: name.into(),
                endpoint,
                role,
            });
        }
        self
    }

    /// Sees every chunk of the client's bytes first and decides where it
    /// goes (em-proxy's `on_data`): rewritten, to chosen backends, or
    /// nowhere. A panic in it ends this session only.
    pub fn on_data(&mut self, f: impl FnMut(Bytes) -> Data + 'static) -> &mut Self {
        self.on_data = Some(Box::new(f));
        self
    }

    /// Sees every chunk a server replies, with the server's name, and
    /// returns what the client gets (`None`: nothing) (em-proxy's
    /// `on_response`). Mirrors' replies never reach it. A panic in it ends
    /// that server's connection, and `on_finish` decides the rest.
    pub fn on_response(
        &mut self,
        f: impl FnMut(&str, Bytes) -> Option<Bytes> + 'static,
    ) -> &mut Self {
        self.on_response = Some(Box::new(f));
        self
    }

    /// Runs when a backend (server or mirror) connected, with its name.
    pub fn on_connect(&mut self, f: impl FnMut(&str) + 'static) -> &mut Self {
        self.on_connect = Some(Box::new(f));
        self
    }

    /// Runs when a server's connection ended (closed, refused, reset),
    /// with its name, and says whether the client is closed
    /// ([`Finish::Close`], also what happens without this callback) or
    /// kept (em-proxy's `on_finish`, `:close`/`:keep`). Mirrors ending
    /// never reach it.
    pub fn on_finish(&mut self, f: impl FnMut(&str) -> Finish + 'static) -> &mut Self {
        self.on_finish = Some(Box::new(f));
        self
    }

    /// The client's address.
    pub fn peer_addr(&self) -> Option<Addr> {
        self.client.peer_addr()
    }

    /// The client's connection, for what the methods above do not cover
    /// (its id, timeouts, TLS).
    pub fn client(&self) -> &Conn<BytesCodec> {
        &self.client
    }
}

/// Options shared by the sessions of one proxy.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) bufsize: usize,
    pub(crate) mirror_watermark: usize,
    pub(crate) backoff: (Duration, Duration),
    pub(crate) tls: Option<TlsOptions>,
}

/// The proxy's setup, shared by its sessions.
pub(crate) struct Setup {
    pub(crate) options: Options,
    pub(crate) configure: Box<dyn Fn(&mut Session)>,
    pub(crate) mirrors: MirrorHealth,
    pub(crate) shared: Rc<Shared>,
}

/// em-proxy's `Proxy`: a TCP proxy in a few lines, with its options.
///
/// [`Proxy::start`] with default options, or [`Proxy::new`], the setters,
/// then [`start`](Proxy::start_with). The setup closure runs once per
/// client, on the reactor thread, and opens that client's backends and
/// sets its callbacks on a [`Session`].
///
/// ```no_run
/// use em_proxy::{Data, Proxy};
///
/// em_core::run(|| {
///     // Production answers; staging gets a copy of every byte.
///     let proxy = Proxy::start("127.0.0.1:8080", |session| {
///         session.server("production", "127.0.0.1:8081");
///         session.mirror("staging", "127.0.0.1:8082");
///         session.on_data(|data| Data::All(data));
///     })?;
///     proxy.stop_on_signals(std::time::Duration::from_secs(10))?;
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Proxy {
    options: Options,
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy::new()
    }
}

impl Proxy {
    /// A proxy with the default options.
    pub fn new() -> Proxy {
        Proxy {
            options: Options {
                bufsize: 1 << 20,
                mirror_watermark: 1 << 20,
                backoff: (Duration::from_millis(100), Duration::from_secs(30)),
                tls: None,
            },
        }
    }

    /// Starts a proxy with the default options on `listen`; `setup` runs
    /// for each client. Reactor thread. See [`Proxy::start_with`].
    pub fn start<A, F>(listen: A, setup: F) -> Result<ProxyServer>
    where
        A: ToSocketAddrs + fmt::Debug,
        F: Fn(&mut Session) + 'static,
    {
        Proxy::new().start_with(listen, setup)
    }

    /// The relay's backpressure limit (default 1 MiB): reading from one
    /// side holds while the other has more than this many bytes waiting
    /// to leave (em's `proxy_incoming_to` bufsize, and the same rule on
    /// the copy path). Errors (on start) if zero.
    pub fn bufsize(mut self, bytes: usize) -> Proxy {
        self.options.bufsize = bytes;
        self
    }

    /// How many bytes may wait for a mirror before copies to it are
    /// dropped (default 1 MiB): the most memory a stuck mirror costs, per
    /// session, give or take one read. Errors (on start) if zero.
    pub fn mirror_watermark(mut self, bytes: usize) -> Proxy {
        self.options.mirror_watermark = bytes;
        self
    }

    /// How long new sessions skip a mirror that failed: `initial` after
    /// the first failure, doubling up to `max` (defaults 100 ms and 30 s);
    /// a successful connect resets it.
    pub fn mirror_backoff(mut self, initial: Duration, max: Duration) -> Proxy {
        self.options.backoff = (initial, max);
        self
    }

    /// Serves clients over TLS (em-proxy's `tls_key`/`tls_cert`): each
    /// accepted connection starts em's TLS with `options` (a certificate
    /// chain and a key, at least) before any byte moves. Backends stay
    /// plain. Bytes are then copied through the reactor (TLS cannot be
    /// spliced). Errors (on start) if the options cannot make a server.
    pub fn tls(mut self, options: TlsOptions) -> Proxy {
        self.options.tls = Some(options);
        self
    }

    /// Starts the proxy on `listen` (any `ToSocketAddrs`, port 0 for a
    /// free port): `setup` runs for each client, on the reactor thread,
    /// right after it is accepted. Reactor thread.
    ///
    /// Errors: [`is_no_reactor`](Error::is_no_reactor) off the reactor
    /// thread, [`is_bind`](Error::is_bind) if `listen` cannot be bound,
    /// [`is_config`](Error::is_config) for a zero `bufsize` or
    /// `mirror_watermark`, or TLS options that cannot make a server.
    pub fn start_with<A, F>(self, listen: A, setup: F) -> Result<ProxyServer>
    where
        A: ToSocketAddrs + fmt::Debug,
        F: Fn(&mut Session) + 'static,
    {
        let options = self.options;
        if options.bufsize == 0 {
            return Err(Error::config("bufsize", "must be at least 1 byte"));
        }
        if options.mirror_watermark == 0 {
            return Err(Error::config("mirror_watermark", "must be at least 1 byte"));
        }
        if let Some(tls) = &options.tls {
            tls.check_server()
                .map_err(|e| Error::config("tls", e.to_string()))?;
        }
        let shared = Shared::new();
        let setup = Rc::new(Setup {
            mirrors: MirrorHealth::new(options.backoff.0, options.backoff.1),
            options,
            configure: Box::new(setup),
            shared: shared.clone(),
        });
        let server = em_core::start_server(listen, move || session::Front::new(setup.clone()))
            .map_err(|e| Error::em("Proxy::start", e))?;
        tracing::info!(addr = %server.local_addr(), "proxy listening");
        Ok(ProxyServer::new(shared, server))
    }
}
