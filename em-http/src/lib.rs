//! Evented HTTP/1.1 for em: a server in the spirit of Goliath (keep-alive,
//! pipelining, streaming, server-sent events and WebSocket, written as
//! async handlers or as callbacks) and a client in the spirit of
//! em-http-request (futures or deferrables, redirects, streaming, keep-alive
//! pools, TLS verified by default). See [The client](#the-client).
//!
//! Requests and responses are the [`http`] crate's types (re-exported as
//! `em_http::http`), so the ecosystem's vocabulary carries over; heads are
//! parsed by `httparse`, the parser hyper uses. Everything runs on the
//! reactor thread of the server: handlers, their futures, bodies, writers.
//!
//! # A first example
//!
//! ```
//! use em_http::http::{Request, StatusCode};
//! use em_http::Body;
//!
//! em_core::run(|| -> em_core::Result<()> {
//!     let server = em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
//!         match request.uri().path() {
//!             "/" => (StatusCode::OK, "Hello, World!"),
//!             _ => (StatusCode::NOT_FOUND, "not found\n"),
//!         }
//!     })?;
//!     println!("listening on {}", server.local_addr());
//!     em_core::stop(); // a real server would run until stopped
//!     Ok(())
//! })?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # Two styles over one engine
//!
//! * **async** ([`serve`], [`Handler`]): a function from a request to a
//!   future of anything [`IntoResponse`]. Each request's future runs on
//!   the reactor (`!Send` is fine), so it may await em's timers
//!   (`em::sleep`), `em::defer_async` for blocking work, channels and
//!   other connections: what Goliath's fiber per request gave Ruby. A
//!   future that answers without waiting is polled at once and costs no
//!   task.
//! * **callbacks** ([`serve_callbacks`], [`RequestHandler`]): one handler
//!   value per connection, `on_request(request, responder)` for each
//!   request; the [`Responder`] answers now or later, from any callback
//!   (a timer, a `defer` callback, another connection's data). A responder
//!   dropped without an answer sends `500`.
//!
//! Either way responses leave in request order, even when handlers finish
//! out of order (pipelining), and a handler that panics is contained: its
//! request gets `500`, the panic goes to em's error handler, other
//! requests and connections go on.
//!
//! ```
//! use em_http::http::Request;
//! use em_http::{Body, RequestHandler, Responder};
//! use std::time::Duration;
//!
//! /// Answers every request a tenth of a second later, from a timer.
//! struct Later;
//!
//! impl RequestHandler for Later {
//!     fn on_request(&mut self, request: Request<Body>, responder: Responder) {
//!         let path = request.uri().path().to_owned();
//!         let timer = em_timers::add_timer(Duration::from_millis(100), move || {
//!             responder.respond(format!("you asked for {path}\n"));
//!         });
//!         // No reactor to add a timer to: the responder was dropped with
//!         // the closure and answered 500 already.
//!         let _ = timer;
//!     }
//! }
//!
//! em_core::run(|| -> em_core::Result<()> {
//!     em_http::serve_callbacks("127.0.0.1:0", || Later)?;
//!     em_core::stop();
//!     Ok(())
//! })?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # Requests and their bodies
//!
//! A handler gets the request as soon as its head is read; the [`Body`]
//! streams in behind it (`Content-Length` or chunked), read whole
//! ([`Body::bytes`], [`Body::text`], [`Body::on_complete`]) or chunk by
//! chunk ([`Body::chunk`], or as a `Stream`). While more than
//! [`Limits::body_buffer`] bytes wait unread, em-http stops reading from
//! the connection, so a slow handler slows the client instead of growing
//! memory. A client that sent `Expect: 100-continue` gets its
//! `100 Continue` when the handler first reads the body; a handler that
//! answers without reading it (a `401`, a `413`) never invites it, and the
//! connection closes after that answer.
//!
//! # Responses
//!
//! A handler answers with anything [`IntoResponse`]: a full
//! `http::Response<B>` (any `B: Into<ResponseBody>`: text, bytes,
//! `Vec<u8>`), a [`StatusCode`](http::StatusCode), text, bytes, or
//! `(StatusCode, T)`. em-http adds `Date`, `Content-Length` (or
//! `Transfer-Encoding: chunked`) and `Connection` where the handler left
//! them out, and writes no body for `HEAD`, `204` and `304`.
//!
//! A body written over time comes from [`ResponseBody::channel`]: the
//! handler returns the response at once and keeps the [`BodyWriter`]
//! (Goliath's `stream_send`). The writer's backpressure follows the
//! connection's watermarks: [`BodyWriter::is_ready`] turns false while the
//! client is behind, [`BodyWriter::ready`] waits (and
//! [`BodyWriter::on_drained`] calls back) until it catches up, so a
//! producer that heeds it keeps memory bounded whatever the client's speed.
//!
//! ```
//! use em_http::{http::Response, ResponseBody};
//!
//! em_core::run(|| -> em_core::Result<()> {
//!     em_http::serve("127.0.0.1:0", |_request| async {
//!         let (writer, body) = ResponseBody::channel();
//!         // The producer runs on after the response is returned.
//!         em_core::spawn(async move {
//!             for n in 1..=1000 {
//!                 if writer.send_ready(format!("line {n}\n")).await.is_err() {
//!                     return; // the client is gone
//!                 }
//!             }
//!         })
//!         .ok();
//!         Response::new(body)
//!     })?;
//!     em_core::stop();
//!     Ok(())
//! })?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # Server-sent events
//!
//! [`sse::stream`] gives the `text/event-stream` response and an
//! [`sse::EventStream`] that sends [`sse::Event`]s (data, type, id,
//! retry), comments, and keep-alive pings on a timer; the same
//! backpressure as any streamed body.
//!
//! # Keep-alive, pipelining and limits
//!
//! Connections stay open between requests (HTTP/1.1's default, or
//! HTTP/1.0 with `Connection: keep-alive`) until a request or response says
//! `Connection: close`. Pipelined requests are read ahead, up to
//! [`Limits::max_in_flight`] unanswered, then reading pauses until one is
//! answered. Every limit has a default and a setter in [`Limits`], and a
//! breach is answered with its status and the connection closed, other
//! connections unharmed:
//!
//! | breach | answer |
//! |---|---|
//! | request line over [`Limits::max_request_line`] (8 KiB) | `414 URI Too Long` |
//! | head over [`Limits::max_header_size`] (16 KiB) or more than [`Limits::max_headers`] (100) fields | `431 Request Header Fields Too Large` |
//! | body over [`Limits::max_body_size`] (16 MiB), declared or chunked | `413 Content Too Large` |
//! | head not complete within [`Limits::header_timeout`] (10 s) of its first byte (slowloris) | `408 Request Timeout` |
//! | malformed head, chunk, or conflicting framing | `400 Bad Request` |
//! | a transfer coding other than chunked | `501 Not Implemented` |
//! | no request for [`Limits::keep_alive_timeout`] (60 s) on an idle connection | closed without an answer |
//!
//! # WebSocket
//!
//! Any handler can turn a request into a WebSocket:
//! [`websocket::accept`] answers the handshake (`101`, or `400`/`426` for
//! a bad one) and hands the connection to a
//! [`websocket::WebSocketHandler`] with em-websocket's callbacks
//! (`on_open`, `on_message`, `on_close`, plus `on_ping`), on the same port
//! and routes as the rest of the server. Frames are read and written by
//! tungstenite's frame layer; fragmentation, masking, UTF-8 and size rules
//! are enforced with their close codes.
//!
//! # Middleware
//!
//! Async handlers take [`middleware`] layers with [`HandlerExt::with`]
//! (`api.with(Logging).with(Gzip::default())`, the last added outermost):
//! logging, timing, CORS, gzip, or your own with [`middleware::from_fn`]
//! (Goliath's aroundware).
//!
//! # https
//!
//! [`ServerBuilder::tls`] serves https with em's TLS (rustls): every
//! accepted connection starts TLS before its first request.
//!
//! # Graceful stop
//!
//! [`HttpServer::shutdown`] stops accepting, closes idle keep-alive
//! connections, lets requests in flight finish (their responses say
//! `Connection: close`), and closes whatever is left after a grace; its
//! future resolves when every connection is gone. [`HttpServer::stop`]
//! closes everything at once.
//!
//! # The client
//!
//! [`Client`] is em-http-request's `EM::HttpRequest`: an HTTP call that
//! never blocks the reactor ("Net::HTTP => EM::HttpRequest"). One client
//! per reactor, cheap to clone, `!Send`; names are resolved on tokio's
//! blocking pool and everything else runs on em's connections, with the
//! same codec (httparse) as the server.
//!
//! **Two styles over one engine.** Await a request
//! ([`RequestBuilder::send`], em-synchrony's `sync`), or start it and
//! register EventMachine's deferrable callbacks ([`RequestBuilder::start`]
//! → [`HttpRequest`]: `headers`, `stream`, `callback`, `errback`):
//!
//! ```
//! use em_http::http::{Request, StatusCode};
//! use em_http::{Body, Client};
//!
//! em_core::run(|| -> em_core::Result<()> {
//!     // A server to talk to, on the same reactor.
//!     let server = em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
//!         (StatusCode::OK, format!("you asked for {}", request.uri().path()))
//!     })?;
//!     let url = format!("http://{}/hello", server.local_addr());
//!     let client = Client::new();
//!
//!     // The await style.
//!     let c = client.clone();
//!     let u = url.clone();
//!     em_core::spawn(async move {
//!         let response = c.get(&u).send().await.expect("the request succeeds");
//!         assert_eq!(response.status(), StatusCode::OK);
//!         assert_eq!(response.text().await.unwrap(), "you asked for /hello");
//!     })?;
//!
//!     // The callback style.
//!     client
//!         .get(&url)
//!         .query(&[("lang", "en")])
//!         .start()
//!         .callback(|response| {
//!             assert_eq!(response.body().unwrap(), "you asked for /hello");
//!             em_core::stop();
//!         })
//!         .errback(|error| panic!("{error}"));
//!     Ok(())
//! })?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! **Streaming.** A [`ClientResponse`] resolves when the head arrives; its
//! body is read as it comes ([`ClientResponse::chunk`],
//! [`ClientResponse::into_stream`], the `stream` callback) or whole
//! ([`ClientResponse::bytes`], `text`, `json`, within
//! [`ClientLimits::max_body_size`]). While 256 KiB wait unread the
//! connection stops reading, so a 1 GiB download takes a bounded amount
//! of memory at the reader's pace. Request bodies may be bytes, a file
//! ([`RequestBody::file`]) or a stream ([`RequestBody::stream`]), written
//! at the connection's pace. gzip and deflate bodies are decoded (and
//! asked for) unless [`ClientBuilder::decompress`] turns it off.
//!
//! **Redirects.** Up to 5 by default ([`ClientBuilder::redirects`]): 301,
//! 302 and 303 turn into `GET` without the body, 307 and 308 keep the
//! method and body; credentials are not carried to another origin; one
//! too many is [`ClientErrorKind::TooManyRedirects`].
//!
//! **Pools.** Connections are kept per origin (scheme, host, port, proxy)
//! and reused: at most [`ClientBuilder::pool_max_idle_per_host`] idle ones,
//! each closed after [`ClientBuilder::pool_idle_timeout`]. A request that
//! finds its reused connection closed by the server before any answer is
//! tried once more on a new one (idempotent methods only).
//! [`ClientBuilder::pipelining`] (opt-in) writes `GET`s behind each other
//! on one connection when no idle one is free. [`Multi`] runs several
//! requests with a concurrency bound (em-http-request's `MultiRequest`).
//!
//! **TLS.** https uses em's TLS (rustls): the server's certificate is
//! verified against Mozilla's roots and its host name checked, by default
//! (em-http-request verified nothing until CVE-2020-13482). Add roots with
//! [`ClientBuilder::root_certs_file`], present a client certificate with
//! [`ClientBuilder::client_cert_pem`], or, in tests only,
//! [`ClientBuilder::danger_accept_invalid_certs`].
//!
//! **Timeouts and errors.** A connect timeout (the name, the connection, a
//! proxy's tunnel and the TLS handshake; 5 s), an inactivity timeout
//! (10 s, em's `comm_inactivity_timeout`) and an optional overall
//! deadline, per client or per request. Every failure is one
//! [`ClientError`] whose [`kind`](ClientError::kind) names the phase
//! (DNS, connect, TLS, timeout, protocol, body too large, too many
//! redirects…) and whose message names the request:
//! `GET http://127.0.0.1:8080/loop: too many redirects (more than 5)`. A
//! server that sends garbage ends its own request with a protocol error;
//! nothing else is touched.
//!
//! **Proxies and cookies.** [`Proxy::http`]: plain requests in absolute
//! form, https through `CONNECT`. The `socks` feature adds SOCKS5 proxies
//! (`Proxy::socks5`, the `tokio-socks` crate's handshake, then em takes
//! the socket over). The `cookies` feature adds a cookie jar
//! ([`ClientBuilder`]'s `cookie_store`, the `cookie_store` crate).
//!
//! # Testing
//!
//! The `testing` feature (for dev-dependencies) adds `em_http::testing`: a fake
//! HTTP server with canned responses per route, delays and a request log,
//! on em's `TestReactor`, for testing HTTP clients, em-http's or any
//! other.
//!
//! # em-http-request → em_http
//!
//! | em-http-request | em_http |
//! |---|---|
//! | `EM::HttpRequest.new(url, connect_timeout: 5, inactivity_timeout: 10)` | [`Client::builder`]`.connect_timeout(..).inactivity_timeout(..)`, then `client.get(url)` (or per request: [`RequestBuilder::connect_timeout`]) |
//! | `.get/.post/.put/.delete/.head/.patch/.options(head:, query:, body:)` | [`Client::get`] … [`Client::options`], [`RequestBuilder::header`], [`RequestBuilder::query`], [`RequestBuilder::body`] |
//! | `.setup_request(:propfind, …)` (any method) | [`Client::method`]`(Method, url)`; a whole [`http::Request`] with [`Client::request`] |
//! | a URL string each time | a `&str`/`String`, or a [`url::Url`] parsed once ([`IntoUrl`]) |
//! | `file:` | [`RequestBody::file`] (streamed, never whole in memory) |
//! | `redirects: 5` (default 0) | [`RequestBuilder::redirects`] (default 5); 301/302/303 → GET, 307/308 keep method and body |
//! | `keepalive: true` | on by default, pooled per origin (at most [`ClientBuilder::pool_max_idle_per_host`] idle, closed after [`ClientBuilder::pool_idle_timeout`]); [`RequestBuilder::keep_alive`]`(false)` for one-shot |
//! | `keepalive: true` with requests queued on one connection (pipelining) | opt-in: [`ClientBuilder::pipelining`]`(depth)`, for `GET`/`HEAD`/`OPTIONS` |
//! | `http.callback { }`, `http.errback { }` | [`HttpRequest::callback`], [`HttpRequest::errback`] (from [`RequestBuilder::start`]) |
//! | `http.headers { \|h\| }`, `http.stream { \|chunk\| }` | [`HttpRequest::headers`], [`HttpRequest::stream`] |
//! | `http.response_header.status`, `http.response` | [`ClientResponse::status`], [`ClientResponse::headers`], [`ClientResponse::body`] / `bytes().await` |
//! | `EM::Synchrony.sync(http)` / `EM::HttpRequest.new(url).get` in a fiber | `client.get(url).send().await` |
//! | `EM::MultiRequest` (`add`, `callback`, `responses`) | [`Multi`] (`add`, [`Multi::perform`] or [`Multi::start`]), with a concurrency bound |
//! | `tls: {verify_peer: false}` by default (CVE-2020-13482) | verified by default; [`ClientBuilder::root_certs_file`], [`ClientBuilder::danger_accept_invalid_certs`] for tests |
//! | `tls: {private_key_file:, cert_chain_file:}` | [`ClientBuilder::client_cert_pem`] (sent to servers that ask) |
//! | `proxy: {host:, port:, authorization:}` | [`Proxy::http`]`("http://user:pw@host:port")` |
//! | SOCKS5 proxy | `Proxy::socks5("socks5://user:pw@host:port")`, the `socks` feature (the proxy resolves the origin's name) |
//! | `head: {authorization: [user, pw]}` | [`RequestBuilder::basic_auth`], or credentials in the URL |
//! | gzip/deflate decoding | on by default ([`ClientBuilder::decompress`]) |
//! | cookie jar middleware | the `cookies` feature: [`ClientBuilder`]`::cookie_store(true)` |
//! | middleware (`use JSONify`, OAuth) | plain code around `send().await`; [`ClientResponse::json`] with serde |
//! | `http.error` (a string) | [`ClientError`]: [`ClientError::kind`] names the phase, `Display` the request |
//! | http_parser.rb | httparse, with [`ClientLimits`] on by default |
//!
//! # Goliath → em-http
//!
//! | Goliath | em-http |
//! |---|---|
//! | `class Api < Goliath::API; def response(env)` | an `async fn(Request<Body>) -> impl IntoResponse` given to [`serve`], or `impl RequestHandler` for callbacks |
//! | a fiber per request (`EM::Synchrony`) | a `!Send` future per request on the reactor; polled at once, a task only if it waits |
//! | `env` (Rack hash: `REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`, `HTTP_*`) | `http::Request`: `method()`, `uri().path()`, `uri().query()`, `headers()` |
//! | `env['rack.input']` | [`Body`]: `bytes().await`, `chunk().await`, a `Stream`, `on_complete` |
//! | `[status, headers, body]` | `http::Response<B>`, `(StatusCode, body)`, or anything [`IntoResponse`] |
//! | `env.stream_send(data)`, `env.stream_close` | [`BodyWriter::send`] / [`BodyWriter::send_ready`], [`BodyWriter::finish`] (or drop) |
//! | streaming with no flow control | [`BodyWriter::is_ready`], [`BodyWriter::ready`], [`BodyWriter::on_drained`]: the connection's watermarks |
//! | `Goliath::API` with `text/event-stream` by hand | [`sse::stream`], [`sse::Event`], `keep_alive` pings |
//! | `Goliath::WebSocket` (`on_open`, `on_message`, `on_close`) | [`websocket`]: [`websocket::WebSocketHandler`] with the same three callbacks, [`websocket::accept`] |
//! | `use Rack::…` middleware, aroundware | [`middleware`]: `handler.with(Logging).with(Gzip::default())`, `middleware::from_fn` |
//! | `Goliath::Rack::Params`, validation, formatters | not built in: parse `uri().query()` and bodies with serde |
//! | plugins beside the API in the reactor | anything started in the same `em::run` block: timers, servers, channels |
//! | `ruby server.rb -p 9000 -e prod` runner | your `main`: `em::run(|| em_http::serve(addr, api))` |
//! | `Goliath::TestHelper` (`with_api`, `get_request`) | a real server on port 0 in a test, any HTTP client (see em-http's tests) |
//! | http_parser.rb, no limits by default | `httparse` with every limit on by default ([`Limits`]) |
#![deny(missing_docs)]

mod body;
mod client;
mod codec;
mod error;
mod into_response;
mod limits;
pub mod middleware;
mod server;
pub mod sse;
#[cfg(feature = "testing")]
pub mod testing;
mod upgrade;
pub mod websocket;

pub use body::request::Body;
pub use body::response::{BodyClosed, BodyWriter, ResponseBody};
pub use client::callback::HttpRequest;
pub use client::error::{ClientError, ClientErrorKind, ClientResult};
pub use client::limits::ClientLimits;
pub use client::multi::Multi;
pub use client::proxy::Proxy;
pub use client::request::{IntoUrl, RequestBody, RequestBuilder};
pub use client::response::{ClientResponse, ResponseStream};
pub use client::{Client, ClientBuilder};
pub use error::{ErrorKind, HttpError};
pub use into_response::IntoResponse;
pub use limits::{Limits, MAX_HEADERS_CEILING};
pub use middleware::HandlerExt;
pub use server::handler::Handler;
pub use server::responder::{RequestHandler, Responder};
pub use server::{builder, serve, serve_callbacks, HttpServer, ServerBuilder};
pub use upgrade::{Upgraded, UpgradedIo};

pub use http;
/// The `url` crate, whose [`Url`](url::Url) the client takes and gives.
pub use url;
