//! Middleware written as an async function of the request and the rest of
//! the chain ([`Next`]): Goliath's "aroundware".

use std::fmt;
use std::future::Future;
use std::rc::Rc;

use http::Request;

use super::{Middleware, ResponseFuture};
use crate::body::request::Body;
use crate::into_response::IntoResponse;
use crate::server::handler::Handler;

/// Makes a [`Middleware`] of an async function `f(request, next)`: it may
/// change the request, answer without calling [`next.run`](Next::run)
/// (a refusal, a cached answer), or await the rest of the chain and
/// change its response. `f` is called on the reactor thread for every
/// request; its future may be `!Send`.
///
/// ```
/// use em_http::http::{HeaderValue, Request, StatusCode};
/// use em_http::middleware::{from_fn, Next};
/// use em_http::{Body, HandlerExt, IntoResponse};
///
/// let api = |_request: Request<Body>| async { "secret\n" };
/// let handler = api.with(from_fn(|request: Request<Body>, next: Next| async move {
///     if request.headers().get("authorization").is_none() {
///         return StatusCode::UNAUTHORIZED.into_response();
///     }
///     let mut response = next.run(request).await;
///     response.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
///     response
/// }));
/// # let _ = handler;
/// ```
pub fn from_fn<F>(f: F) -> FromFn<F> {
    FromFn(f)
}

/// The middleware [`from_fn`] makes.
pub struct FromFn<F>(F);

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFn")
    }
}

impl<H, F, Fut, O> Middleware<H> for FromFn<F>
where
    H: Handler,
    F: Fn(Request<Body>, Next) -> Fut + 'static,
    Fut: Future<Output = O> + 'static,
    O: IntoResponse,
{
    type Handler = FromFnHandler<F>;

    fn wrap(self, inner: H) -> FromFnHandler<F> {
        FromFnHandler {
            f: self.0,
            next: Next {
                inner: Rc::new(inner),
            },
        }
    }
}

/// The handler a [`from_fn`] middleware wraps around the rest of the chain.
pub struct FromFnHandler<F> {
    f: F,
    next: Next,
}

impl<F> fmt::Debug for FromFnHandler<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromFnHandler").finish_non_exhaustive()
    }
}

impl<F, Fut, O> Handler for FromFnHandler<F>
where
    F: Fn(Request<Body>, Next) -> Fut + 'static,
    Fut: Future<Output = O> + 'static,
    O: IntoResponse,
{
    type Output = O;
    type Future = Fut;

    fn call(&self, request: Request<Body>) -> Fut {
        (self.f)(request, self.next.clone())
    }
}

/// The rest of a middleware chain, handed to a [`from_fn`] function:
/// [`run`](Next::run) passes the request on and resolves to the response.
/// Cloning it is cheap (one `Rc`); `!Send`, reactor thread only.
#[derive(Clone)]
pub struct Next {
    inner: Rc<dyn Endpoint>,
}

impl Next {
    /// Calls the rest of the chain with `request`; the future resolves to
    /// its response, on the reactor thread.
    pub fn run(self, request: Request<Body>) -> ResponseFuture {
        self.inner.call_boxed(request)
    }
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next").finish_non_exhaustive()
    }
}

/// Any handler, its future boxed and its output made a response: what
/// lets [`Next`] name no type parameter.
trait Endpoint {
    fn call_boxed(&self, request: Request<Body>) -> ResponseFuture;
}

impl<H: Handler> Endpoint for H {
    fn call_boxed(&self, request: Request<Body>) -> ResponseFuture {
        let future = self.call(request);
        Box::pin(async move { future.await.into_response() })
    }
}
