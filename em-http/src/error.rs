//! em-http's error type: why a request was refused or a body failed.

use std::fmt;

use http::StatusCode;

/// Why a request was refused, or why its body could not be read. Each kind
/// names the status the server answered with (see [`status`](HttpError::status)).
#[derive(Clone, PartialEq, Eq)]
pub struct HttpError {
    kind: ErrorKind,
    detail: String,
}

/// The kinds of [`HttpError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request was malformed: a bad request line, header or chunk,
    /// conflicting framing. Answered `400 Bad Request`.
    BadRequest,
    /// The request line passed [`Limits::max_request_line`](crate::Limits::max_request_line).
    /// Answered `414 URI Too Long`.
    RequestLineTooLong,
    /// The head passed [`Limits::max_header_size`](crate::Limits::max_header_size)
    /// or [`Limits::max_headers`](crate::Limits::max_headers). Answered
    /// `431 Request Header Fields Too Large`.
    HeadersTooLarge,
    /// The body passed [`Limits::max_body_size`](crate::Limits::max_body_size).
    /// Answered `413 Content Too Large`.
    BodyTooLarge,
    /// The head did not arrive within [`Limits::header_timeout`](crate::Limits::header_timeout).
    /// Answered `408 Request Timeout`.
    Timeout,
    /// The connection ended before the whole body arrived.
    Truncated,
    /// The request used a feature em-http does not implement (a transfer
    /// coding other than chunked). Answered `501 Not Implemented`.
    Unsupported,
}

impl HttpError {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        HttpError {
            kind,
            detail: detail.into(),
        }
    }

    /// Which kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong, without the kind's words (which are the
    /// server's: "request body truncated").
    pub(crate) fn detail(&self) -> &str {
        &self.detail
    }

    /// The status the server answers this failure with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::BadRequest | ErrorKind::Truncated => StatusCode::BAD_REQUEST,
            ErrorKind::RequestLineTooLong => StatusCode::URI_TOO_LONG,
            ErrorKind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Timeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// `{:?}` prints what `Display` prints (so that `fn main() -> Result<…>`
/// shows a readable message, as anyhow's and hyper's errors do); `{:#?}`
/// the structure.
impl fmt::Debug for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.debug_struct("HttpError")
                .field("kind", &self.kind)
                .field("detail", &self.detail)
                .finish()
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::BadRequest => "bad request",
            ErrorKind::RequestLineTooLong => "request line too long",
            ErrorKind::HeadersTooLarge => "request headers too large",
            ErrorKind::BodyTooLarge => "request body too large",
            ErrorKind::Timeout => "request head timed out",
            ErrorKind::Truncated => "request body truncated",
            ErrorKind::Unsupported => "not implemented",
        };
        if self.detail.is_empty() {
            f.write_str(what)
        } else {
            write!(f, "{what}: {}", self.detail)
        }
    }
}

impl std::error::Error for HttpError {}

/// `?` on an HTTP error in code returning `em::Result` (a run block):
/// `em::Error::other`, with this error as its `source()`.
impl From<HttpError> for em_core::Error {
    fn from(e: HttpError) -> Self {
        em_core::Error::other(e)
    }
}
