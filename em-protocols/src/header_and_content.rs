//! [`HeaderAndContent`]: EventMachine's `HeaderAndContentProtocol`, header
//! lines, a blank line, then a body of `Content-Length` bytes, as a
//! tokio-util codec of [`HeaderAndContentMessage`]s.

use std::fmt;
use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::line_text2::{LineError, LineText2, LineText2Frame};

/// The default [`max_headers`](HeaderAndContent::max_headers): 100 header
/// lines, as most HTTP servers allow.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// The default [`max_header_size`](HeaderAndContent::max_header_size):
/// 64 KiB for a message's start line and header lines together.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 64 * 1024;

/// The default [`max_body_length`](HeaderAndContent::max_body_length):
/// 32 MiB, EventMachine's `MaxBinaryLength` (a body is held in memory
/// until whole).
pub const DEFAULT_MAX_BODY_LENGTH: usize = 32 * 1024 * 1024;

/// One message: an optional start line, header lines, and a body.
/// EventMachine's `receive_request(headers, content)`, with the headers
/// parsed.
///
/// ```
/// use em_protocols::HeaderAndContentMessage;
///
/// let message = HeaderAndContentMessage::new()
///     .with_start_line("PUT /notes HTTP/1.0")
///     .with_header("Content-Type", "text/plain")
///     .with_body("hello");
/// assert_eq!(message.header("content-type"), Some("text/plain"));
/// // `with_body` set the length for the peer.
/// assert_eq!(message.header("Content-Length"), Some("5"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderAndContentMessage {
    /// The first line when it is not a header (`GET / HTTP/1.0`, a STOMP
    /// command): EventMachine's `receive_first_header_line`, for the
    /// protocols that have one. A line is a header when it reads
    /// `Name: value`, the name being one or more characters other than
    /// whitespace and `:` (EventMachine's `headers_2_hash`).
    pub start_line: Option<String>,
    /// The headers as `(name, value)`, in their order, names as sent and
    /// values without the whitespace around them. `Content-Length` is
    /// among them when it was sent.
    pub headers: Vec<(String, String)>,
    /// The body: `Content-Length` bytes, or none without that header.
    pub body: Bytes,
}

impl HeaderAndContentMessage {
    /// An empty message, to fill with the `with_*` methods.
    pub fn new() -> HeaderAndContentMessage {
        HeaderAndContentMessage::default()
    }

    /// Sets the start line.
    pub fn with_start_line(mut self, line: impl Into<String>) -> Self {
        self.start_line = Some(line.into());
        self
    }

    /// Adds a header at the end.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body, and sets `Content-Length` to its length (replacing
    /// any, or removing it for an empty body).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case(CONTENT_LENGTH));
        if !self.body.is_empty() {
            self.headers
                .push((CONTENT_LENGTH.to_owned(), self.body.len().to_string()));
        }
        self
    }

    /// The value of the first header named `name`, compared without
    /// regard to ASCII case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The values of every header named `name`, in order, compared without
    /// regard to ASCII case.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const CONTENT_LENGTH: &str = "Content-Length";

/// EventMachine's `HeaderAndContentProtocol`: skips blank lines before a
/// message, reads header lines up to an empty line, then a body of
/// `Content-Length` bytes, and delivers each message as a
/// [`HeaderAndContentMessage`].
///
/// * Lines end with `"\n"`, and a `"\r"` before it is stripped.
/// * `Content-Length` is matched by name without regard to case; without
///   it the body is empty. Two of them are an error
///   ([`HeaderAndContentError::DuplicateContentLength`], as in
///   EventMachine: conflicting lengths are a request-smuggling vector),
///   and so is a value that is not a decimal number
///   ([`HeaderAndContentError::InvalidContentLength`]; EventMachine's
///   pattern matched the name anywhere in the line, even inside
///   `X-Content-Length`).
/// * A line after the first that is not `Name: value` is
///   [`HeaderAndContentError::MalformedHeader`]; header lines must be UTF-8.
/// * Limits, each with a setter: [`max_headers`](Self::max_headers),
///   [`max_header_size`](Self::max_header_size) (start line and header
///   lines together, their line ends not counted) and
///   [`max_body_length`](Self::max_body_length) (checked as soon as the
///   headers end).
/// * At the end of the stream, blank lines are fine; a message cut short
///   is [`HeaderAndContentError::Truncated`] (EventMachine delivers it
///   with a short body).
///
/// Encoding writes the start line and the headers as given, each ending
/// with `"\r\n"`, adds `Content-Length` for a non-empty body that has
/// none, then the blank line and the body. It refuses what would not
/// read back the same: a name with whitespace or `:`, a line break in a
/// value or the start line, a start line that reads as a header, a
/// `Content-Length` that is not the body's length, and a message with
/// neither start line nor header.
///
/// ```
/// use bytes::BytesMut;
/// use em_protocols::{HeaderAndContent, HeaderAndContentMessage};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = HeaderAndContent::new();
/// let mut wire = BytesMut::new();
/// let message = HeaderAndContentMessage::new()
///     .with_header("Subject", "hi")
///     .with_body("body");
/// codec.encode(&message, &mut wire)?;
/// assert_eq!(wire, "Subject: hi\r\nContent-Length: 4\r\n\r\nbody");
///
/// let mut input = BytesMut::from("\r\nGET / HTTP/1.0\r\nHost: x\r\ncontent-length: 2\r\n\r\nokNEXT");
/// let got = codec.decode(&mut input)?.unwrap();
/// assert_eq!(got.start_line.as_deref(), Some("GET / HTTP/1.0"));
/// assert_eq!(got.header("Host"), Some("x"));
/// assert_eq!(got.body, "ok");
/// assert_eq!(input, "NEXT");
/// # Ok::<(), em_protocols::HeaderAndContentError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HeaderAndContent {
    lines: LineText2,
    state: State,
    max_headers: usize,
    max_header_size: usize,
    max_body_length: usize,
}

#[derive(Debug, Clone, Default)]
enum State {
    /// Between messages: blank lines are skipped.
    #[default]
    Idle,
    /// Reading header lines.
    Headers {
        message: HeaderAndContentMessage,
        /// Bytes of header lines so far.
        size: usize,
        content_length: Option<usize>,
    },
    /// Waiting for `length` bytes of body.
    Body {
        message: HeaderAndContentMessage,
        length: usize,
    },
}

impl Default for HeaderAndContent {
    fn default() -> Self {
        HeaderAndContent::new()
    }
}

impl HeaderAndContent {
    /// A codec with the default limits ([`DEFAULT_MAX_HEADERS`],
    /// [`DEFAULT_MAX_HEADER_SIZE`], [`DEFAULT_MAX_BODY_LENGTH`]).
    pub fn new() -> HeaderAndContent {
        HeaderAndContent {
            lines: LineText2::new(),
            state: State::Idle,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            max_body_length: DEFAULT_MAX_BODY_LENGTH,
        }
    }

    /// Sets the most header lines a message may have (its start line not
    /// counted); more is [`HeaderAndContentError::TooManyHeaders`].
    pub fn set_max_headers(&mut self, max: usize) {
        self.max_headers = max;
    }

    /// The most header lines a message may have.
    pub fn max_headers(&self) -> usize {
        self.max_headers
    }

    /// Sets the most bytes a message's start line and header lines may
    /// have together, their line ends not counted; more is
    /// [`HeaderAndContentError::HeaderTooLarge`], raised as soon as that
    /// many bytes arrived.
    pub fn set_max_header_size(&mut self, max: usize) {
        self.max_header_size = max;
    }

    /// The most bytes of start line and header lines.
    pub fn max_header_size(&self) -> usize {
        self.max_header_size
    }

    /// Sets the largest body accepted, in bytes; a larger
    /// `Content-Length` is [`HeaderAndContentError::BodyTooLong`].
    pub fn set_max_body_length(&mut self, max: usize) {
        self.max_body_length = max;
    }

    /// The largest body accepted.
    pub fn max_body_length(&self) -> usize {
        self.max_body_length
    }

    /// The next line, under what is left of the header budget.
    fn next_line(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
    ) -> Result<Option<Bytes>, HeaderAndContentError> {
        let used = match &self.state {
            State::Headers { size, .. } => *size,
            _ => 0,
        };
        self.lines
            .set_max_line_length(self.max_header_size.saturating_sub(used));
        let line = if eof {
            self.lines.decode_eof(buf)
        } else {
            self.lines.decode(buf)
        };
        match line {
            Ok(Some(LineText2Frame::Line(line))) => Ok(Some(line)),
            Ok(_) => Ok(None),
            Err(LineError::LineTooLong { .. }) => Err(HeaderAndContentError::HeaderTooLarge {
                max: self.max_header_size,
            }),
            Err(LineError::Io(e)) => Err(HeaderAndContentError::Io(e)),
            Err(e) => Err(HeaderAndContentError::Io(io::Error::other(e))),
        }
    }

    /// Takes one line in: a blank line before a message is skipped, the
    /// blank line after the headers starts the body.
    fn take_line(&mut self, line: Bytes) -> Result<(), HeaderAndContentError> {
        let line = std::str::from_utf8(&line).map_err(|_| HeaderAndContentError::InvalidUtf8)?;
        match std::mem::take(&mut self.state) {
            State::Idle if line.is_empty() => {}
            State::Idle => {
                let mut message = HeaderAndContentMessage::new();
                let mut content_length = None;
                match parse_header(line) {
                    Some((name, value)) => {
                        self.add_header(&mut message, &mut content_length, name, value)?
                    }
                    None => message.start_line = Some(line.to_owned()),
                }
                self.state = State::Headers {
                    message,
                    size: line.len(),
                    content_length,
                };
            }
            State::Headers {
                message,
                content_length,
                ..
            } if line.is_empty() => {
                let length = content_length.unwrap_or(0);
                if length > self.max_body_length {
                    return Err(HeaderAndContentError::BodyTooLong {
                        length,
                        max: self.max_body_length,
                    });
                }
                self.state = State::Body { message, length };
            }
            State::Headers {
                mut message,
                size,
                mut content_length,
            } => {
                let (name, value) =
                    parse_header(line).ok_or_else(|| HeaderAndContentError::MalformedHeader {
                        line: line.to_owned(),
                    })?;
                self.add_header(&mut message, &mut content_length, name, value)?;
                self.state = State::Headers {
                    message,
                    size: size + line.len(),
                    content_length,
                };
            }
            State::Body { .. } => unreachable!("no line is read in a body"),
        }
        Ok(())
    }

    fn add_header(
        &self,
        message: &mut HeaderAndContentMessage,
        content_length: &mut Option<usize>,
        name: &str,
        value: &str,
    ) -> Result<(), HeaderAndContentError> {
        if message.headers.len() >= self.max_headers {
            return Err(HeaderAndContentError::TooManyHeaders {
                max: self.max_headers,
            });
        }
        if name.eq_ignore_ascii_case(CONTENT_LENGTH) {
            if content_length.is_some() {
                return Err(HeaderAndContentError::DuplicateContentLength);
            }
            *content_length = Some(parse_length(value)?);
        }
        message.headers.push((name.to_owned(), value.to_owned()));
        Ok(())
    }
}

/// `Name: value`, the name one or more characters other than whitespace
/// and `:`, whitespace allowed before the colon (EventMachine's
/// `/\A([^\s:]+)\s*:\s*/`); the value without the whitespace around it.
fn parse_header(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim_end();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    Some((name, value.trim()))
}

fn parse_length(value: &str) -> Result<usize, HeaderAndContentError> {
    let invalid = || HeaderAndContentError::InvalidContentLength {
        value: value.to_owned(),
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    value.parse().map_err(|_| invalid())
}

impl Decoder for HeaderAndContent {
    type Item = HeaderAndContentMessage;
    type Error = HeaderAndContentError;

    fn decode(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<HeaderAndContentMessage>, HeaderAndContentError> {
        loop {
            if let State::Body { length, .. } = self.state {
                if buf.len() < length {
                    return Ok(None);
                }
                let State::Body { mut message, .. } = std::mem::take(&mut self.state) else {
                    unreachable!()
                };
                message.body = buf.split_to(length).freeze();
                return Ok(Some(message));
            }
            match self.next_line(buf, false)? {
                Some(line) => self.take_line(line)?,
                None => return Ok(None),
            }
        }
    }

    fn decode_eof(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<HeaderAndContentMessage>, HeaderAndContentError> {
        if let Some(message) = self.decode(buf)? {
            return Ok(Some(message));
        }
        if let State::Idle = self.state {
            // A last blank line without its "\n" ends nothing.
            match self.next_line(buf, true)? {
                None => return Ok(None),
                Some(line) if line.is_empty() => return Ok(None),
                Some(_) => {}
            }
        }
        Err(HeaderAndContentError::Truncated)
    }
}

impl Encoder<&HeaderAndContentMessage> for HeaderAndContent {
    type Error = HeaderAndContentError;

    fn encode(
        &mut self,
        message: &HeaderAndContentMessage,
        dst: &mut BytesMut,
    ) -> Result<(), HeaderAndContentError> {
        let breaks = |s: &str| s.contains(['\r', '\n']);
        if let Some(start) = &message.start_line {
            if start.is_empty() || breaks(start) || parse_header(start).is_some() {
                return Err(HeaderAndContentError::InvalidStartLine);
            }
        }
        let mut content_length = None;
        for (name, value) in &message.headers {
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ':') {
                return Err(HeaderAndContentError::InvalidHeaderName { name: name.clone() });
            }
            if breaks(value) {
                return Err(HeaderAndContentError::InvalidHeaderValue { name: name.clone() });
            }
            if name.eq_ignore_ascii_case(CONTENT_LENGTH) {
                if content_length.is_some() {
                    return Err(HeaderAndContentError::DuplicateContentLength);
                }
                content_length = Some(value);
            }
        }
        let add_length = match content_length {
            Some(value) if parse_length(value.trim()).ok() != Some(message.body.len()) => {
                return Err(HeaderAndContentError::ContentLengthMismatch {
                    value: value.clone(),
                    body: message.body.len(),
                })
            }
            Some(_) => false,
            None => !message.body.is_empty(),
        };
        if message.start_line.is_none() && message.headers.is_empty() && !add_length {
            return Err(HeaderAndContentError::EmptyMessage);
        }
        if let Some(start) = &message.start_line {
            dst.put_slice(start.as_bytes());
            dst.put_slice(b"\r\n");
        }
        for (name, value) in &message.headers {
            dst.reserve(name.len() + value.len() + 4);
            dst.put_slice(name.as_bytes());
            dst.put_slice(b": ");
            dst.put_slice(value.as_bytes());
            dst.put_slice(b"\r\n");
        }
        if add_length {
            dst.put_slice(format!("{CONTENT_LENGTH}: {}\r\n", message.body.len()).as_bytes());
        }
        dst.put_slice(b"\r\n");
        dst.extend_from_slice(&message.body);
        Ok(())
    }
}

impl Encoder<HeaderAndContentMessage> for HeaderAndContent {
    type Error = HeaderAndContentError;

    fn encode(
        &mut self,
        message: HeaderAndContentMessage,
        dst: &mut BytesMut,
    ) -> Result<(), HeaderAndContentError> {
        self.encode(&message, dst)
    }
}

/// What went wrong in [`HeaderAndContent`]. In em, a decoding error ends
/// the connection with `UnbindReason::Codec`, whose `Display` includes
/// this one's.
#[derive(Debug)]
#[non_exhaustive]
pub enum HeaderAndContentError {
    /// The start line and header lines passed the codec's
    /// `max_header_size`.
    HeaderTooLarge {
        /// The limit.
        max: usize,
    },
    /// More header lines than the codec's `max_headers`.
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// A line after the first was not `Name: value`.
    MalformedHeader {
        /// The line.
        line: String,
    },
    /// A header line was not UTF-8.
    InvalidUtf8,
    /// Two `Content-Length` headers in one message.
    DuplicateContentLength,
    /// A `Content-Length` that is not a decimal number of bytes.
    InvalidContentLength {
        /// Its value.
        value: String,
    },
    /// A `Content-Length` over the codec's `max_body_length`.
    BodyTooLong {
        /// The length announced.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a message.
    Truncated,
    /// Encoding: an empty start line, or one with a line break, or one
    /// that would read back as a header.
    InvalidStartLine,
    /// Encoding: a header name that is empty or has whitespace or `:`.
    InvalidHeaderName {
        /// The name.
        name: String,
    },
    /// Encoding: a header value with a line break.
    InvalidHeaderValue {
        /// The header's name.
        name: String,
    },
    /// Encoding: `Content-Length` is not the body's length.
    ContentLengthMismatch {
        /// The header's value.
        value: String,
        /// The body's length.
        body: usize,
    },
    /// Encoding: a message with no start line, no header and no body,
    /// which would read back as a blank line (skipped).
    EmptyMessage,
    /// An I/O error from the stream under the codec (tokio's `Framed`).
    Io(io::Error),
}

impl fmt::Display for HeaderAndContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HeaderAndContentError::*;
        match self {
            HeaderTooLarge { max } => {
                write!(f, "headers larger than {max} bytes (the codec's max_header_size)")
            }
            TooManyHeaders { max } => {
                write!(f, "more than {max} header lines (the codec's max_headers)")
            }
            MalformedHeader { line } => {
                let shown: String = line.chars().take(80).collect();
                let more = if shown.len() < line.len() { "…" } else { "" };
                write!(f, "header line {shown:?}{more} is not `Name: value`")
            }
            InvalidUtf8 => f.write_str("header line is not valid UTF-8"),
            DuplicateContentLength => f.write_str("more than one Content-Length header"),
            InvalidContentLength { value } => {
                write!(f, "Content-Length {value:?} is not a number of bytes")
            }
            BodyTooLong { length, max } => write!(
                f,
                "body of {length} bytes (Content-Length) is over the codec's max_body_length ({max} bytes)"
            ),
            Truncated => f.write_str("the stream ended inside a message"),
            InvalidStartLine => f.write_str(
                "start line is empty, has a line break, or reads as a header",
            ),
            InvalidHeaderName { name } => {
                write!(f, "header name {name:?} is empty or has whitespace or `:`")
            }
            InvalidHeaderValue { name } => write!(f, "header {name:?} has a line break in its value"),
            ContentLengthMismatch { value, body } => {
                write!(f, "Content-Length {value:?} but the body has {body} bytes")
            }
            EmptyMessage => f.write_str("a message needs a start line, a header or a body"),
            Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for HeaderAndContentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HeaderAndContentError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for HeaderAndContentError {
    fn from(e: io::Error) -> Self {
        HeaderAndContentError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        codec: &mut HeaderAndContent,
        input: &[u8],
    ) -> Result<Vec<HeaderAndContentMessage>, HeaderAndContentError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(m) = codec.decode(&mut buf)? {
            out.push(m);
        }
        while let Some(m) = codec.decode_eof(&mut buf)? {
            out.push(m);
        }
        Ok(out)
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// EventMachine's test_hc, test_no_content and test_content.
    #[test]
    fn em_test_hc() {
        let got = decode_all(&mut HeaderAndContent::new(), b"aaa\nbbb: 1\r\nccc:2\n\n").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].start_line.as_deref(), Some("aaa"));
        assert_eq!(got[0].headers, headers(&[("bbb", "1"), ("ccc", "2")]));
        assert!(got[0].body.is_empty());

        let content = "A".repeat(50);
        let one = format!("a: 1\r\nContent-length: 50\r\nb: 2\r\n\n{content}");
        let got = decode_all(&mut HeaderAndContent::new(), one.repeat(5).as_bytes()).unwrap();
        assert_eq!(got.len(), 5);
        for m in got {
            assert_eq!(m.start_line, None);
            assert_eq!(m.header("CONTENT-LENGTH"), Some("50"));
            assert_eq!(m.body, content.as_bytes());
        }
    }

    #[test]
    fn content_length_errors() {
        let dup = decode_all(
            &mut HeaderAndContent::new(),
            b"Content-Length: 1\ncontent-length: 1\n\nx",
        );
        assert!(matches!(
            dup,
            Err(HeaderAndContentError::DuplicateContentLength)
        ));
        for bad in ["-1", "1.5", "", "0x10", "99999999999999999999999999"] {
            let input = format!("Content-Length: {bad}\n\n");
            let err = decode_all(&mut HeaderAndContent::new(), input.as_bytes()).unwrap_err();
            assert!(
                matches!(err, HeaderAndContentError::InvalidContentLength { .. }),
                "{bad}: {err}"
            );
        }
        // Not matched inside another name, as EventMachine's pattern did.
        let got = decode_all(&mut HeaderAndContent::new(), b"X-Content-Length: 5\n\n").unwrap();
        assert!(got[0].body.is_empty());
    }

    #[test]
    fn limits() {
        let mut codec = HeaderAndContent::new();
        codec.set_max_headers(2);
        let err = decode_all(&mut codec, b"a: 1\nb: 2\nc: 3\n\n").unwrap_err();
        assert!(matches!(
            err,
            HeaderAndContentError::TooManyHeaders { max: 2 }
        ));

        let mut codec = HeaderAndContent::new();
        codec.set_max_header_size(10);
        assert_eq!(decode_all(&mut codec, b"abc: 12345\n\n").unwrap().len(), 1);
        let mut codec = HeaderAndContent::new();
        codec.set_max_header_size(10);
        let err = decode_all(&mut codec, b"abc: 1\nd: 1234\n\n").unwrap_err();
        assert!(matches!(
            err,
            HeaderAndContentError::HeaderTooLarge { max: 10 }
        ));
        // Known before the line ends.
        let mut codec = HeaderAndContent::new();
        codec.set_max_header_size(10);
        assert!(codec
            .decode(&mut BytesMut::from("x".repeat(12).as_str()))
            .is_err());

        let mut codec = HeaderAndContent::new();
        codec.set_max_body_length(3);
        let err = decode_all(&mut codec, b"Content-Length: 4\n\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "body of 4 bytes (Content-Length) is over the codec's max_body_length (3 bytes)"
        );
    }

    #[test]
    fn malformed_and_truncated() {
        let err = decode_all(&mut HeaderAndContent::new(), b"a: 1\nnot a header\n\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "header line \"not a header\" is not `Name: value`"
        );
        for input in [&b"a: 1\n"[..], b"a: 1", b"Content-Length: 3\n\nab"] {
            let err = decode_all(&mut HeaderAndContent::new(), input).unwrap_err();
            assert!(matches!(err, HeaderAndContentError::Truncated), "{input:?}");
        }
        assert!(decode_all(&mut HeaderAndContent::new(), b"\n\r\n\r")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn encode_refuses_what_would_not_read_back() {
        let mut codec = HeaderAndContent::new();
        let mut out = BytesMut::new();
        let cases = [
            HeaderAndContentMessage::new(),
            HeaderAndContentMessage::new().with_start_line("Name: value"),
            HeaderAndContentMessage::new().with_start_line("a\nb"),
            HeaderAndContentMessage::new().with_header("a b", "1"),
            HeaderAndContentMessage::new().with_header("a", "1\r\n"),
            HeaderAndContentMessage::new().with_header("Content-Length", "3"),
            HeaderAndContentMessage::new()
                .with_header("Content-Length", "0")
                .with_header("content-length", "0"),
        ];
        for message in cases {
            assert!(codec.encode(&message, &mut out).is_err(), "{message:?}");
        }
        assert!(out.is_empty());
    }
}
