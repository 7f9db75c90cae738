//! The server's limits: what a request may take of the server before it is
//! refused, each with a default, a setter and the status that answers a
//! breach.

use std::time::Duration;

/// The most headers a request may carry that em-http can parse at all: the
/// parser's header table lives on the stack, this many entries long.
pub const MAX_HEADERS_CEILING: usize = 512;

/// What a request may take of the server. Each breach is answered with its
/// status and the connection is closed after the answer; other connections
/// are not affected. Plain data: built anywhere, used on the reactor thread
/// of the server it configures.
///
/// | limit | default | breach |
/// |---|---|---|
/// | [`max_request_line`](Limits::max_request_line) | 8 KiB | 414 URI Too Long |
/// | [`max_header_size`](Limits::max_header_size) | 16 KiB | 431 Request Header Fields Too Large |
/// | [`max_headers`](Limits::max_headers) | 100 | 431 |
/// | [`max_body_size`](Limits::max_body_size) | 16 MiB | 413 Content Too Large |
/// | [`header_timeout`](Limits::header_timeout) | 10 s | 408 Request Timeout |
/// | [`keep_alive_timeout`](Limits::keep_alive_timeout) | 60 s | closed without an answer |
/// | [`max_in_flight`](Limits::max_in_flight) | 16 | reading pauses until one finishes |
///
/// ```
/// use em_http::Limits;
/// use std::time::Duration;
///
/// let limits = Limits::default()
///     .max_header_size(8 * 1024)
///     .max_body_size(1024 * 1024)
///     .header_timeout(Duration::from_secs(5));
/// assert_eq!(limits.get_max_body_size(), 1024 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub(crate) max_request_line: usize,
    pub(crate) max_header_size: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_body_size: u64,
    pub(crate) header_timeout: Duration,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) body_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_header_size: 16 * 1024,
            max_headers: 100,
            max_body_size: 16 * 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            max_in_flight: 16,
            body_buffer: 256 * 1024,
        }
    }
}

impl Limits {
    /// The longest request line (method, target, version) accepted; longer
    /// is answered `414 URI Too Long`. Default 8 KiB.
    pub fn max_request_line(mut self, bytes: usize) -> Self {
        self.max_request_line = bytes.max(16);
        self
    }

    /// The largest request head (request line and headers, up to the blank
    /// line) accepted; larger is answered `431 Request Header Fields Too
    /// Large`. Default 16 KiB.
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.max_header_size = bytes.max(64);
        self
    }

    /// The most header fields a request may carry; more is answered `431`.
    /// Default 100, at most [`MAX_HEADERS_CEILING`] (larger values are
    /// lowered to it).
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count.clamp(1, MAX_HEADERS_CEILING);
        self
    }

    /// The largest request body accepted, fixed-length or chunked; larger
    /// is answered `413 Content Too Large` (at once for a `Content-Length`
    /// over it, when the chunks pass it otherwise). Default 16 MiB.
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// How long a client may take to send a request's head once its first
    /// byte arrived (the slowloris guard); past it the request is answered
    /// `408 Request Timeout`. Default 10 s; zero turns it off.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long a keep-alive connection may stay idle (no request in
    /// flight, no byte either way) before the server closes it, without an
    /// answer. Default 60 s; zero turns it off.
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// The most requests one connection may have in flight (pipelined and
    /// not yet answered); past it the server stops reading from that
    /// connection until a response is finished, so a pipelining client is
    /// slowed, never refused. Default 16.
    pub fn max_in_flight(mut self, count: usize) -> Self {
        self.max_in_flight = count.max(1);
        self
    }

    /// How much of a request body em-http buffers for a handler that has
    /// not read it yet before it stops reading from the connection (the
    /// body's backpressure). Default 256 KiB.
    pub fn body_buffer(mut self, bytes: usize) -> Self {
        self.body_buffer = bytes.max(1);
        self
    }

    /// See [`max_request_line`](Limits::max_request_line).
    pub fn get_max_request_line(&self) -> usize {
        self.max_request_line
    }

    /// See [`max_header_size`](Limits::max_header_size).
    pub fn get_max_header_size(&self) -> usize {
        self.max_header_size
    }

    /// See [`max_headers`](Limits::max_headers).
    pub fn get_max_headers(&self) -> usize {
        self.max_headers
    }

    /// See [`max_body_size`](Limits::max_body_size).
    pub fn get_max_body_size(&self) -> u64 {
        self.max_body_size
    }

    /// See [`header_timeout`](Limits::header_timeout).
    pub fn get_header_timeout(&self) -> Duration {
        self.header_timeout
    }

    /// See [`keep_alive_timeout`](Limits::keep_alive_timeout).
    pub fn get_keep_alive_timeout(&self) -> Duration {
        self.keep_alive_timeout
    }

    /// See [`max_in_flight`](Limits::max_in_flight).
    pub fn get_max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// See [`body_buffer`](Limits::body_buffer).
    pub fn get_body_buffer(&self) -> usize {
        self.body_buffer
    }
}
