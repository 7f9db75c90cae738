//! The client's error: which phase of which request failed, and why.

use std::error::Error as StdError;
use std::fmt;

use http::Method;

/// Why an HTTP request made with [`Client`](crate::Client) failed: the
/// phase that failed ([`kind`](ClientError::kind)), the request's method
/// and URL, and the cause. Its `Display` reads as one line, for example
/// `GET http://127.0.0.1:8080/loop: too many redirects (more than 5)`.
///
/// Created on the reactor thread; `Send` and `Sync`, so it may be handed to
/// any thread.
pub struct ClientError {
    kind: ClientErrorKind,
    method: Option<Method>,
    url: Option<String>,
    detail: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// The phase of a request that failed, for [`ClientError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientErrorKind {
    /// The request could not be built: a malformed URL, a scheme other
    /// than `http` or `https`, an invalid header.
    InvalidRequest,
    /// The host name could not be resolved.
    Dns,
    /// The TCP connection (or the proxy's tunnel) could not be opened.
    Connect,
    /// The TLS handshake failed: an untrusted certificate, a certificate
    /// for another host, no common protocol version.
    Tls,
    /// Connecting (resolving, connecting, the proxy's tunnel and the TLS
    /// handshake) took longer than the connect timeout.
    ConnectTimeout,
    /// Nothing was sent or received for longer than the inactivity
    /// timeout.
    InactivityTimeout,
    /// The request's overall deadline passed (the body included).
    Deadline,
    /// The server's answer broke HTTP/1.1: a malformed head or chunk,
    /// conflicting framing, a head over the limits.
    Protocol,
    /// The connection ended before the response did.
    Closed,
    /// The body is larger than [`ClientLimits::max_body_size`](crate::ClientLimits::max_body_size)
    /// allows a body collected in memory.
    BodyTooLarge,
    /// More redirects than the request allows were answered.
    TooManyRedirects,
    /// The request's body could not be read (a file or a stream failed).
    RequestBody,
    /// The response's body could not be decoded: bad gzip or deflate
    /// data, text that is not UTF-8, JSON that does not parse.
    Decode,
}

impl ClientError {
    pub(crate) fn new(kind: ClientErrorKind, detail: impl Into<String>) -> Self {
        ClientError {
            kind,
            method: None,
            url: None,
            detail: detail.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Names the request, unless it is named already (the first request
    /// to fail is the one named, not a redirect's origin).
    pub(crate) fn for_request(mut self, method: &Method, url: &str) -> Self {
        if self.url.is_none() {
            self.method = Some(method.clone());
            self.url = Some(url.to_owned());
        }
        self
    }

    /// Which phase failed.
    pub fn kind(&self) -> ClientErrorKind {
        self.kind
    }

    /// The URL of the request that failed (after redirects: the one that
    /// failed), if the error came from a request.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The method of the request that failed.
    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    /// Whether a timeout ended the request: connect, inactivity or the
    /// deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            ClientErrorKind::ConnectTimeout
                | ClientErrorKind::InactivityTimeout
                | ClientErrorKind::Deadline
        )
    }

    /// Whether the failure came before the request was sent: the name, the
    /// connection, the tunnel or TLS.
    pub fn is_connect(&self) -> bool {
        matches!(
            self.kind,
            ClientErrorKind::Dns
                | ClientErrorKind::Connect
                | ClientErrorKind::Tls
                | ClientErrorKind::ConnectTimeout
        )
    }

    /// Whether the server's answer broke HTTP.
    pub fn is_protocol(&self) -> bool {
        self.kind == ClientErrorKind::Protocol
    }

    /// Whether TLS failed.
    pub fn is_tls(&self) -> bool {
        self.kind == ClientErrorKind::Tls
    }
}

impl ClientErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ClientErrorKind::InvalidRequest => "invalid request",
            ClientErrorKind::Dns => "cannot resolve the host name",
            ClientErrorKind::Connect => "cannot connect",
            ClientErrorKind::Tls => "TLS handshake failed",
            ClientErrorKind::ConnectTimeout => "connect timed out",
            ClientErrorKind::InactivityTimeout => "inactivity timeout",
            ClientErrorKind::Deadline => "deadline exceeded",
            ClientErrorKind::Protocol => "protocol error",
            ClientErrorKind::Closed => "connection closed before the response ended",
            ClientErrorKind::BodyTooLarge => "response body too large",
            ClientErrorKind::TooManyRedirects => "too many redirects",
            ClientErrorKind::RequestBody => "cannot read the request body",
            ClientErrorKind::Decode => "cannot decode the response body",
        }
    }
}

impl fmt::Display for ClientErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(method), Some(url)) = (&self.method, &self.url) {
            write!(f, "{method} {url}: ")?;
        }
        f.write_str(self.kind.describe())?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// `{:?}` prints what `Display` prints (so that `fn main() -> Result<…>`
/// shows a readable message, as anyhow's and hyper's errors do); `{:#?}`
/// the structure.
impl fmt::Debug for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        let mut d = f.debug_struct("ClientError");
        d.field("kind", &self.kind);
        if let Some(m) = &self.method {
            d.field("method", m);
        }
        if let Some(u) = &self.url {
            d.field("url", u);
        }
        if !self.detail.is_empty() {
            d.field("detail", &self.detail);
        }
        if let Some(s) = &self.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// The result of a client operation.
pub type ClientResult<T> = std::result::Result<T, ClientError>;

/// `?` on an HTTP client error in code returning `em::Result` (a run block):
/// `em::Error::other`, with this error as its `source()`.
impl From<ClientError> for em_core::Error {
    fn from(e: ClientError) -> Self {
        em_core::Error::other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_request_and_the_phase() {
        let e = ClientError::new(ClientErrorKind::TooManyRedirects, "more than 5")
            .for_request(&Method::GET, "http://h/a")
            .for_request(&Method::GET, "http://h/b");
        assert_eq!(
            e.to_string(),
            "GET http://h/a: too many redirects (more than 5)"
        );
        // Debug reads the same (what `main` prints), `{:#?}` the fields.
        assert_eq!(format!("{e:?}"), e.to_string());
        assert!(format!("{e:#?}").starts_with("ClientError {"));
        assert!(!e.is_timeout());
        let t = ClientError::new(ClientErrorKind::InactivityTimeout, "");
        assert_eq!(t.to_string(), "inactivity timeout");
        assert!(t.is_timeout());
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ClientError>();
    }
}
