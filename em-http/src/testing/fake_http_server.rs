//! `FakeHttpServer`: canned responses per route, and a request log.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use em::testing::{TestReactor, ANSWER_LIMIT};
use http::{Method, Request};
use tokio::sync::oneshot;

use super::canned::CannedResponse;
use super::request_log::{LoggedRequest, RequestLog};
use crate::Body;

/// A fake HTTP/1.1 server for testing HTTP clients: each route (a method
/// and an exact path, the query left out) answers with its
/// [`CannedResponse`], anything else with the default, a `404`; every
/// request is logged, with its headers and body, for the test to read.
///
/// It is em-http's own server ([`serve`](crate::serve): keep-alive,
/// pipelining, chunked bodies) on a [`TestReactor`] of its own (or the
/// test's, with [`FakeHttpBuilder::start_on`]), listening on 127.0.0.1
/// (port 0). The routes and the log are answered on that reactor's
/// thread; the methods here run on the test's. Dropping the server stops
/// it (and its own reactor, failing the test if a handler panicked on
/// it).
///
/// ```
/// use em_http::http::{Method, StatusCode};
/// use em_http::testing::{CannedResponse, FakeHttpServer};
///
/// let server = FakeHttpServer::builder()
///     .route(Method::GET, "/hello", CannedResponse::ok("hi\n").header("x-fake", "yes"))
///     .route(Method::POST, "/items", CannedResponse::new(StatusCode::CREATED))
///     .start();
///
/// // Any client: a raw HTTP/1.1 request from std here.
/// use std::io::{Read, Write};
/// let mut client = std::net::TcpStream::connect(server.local_addr())?;
/// client.write_all(b"GET /hello?lang=en HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n")?;
/// let mut response = String::new();
/// client.read_to_string(&mut response)?;
/// assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(response.contains("x-fake: yes\r\n"));
/// assert!(response.ends_with("\r\n\r\nhi\n"));
///
/// let requests = server.wait_for_requests(1, std::time::Duration::from_secs(10));
/// assert_eq!(requests[0].method, Method::GET);
/// assert_eq!(requests[0].path, "/hello");
/// assert_eq!(requests[0].header("host"), Some("fake"));
/// assert_eq!(server.url("/hello"), format!("http://{}/hello", server.local_addr()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FakeHttpServer {
    stop: Option<oneshot::Sender<()>>,
    // Disconnected once the reactor side has stopped the server.
    stopped: mpsc::Receiver<()>,
    own: Option<TestReactor>,
    addr: SocketAddr,
    log: Arc<RequestLog>,
}

/// The routes of a [`FakeHttpServer`], then
/// [`start`](FakeHttpBuilder::start); made by
/// [`FakeHttpServer::builder`]. Any thread.
#[derive(Debug, Clone, Default)]
pub struct FakeHttpBuilder {
    routes: Vec<(Method, String, CannedResponse)>,
    default: CannedResponse,
}

impl FakeHttpBuilder {
    /// Answers `method` on `path` (exact, without the query) with
    /// `response`. A later route for the same method and path replaces an
    /// earlier one.
    pub fn route(mut self, method: Method, path: &str, response: CannedResponse) -> Self {
        self.routes.retain(|(m, p, _)| !(*m == method && p == path));
        self.routes.push((method, path.to_owned(), response));
        self
    }

    /// Answers `GET` on `path` with `response`.
    pub fn get(self, path: &str, response: CannedResponse) -> Self {
        self.route(Method::GET, path, response)
    }

    /// Answers requests that match no route with `response` instead of the
    /// default `404 Not Found` ([`CannedResponse::default`]).
    pub fn fallback(mut self, response: CannedResponse) -> Self {
        self.default = response;
        self
    }

    /// Starts the server on a reactor of its own, listening on 127.0.0.1
    /// (port 0), and returns once it listens. Test thread. Panics if it
    /// cannot listen.
    pub fn start(self) -> FakeHttpServer {
        let reactor = TestReactor::start();
        let mut server = self.start_with(&reactor);
        server.own = Some(reactor);
        server
    }

    /// [`start`](FakeHttpBuilder::start) on `reactor`, the test's own;
    /// dropping the server stops it and closes its connections, and leaves
    /// the reactor running.
    pub fn start_on(self, reactor: &TestReactor) -> FakeHttpServer {
        self.start_with(reactor)
    }

    fn start_with(self, reactor: &TestReactor) -> FakeHttpServer {
        let (stop, signal) = oneshot::channel::<()>();
        let (stopped_tx, stopped) = mpsc::channel::<()>();
        let routes = Arc::new(self);
        let started = reactor.block_on(move || -> em_core::Result<_> {
            let log = Arc::new(RequestLog::new());
            let l = log.clone();
            let server = crate::serve("127.0.0.1:0", move |request: Request<Body>| {
                answer(request, routes.clone(), l.clone())
            })?;
            let addr = server
                .local_addr()
                .inet()
                .expect("a TCP server has an inet address");
            em_core::spawn(async move {
                // A dropped sender is the signal too.
                let _ = signal.await;
                server.stop();
                // Its drop tells the test's thread the server stopped.
                drop(stopped_tx);
            })?;
            Ok((addr, log))
        });
        let (addr, log) = started.unwrap_or_else(|e| panic!("FakeHttpServer: cannot start: {e}"));
        tracing::debug!(%addr, "fake HTTP server listening");
        FakeHttpServer {
            stop: Some(stop),
            stopped,
            own: None,
            addr,
            log,
        }
    }
}

/// Reads `request`'s body, logs it, and answers with its route's
/// response, after the route's delay. Reactor thread.
async fn answer(
    request: Request<Body>,
    routes: Arc<FakeHttpBuilder>,
    log: Arc<RequestLog>,
) -> http::Response<Bytes> {
    let (parts, body) = request.into_parts();
    let body = match body.bytes().await {
        Ok(body) => body,
        Err(e) => {
            tracing::debug!(error = %e, "fake HTTP server: cannot read a request body");
            Bytes::new()
        }
    };
    let path = parts.uri.path().to_owned();
    let canned = routes
        .routes
        .iter()
        .find(|(m, p, _)| *m == parts.method && *p == path)
        .map(|(_, _, response)| response)
        .unwrap_or(&routes.default);
    tracing::debug!(method = %parts.method, %path, status = %canned.status(), "fake HTTP server: request");
    log.push(LoggedRequest {
        at: log.since_start(),
        method: parts.method,
        uri: parts.uri,
        path,
        headers: parts.headers,
        body,
    });
    if !canned.pause().is_zero() {
        em_timers::sleep(canned.pause()).await;
    }
    canned.to_response()
}

impl FakeHttpServer {
    /// Starts listing the routes of a fake server. Any thread.
    pub fn builder() -> FakeHttpBuilder {
        FakeHttpBuilder::default()
    }

    /// The address the server listens on. Any thread.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `http://` URL of `path` on this server (`path` starts with
    /// `/`; a query may follow). Any thread.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request logged so far, in order. Any thread.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log.lock().clone()
    }

    /// Waits until at least `n` requests are logged and returns them all,
    /// in order. Test thread (it blocks). Panics, listing the requests
    /// logged, if they are not within `limit`.
    #[track_caller]
    pub fn wait_for_requests(&self, n: usize, limit: Duration) -> Vec<LoggedRequest> {
        match self.log.wait_for(n, limit) {
            Ok(requests) => requests,
            Err(logged) => {
                let lines: String = logged
                    .iter()
                    .map(|r| format!("  {:>8.3?} {} {}\n", r.at, r.method, r.uri))
                    .collect();
                panic!("fake HTTP server: fewer than {n} request(s) within {limit:?}; logged:\n{lines}")
            }
        }
    }
}

impl Drop for FakeHttpServer {
    /// Stops the server and waits (up to em's
    /// [`ANSWER_LIMIT`](em::testing::ANSWER_LIMIT)) until it has: it no
    /// longer listens, and its connections are closing, when this returns.
    /// Test thread.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Err(mpsc::RecvTimeoutError::Timeout) = self.stopped.recv_timeout(ANSWER_LIMIT) {
            tracing::warn!("fake HTTP server: no answer from its reactor to the stop");
        }
        // `own`, if any, drops next: TestReactor's Drop stops the reactor
        // and fails the test on a panic it contained.
    }
}

impl fmt::Debug for FakeHttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeHttpServer")
            .field("local_addr", &self.addr)
            .field("requests", &self.log.lock().len())
            .field("own_reactor", &self.own.is_some())
            .finish()
    }
}
