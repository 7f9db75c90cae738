//! An evented HTTP/1.1 server on em's connections, in the spirit of
//! Goliath: keep-alive, pipelining, streaming, server-sent events and
//! WebSocket, written as callbacks or as async handlers.
//!
//! ```
//! use http::{Request, StatusCode};
//! use em_http::Body;
//!
//! em_core::run(|| -> em_core::Result<()> {
//!     em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
//!         match request.uri().path() {
//!             "/" => (StatusCode::OK, "Hello, World!"),
//!             _ => (StatusCode::NOT_FOUND, "not found\n"),
//!         }
//!     })?;
//!     em_core::stop();
//!     Ok(())
//! })?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! Async handlers take [`middleware`] layers with [`HandlerExt::with`]
//! (`api.with(Logging).with(Gzip::default())`): logging, timing, CORS,
//! gzip, or your own with [`middleware::from_fn`].
#![deny(missing_docs)]

mod body;
mod codec;
mod error;
mod into_response;
mod limits;
pub mod middleware;
mod server;
pub mod sse;
mod upgrade;
#[allow(dead_code, unused_imports, unreachable_pub)]
pub(crate) mod websocket;

pub use body::request::Body;
pub use body::response::{BodyClosed, BodyWriter, ResponseBody};
pub use error::{ErrorKind, HttpError};
pub use into_response::IntoResponse;
pub use limits::{Limits, MAX_HEADERS_CEILING};
pub use middleware::HandlerExt;
pub use server::handler::Handler;
pub use server::responder::{RequestHandler, Responder};
pub use server::{builder, serve, serve_callbacks, HttpServer, ServerBuilder};
pub use upgrade::{Upgraded, UpgradedIo};

pub use http;
