//! `StompCodec`: STOMP frames on a byte stream, as a tokio-util codec, and
//! its error type.

use std::fmt;
use std::io;

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{StompFrame, StompVersion};

/// STOMP frames on a byte stream: a tokio-util [`Decoder`] and [`Encoder`]
/// of [`StompFrame`]s, for an em connection (`type Codec = StompCodec`) or
/// tokio's `Framed`.
///
/// # The wire format (STOMP 1.2)
///
/// A command line, header lines `name:value`, a blank line, the body, a
/// NUL. Lines end in LF or CR LF. With a `content-length` header the body
/// is exactly that many bytes (NULs allowed) and must be followed by the
/// NUL; without one it runs to the first NUL. End-of-lines between frames
/// (heart-beats) are skipped, never delivered.
///
/// Header text is escaped on the wire according to the
/// [version](StompCodec::set_version): in 1.2 `\r`, `\n`, `:` and `\` travel
/// as `\r`, `\n`, `\c` and `\\`; 1.1 has no `\r`; 1.0 escapes nothing. An
/// undefined escape is an error (kept as it is in [lenient](Self::set_lenient_until_version) decoding). `CONNECT`, `STOMP` and `CONNECTED` frames
/// are never escaped, as the specification says, so that 1.0 peers read
/// them. Header names and values are not trimmed, except that a
/// `content-length` value is read with surrounding spaces allowed, as
/// EventMachine writes `content-length: 5`. A header line may hold more
/// colons: the first one ends the name (1.0 brokers send `message-id:ID:1`).
///
/// The encoder adds `content-length` to a frame with a non-empty body and
/// none of its own, and refuses one whose `content-length` differs from
/// the body's length.
///
/// # Limits
///
/// A frame (command line to NUL) longer than
/// [`max_frame_length`](Self::max_frame_length) is
/// [`StompCodecError::FrameTooLong`], decoded or encoded; more headers than
/// [`max_headers`](Self::max_headers) is [`StompCodecError::TooManyHeaders`].
/// Both are found as soon as the bytes show them, without buffering the rest.
/// On an em connection a codec error ends that connection with
/// `UnbindReason::Codec`.
///
/// ```
/// use bytes::BytesMut;
/// use em_protocols::{StompCodec, StompFrame};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = StompCodec::new();
/// let mut wire = BytesMut::new();
/// let frame = StompFrame::new("SEND")
///     .with_header("destination", "/queue/a")
///     .with_header("note", "a:b")
///     .with_body(&b"x\0y"[..]);
/// codec.encode(frame.clone(), &mut wire)?;
/// assert_eq!(&wire[..], b"SEND\ndestination:/queue/a\nnote:a\\cb\ncontent-length:3\n\nx\0y\0");
///
/// let decoded = codec.decode(&mut wire)?.expect("a whole frame");
/// assert_eq!(decoded.header("note"), Some("a:b"));
/// assert_eq!(&decoded.body[..], b"x\0y");
/// # Ok::<(), em_protocols::StompCodecError>(())
/// ```
#[derive(Clone, Debug)]
pub struct StompCodec {
    version: StompVersion,
    max_frame_length: usize,
    max_headers: usize,
    /// Undefined escapes are kept as they are, until the version is set.
    lenient: bool,
    state: State,
}

/// The most the decoder reserves ahead for a body whose content-length it
/// knows: a peer's header alone cannot make it allocate more.
const RESERVE_AHEAD: usize = 64 * 1024;

/// Where the decoder is in the current frame.
#[derive(Clone, Debug)]
enum State {
    /// Looking for the blank line that ends the headers: `scanned` bytes of
    /// whole lines seen, `lines` of them (the command line included).
    Head { scanned: usize, lines: usize },
    /// The headers are parsed; the body starts at `body_start`. Without a
    /// content-length, `scanned` bytes are known to hold no NUL.
    Body {
        head: Box<Head>,
        body_start: usize,
        scanned: usize,
    },
}

#[derive(Clone, Debug)]
struct Head {
    command: String,
    headers: Vec<(String, String)>,
    content_length: Option<usize>,
}

impl Default for StompCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl StompCodec {
    /// The default [`max_frame_length`](Self::max_frame_length): 8 MiB, a
    /// connection's default `max_outbound`, so that a frame em sends by
    /// default it also receives by default.
    pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 * 1024 * 1024;

    /// The default [`max_headers`](Self::max_headers): 128.
    pub const DEFAULT_MAX_HEADERS: usize = 128;

    /// A STOMP 1.2 codec with the default limits
    /// ([`DEFAULT_MAX_FRAME_LENGTH`](Self::DEFAULT_MAX_FRAME_LENGTH),
    /// [`DEFAULT_MAX_HEADERS`](Self::DEFAULT_MAX_HEADERS)).
    pub fn new() -> Self {
        StompCodec {
            version: StompVersion::V1_2,
            max_frame_length: Self::DEFAULT_MAX_FRAME_LENGTH,
            max_headers: Self::DEFAULT_MAX_HEADERS,
            lenient: false,
            state: State::Head {
                scanned: 0,
                lines: 0,
            },
        }
    }

    /// The version whose header escaping the codec uses.
    pub fn version(&self) -> StompVersion {
        self.version
    }

    /// Sets the version whose header escaping the codec uses, from the next
    /// frame on (the [`Stomp`](crate::Stomp) client sets the version the
    /// server's `CONNECTED` names).
    /// Ends [lenient](Self::set_lenient_until_version) decoding.
    pub fn set_version(&mut self, version: StompVersion) {
        self.version = version;
        self.lenient = false;
    }

    /// Until the next [`set_version`](Self::set_version), decodes header
    /// text leniently: the escapes of 1.2 are read, and an undefined one
    /// (`\p`) is kept as it is instead of being an error. The
    /// [`Stomp`](crate::Stomp) client decodes so before `CONNECTED`, when
    /// the version is not known yet: a 1.0 broker's `ERROR` frame
    /// (`message:bad C:\path`) is read, not refused.
    pub fn set_lenient_until_version(&mut self) {
        self.lenient = true;
    }

    /// The longest frame, command line to NUL, decoded or encoded.
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    /// Sets the longest frame, command line to NUL, decoded or encoded.
    pub fn set_max_frame_length(&mut self, max: usize) {
        self.max_frame_length = max;
    }

    /// The most headers a frame may have.
    pub fn max_headers(&self) -> usize {
        self.max_headers
    }

    /// Sets the most headers a frame may have.
    pub fn set_max_headers(&mut self, max: usize) {
        self.max_headers = max;
    }

    /// Whether the current frame's headers travel escaped.
    fn escaping(&self, command: &str) -> Escaping {
        match (self.version, command) {
            (_, "CONNECT" | "STOMP" | "CONNECTED") | (StompVersion::V1_0, _) => Escaping::None,
            (StompVersion::V1_1, _) => Escaping::V1_1,
            (StompVersion::V1_2, _) => Escaping::V1_2,
        }
    }

    /// Skips the end-of-lines between frames (heart-beats). Returns false
    /// when the buffer ends inside one (a lone CR).
    fn skip_heartbeats(buf: &mut BytesMut) -> bool {
        let skip = buf
            .iter()
            .zip(buf.iter().skip(1).chain(std::iter::once(&0)))
            .take_while(|&(&b, &next)| b == b'\n' || (b == b'\r' && next == b'\n'))
            .count();
        // A CR counted above is always followed by its LF, also counted.
        let _ = buf.split_to(skip);
        !(buf.len() == 1 && buf[0] == b'\r')
    }

    /// Parses the command line and header lines in `block` (without the
    /// blank line).
    fn parse_head(&self, block: &[u8]) -> Result<Head, StompCodecError> {
        let mut lines = block
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
        let command = lines.next().unwrap_or_default();
        if command.is_empty() || !command.iter().all(u8::is_ascii_alphabetic) {
            return Err(StompCodecError::Malformed(
                "the command is not ASCII letters",
            ));
        }
        let command = String::from_utf8(command.to_vec()).expect("ASCII");
        let escaping = match self.escaping(&command) {
            Escaping::None => Escaping::None,
            _ if self.lenient => Escaping::Lenient,
            escaping => escaping,
        };
        let mut headers = Vec::new();
        let mut content_length = None;
        // The blank line's LF leaves an empty last piece.
        for line in lines.filter(|l| !l.is_empty()) {
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(StompCodecError::Malformed("a header line without a colon"))?;
            let name = unescape(&line[..colon], escaping)?;
            let value = unescape(&line[colon + 1..], escaping)?;
            if name == "content-length" && !headers.iter().any(|(n, _)| n == "content-length") {
                content_length =
                    Some(value.trim().parse::<usize>().map_err(|_| {
                        StompCodecError::Malformed("content-length is not a number")
                    })?);
            }
            headers.push((name, value));
        }
        Ok(Head {
            command,
            headers,
            content_length,
        })
    }
}

impl Decoder for StompCodec {
    type Item = StompFrame;
    type Error = StompCodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<StompFrame>, StompCodecError> {
        loop {
            match &mut self.state {
                State::Head { scanned, lines } => {
                    if *scanned == 0 && !Self::skip_heartbeats(buf) {
                        return Ok(None);
                    }
                    let mut pos = *scanned;
                    let mut head_end = None;
                    while let Some(i) = buf[pos..].iter().position(|&b| b == b'\n') {
                        let line = &buf[pos..pos + i];
                        let blank = line.is_empty() || line == b"\r";
                        pos += i + 1;
                        if blank {
                            head_end = Some(pos);
                            break;
                        }
                        *lines += 1;
                        if *lines > self.max_headers.saturating_add(1) {
                            return Err(StompCodecError::TooManyHeaders {
                                max: self.max_headers,
                            });
                        }
                    }
                    *scanned = pos;
                    let Some(body_start) = head_end else {
                        // The frame holds all of this, and a NUL still.
                        if buf.len() >= self.max_frame_length {
                            return Err(StompCodecError::FrameTooLong {
                                max: self.max_frame_length,
                            });
                        }
                        return Ok(None);
                    };
                    let head = self.parse_head(&buf[..body_start])?;
                    if let Some(n) = head.content_length {
                        if body_start.saturating_add(n).saturating_add(1) > self.max_frame_length {
                            return Err(StompCodecError::FrameTooLong {
                                max: self.max_frame_length,
                            });
                        }
                    }
                    self.state = State::Body {
                        head: Box::new(head),
                        body_start,
                        scanned: body_start,
                    };
                }
                State::Body {
                    head,
                    body_start,
                    scanned,
                } => {
                    let body_end = match head.content_length {
                        Some(n) => {
                            let end = *body_start + n;
                            if buf.len() <= end {
                                // A header may announce a big body that
                                // never comes: reserve no more than
                                // RESERVE_AHEAD at a time.
                                buf.reserve((end + 1 - buf.len()).min(RESERVE_AHEAD));
                                return Ok(None);
                            }
                            if buf[end] != 0 {
                                return Err(StompCodecError::Malformed(
                                    "the content-length bytes are not followed by a NUL",
                                ));
                            }
                            end
                        }
                        None => match buf[*scanned..].iter().position(|&b| b == 0) {
                            Some(i) => *scanned + i,
                            None => {
                                *scanned = buf.len();
                                if buf.len() >= self.max_frame_length {
                                    return Err(StompCodecError::FrameTooLong {
                                        max: self.max_frame_length,
                                    });
                                }
                                return Ok(None);
                            }
                        },
                    };
                    if body_end + 1 > self.max_frame_length {
                        return Err(StompCodecError::FrameTooLong {
                            max: self.max_frame_length,
                        });
                    }
                    let body_start = *body_start;
                    let State::Body { head, .. } = std::mem::replace(
                        &mut self.state,
                        State::Head {
                            scanned: 0,
                            lines: 0,
                        },
                    ) else {
                        unreachable!("in the body state")
                    };
                    let frame = buf.split_to(body_end + 1).freeze();
                    return Ok(Some(StompFrame {
                        command: head.command,
                        headers: head.headers,
                        body: frame.slice(body_start..body_end),
                    }));
                }
            }
        }
    }

    /// As `decode`; at the end of the stream, bytes of an unfinished frame
    /// are [`StompCodecError::Truncated`] (end-of-lines alone are
    /// heart-beats, and fine).
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<StompFrame>, StompCodecError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        if buf.iter().all(|&b| b == b'\r' || b == b'\n') {
            buf.clear();
            return Ok(None);
        }
        Err(StompCodecError::Truncated)
    }
}

impl Encoder<&StompFrame> for StompCodec {
    type Error = StompCodecError;

    fn encode(&mut self, frame: &StompFrame, dst: &mut BytesMut) -> Result<(), StompCodecError> {
        if frame.command.is_empty() || !frame.command.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(StompCodecError::Unencodable(
                "the command is not ASCII letters",
            ));
        }
        let body_len = frame.body.len();
        let add_length = match frame.header("content-length") {
            Some(v) if v.trim().parse::<usize>().ok() != Some(body_len) => {
                return Err(StompCodecError::Unencodable(
                    "the content-length header differs from the body's length",
                ));
            }
            Some(_) => false,
            None => body_len > 0,
        };
        let escaping = self.escaping(&frame.command);
        let mut head = Vec::with_capacity(64);
        head.extend_from_slice(frame.command.as_bytes());
        head.push(b'\n');
        for (name, value) in &frame.headers {
            escape(name, escaping, true, &mut head)?;
            head.push(b':');
            escape(value, escaping, false, &mut head)?;
            head.push(b'\n');
        }
        if add_length {
            head.extend_from_slice(format!("content-length:{body_len}\n").as_bytes());
        }
        head.push(b'\n');
        let total = head.len() + body_len + 1;
        if total > self.max_frame_length {
            return Err(StompCodecError::FrameTooLong {
                max: self.max_frame_length,
            });
        }
        let headers = frame.headers.len() + usize::from(add_length);
        if headers > self.max_headers {
            return Err(StompCodecError::TooManyHeaders {
                max: self.max_headers,
            });
        }
        dst.reserve(total);
        dst.put_slice(&head);
        dst.put_slice(&frame.body);
        dst.put_u8(0);
        Ok(())
    }
}

impl Encoder<StompFrame> for StompCodec {
    type Error = StompCodecError;

    fn encode(&mut self, frame: StompFrame, dst: &mut BytesMut) -> Result<(), StompCodecError> {
        self.encode(&frame, dst)
    }
}

/// How header text travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escaping {
    None,
    V1_1,
    V1_2,
    /// Decoding only: 1.2's escapes read, an undefined one kept as is.
    Lenient,
}

fn unescape(raw: &[u8], escaping: Escaping) -> Result<String, StompCodecError> {
    let not_utf8 = |_| StompCodecError::Malformed("a header is not UTF-8");
    if escaping == Escaping::None || !raw.contains(&b'\\') {
        return String::from_utf8(raw.to_vec()).map_err(not_utf8);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        // `\r` is read in 1.1 too: only a 1.2 peer would send it.
        let next = bytes.next();
        let byte = match next {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b'c') => b':',
            Some(b'\\') => b'\\',
            // Lenient: an undefined escape (or a last backslash) as it is.
            _ if escaping == Escaping::Lenient => {
                out.push(b'\\');
                match next {
                    Some(&other) => other,
                    None => continue,
                }
            }
            _ => {
                return Err(StompCodecError::Malformed(
                    "an undefined escape in a header",
                ))
            }
        };
        out.push(byte);
    }
    String::from_utf8(out).map_err(not_utf8)
}

fn escape(
    text: &str,
    escaping: Escaping,
    is_name: bool,
    out: &mut Vec<u8>,
) -> Result<(), StompCodecError> {
    if escaping == Escaping::None {
        if text.contains(['\n', '\r']) || (is_name && text.contains(':')) {
            return Err(StompCodecError::Unencodable(
                "a header of an unescaped frame (CONNECT, CONNECTED or STOMP 1.0) holds an end-of-line, or its name a colon",
            ));
        }
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    }
    for b in text.bytes() {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b':' => out.extend_from_slice(b"\\c"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\r' if matches!(escaping, Escaping::V1_2 | Escaping::Lenient) => {
                out.extend_from_slice(b"\\r")
            }
            b'\r' => {
                return Err(StompCodecError::Unencodable(
                    "a carriage return in a header (STOMP 1.1 cannot escape it)",
                ))
            }
            b => out.push(b),
        }
    }
    Ok(())
}

/// Why a [`StompCodec`] refused bytes or a frame. On an em connection it
/// ends that connection with `UnbindReason::Codec`, carrying this error.
#[derive(Debug)]
#[non_exhaustive]
pub enum StompCodecError {
    /// A frame longer than [`StompCodec::max_frame_length`].
    FrameTooLong {
        /// The limit.
        max: usize,
    },
    /// A frame with more headers than [`StompCodec::max_headers`].
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// Bytes that are not a STOMP frame; what is wrong, in words (a command
    /// that is not letters, a header without a colon, an undefined escape,
    /// a `content-length` that is not a number or whose bytes are not
    /// followed by a NUL, text that is not UTF-8).
    Malformed(&'static str),
    /// The stream ended inside a frame.
    Truncated,
    /// A frame that cannot be written; why, in words (a command that is not
    /// letters, a `content-length` header that differs from the body's
    /// length, a header text the frame's escaping cannot carry).
    Unencodable(&'static str),
    /// An I/O error from the transport under a `Framed`.
    Io(io::Error),
}

impl fmt::Display for StompCodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StompCodecError::FrameTooLong { max } => {
                write!(f, "STOMP frame longer than the limit of {max} bytes")
            }
            StompCodecError::TooManyHeaders { max } => {
                write!(f, "STOMP frame with more than {max} headers")
            }
            StompCodecError::Malformed(what) => write!(f, "malformed STOMP frame: {what}"),
            StompCodecError::Truncated => f.write_str("the stream ended inside a STOMP frame"),
            StompCodecError::Unencodable(why) => write!(f, "cannot encode STOMP frame: {why}"),
            StompCodecError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for StompCodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StompCodecError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for StompCodecError {
    fn from(e: io::Error) -> Self {
        StompCodecError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut StompCodec, wire: &[u8]) -> Vec<StompFrame> {
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            out.push(f);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        out
    }

    #[test]
    fn a_big_content_length_reserves_little_ahead() {
        let mut codec = StompCodec::new();
        let mut buf = BytesMut::from(&b"SEND\ncontent-length:8000000\n\nabc"[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() <= 2 * RESERVE_AHEAD, "{}", buf.capacity());
    }

    #[test]
    fn lenient_until_the_version_is_set() {
        let wire = b"ERROR\nmessage:bad C:\\path\\\nnote:a\\cb\n\n\0";
        let mut strict = StompCodec::new();
        assert!(strict.decode(&mut BytesMut::from(&wire[..])).is_err());
        let mut codec = StompCodec::new();
        codec.set_lenient_until_version();
        let frames = decode_all(&mut codec, wire);
        assert_eq!(frames[0].header("message"), Some("bad C:\\path\\"));
        assert_eq!(frames[0].header("note"), Some("a:b"));
        codec.set_version(StompVersion::V1_2);
        assert!(codec.decode(&mut BytesMut::from(&wire[..])).is_err());
    }

    #[test]
    fn no_limit_means_usize_max_without_overflow() {
        let mut codec = StompCodec::new();
        codec.set_max_headers(usize::MAX);
        codec.set_max_frame_length(usize::MAX);
        let frames = decode_all(&mut codec, b"SEND\ndestination:/q\n\nhi\0");
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].header("destination"), Some("/q"));
        assert_eq!(&frames[0].body[..], b"hi");
    }

    #[test]
    fn escapes_per_version() {
        let mut v = Vec::new();
        escape("a:b\\c\nd\re", Escaping::V1_2, false, &mut v).unwrap();
        assert_eq!(v, b"a\\cb\\\\c\\nd\\re");
        assert_eq!(unescape(&v, Escaping::V1_2).unwrap(), "a:b\\c\nd\re");
        assert!(escape("a\rb", Escaping::V1_1, false, &mut Vec::new()).is_err());
        assert!(escape("a:b", Escaping::None, true, &mut Vec::new()).is_err());
        assert!(escape("a\nb", Escaping::None, false, &mut Vec::new()).is_err());
        assert!(matches!(
            unescape(b"a\\tb", Escaping::V1_2),
            Err(StompCodecError::Malformed(_))
        ));
        assert!(unescape(b"a\\", Escaping::V1_1).is_err());
        assert_eq!(unescape(b"a\\tb", Escaping::None).unwrap(), "a\\tb");
    }

    #[test]
    fn connect_frames_are_not_escaped() {
        let mut codec = StompCodec::new();
        let frames = decode_all(&mut codec, b"CONNECTED\nserver:a\\b\n\n\0");
        assert_eq!(frames[0].header("server"), Some("a\\b"));
        let mut wire = BytesMut::new();
        codec
            .encode(
                StompFrame::new("CONNECT").with_header("passcode", "p:w\\"),
                &mut wire,
            )
            .unwrap();
        assert_eq!(&wire[..], b"CONNECT\npasscode:p:w\\\n\n\0");
    }

    #[test]
    fn version_1_0_reads_backslashes_raw() {
        let mut codec = StompCodec::new();
        codec.set_version(StompVersion::V1_0);
        let frames = decode_all(&mut codec, b"MESSAGE\nmessage-id:ID:x\\y\n\nbody\0");
        assert_eq!(frames[0].header("message-id"), Some("ID:x\\y"));
    }

    #[test]
    fn repeated_headers_keep_order_and_the_first_counts() {
        let mut codec = StompCodec::new();
        let frames = decode_all(&mut codec, b"MESSAGE\nfoo:1\nfoo:2\n\n\0");
        assert_eq!(frames[0].headers.len(), 2);
        assert_eq!(frames[0].header("foo"), Some("1"));
    }
}
