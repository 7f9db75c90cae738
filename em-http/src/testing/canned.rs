//! `CannedResponse`: what a fake HTTP server answers on a route.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

/// A response a [`FakeHttpServer`](super::FakeHttpServer) gives on a
/// route: a status, headers, a body, and an optional delay before it is
/// sent. Built on any thread (it is `Send`); cloned for each request on
/// the fake's reactor thread.
///
/// em-http adds `Content-Length`, `Date` and `Connection` where the
/// response leaves them out.
#[derive(Debug, Clone)]
pub struct CannedResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    delay: Duration,
}

impl CannedResponse {
    /// A response with `status`, no headers of its own and an empty body.
    pub fn new(status: StatusCode) -> CannedResponse {
        CannedResponse {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
        }
    }

    /// `200 OK` with `body`.
    pub fn ok(body: impl Into<Bytes>) -> CannedResponse {
        CannedResponse::new(StatusCode::OK).body(body)
    }

    /// Adds a header; several calls with one name send each value. Panics
    /// on an invalid name or value (a mistake in the test).
    pub fn header<K, V>(mut self, name: K, value: V) -> CannedResponse
    where
        K: TryInto<HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => panic!("CannedResponse::header: an invalid header name or value"),
        }
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> CannedResponse {
        self.body = body.into();
        self
    }

    /// Waits `delay` (on the fake's reactor clock, after the request's
    /// body was read and logged) before answering; other requests are not
    /// held up.
    pub fn delay(mut self, delay: Duration) -> CannedResponse {
        self.delay = delay;
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub(super) fn pause(&self) -> Duration {
        self.delay
    }

    /// The `http::Response` to send.
    pub(super) fn to_response(&self) -> Response<Bytes> {
        let mut response = Response::new(self.body.clone());
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

impl Default for CannedResponse {
    /// `404 Not Found`, with `not found\n` as its body: what a fake answers
    /// on a route it was not given.
    fn default() -> CannedResponse {
        CannedResponse::new(StatusCode::NOT_FOUND)
            .header("content-type", "text/plain")
            .body("not found\n")
    }
}
