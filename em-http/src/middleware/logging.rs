//! One log line per request.

use std::time::Instant;

use http::{Request, Response};

use super::{Middleware, ResponseFuture};
use crate::body::request::Body;
use crate::body::response::ResponseBody;
use crate::into_response::IntoResponse;
use crate::server::handler::Handler;

/// Logs each request once its response is made: a `tracing` event at
/// `INFO` with `method`, `path`, `status` and `elapsed_us` (from the call
/// to the response, in microseconds; a streamed body's later chunks are
/// not counted). Runs on the reactor thread. Put it last in a chain to
/// time every layer.
///
/// ```
/// use em_http::{Body, HandlerExt};
/// use em_http::middleware::Logging;
///
/// let handler = (|_request: http::Request<Body>| async { "hi" }).with(Logging);
/// # let _ = handler;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Logging;

impl<H: Handler> Middleware<H> for Logging {
    type Handler = LoggingHandler<H>;

    fn wrap(self, inner: H) -> LoggingHandler<H> {
        LoggingHandler { inner }
    }
}

/// The handler [`Logging`] wraps around another.
#[derive(Debug)]
pub struct LoggingHandler<H> {
    inner: H,
}

impl<H: Handler> Handler for LoggingHandler<H> {
    type Output = Response<ResponseBody>;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Body>) -> ResponseFuture {
        let start = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await.into_response();
            tracing::info!(
                %method,
                path,
                status = response.status().as_u16(),
                elapsed_us = start.elapsed().as_micros() as u64,
                "request"
            );
            response
        })
    }
}
