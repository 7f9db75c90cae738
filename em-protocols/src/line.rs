//! [`LineAndText`] and [`LineProtocol`]: EventMachine's
//! `LineAndTextProtocol` and `LineProtocol`, `"\n"`-separated text lines
//! with a limit, the first with binary blocks too. Both run on
//! [`LineText2`]'s engine.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::line_text2::{Decoded, LineError, LineText2, LineText2Frame};

/// One frame decoded by [`LineAndText`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineAndTextFrame {
    /// A line, chomped: without its `"\n"`, nor a `"\r"` before it.
    /// EventMachine's `receive_line`.
    Line(String),
    /// Binary data: a whole block of the size given to
    /// [`set_binary_mode`](LineAndText::set_binary_mode), or, in unsized
    /// binary mode, the bytes as they arrived. EventMachine's
    /// `receive_binary_data`.
    Binary(Bytes),
}

/// EventMachine's `LineAndTextProtocol`: `"\n"`-separated lines, chomped,
/// as `String`s, at most [`max_line_length`](Self::max_line_length) bytes
/// (16 KiB unless set), with
/// [`set_binary_mode`](Self::set_binary_mode) for a block of `n` bytes
/// (at most [`max_binary_length`](Self::max_binary_length), 32 MiB unless
/// set) or for unsized binary mode.
///
/// The same engine as [`LineText2`], fixed to the `"\n"` delimiter, with
/// `String` lines (one that is not UTF-8 is [`LineError::InvalidUtf8`])
/// and no `EndOfBinary` frame: a block is one
/// [`Binary`](LineAndTextFrame::Binary), and line mode follows it.
/// Where EventMachine turns *any* exception raised by `receive_line` into
/// `receive_error("overlength line")` and a close (LTP1), em says what
/// happened: an overlong line ends the connection with
/// `UnbindReason::Codec(LineError::LineTooLong)`, a panic in
/// `receive_data` with `UnbindReason::Panicked`.
///
/// At the end of the stream an unfinished line is delivered and an
/// unfinished block is an error ([`LineError::Truncated`]), as in
/// [`LineText2`]. Encoding: a `&str`, `String` or
/// [`LineAndTextFrame::Line`] is sent with `"\n"` appended (one containing
/// `"\n"` is refused); [`LineAndTextFrame::Binary`] as it is.
///
/// ```
/// use bytes::BytesMut;
/// use em_protocols::{LineAndText, LineAndTextFrame};
/// use tokio_util::codec::Decoder;
///
/// let mut codec = LineAndText::new();
/// let mut input = BytesMut::from("PUT 3\r\nabcQUIT\n");
/// assert_eq!(codec.decode(&mut input)?, Some(LineAndTextFrame::Line("PUT 3".into())));
/// codec.set_binary_mode(3);
/// assert_eq!(codec.decode(&mut input)?, Some(LineAndTextFrame::Binary("abc".into())));
/// assert_eq!(codec.decode(&mut input)?, Some(LineAndTextFrame::Line("QUIT".into())));
/// # Ok::<(), em_protocols::LineError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct LineAndText {
    inner: LineText2,
}

impl LineAndText {
    /// A codec in line mode, with the default limits
    /// ([`DEFAULT_MAX_LINE_LENGTH`](crate::DEFAULT_MAX_LINE_LENGTH),
    /// [`DEFAULT_MAX_BINARY_LENGTH`](crate::DEFAULT_MAX_BINARY_LENGTH)).
    pub fn new() -> LineAndText {
        LineAndText::default()
    }

    /// A codec in line mode accepting lines of up to `max` bytes.
    pub fn new_with_max_line_length(max: usize) -> LineAndText {
        let mut codec = LineAndText::new();
        codec.set_max_line_length(max);
        codec
    }

    /// Sets the longest line accepted, in bytes, not counting `"\n"` nor
    /// a `"\r"` before it; a longer one is [`LineError::LineTooLong`].
    pub fn set_max_line_length(&mut self, max: usize) {
        self.inner.set_max_line_length(max);
    }

    /// The longest line accepted.
    pub fn max_line_length(&self) -> usize {
        self.inner.max_line_length()
    }

    /// Sets the largest block [`set_binary_mode`](Self::set_binary_mode)
    /// may ask for (held in memory until whole); more is
    /// [`LineError::BinaryTooLong`] at the next decode.
    pub fn set_max_binary_length(&mut self, max: usize) {
        self.inner.set_max_binary_length(max);
    }

    /// The largest block accepted.
    pub fn max_binary_length(&self) -> usize {
        self.inner.max_binary_length()
    }

    /// The next `size` bytes are one [`LineAndTextFrame::Binary`], then
    /// lines again; `0` gives an empty `Binary` at once (as EventMachine).
    /// From `receive_data` through
    /// [`Conn::with_codec`](em_core::Conn::with_codec).
    pub fn set_binary_mode(&mut self, size: usize) {
        self.inner.set_binary_mode(size);
    }

    /// Everything from here on is [`LineAndTextFrame::Binary`] as it
    /// arrives, until [`set_line_mode`](Self::set_line_mode).
    /// EventMachine's `set_binary_mode(nil)`.
    pub fn set_binary_mode_unsized(&mut self) {
        self.inner.set_binary_mode_unsized();
    }

    /// Back to lines at once.
    pub fn set_line_mode(&mut self) {
        self.inner.set_line_mode();
    }

    fn decode_with(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
    ) -> Result<Option<LineAndTextFrame>, LineError> {
        loop {
            match self.inner.decode_with(buf, eof, string_line)? {
                Some(Decoded::Line(line)) => return Ok(Some(LineAndTextFrame::Line(line))),
                Some(Decoded::Binary(bytes) | Decoded::BinaryChunk(bytes)) => {
                    return Ok(Some(LineAndTextFrame::Binary(bytes)))
                }
                // A block is one frame here: its end is not one.
                Some(Decoded::EndOfBinary) => {}
                None => return Ok(None),
            }
        }
    }
}

/// A line copied out as a `String` (as tokio-util's `LinesCodec` does:
/// lines are short, and a `String` of its own pins no read buffer), then
/// consumed.
#[inline]
fn string_line(buf: &mut BytesMut, len: usize, taken: usize) -> Result<String, LineError> {
    let line = std::str::from_utf8(&buf[..len])
        .map_err(|_| LineError::InvalidUtf8)?
        .to_owned();
    buf.advance(taken);
    Ok(line)
}

impl Decoder for LineAndText {
    type Item = LineAndTextFrame;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<LineAndTextFrame>, LineError> {
        self.decode_with(buf, false)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<LineAndTextFrame>, LineError> {
        self.decode_with(buf, true)
    }
}

impl Encoder<LineAndTextFrame> for LineAndText {
    type Error = LineError;

    fn encode(&mut self, frame: LineAndTextFrame, dst: &mut BytesMut) -> Result<(), LineError> {
        match frame {
            LineAndTextFrame::Line(line) => self.inner.encode(line, dst),
            LineAndTextFrame::Binary(bytes) => {
                self.inner.encode(LineText2Frame::Binary(bytes), dst)
            }
        }
    }
}

/// A line, with `"\n"` appended.
impl Encoder<&str> for LineAndText {
    type Error = LineError;

    fn encode(&mut self, line: &str, dst: &mut BytesMut) -> Result<(), LineError> {
        self.inner.encode(line, dst)
    }
}

/// A line, with `"\n"` appended.
impl Encoder<String> for LineAndText {
    type Error = LineError;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), LineError> {
        self.inner.encode(line, dst)
    }
}

/// EventMachine's `LineProtocol`: `"\n"`-separated lines, chomped, as
/// `String`s, at most [`max_line_length`](Self::max_line_length) bytes.
/// Nothing else: [`LineAndText`] without its binary mode, so a thin type
/// of its own rather than an alias (an alias would offer `set_binary_mode`).
///
/// Without EventMachine's repeated-line bug: there, input that ends
/// exactly on `"\n"` leaves the last line in the buffer, so
/// `"a\n"` then `"b\n"` gives `a`, `a`, `b`. Here each line is delivered
/// once, wherever the reads split the input.
///
/// ```
/// use bytes::BytesMut;
/// use em_protocols::LineProtocol;
/// use tokio_util::codec::Decoder;
///
/// let mut codec = LineProtocol::new();
/// let mut input = BytesMut::from("a\n");
/// assert_eq!(codec.decode(&mut input)?.as_deref(), Some("a"));
/// assert_eq!(codec.decode(&mut input)?, None);
/// input.extend_from_slice(b"b\n");
/// assert_eq!(codec.decode(&mut input)?.as_deref(), Some("b"));
/// # Ok::<(), em_protocols::LineError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct LineProtocol {
    // LineText2 itself rather than a LineAndText: lines only, one layer
    // less on the hot path.
    inner: LineText2,
}

impl LineProtocol {
    /// A codec with the default limit,
    /// [`DEFAULT_MAX_LINE_LENGTH`](crate::DEFAULT_MAX_LINE_LENGTH).
    pub fn new() -> LineProtocol {
        LineProtocol::default()
    }

    /// A codec accepting lines of up to `max` bytes.
    pub fn new_with_max_line_length(max: usize) -> LineProtocol {
        let mut codec = LineProtocol::new();
        codec.set_max_line_length(max);
        codec
    }

    /// Sets the longest line accepted, in bytes, not counting `"\n"` nor
    /// a `"\r"` before it; a longer one is [`LineError::LineTooLong`].
    pub fn set_max_line_length(&mut self, max: usize) {
        self.inner.set_max_line_length(max);
    }

    /// The longest line accepted.
    pub fn max_line_length(&self) -> usize {
        self.inner.max_line_length()
    }

    fn decode_with(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<String>, LineError> {
        match self.inner.decode_with(buf, eof, string_line)? {
            Some(Decoded::Line(line)) => Ok(Some(line)),
            // Never in binary mode: nothing can switch it there.
            Some(_) | None => Ok(None),
        }
    }
}

impl Decoder for LineProtocol {
    type Item = String;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<String>, LineError> {
        self.decode_with(buf, false)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<String>, LineError> {
        self.decode_with(buf, true)
    }
}

/// A line, with `"\n"` appended.
impl Encoder<&str> for LineProtocol {
    type Error = LineError;

    fn encode(&mut self, line: &str, dst: &mut BytesMut) -> Result<(), LineError> {
        self.inner.encode(line, dst)
    }
}

/// A line, with `"\n"` appended.
impl Encoder<String> for LineProtocol {
    type Error = LineError;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), LineError> {
        self.inner.encode(line, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all<D: Decoder<Error = LineError>>(
        codec: &mut D,
        chunks: &[&[u8]],
    ) -> Result<Vec<D::Item>, LineError> {
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(item) = codec.decode(&mut buf)? {
                items.push(item);
            }
        }
        while let Some(item) = codec.decode_eof(&mut buf)? {
            items.push(item);
        }
        Ok(items)
    }

    /// EventMachine gives ["a", "a", "b"].
    #[test]
    fn lp1_each_line_once() {
        let got = decode_all(&mut LineProtocol::new(), &[b"a\n", b"b\n"]).unwrap();
        assert_eq!(got, ["a", "b"]);
    }

    #[test]
    fn lines_are_chomped_and_limited() {
        let got = decode_all(&mut LineProtocol::new(), &[b"a\r\n\r\n", b"b"]).unwrap();
        assert_eq!(got, ["a", "", "b"]);
        let err = decode_all(&mut LineProtocol::new_with_max_line_length(3), &[b"abcd\n"]);
        assert!(matches!(err, Err(LineError::LineTooLong { max: 3 })));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let err = decode_all(&mut LineAndText::new(), &[b"\xff\n"]).unwrap_err();
        assert_eq!(err.to_string(), "line is not valid UTF-8");
    }

    #[test]
    fn binary_blocks_and_unsized_mode() {
        let mut codec = LineAndText::new();
        let mut buf = BytesMut::from("a\nxyzb\n");
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(LineAndTextFrame::Line("a".into()))
        );
        codec.set_binary_mode(0);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(LineAndTextFrame::Binary(Bytes::new()))
        );
        codec.set_binary_mode(3);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(LineAndTextFrame::Binary("xyz".into()))
        );
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(LineAndTextFrame::Line("b".into()))
        );
        codec.set_binary_mode_unsized();
        buf.extend_from_slice(b"raw\n");
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(LineAndTextFrame::Binary("raw\n".into()))
        );
        codec.set_line_mode();
        buf.extend_from_slice(b"c\n");
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(LineAndTextFrame::Line("c".into()))
        );
    }

    #[test]
    fn encode_lines() {
        let mut codec = LineProtocol::new();
        let mut out = BytesMut::new();
        codec.encode("a", &mut out).unwrap();
        codec.encode(String::from("b"), &mut out).unwrap();
        assert_eq!(out, "a\nb\n");
        assert!(codec.encode("c\nd", &mut out).is_err());
    }
}
