//! Middleware: typed layers around an async [`Handler`], for what every
//! request of a server shares (logging, timing, CORS, compression), and
//! [`from_fn`] for your own (Goliath's "aroundware").
//!
//! ```
//! use std::time::Duration;
//! use em_http::http::{Method, Request, StatusCode};
//! use em_http::middleware::{self, Cors, Gzip, Logging, Next, Timing};
//! use em_http::{Body, HandlerExt, IntoResponse};
//!
//! async fn api(request: Request<Body>) -> (StatusCode, &'static str) {
//!     match request.uri().path() {
//!         "/" => (StatusCode::OK, "hello\n"),
//!         _ => (StatusCode::NOT_FOUND, "not found\n"),
//!     }
//! }
//!
//! em_core::run(|| -> em_core::Result<()> {
//!     let handler = api
//!         .with(middleware::from_fn(|request: Request<Body>, next: Next| async move {
//!             if request.headers().contains_key("x-blocked") {
//!                 return StatusCode::FORBIDDEN.into_response();
//!             }
//!             next.run(request).await
//!         }))
//!         .with(Timing)
//!         .with(Cors::new()
//!             .allow_origin("https://a.example")
//!             .allow_methods([Method::GET, Method::POST])
//!             .max_age(Duration::from_secs(600)))
//!         .with(Gzip::default())
//!         .with(Logging);
//!     em_http::serve("127.0.0.1:0", handler)?;
//!     em_core::stop();
//!     Ok(())
//! })?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # Order
//!
//! Each [`with`](HandlerExt::with) wraps everything before it, so the
//! **last** layer is the outermost: it sees the request first and the
//! response last. Above, `Logging` times the whole chain (compression
//! included), `Gzip` compresses what `Cors` and `Timing` returned, and a
//! request the `from_fn` layer refuses never reaches `api`.
//!
//! # Why not `tower::Service`
//!
//! tower's `Service::call` takes `&mut self` after a `poll_ready`, and the
//! layers of its ecosystem (tower-http and the rest) require `Send`
//! futures so that a multi-threaded runtime may move them. em runs every
//! request on one reactor thread, with `!Send` futures that hold `Rc`s,
//! `RefCell`s and reactor handles; a handler is shared by every connection
//! and called re-entrantly while earlier requests are still pending. So
//! em-http has its own small trait: a [`Middleware`] takes a [`Handler`]
//! (`&self`, `'static`, `!Send` futures allowed) and returns another one.
//!
//! # Threads
//!
//! Everything here runs on the reactor thread: layers are built before
//! [`serve`](crate::serve) and called, like the handler they wrap, on the
//! thread of the reactor that serves.

mod cors;
mod from_fn;
mod gzip;
mod logging;
mod timing;

pub use cors::{Cors, CorsHandler};
pub use from_fn::{from_fn, FromFn, FromFnHandler, Next};
pub use gzip::{Gzip, GzipHandler};
pub use logging::{Logging, LoggingHandler};
pub use timing::{Timing, TimingHandler};

use http::header::{HeaderMap, HeaderValue, VARY};
use http::Response;

use crate::body::response::ResponseBody;
use crate::server::handler::Handler;

/// The future of a wrapped handler's response: boxed, `!Send`, `'static`.
pub type ResponseFuture = futures_util::future::LocalBoxFuture<'static, Response<ResponseBody>>;

/// A layer around a handler: [`wrap`](Middleware::wrap) takes the inner
/// [`Handler`] and returns one that runs code before and after it (or
/// answers without it). Called once, on the reactor thread, when the
/// chain is built with [`HandlerExt::with`].
///
/// A middleware is usually generic over every `H: Handler`, storing the
/// inner handler in the handler it returns:
///
/// ```
/// use em_http::http::{HeaderValue, Request, Response};
/// use em_http::middleware::{Middleware, ResponseFuture};
/// use em_http::{Body, Handler, HandlerExt, IntoResponse, ResponseBody};
///
/// /// Adds `x-served-by: em` to every response.
/// struct ServedBy;
///
/// struct ServedByHandler<H>(H);
///
/// impl<H: Handler> Middleware<H> for ServedBy {
///     type Handler = ServedByHandler<H>;
///     fn wrap(self, inner: H) -> ServedByHandler<H> {
///         ServedByHandler(inner)
///     }
/// }
///
/// impl<H: Handler> Handler for ServedByHandler<H> {
///     type Output = Response<ResponseBody>;
///     type Future = ResponseFuture;
///     fn call(&self, request: Request<Body>) -> ResponseFuture {
///         let future = self.0.call(request);
///         Box::pin(async move {
///             let mut response = future.await.into_response();
///             response.headers_mut().insert("x-served-by", HeaderValue::from_static("em"));
///             response
///         })
///     }
/// }
///
/// let handler = (|_request: Request<Body>| async { "hi" }).with(ServedBy);
/// # let _ = handler;
/// ```
pub trait Middleware<H: Handler>: 'static {
    /// The handler that wraps `H`.
    type Handler: Handler;

    /// Wraps `inner`.
    fn wrap(self, inner: H) -> Self::Handler;
}

/// Adds [`with`](HandlerExt::with) to every [`Handler`], for building a
/// chain of [`Middleware`]: `api.with(Logging).with(Gzip::default())`.
pub trait HandlerExt: Handler + Sized {
    /// Wraps this handler in `middleware`; the last `with` of a chain is
    /// the outermost layer. Reactor thread (or before the reactor runs:
    /// building a chain does no I/O).
    fn with<M: Middleware<Self>>(self, middleware: M) -> M::Handler {
        middleware.wrap(self)
    }
}

impl<H: Handler> HandlerExt for H {}

/// Adds `token` to the `Vary` header unless it (or `*`) is already there.
fn add_vary(headers: &mut HeaderMap, token: &'static str) {
    let present = headers.get_all(VARY).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.eq_ignore_ascii_case(token))
        })
    });
    if !present {
        headers.append(VARY, HeaderValue::from_static(token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_is_added_once() {
        let mut headers = HeaderMap::new();
        add_vary(&mut headers, "origin");
        add_vary(&mut headers, "origin");
        headers.append(VARY, HeaderValue::from_static("Cookie, Accept-Encoding"));
        add_vary(&mut headers, "accept-encoding");
        let all: Vec<_> = headers.get_all(VARY).iter().collect();
        assert_eq!(all, ["origin", "Cookie, Accept-Encoding"]);
    }
}
