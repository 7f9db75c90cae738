//! `SmtpCodec`: SMTP's framing, lines of bytes ended by CRLF (or a bare
//! LF, which is forgiven in commands and told apart, as
//! [`SmtpLine::BareLf`], so that message data can refuse to end on it),
//! each at most `max_line_length` bytes; a longer line is one
//! [`SmtpLine::TooLong`] frame, not an error, so that the conversation
//! goes on.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::reply::SmtpReply;

/// One frame of an [`SmtpCodec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpLine {
    /// A line ended by CRLF, without it.
    Line(Bytes),
    /// A line ended by a bare LF (no CR before it), without it; or the
    /// unterminated last bytes before the end of the stream. Commands
    /// forgive the bare LF, but in message data such a line is data and
    /// never ends the message: a `.` line ends it only if it and the line
    /// before it ended in CRLF (RFC 5321 §4.1.1.4), which is what stops
    /// SMTP smuggling (`\n.\n` taken for the end of the data by one server
    /// and not by the next).
    BareLf(Bytes),
    /// A line longer than the codec's maximum: its bytes are dropped up to
    /// and including the next LF, and this frame stands for it.
    TooLong,
}

/// SMTP's line framing (a tokio-util codec, usable with `Framed` too):
/// decodes lines of bytes (no UTF-8 required: message data may be 8-bit),
/// with the CR of a CRLF and the LF stripped, a line ended by CRLF as
/// [`SmtpLine::Line`] and one ended by a bare LF as [`SmtpLine::BareLf`]; encodes [`SmtpReply`]s, command
/// lines (`&str`, `String`, which get a CRLF) and raw [`Bytes`] (message
/// data, already dot-stuffed, sent as they are).
///
/// A line longer than [`max_line_length`](SmtpCodec::max_line_length)
/// is not an error: it decodes to one [`SmtpLine::TooLong`] as soon as
/// it is known to be too long, and the rest of it, up to the next LF, is
/// discarded as it arrives. Memory stays bounded by the limit.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use em_protocols::{SmtpCodec, SmtpLine};
/// use tokio_util::codec::Decoder;
///
/// let mut codec = SmtpCodec::new_with_max_length(8);
/// let mut input = BytesMut::from(&b"NOOP\r\nway too long a line\r\nQUIT\r\n"[..]);
/// assert_eq!(codec.decode(&mut input)?, Some(SmtpLine::Line(Bytes::from("NOOP"))));
/// assert_eq!(codec.decode(&mut input)?, Some(SmtpLine::TooLong));
/// assert_eq!(codec.decode(&mut input)?, Some(SmtpLine::Line(Bytes::from("QUIT"))));
/// assert_eq!(codec.decode(&mut input)?, None);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SmtpCodec {
    max_length: usize,
    /// Where to look for the next LF (bytes before it were searched).
    next_index: usize,
    /// The rest of a line too long is being dropped.
    discarding: bool,
}

impl Default for SmtpCodec {
    fn default() -> Self {
        SmtpCodec::new()
    }
}

impl SmtpCodec {
    /// The longest line (without its line ending) delivered unless set
    /// otherwise: 4096 bytes, four times the 1000 (line ending included)
    /// that RFC 5321 §4.5.3.1 asks every implementation to accept.
    pub const DEFAULT_MAX_LINE_LENGTH: usize = 4096;

    /// A codec with lines of at most
    /// [`DEFAULT_MAX_LINE_LENGTH`](Self::DEFAULT_MAX_LINE_LENGTH) bytes.
    pub fn new() -> SmtpCodec {
        SmtpCodec::new_with_max_length(SmtpCodec::DEFAULT_MAX_LINE_LENGTH)
    }

    /// A codec with lines of at most `max_length` bytes (line ending not
    /// counted).
    pub fn new_with_max_length(max_length: usize) -> SmtpCodec {
        SmtpCodec {
            max_length,
            next_index: 0,
            discarding: false,
        }
    }

    /// The longest line delivered, line ending not counted.
    pub fn max_line_length(&self) -> usize {
        self.max_length
    }
}

impl Decoder for SmtpCodec {
    type Item = SmtpLine;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<SmtpLine>, std::io::Error> {
        loop {
            let found = buf[self.next_index..].iter().position(|&b| b == b'\n');
            match (self.discarding, found) {
                (true, Some(offset)) => {
                    buf.advance(self.next_index + offset + 1);
                    self.next_index = 0;
                    self.discarding = false;
                }
                (true, None) => {
                    buf.clear();
                    self.next_index = 0;
                    return Ok(None);
                }
                (false, Some(offset)) => {
                    let end = self.next_index + offset;
                    self.next_index = 0;
                    let mut line = buf.split_to(end + 1);
                    line.truncate(end);
                    let crlf = line.last() == Some(&b'\r');
                    if crlf {
                        line.truncate(end - 1);
                    }
                    if line.len() > self.max_length {
                        return Ok(Some(SmtpLine::TooLong));
                    }
                    return Ok(Some(if crlf {
                        SmtpLine::Line(line.freeze())
                    } else {
                        SmtpLine::BareLf(line.freeze())
                    }));
                }
                (false, None) => {
                    // One byte more than the limit may be the CR of a CRLF.
                    if buf.len() > self.max_length.saturating_add(1) {
                        buf.clear();
                        self.next_index = 0;
                        self.discarding = true;
                        return Ok(Some(SmtpLine::TooLong));
                    }
                    self.next_index = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<SmtpLine>, std::io::Error> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        self.next_index = 0;
        if self.discarding || buf.is_empty() {
            buf.clear();
            self.discarding = false;
            return Ok(None);
        }
        // An unterminated last line: not ended by CRLF.
        let mut line = buf.split();
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        Ok(Some(if line.len() > self.max_length {
            SmtpLine::TooLong
        } else {
            SmtpLine::BareLf(line.freeze())
        }))
    }
}

impl Encoder<&SmtpReply> for SmtpCodec {
    type Error = std::io::Error;

    fn encode(&mut self, reply: &SmtpReply, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        reply.write_to(dst);
        Ok(())
    }
}

impl Encoder<SmtpReply> for SmtpCodec {
    type Error = std::io::Error;

    fn encode(&mut self, reply: SmtpReply, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        self.encode(&reply, dst)
    }
}

impl Encoder<&str> for SmtpCodec {
    type Error = std::io::Error;

    fn encode(&mut self, line: &str, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        dst.reserve(line.len() + 2);
        dst.put_slice(line.as_bytes());
        dst.put_slice(b"\r\n");
        Ok(())
    }
}

impl Encoder<String> for SmtpCodec {
    type Error = std::io::Error;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        self.encode(line.as_str(), dst)
    }
}

impl Encoder<Bytes> for SmtpCodec {
    type Error = std::io::Error;

    fn encode(&mut self, data: Bytes, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        dst.extend_from_slice(&data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> SmtpLine {
        SmtpLine::Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Decodes `input` fed in pieces cut at `cuts`, then at the end.
    fn decode_split(max: usize, input: &[u8], cuts: &[usize]) -> Vec<SmtpLine> {
        let mut codec = SmtpCodec::new_with_max_length(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            buf.extend_from_slice(&input[from..cut]);
            from = cut;
            while let Some(l) = codec.decode(&mut buf).unwrap() {
                out.push(l);
            }
        }
        while let Some(l) = codec.decode_eof(&mut buf).unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let input = b"EHLO a\r\nMAIL FROM:<x@y>\nabcdefghijklmnop\r\n.\r\n\r\nQUIT";
        let expect = vec![
            line("EHLO a"),
            SmtpLine::BareLf(Bytes::from_static(b"MAIL FROM:<x@y>")),
            SmtpLine::TooLong,
            line("."),
            line(""),
            SmtpLine::BareLf(Bytes::from_static(b"QUIT")),
        ];
        assert_eq!(decode_split(15, input, &[]), expect);
        for a in 0..=input.len() {
            for b in a..=input.len() {
                assert_eq!(decode_split(15, input, &[a, b]), expect, "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn a_line_of_exactly_the_limit_passes_with_its_crlf_split() {
        assert_eq!(
            decode_split(4, b"abcd\r\nabcde\r\n", &[5]),
            [line("abcd"), SmtpLine::TooLong]
        );
        assert_eq!(
            decode_split(4, b"abcd\r", &[]),
            [SmtpLine::BareLf(Bytes::from_static(b"abcd"))]
        );
    }

    #[test]
    fn a_long_line_is_dropped_as_it_arrives() {
        let mut codec = SmtpCodec::new_with_max_length(4);
        let mut buf = BytesMut::from(&b"0123456789"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(SmtpLine::TooLong));
        assert!(buf.is_empty());
        buf.extend_from_slice(b"more and more");
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
        buf.extend_from_slice(b"end\r\nok\r\n");
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(line("ok")));
    }

    #[test]
    fn a_bare_lf_is_told_apart_from_a_crlf() {
        assert_eq!(
            decode_split(100, b"foo\n.\nbar\r\n.\r\n", &[]),
            [
                SmtpLine::BareLf(Bytes::from_static(b"foo")),
                SmtpLine::BareLf(Bytes::from_static(b".")),
                line("bar"),
                line("."),
            ]
        );
    }

    #[test]
    fn no_limit_means_usize_max_without_overflow() {
        assert_eq!(
            decode_split(usize::MAX, b"NOOP\r\nQUIT\r\n", &[2, 8]),
            [line("NOOP"), line("QUIT")]
        );
    }

    #[test]
    fn eight_bit_bytes_pass() {
        assert_eq!(
            decode_split(100, b"caf\xe9\r\n", &[]),
            [SmtpLine::Line(Bytes::from_static(b"caf\xe9"))]
        );
    }

    #[test]
    fn encodes_commands_replies_and_raw_data() {
        let mut codec = SmtpCodec::new();
        let mut out = BytesMut::new();
        codec.encode("NOOP", &mut out).unwrap();
        codec
            .encode(SmtpReply::new(250, "first\nsecond"), &mut out)
            .unwrap();
        codec
            .encode(Bytes::from_static(b"raw\r\n.\r\n"), &mut out)
            .unwrap();
        assert_eq!(&out[..], b"NOOP\r\n250-first\r\n250 second\r\nraw\r\n.\r\n");
    }
}
