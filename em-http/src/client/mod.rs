//! The HTTP client, em-http-request's job: requests that never block the
//! reactor, as futures or as EventMachine-style deferrables, over pooled
//! keep-alive connections. See the crate's tour, "The client".

pub(crate) mod callback;
pub(crate) mod connect;
pub(crate) mod connection;
#[cfg(feature = "cookies")]
pub(crate) mod cookies;
pub(crate) mod decompress;
pub(crate) mod error;
pub(crate) mod exchange;
pub(crate) mod limits;
pub(crate) mod multi;
pub(crate) mod pool;
pub(crate) mod proxy;
pub(crate) mod redirect;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod send;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use em_core::TlsOptions;
use http::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::Method;

use crate::client::error::{ClientError, ClientErrorKind, ClientResult};
use crate::client::limits::ClientLimits;
use crate::client::pool::Pool;
use crate::client::proxy::Proxy;
use crate::client::request::{IntoUrl, RequestBuilder};

/// An HTTP/1.1 client (em-http-request's `EM::HttpRequest`, with a
/// connection pool): cheap to clone (clones share the pool, the TLS
/// configuration and the cookie jar), `!Send`, used on the reactor thread
/// it was made on.
///
/// Each method (`get`, `post`, …) starts a [`RequestBuilder`]; its
/// [`send`](RequestBuilder::send) is a future of the [`Response`](crate::ClientResponse)
/// (the await style), its [`start`](RequestBuilder::start) a deferrable
/// [`HttpRequest`](crate::HttpRequest) with `callback`, `errback`,
/// `headers` and `stream` (EventMachine's style). Nothing blocks the
/// reactor: names are resolved on tokio's blocking pool, everything else
/// is em's connections.
///
/// ```no_run
/// use em_http::Client;
///
/// em_core::run(|| -> em_core::Result<()> {
///     em_core::spawn(async {
///         let client = Client::new();
///         match client.get("http://127.0.0.1:8080/").send().await {
///             Ok(response) => {
///                 let status = response.status();
///                 let body = response.text().await.unwrap_or_default();
///                 println!("{status}: {body}");
///             }
///             Err(e) => eprintln!("{e}"),
///         }
///         em_core::stop();
///     })?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Rc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) options: Options,
    pub(crate) headers: HeaderMap,
    pub(crate) limits: ClientLimits,
    pub(crate) pool: Rc<Pool>,
    /// What was wrong with the builder: every request fails with it.
    build_error: Option<String>,
    tls: TlsOptions,
    /// The TLS options for each host name (the base options with the name
    /// to verify and send as SNI), built once per host.
    tls_by_host: RefCell<HashMap<String, TlsOptions>>,
    #[cfg(feature = "cookies")]
    pub(crate) cookies: Option<cookies::Jar>,
}

/// What a client sets for its requests and each request may change.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) connect_timeout: Duration,
    pub(crate) inactivity_timeout: Duration,
    pub(crate) deadline: Option<Duration>,
    pub(crate) redirects: usize,
    pub(crate) keep_alive: bool,
    pub(crate) decompress: bool,
    pub(crate) proxy: Option<Rc<Proxy>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (open, idle) = self.inner.pool.counts();
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .field("open_connections", &open)
            .field("idle_connections", &idle)
            .finish()
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A client with the defaults of [`ClientBuilder`].
    pub fn new() -> Client {
        ClientBuilder::new().build()
    }

    /// A builder for a client with other options.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A request with any `method` to `url` (`client.method(Method::PUT,
    /// url)`; the named methods below are shorthands for it).
    pub fn method(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, url)
    }

    /// A `GET` request to `url`.
    pub fn get(&self, url: impl IntoUrl) -> RequestBuilder {
        self.method(Method::GET, url)
    }

    /// A `POST` request to `url`.
    pub fn post(&self, url: impl IntoUrl) -> RequestBuilder {
        self.method(Method::POST, url)
    }

    /// A `PUT` request to `url`.
    pub fn put(&self, url: impl IntoUrl) -> RequestBuilder {
        self.method(Method::PUT, url)
    }

    /// A `DELETE` request to `url`.
    pub fn delete(&self, url: impl IntoUrl) -> RequestBuilder {
        self.method(Method::DELETE, url)
    }

    /// A `HEAD` request to `url`.
    pub fn head(&self, url: impl IntoUrl) -> RequestBuilder {
        self.method(Method::HEAD, url)
    }

    /// A `PATCH` request to `url`.
    pub fn patch(&self, url: impl IntoUrl) -> RequestBuilder {
        self.method(Method::PATCH, url)
    }

    /// An `OPTIONS` request to `url`.
    pub fn options(&self, url: impl IntoUrl) -> RequestBuilder {
        self.method(Method::OPTIONS, url)
    }

    /// A request from an [`http::Request`]: its method, URI (absolute:
    /// `http://` or `https://`), headers and body.
    pub fn request<B: Into<crate::RequestBody>>(
        &self,
        request: http::Request<B>,
    ) -> RequestBuilder {
        let (parts, body) = request.into_parts();
        let mut builder = RequestBuilder::new(self.clone(), parts.method, parts.uri.to_string());
        for (name, value) in &parts.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        builder.body(body)
    }

    /// The connections this client has open, and how many of them are
    /// idle in its pool.
    pub fn connections(&self) -> (usize, usize) {
        self.inner.pool.counts()
    }
}

impl ClientInner {
    /// The TLS options for connections to `host`.
    pub(crate) fn tls_for(&self, host: &str) -> TlsOptions {
        self.tls_by_host
            .borrow_mut()
            .entry(host.to_owned())
            .or_insert_with(|| self.tls.clone().server_name(host))
            .clone()
    }
}

/// Options for a [`Client`], each with a default; [`build`](ClientBuilder::build)
/// makes the client. Plain data until built; the client is used on the
/// reactor thread it is built on.
///
/// | option | default |
/// |---|---|
/// | [`connect_timeout`](ClientBuilder::connect_timeout) (name, connect, tunnel, TLS) | 5 s (em-http-request's) |
/// | [`inactivity_timeout`](ClientBuilder::inactivity_timeout) | 10 s (em-http-request's) |
/// | [`deadline`](ClientBuilder::deadline) (the whole request, body included) | none |
/// | [`redirects`](ClientBuilder::redirects) followed | 5 |
/// | [`keep_alive`](ClientBuilder::keep_alive) | on |
/// | [`pool_max_idle_per_host`](ClientBuilder::pool_max_idle_per_host) | 32 |
/// | [`pool_idle_timeout`](ClientBuilder::pool_idle_timeout) | 60 s |
/// | [`pipelining`](ClientBuilder::pipelining) depth | 1 (off) |
/// | [`decompress`](ClientBuilder::decompress) gzip and deflate | on |
/// | TLS | Mozilla's roots, host name checked |
/// | [`limits`](ClientBuilder::limits) | see [`ClientLimits`] |
#[derive(Debug)]
pub struct ClientBuilder {
    options: Options,
    headers: HeaderMap,
    limits: ClientLimits,
    max_idle_per_host: usize,
    idle_timeout: Duration,
    pipeline_depth: usize,
    tls: TlsOptions,
    #[cfg(feature = "cookies")]
    cookies: bool,
    error: Option<String>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder::new()
    }
}

impl ClientBuilder {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("em-http/", env!("CARGO_PKG_VERSION"))),
        );
        ClientBuilder {
            options: Options {
                connect_timeout: Duration::from_secs(5),
                inactivity_timeout: Duration::from_secs(10),
                deadline: None,
                redirects: 5,
                keep_alive: true,
                decompress: true,
                proxy: None,
            },
            headers,
            limits: ClientLimits::default(),
            max_idle_per_host: 32,
            idle_timeout: Duration::from_secs(60),
            pipeline_depth: 1,
            tls: TlsOptions::new(),
            #[cfg(feature = "cookies")]
            cookies: false,
            error: None,
        }
    }

    /// A header every request carries (unless the request sets its own).
    /// An invalid name or value makes every request fail with
    /// [`ClientErrorKind::InvalidRequest`].
    pub fn default_header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(n), Ok(v)) => {
                self.headers.insert(n, v);
            }
            _ => self.error = Some("an invalid default header".into()),
        }
        self
    }

    /// The `User-Agent` header (default `em-http/VERSION`).
    pub fn user_agent(self, agent: impl AsRef<str>) -> Self {
        self.default_header(USER_AGENT, agent.as_ref())
    }

    /// How long resolving the name, connecting, a proxy's tunnel and the
    /// TLS handshake may take together.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// How long a connection may carry nothing either way while a request
    /// waits on it (em's `comm_inactivity_timeout`); 0: no limit.
    pub fn inactivity_timeout(mut self, timeout: Duration) -> Self {
        self.options.inactivity_timeout = timeout;
        self
    }

    /// How long a whole request may take, redirects and the body's last
    /// byte included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.options.deadline = Some(deadline);
        self
    }

    /// How many redirects a request follows (0: none; the 3xx response is
    /// returned as it is).
    pub fn redirects(mut self, max: usize) -> Self {
        self.options.redirects = max;
        self
    }

    /// Whether connections are kept open for later requests (off: each
    /// request says `connection: close`).
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.options.keep_alive = on;
        self
    }

    /// The most idle keep-alive connections kept per origin; more are
    /// closed as they become idle.
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.max_idle_per_host = max;
        self
    }

    /// How long an idle connection stays in the pool.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Pipelining (opt-in): up to `depth` `GET`, `HEAD` or `OPTIONS`
    /// requests written on one connection before their responses arrive,
    /// when no idle connection is free. 1 turns it off.
    pub fn pipelining(mut self, depth: usize) -> Self {
        self.pipeline_depth = depth.max(1);
        self
    }

    /// Whether gzip and deflate bodies are decoded (and `accept-encoding:
    /// gzip, deflate` sent).
    pub fn decompress(mut self, on: bool) -> Self {
        self.options.decompress = on;
        self
    }

    /// Sends every request through `proxy`.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.options.proxy = Some(Rc::new(proxy));
        self
    }

    /// The TLS options for https (em's [`TlsOptions`]: custom roots with
    /// `root_certs_file`/`root_certs_pem`, a client certificate with
    /// `cert_chain_*` and `private_key_*`, versions, ALPN). The host name
    /// to verify is set per connection. Verification is on unless
    /// [`danger_accept_invalid_certs`](ClientBuilder::danger_accept_invalid_certs).
    pub fn tls(mut self, options: TlsOptions) -> Self {
        self.tls = options;
        self
    }

    /// Trusts the CA certificates in a PEM file as well as Mozilla's roots.
    pub fn root_certs_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls = self.tls.root_certs_file(path);
        self
    }

    /// Trusts the CA certificates in PEM text.
    pub fn root_certs_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls = self.tls.root_certs_pem(pem);
        self
    }

    /// Presents a client certificate (a PEM chain and its key) to servers
    /// that ask.
    pub fn client_cert_pem(mut self, chain: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.tls = self.tls.cert_chain_pem(chain).private_key_pem(key);
        self
    }

    /// **For tests only**: accepts any server certificate, for any host
    /// (what em-http-request did by default until CVE-2020-13482). The
    /// connection is encrypted but not authenticated.
    pub fn danger_accept_invalid_certs(mut self) -> Self {
        self.tls = self.tls.danger_accept_invalid_certs();
        self
    }

    /// Keeps cookies (RFC 6265, the `cookie_store` crate): each response's
    /// `Set-Cookie` is stored, each request carries the cookies for its URL.
    #[cfg(feature = "cookies")]
    pub fn cookie_store(mut self, on: bool) -> Self {
        self.cookies = on;
        self
    }

    /// The size limits for responses.
    pub fn limits(mut self, limits: ClientLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The client.
    pub fn build(self) -> Client {
        Client {
            inner: Rc::new(ClientInner {
                options: self.options,
                headers: self.headers,
                build_error: self.error,
                limits: self.limits,
                pool: Rc::new(Pool::new(
                    self.max_idle_per_host,
                    self.idle_timeout,
                    self.pipeline_depth,
                )),
                tls: self.tls,
                tls_by_host: RefCell::new(HashMap::new()),
                #[cfg(feature = "cookies")]
                cookies: self.cookies.then(cookies::Jar::default),
            }),
        }
    }
}

/// Fails a request made with a client whose builder had an error.
pub(crate) fn check_client(client: &ClientInner) -> ClientResult<()> {
    match &client.build_error {
        Some(e) => Err(ClientError::new(ClientErrorKind::InvalidRequest, e.clone())),
        None => Ok(()),
    }
}
