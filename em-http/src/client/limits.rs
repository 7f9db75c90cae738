//! What a response may take of the client, each with a default and a
//! setter.

/// Size limits for responses. A head over its limits ends the request with
/// [`ClientErrorKind::Protocol`](crate::ClientErrorKind::Protocol) (and the
/// connection is closed); a body over
/// [`max_body_size`](ClientLimits::max_body_size) ends it with
/// [`ClientErrorKind::BodyTooLarge`](crate::ClientErrorKind::BodyTooLarge).
/// Plain data, built anywhere.
///
/// | limit | default |
/// |---|---|
/// | [`max_header_size`](ClientLimits::max_header_size): a response head (status line and headers) | 64 KiB |
/// | [`max_headers`](ClientLimits::max_headers) | 100 |
/// | [`max_body_size`](ClientLimits::max_body_size): a body collected in memory (`bytes`, `text`, `json`, callbacks without `stream`, [`Multi`](crate::Multi)) | 64 MiB |
///
/// A body read as a stream (`chunk`, `into_stream`, the `stream`
/// callback) has no size limit: streaming keeps memory bounded by itself
/// (the connection stops reading while 256 KiB wait unread).
///
/// ```
/// use em_http::ClientLimits;
/// let limits = ClientLimits::default().max_body_size(1 << 20).max_headers(50);
/// assert_eq!(limits.body_limit(), 1 << 20);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    pub(crate) max_header_size: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_body_size: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_header_size: 64 * 1024,
            max_headers: 100,
            max_body_size: 64 * 1024 * 1024,
        }
    }
}

impl ClientLimits {
    /// The most bytes a response head may take.
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.max_header_size = bytes;
        self
    }

    /// The most header fields a response may have (at most 512).
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count.clamp(1, crate::limits::MAX_HEADERS_CEILING);
        self
    }

    /// The most bytes of a body collected in memory.
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// The body limit in force.
    pub fn body_limit(&self) -> u64 {
        self.max_body_size
    }
}
