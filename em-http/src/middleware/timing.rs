//! The `Server-Timing` header.

use std::time::Instant;

use http::header::HeaderValue;
use http::{Request, Response};

use super::{Middleware, ResponseFuture};
use crate::body::request::Body;
use crate::body::response::ResponseBody;
use crate::into_response::IntoResponse;
use crate::server::handler::Handler;

/// Adds `server-timing: app;dur=<ms>` (milliseconds with three decimals)
/// to each response: the time from the call of the layers inside it to
/// their response, which browsers' developer tools show. Other
/// `Server-Timing` values are kept. Runs on the reactor thread.
///
/// ```
/// use em_http::{Body, HandlerExt};
/// use em_http::middleware::Timing;
///
/// let handler = (|_request: http::Request<Body>| async { "hi" }).with(Timing);
/// # let _ = handler;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing;

impl<H: Handler> Middleware<H> for Timing {
    type Handler = TimingHandler<H>;

    fn wrap(self, inner: H) -> TimingHandler<H> {
        TimingHandler { inner }
    }
}

/// The handler [`Timing`] wraps around another.
#[derive(Debug)]
pub struct TimingHandler<H> {
    inner: H,
}

impl<H: Handler> Handler for TimingHandler<H> {
    type Output = Response<ResponseBody>;
    type Future = ResponseFuture;

    fn call(&self, request: Request<Body>) -> ResponseFuture {
        let start = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await.into_response();
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            let value = HeaderValue::try_from(format!("app;dur={ms:.3}"))
                .expect("a number is a valid header value");
            response.headers_mut().append("server-timing", value);
            response
        })
    }
}
