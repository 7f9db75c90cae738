//! The log of the requests a fake HTTP server got.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Uri};

/// One request a [`FakeHttpServer`](super::FakeHttpServer) got, as read on
/// its reactor thread: logged once its body was read whole, before the
/// response was sent (and before the route's delay).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoggedRequest {
    /// When, since the server started (on its reactor's clock).
    pub at: Duration,
    /// The method.
    pub method: Method,
    /// The request target, with its query.
    pub uri: Uri,
    /// The path alone (what routes match).
    pub path: String,
    /// The header fields, as sent.
    pub headers: HeaderMap,
    /// The body, whole (empty if none, or if it could not be read).
    pub body: Bytes,
}

impl LoggedRequest {
    /// The value of header `name` as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Written on the reactor thread, read and waited on from the test's.
pub(super) struct RequestLog {
    start: tokio::time::Instant,
    requests: Mutex<Vec<LoggedRequest>>,
    changed: Condvar,
}

impl RequestLog {
    /// Reactor thread: its clock starts now.
    pub(super) fn new() -> RequestLog {
        RequestLog {
            start: tokio::time::Instant::now(),
            requests: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        }
    }

    pub(super) fn since_start(&self) -> Duration {
        self.start.elapsed()
    }

    pub(super) fn push(&self, request: LoggedRequest) {
        self.lock().push(request);
        self.changed.notify_all();
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Vec<LoggedRequest>> {
        self.requests.lock().unwrap()
    }

    /// Waits until at least `n` requests are logged and returns them all;
    /// `Err` with those logged so far at `limit`.
    pub(super) fn wait_for(
        &self,
        n: usize,
        limit: Duration,
    ) -> Result<Vec<LoggedRequest>, Vec<LoggedRequest>> {
        let deadline = std::time::Instant::now() + limit;
        let mut requests = self.lock();
        loop {
            if requests.len() >= n {
                return Ok(requests.clone());
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(requests.clone());
            }
            requests = self
                .changed
                .wait_timeout(requests, deadline - now)
                .unwrap()
                .0;
        }
    }
}
