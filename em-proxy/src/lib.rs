//! TCP proxies on em, in the spirit of Ruby's em-proxy and ProxyMachine:
//! an intercepting proxy library with a built-in duplex (mirror) mode, and
//! a content router. Everything runs on the reactor thread that starts it.
//!
//! # A first example
//!
//! A duplex proxy: production serves, staging gets a copy of every byte
//! (em-proxy's "test production traffic on staging code"):
//!
//! ```
//! use em_proxy::Duplex;
//!
//! em_core::run(|| {
//!     let proxy = Duplex::new("127.0.0.1:8081")
//!         .mirror("127.0.0.1:8082")
//!         .start("127.0.0.1:0")?;
//!     tracing::info!(addr = %proxy.local_addr(), "proxy up");
//!     // SIGQUIT drains, SIGTERM/SIGINT drain for at most 10 s.
//!     proxy.stop_on_signals(std::time::Duration::from_secs(10))?;
//!     em_core::stop(); // a real proxy would run until a signal
//!     Ok(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Three faces over two engines
//!
//! * [`Proxy`]: em-proxy's library. A setup closure runs for each client
//!   and configures its [`Session`]: the backends to open
//!   ([`server`](Session::server), [`mirror`](Session::mirror); TCP or
//!   Unix-domain, anything `em_core::Endpoint` takes) and the callbacks
//!   ([`on_data`](Session::on_data) rewrites, drops or routes the client's
//!   bytes as a [`Data`]; [`on_response`](Session::on_response) rewrites or
//!   drops a server's reply; [`on_connect`](Session::on_connect);
//!   [`on_finish`](Session::on_finish) closes or keeps the client, a
//!   [`Finish`]).
//! * [`Duplex`]: the proxy with one server and mirrors, no callbacks; the
//!   `em-proxy` binary of em-examples is its command line.
//! * [`Router`]: ProxyMachine. A function sees the client's first bytes
//!   and answers a [`Route`]: a [`Remote`] backend (with replacement
//!   [`data`](Remote::data), a [`reply`](Remote::reply), per-route connect
//!   and inactivity timeouts), [`Noop`](Route::Noop) to wait for more,
//!   [`Reply`](Route::Reply), [`Close`](Route::Close) or
//!   [`CloseWith`](Route::CloseWith) a message.
//!
//! [`Proxy::tls`] and [`Router::tls`] serve clients over TLS (em's
//! `start_tls` on each accepted connection); backends stay plain.
//!
//! Each returns a [`ProxyServer`]: its address, [`Stats`], `stop`,
//! [`drain`](ProxyServer::drain), and
//! [`stop_on_signals`](ProxyServer::stop_on_signals).
//!
//! # How bytes move
//!
//! When nothing needs to see them, bytes never enter the reactor: em's
//! `Conn::proxy_incoming_to` relays them, with `splice(2)` between plain
//! sockets. A [`Proxy`] session with one server, no mirror and no
//! callbacks relays both ways; with mirrors or `on_data` the client's
//! bytes are copied (one read, one queued copy per backend, shared
//! `Bytes`), and the server's replies are still relayed unless
//! `on_response` is set. A [`Router`] relays both ways once routed.
//!
//! Backpressure follows em's: a reader holds while its writer has more
//! than `bufsize` waiting. Mirrors are the exception, by design: a mirror
//! never holds anyone; past its watermark its copies are dropped and
//! counted, so a stuck mirror costs at most its watermark per session.
//!
//! # Threads, callbacks and failures
//!
//! Proxies start on the reactor thread, and every callback (setup,
//! `on_data`, the routing function…) runs there, one at a time, never
//! re-entrantly. A callback that panics ends its own session only (em
//! catches it, reports it to the error handler, and unbinds the
//! connection): the reactor and every other session carry on. A backend
//! that fails is logged (with the connection's id and peer) and counted in
//! [`Stats`]; the client's fate is [`on_finish`](Session::on_finish)'s, or
//! closed for a router.
//!
//! # em-proxy → em
//!
//! | em-proxy (Ruby) | em-proxy (Rust) |
//! |---|---|
//! | `Proxy.start(host:, port:) { \|conn\| … }` | [`Proxy::start`]`(addr, \|session\| …)` |
//! | `conn.server :name, host:, port:` | [`Session::server`]`("name", "host:port")` |
//! | `conn.server :name, socket: path` | `session.server("name", Endpoint::unix(path))` |
//! | duplex: relay plus other servers whose replies are ignored | [`Session::mirror`], or [`Duplex`] |
//! | `on_data { \|data\| data }` / `nil` / `[data, [:srv]]` | [`Session::on_data`] → [`Data::All`] / [`Data::Drop`] / [`Data::To`] |
//! | `on_response { \|backend, resp\| resp }` | [`Session::on_response`] → `Some(bytes)` / `None` |
//! | `on_connect { \|name\| }` | [`Session::on_connect`] |
//! | `on_finish { \|name\| :close / :keep }` | [`Session::on_finish`] → [`Finish::Close`] / [`Finish::Keep`] |
//! | `relay_client`/`relay_server` (`proxy_incoming_to`) | automatic when no callback needs the bytes |
//! | `tls_key:`, `tls_cert:` on the listener | [`Proxy::tls`]`(TlsOptions)` |
//! | traps TERM/INT to stop | [`ProxyServer::stop_on_signals`] |
//! | `em-proxy -l PORT -r HOST:PORT -d HOST:PORT` | `em-proxy --listen ADDR --relay ADDR --mirror ADDR` |
//!
//! # ProxyMachine → em
//!
//! | ProxyMachine | em-proxy (Rust) |
//! |---|---|
//! | `proxy do \|data\| … end` | [`Router::start`]`(addr, \|data\| …)` |
//! | `{ remote: "host:port" }` | [`Route::remote`]`("host:port")` |
//! | `{ remote:, data: "…" }` / `{ remote:, reply: "…" }` | [`Remote::data`] / [`Remote::reply`] |
//! | `{ noop: true }` | [`Route::Noop`] |
//! | `{ close: true }` / `{ close: "text" }` | [`Route::Close`] / [`Route::CloseWith`] |
//! | `:connect_timeout`, `:inactivity_timeout` | [`Remote::connect_timeout`], [`Remote::inactivity_timeout`] |
//! | `proxy_connect_error { \|remote\| }` | [`Router::on_connect_error`] |
//! | `proxy_inactivity_error { \|remote\| }` | [`Router::on_inactivity_error`] |
//! | 10 retries, 0.1 s apart | [`Router::retries`]`(10, 100 ms)` (the default) |
//! | QUIT drains; TERM/INT stop, forced after 10 s | [`ProxyServer::stop_on_signals`]`(10 s)`, [`ProxyServer::drain`] |
//! | `proxy_incoming_to(…, 10240)` after routing | em's relays, spliced; [`Router::bufsize`] |

#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]
#![doc(test(attr(deny(warnings))))]

mod backend;
mod duplex;
mod error;
mod proxy;
mod router;
mod server;
mod stats;

pub use duplex::{Duplex, RELAY};
pub use error::{Error, Result};
pub use proxy::{Data, Finish, Proxy, Session};
pub use router::{Remote, Route, Router};
pub use server::ProxyServer;
pub use stats::Stats;
