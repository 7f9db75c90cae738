//! `StompFrame`: one STOMP frame (command, ordered headers, body), and the
//! protocol versions (`StompVersion`).

use std::fmt;

use bytes::Bytes;

/// One STOMP frame: a command, its headers in wire order, and a body
/// (EventMachine's `Stomp::Message`, with `command`, `header` and `body`).
///
/// Headers keep their order and their repeats; [`header`](Self::header)
/// gives the first occurrence of a name, which is the one STOMP 1.2 says
/// counts. Names and values here are the decoded text: the
/// [`StompCodec`](crate::StompCodec) escapes and unescapes them on the wire.
///
/// ```
/// use em_protocols::StompFrame;
///
/// let frame = StompFrame::new("SEND")
///     .with_header("destination", "/queue/a")
///     .with_body("hello");
/// assert_eq!(frame.command, "SEND");
/// assert_eq!(frame.header("destination"), Some("/queue/a"));
/// assert_eq!(&frame.body[..], b"hello");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StompFrame {
    /// The command: `CONNECT`, `SEND`, `MESSAGE`, `RECEIPT`, `ERROR`…
    pub command: String,
    /// The headers, in order, repeats included.
    pub headers: Vec<(String, String)>,
    /// The body; empty for frames without one. May hold NULs when the
    /// frame has a `content-length` header (the encoder adds one).
    pub body: Bytes,
}

impl StompFrame {
    /// A frame with `command`, no headers and an empty body.
    pub fn new(command: impl Into<String>) -> Self {
        StompFrame {
            command: command.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Appends a header (after any of the same name: the first one counts).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The value of the first header called `name` (names are
    /// case-sensitive in STOMP), or `None`. EventMachine's `msg.header[name]`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for StompFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StompFrame")
            .field("command", &self.command)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .finish()
    }
}

/// A STOMP protocol version. It decides how the
/// [`StompCodec`](crate::StompCodec) escapes header text: 1.0 not at all,
/// 1.1 `\n`, `:` and `\` (as `\n`, `\c`, `\\`), 1.2 also `\r` (as `\r`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StompVersion {
    /// STOMP 1.0: no header escaping.
    V1_0,
    /// STOMP 1.1.
    V1_1,
    /// STOMP 1.2, the codec's default.
    V1_2,
}

impl StompVersion {
    /// The version as STOMP writes it: `"1.0"`, `"1.1"` or `"1.2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StompVersion::V1_0 => "1.0",
            StompVersion::V1_1 => "1.1",
            StompVersion::V1_2 => "1.2",
        }
    }

    /// Parses a `version` header value; `None` for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "1.0" => Some(StompVersion::V1_0),
            "1.1" => Some(StompVersion::V1_1),
            "1.2" => Some(StompVersion::V1_2),
            _ => None,
        }
    }
}

impl fmt::Display for StompVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
