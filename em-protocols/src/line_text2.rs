//! [`LineText2`]: EventMachine's `EM::Protocols::LineText2`, lines with
//! binary blocks in between, as a tokio-util codec; and [`LineError`], the
//! error of every line codec in this crate.

use std::fmt;
use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memmem;
use tokio_util::codec::{Decoder, Encoder};

/// The default [`max_line_length`](LineText2::max_line_length): 16 KiB,
/// EventMachine's `LineText2::MaxLineLength` (which EventMachine declares
/// but never enforces; em does).
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16 * 1024;

/// The default [`max_binary_length`](LineText2::max_binary_length): 32 MiB,
/// EventMachine's `MaxBinaryLength`.
pub const DEFAULT_MAX_BINARY_LENGTH: usize = 32 * 1024 * 1024;

/// One frame decoded by [`LineText2`] (and what it encodes).
///
/// Which frames come depends on the mode the handler set:
///
/// | mode | frames |
/// |---|---|
/// | line mode (the start) | [`Line`](Self::Line) per line |
/// | [`set_binary_mode(n)`](LineText2::set_binary_mode) | one [`Binary`](Self::Binary) of exactly `n` bytes, then [`EndOfBinary`](Self::EndOfBinary), then line mode again |
/// | [`set_binary_mode_streamed(n)`](LineText2::set_binary_mode_streamed) | [`BinaryChunk`](Self::BinaryChunk)s as the bytes arrive, `n` bytes in all, then [`EndOfBinary`](Self::EndOfBinary), then line mode again |
/// | [`set_binary_mode_unsized()`](LineText2::set_binary_mode_unsized) | [`BinaryChunk`](Self::BinaryChunk)s as the bytes arrive, until the handler switches again; no [`EndOfBinary`](Self::EndOfBinary) |
///
/// Chunk boundaries follow the reads and mean nothing. Lines are bytes,
/// not `String`s: a protocol that mixes text and binary (SMTP, STOMP) may
/// carry 8-bit lines; `std::str::from_utf8(&line)` when text is wanted.
/// [`LineAndText`](crate::LineAndText) gives `String` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineText2Frame {
    /// A line, without its delimiter (nor, with the `"\n"` delimiter, the
    /// `"\r"` before it). EventMachine's `receive_line`.
    Line(Bytes),
    /// A whole binary block of the size given to
    /// [`set_binary_mode`](LineText2::set_binary_mode). EventMachine's
    /// `receive_binary_data` in sized mode.
    Binary(Bytes),
    /// A piece of a streamed block or of unsized binary mode, as it
    /// arrived (never empty). EventMachine's `receive_binary_data` in
    /// unsized mode.
    BinaryChunk(Bytes),
    /// The sized block (whole or streamed) has ended; the codec is back in
    /// line mode, unless the handler switched it again. EventMachine's
    /// `receive_end_of_binary_data`. Encodes to nothing.
    EndOfBinary,
}

/// EventMachine's `LineText2`: lines with a delimiter of one or more bytes,
/// switchable mid-stream to a binary block of `n` bytes (delivered whole,
/// or streamed in chunks) or to unsized binary mode, and back.
///
/// A handler switches from `receive_data`, through
/// [`Conn::with_codec`](em_core::Conn::with_codec), and the next frame is
/// decoded under the new mode: bytes already read past the switch are
/// neither lost nor delivered twice, wherever the reads split the input.
/// With tokio's `Framed`, switch through `decoder_mut()` between frames.
///
/// * **Lines**: the delimiter is `"\n"` by default, and then a `"\r"`
///   before it is stripped too (EventMachine's `chomp`); any other
///   delimiter ([`set_delimiter`](Self::set_delimiter)) is removed alone,
///   so `"\n"` and `"\r\n"` stay inside lines. A line longer than
///   [`max_line_length`](Self::max_line_length) (not counting its
///   delimiter and stripped `"\r"`) is an error
///   ([`LineError::LineTooLong`]), raised as soon as that many bytes
///   arrived without a delimiter.
/// * **A sized block** ([`set_binary_mode`](Self::set_binary_mode)) is
///   buffered and delivered whole as [`LineText2Frame::Binary`], so it may
///   be at most [`max_binary_length`](Self::max_binary_length) bytes
///   ([`LineError::BinaryTooLong`] otherwise); a streamed one
///   ([`set_binary_mode_streamed`](Self::set_binary_mode_streamed)) is
///   not buffered and has no limit. Either is followed by
///   [`LineText2Frame::EndOfBinary`], and the codec is back in line mode
///   from the moment the last byte of the block is decoded, so a handler
///   can chain blocks by switching again when it gets the block.
/// * **At the end of the stream** (`decode_eof`), an unfinished line is
///   delivered as a last [`Line`](LineText2Frame::Line), as tokio-util's
///   `LinesCodec` and `BufRead::lines` do: the peer sent those bytes, and
///   a last line without a newline (`printf 'quit' | nc …`) is common.
///   EventMachine drops it silently. An unfinished sized block is an
///   error, [`LineError::Truncated`]: EventMachine hands the short block to
///   `receive_binary_data` as if it were whole, which a handler cannot
///   tell from a whole one.
///
/// Encoding: a [`Line`](LineText2Frame::Line) (or a `&str`/`String`) gets
/// the delimiter appended, and is refused if the delimiter would be found
/// before that end ([`LineError::DelimiterInLine`]), which would make it
/// two lines at the other end; [`Binary`](LineText2Frame::Binary) and
/// [`BinaryChunk`](LineText2Frame::BinaryChunk) go out as they are.
///
/// After an error the codec should not be used on that stream again: em
/// ends the connection with `UnbindReason::Codec`, and tokio's
/// `FramedRead` ends its stream.
///
/// EventMachine's `LT1`, decoded directly:
///
/// ```
/// use bytes::BytesMut;
/// use em_protocols::{LineText2, LineText2Frame};
/// use tokio_util::codec::Decoder;
///
/// let mut codec = LineText2::new();
/// let mut input = BytesMut::from("x\r\nBIN\nabcy\n");
/// let mut frames = Vec::new();
/// while let Some(frame) = codec.decode(&mut input)? {
///     if frame == LineText2Frame::Line("BIN".into()) {
///         codec.set_binary_mode(3); // what a handler does from receive_data
///     }
///     frames.push(frame);
/// }
/// assert_eq!(
///     frames,
///     [
///         LineText2Frame::Line("x".into()),
///         LineText2Frame::Line("BIN".into()),
///         LineText2Frame::Binary("abc".into()),
///         LineText2Frame::EndOfBinary,
///         LineText2Frame::Line("y".into()),
///     ]
/// );
/// # Ok::<(), em_protocols::LineError>(())
/// ```
///
/// In em handlers, over an in-memory pair:
///
/// ```
/// use em_core::{Conn, Connection};
/// use em_protocols::{LineText2, LineText2Frame};
///
/// /// `SIZE n` announces a block of n bytes.
/// struct Blocks;
///
/// impl Connection for Blocks {
///     type Codec = LineText2;
///     fn codec(&self) -> LineText2 {
///         LineText2::new()
///     }
///     fn receive_data(&mut self, conn: &Conn<LineText2>, frame: LineText2Frame) {
///         match frame {
///             LineText2Frame::Line(line) => {
///                 let size = std::str::from_utf8(&line)
///                     .ok()
///                     .and_then(|l| l.strip_prefix("SIZE "))
///                     .and_then(|n| n.parse().ok());
///                 if let Some(n) = size {
///                     conn.with_codec(|codec| codec.set_binary_mode(n)).unwrap();
///                 }
///             }
///             LineText2Frame::Binary(block) => {
///                 conn.send_data(format!("got {} bytes", block.len()));
///             }
///             _ => {}
///         }
///     }
/// }
///
/// /// Sends a block, waits for the answer.
/// struct Sender;
///
/// impl Connection for Sender {
///     type Codec = LineText2;
///     fn codec(&self) -> LineText2 {
///         LineText2::new()
///     }
///     fn connection_completed(&mut self, conn: &Conn<LineText2>) {
///         conn.send_data("SIZE 5");
///         conn.send_data(LineText2Frame::Binary("a\nb\nc".into()));
///     }
///     fn receive_data(&mut self, _: &Conn<LineText2>, frame: LineText2Frame) {
///         assert_eq!(frame, LineText2Frame::Line("got 5 bytes".into()));
///         em_core::stop();
///     }
/// }
///
/// em_core::run(|| em_core::connect_pair(Blocks, Sender).map(drop))?;
/// # Ok::<(), em_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LineText2 {
    mode: Mode,
    delimiter: Delimiter,
    max_line_length: usize,
    max_binary_length: usize,
    /// An [`EndOfBinary`](LineText2Frame::EndOfBinary) is owed: the last
    /// frame ended a sized block.
    end_pending: bool,
    /// Line mode: no delimiter starts before this offset of the buffer
    /// (what was searched already), so that a long line arriving in many
    /// reads is searched once.
    scanned: usize,
}

/// What the next bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lines,
    /// A sized block of `size` bytes, `remaining` of them still to come;
    /// delivered whole, or `streamed` in chunks.
    Block {
        size: usize,
        remaining: usize,
        streamed: bool,
    },
    Unsized,
}

/// The line delimiter, with its searcher built once.
#[derive(Debug, Clone)]
struct Delimiter {
    bytes: Bytes,
    finder: memmem::Finder<'static>,
    /// Its byte, for a delimiter of one byte (searched with `memchr`).
    single: Option<u8>,
    /// `"\n"`, after which a `"\r"` is stripped too.
    strips_cr: bool,
}

impl Delimiter {
    fn new(bytes: &[u8]) -> Result<Delimiter, LineError> {
        if bytes.is_empty() {
            return Err(LineError::EmptyDelimiter);
        }
        Ok(Delimiter {
            bytes: Bytes::copy_from_slice(bytes),
            finder: memmem::Finder::new(bytes).into_owned(),
            single: match bytes {
                [byte] => Some(*byte),
                _ => None,
            },
            strips_cr: bytes == b"\n",
        })
    }

    fn newline() -> Delimiter {
        Delimiter::new(b"\n").expect("a non-empty delimiter")
    }

    /// The offset of the first delimiter in `haystack`.
    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<usize> {
        match self.single {
            Some(byte) => memchr::memchr(byte, haystack),
            None => self.finder.find(haystack),
        }
    }
}

impl Default for LineText2 {
    fn default() -> Self {
        LineText2::new()
    }
}

impl LineText2 {
    /// A codec in line mode with the `"\n"` delimiter,
    /// [`DEFAULT_MAX_LINE_LENGTH`] and [`DEFAULT_MAX_BINARY_LENGTH`].
    pub fn new() -> LineText2 {
        LineText2 {
            mode: Mode::Lines,
            delimiter: Delimiter::newline(),
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
            max_binary_length: DEFAULT_MAX_BINARY_LENGTH,
            end_pending: false,
            scanned: 0,
        }
    }

    /// A codec in line mode with `delimiter` (see
    /// [`set_delimiter`](Self::set_delimiter)). Errors with
    /// [`LineError::EmptyDelimiter`] for an empty one.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use em_protocols::{LineText2, LineText2Frame};
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = LineText2::new_with_delimiter("|")?;
    /// let mut input = BytesMut::from("a\r\nb|c|");
    /// assert_eq!(codec.decode(&mut input)?, Some(LineText2Frame::Line("a\r\nb".into())));
    /// assert_eq!(codec.decode(&mut input)?, Some(LineText2Frame::Line("c".into())));
    /// # Ok::<(), em_protocols::LineError>(())
    /// ```
    pub fn new_with_delimiter(delimiter: impl AsRef<[u8]>) -> Result<LineText2, LineError> {
        let mut codec = LineText2::new();
        codec.set_delimiter(delimiter)?;
        Ok(codec)
    }

    /// Sets the line delimiter, one or more bytes (EventMachine's
    /// `set_delimiter`; a `Regexp` is not supported). With `"\n"` a `"\r"`
    /// before it is stripped too; any other delimiter is removed alone.
    /// Applies from the next line, to bytes already read as well. Errors
    /// with [`LineError::EmptyDelimiter`] for an empty one (the delimiter
    /// is then unchanged).
    pub fn set_delimiter(&mut self, delimiter: impl AsRef<[u8]>) -> Result<(), LineError> {
        self.delimiter = Delimiter::new(delimiter.as_ref())?;
        self.scanned = 0;
        Ok(())
    }

    /// The line delimiter.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter.bytes
    }

    /// Sets the longest line accepted, in bytes, not counting its
    /// delimiter (nor the `"\r"` stripped before a `"\n"`). A longer line is
    /// an error, [`LineError::LineTooLong`]. `usize::MAX` lifts the limit.
    pub fn set_max_line_length(&mut self, max: usize) {
        self.max_line_length = max;
    }

    /// The longest line accepted; [`DEFAULT_MAX_LINE_LENGTH`] unless set.
    pub fn max_line_length(&self) -> usize {
        self.max_line_length
    }

    /// Sets the largest block [`set_binary_mode`](Self::set_binary_mode)
    /// may ask for, in bytes: such a block is held in memory until it is
    /// whole. Asking for more is an error, [`LineError::BinaryTooLong`],
    /// when the next frame is decoded. Streamed and unsized binary modes
    /// hold nothing and have no limit.
    pub fn set_max_binary_length(&mut self, max: usize) {
        self.max_binary_length = max;
    }

    /// The largest whole block accepted; [`DEFAULT_MAX_BINARY_LENGTH`]
    /// unless set. A handler can check a size against it before switching,
    /// to answer the peer instead of ending the connection.
    pub fn max_binary_length(&self) -> usize {
        self.max_binary_length
    }

    /// Switches to a binary block of `size` bytes, delivered whole as one
    /// [`LineText2Frame::Binary`] once all have arrived, followed by
    /// [`LineText2Frame::EndOfBinary`]; line mode follows. Takes effect at
    /// once, from whatever mode the codec is in (the rest of an unfinished
    /// block is decoded under the new mode). EventMachine's
    /// `set_binary_mode(size)` (and its alias `set_text_mode(size)`).
    ///
    /// A size over [`max_binary_length`](Self::max_binary_length) makes
    /// the next decode fail with [`LineError::BinaryTooLong`]. A size of 0
    /// delivers an empty `Binary` and `EndOfBinary` at once (EventMachine
    /// delivers nothing, which leaves a handler waiting for an empty body
    /// waiting forever).
    #[doc(alias = "set_text_mode")]
    pub fn set_binary_mode(&mut self, size: usize) {
        self.start_block(size, false);
    }

    /// Switches to a binary block of `size` bytes streamed as
    /// [`LineText2Frame::BinaryChunk`]s as they arrive (nothing is held,
    /// so there is no size limit), followed by
    /// [`LineText2Frame::EndOfBinary`]; line mode follows. Otherwise as
    /// [`set_binary_mode`](Self::set_binary_mode). An em extension: for
    /// bodies too large to hold, such as a file upload.
    pub fn set_binary_mode_streamed(&mut self, size: usize) {
        self.start_block(size, true);
    }

    /// Switches to unsized binary mode: every byte from here on is passed
    /// through as [`LineText2Frame::BinaryChunk`]s, as it arrives, until
    /// the handler switches again (no `EndOfBinary`). EventMachine's
    /// `set_binary_mode` (or `set_text_mode`) with no size.
    pub fn set_binary_mode_unsized(&mut self) {
        self.mode = Mode::Unsized;
        self.scanned = 0;
    }

    /// EventMachine's `set_text_mode(size)`, which despite its name is an
    /// alias of `set_binary_mode`: `Some(n)` is
    /// [`set_binary_mode(n)`](Self::set_binary_mode), `None` is
    /// [`set_binary_mode_unsized`](Self::set_binary_mode_unsized). Kept so
    /// that ported code means what it meant; new code reads better with
    /// those two. Back to lines is [`set_line_mode`](Self::set_line_mode).
    pub fn set_text_mode(&mut self, size: Option<usize>) {
        match size {
            Some(size) => self.set_binary_mode(size),
            None => self.set_binary_mode_unsized(),
        }
    }

    /// Switches back to line mode at once, dropping what is left of a
    /// sized block (the bytes are then read as lines). EventMachine's
    /// `set_line_mode`, without its argument: bytes already read are never
    /// lost here, so there is nothing to feed back.
    pub fn set_line_mode(&mut self) {
        self.mode = Mode::Lines;
        self.scanned = 0;
    }

    /// Whether the codec is in line mode (an owed
    /// [`EndOfBinary`](LineText2Frame::EndOfBinary) aside).
    pub fn is_line_mode(&self) -> bool {
        self.mode == Mode::Lines
    }

    fn start_block(&mut self, size: usize, streamed: bool) {
        self.mode = Mode::Block {
            size,
            remaining: size,
            streamed,
        };
        self.scanned = 0;
    }

    /// The end of a sized block: line mode, and an `EndOfBinary` owed.
    fn end_block(&mut self) {
        self.mode = Mode::Lines;
        self.end_pending = true;
    }

    /// Decodes the next frame, the line (if it is one) made by `line`
    /// from the buffer, the line's length (without delimiter and stripped
    /// `"\r"`) and the bytes it takes with its delimiter: the engine of
    /// `LineText2` (`Bytes` lines) and `LineAndText` (`String` lines).
    /// After the end of the stream (`eof`), the unfinished line is the
    /// last, and an unfinished block an error.
    #[inline]
    pub(crate) fn decode_with<L>(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
        line: impl FnOnce(&mut BytesMut, usize, usize) -> Result<L, LineError>,
    ) -> Result<Option<Decoded<L>>, LineError> {
        if self.end_pending {
            self.end_pending = false;
            return Ok(Some(Decoded::EndOfBinary));
        }
        match self.mode {
            Mode::Lines => self.decode_line(buf, eof, line),
            Mode::Block {
                size,
                remaining,
                streamed: false,
            } => {
                if size > self.max_binary_length {
                    return Err(LineError::BinaryTooLong {
                        length: size,
                        max: self.max_binary_length,
                    });
                }
                if buf.len() < size {
                    return match eof {
                        false => Ok(None),
                        true => Err(LineError::Truncated {
                            size,
                            missing: remaining - buf.len(),
                        }),
                    };
                }
                let block = buf.split_to(size).freeze();
                self.end_block();
                Ok(Some(Decoded::Binary(block)))
            }
            Mode::Block {
                size,
                remaining,
                streamed: true,
            } => {
                if remaining == 0 {
                    // A streamed block of 0 bytes: its end alone.
                    self.mode = Mode::Lines;
                    return Ok(Some(Decoded::EndOfBinary));
                }
                if buf.is_empty() {
                    return match eof {
                        false => Ok(None),
                        true => Err(LineError::Truncated {
                            size,
                            missing: remaining,
                        }),
                    };
                }
                let take = remaining.min(buf.len());
                let chunk = buf.split_to(take).freeze();
                if take == remaining {
                    self.end_block();
                } else {
                    self.mode = Mode::Block {
                        size,
                        remaining: remaining - take,
                        streamed: true,
                    };
                }
                Ok(Some(Decoded::BinaryChunk(chunk)))
            }
            Mode::Unsized if buf.is_empty() => Ok(None),
            Mode::Unsized => Ok(Some(Decoded::BinaryChunk(buf.split().freeze()))),
        }
    }

    #[inline]
    fn decode_line<L>(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
        line: impl FnOnce(&mut BytesMut, usize, usize) -> Result<L, LineError>,
    ) -> Result<Option<Decoded<L>>, LineError> {
        let delimiter_len = self.delimiter.bytes.len();
        let strip_cr = self.delimiter.strips_cr;
        // A line within the limit has its delimiter start at or before
        // `max_line_length` (+1 for a "\r" to strip): search no further.
        let window = self
            .max_line_length
            .saturating_add(delimiter_len)
            .saturating_add(usize::from(strip_cr));
        let end = buf.len().min(window);
        let start = self.scanned.min(end);
        let (len, taken) = match self.delimiter.find(&buf[start..end]) {
            Some(found) => (start + found, start + found + delimiter_len),
            None if buf.len() >= window => {
                return Err(LineError::LineTooLong {
                    max: self.max_line_length,
                })
            }
            // The unfinished last line.
            None if eof && !buf.is_empty() => (buf.len(), buf.len()),
            None => {
                // A delimiter may begin in the last `delimiter_len - 1`
                // bytes, and end in bytes still to come.
                self.scanned = start.max(end.saturating_sub(delimiter_len - 1));
                return Ok(None);
            }
        };
        let len = if strip_cr && len > 0 && buf[len - 1] == b'\r' {
            len - 1
        } else {
            len
        };
        if len > self.max_line_length {
            return Err(LineError::LineTooLong {
                max: self.max_line_length,
            });
        }
        self.scanned = 0;
        line(buf, len, taken).map(|line| Some(Decoded::Line(line)))
    }
}

/// A frame of [`LineText2`]'s engine, its line type left to the codec on
/// top.
#[derive(Debug)]
pub(crate) enum Decoded<L> {
    Line(L),
    Binary(Bytes),
    BinaryChunk(Bytes),
    EndOfBinary,
}

/// `LineText2`'s lines: split off the buffer, no copy.
#[inline]
fn bytes_line(buf: &mut BytesMut, len: usize, taken: usize) -> Result<Bytes, LineError> {
    let mut line = buf.split_to(taken);
    line.truncate(len);
    Ok(line.freeze())
}

impl From<Decoded<Bytes>> for LineText2Frame {
    #[inline]
    fn from(decoded: Decoded<Bytes>) -> Self {
        match decoded {
            Decoded::Line(line) => LineText2Frame::Line(line),
            Decoded::Binary(bytes) => LineText2Frame::Binary(bytes),
            Decoded::BinaryChunk(bytes) => LineText2Frame::BinaryChunk(bytes),
            Decoded::EndOfBinary => LineText2Frame::EndOfBinary,
        }
    }
}

impl Decoder for LineText2 {
    type Item = LineText2Frame;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<LineText2Frame>, LineError> {
        if self.mode == Mode::Lines && !self.end_pending {
            // The common case, without the conversion below.
            return match self.decode_line(buf, false, bytes_line)? {
                Some(Decoded::Line(line)) => Ok(Some(LineText2Frame::Line(line))),
                other => Ok(other.map(Into::into)),
            };
        }
        Ok(self.decode_with(buf, false, bytes_line)?.map(Into::into))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<LineText2Frame>, LineError> {
        Ok(self.decode_with(buf, true, bytes_line)?.map(Into::into))
    }
}

impl LineText2 {
    fn encode_line(&self, line: &[u8], dst: &mut BytesMut) -> Result<(), LineError> {
        let start = dst.len();
        dst.reserve(line.len() + self.delimiter.bytes.len());
        dst.put_slice(line);
        dst.put_slice(&self.delimiter.bytes);
        // The first delimiter must be the one appended: one inside the
        // line, or one that the line's end makes with the start of the
        // appended one ("xa" before "aa"), would end the line early.
        // With "\n", a "\r" before it is stripped on arrival: a line that
        // ends in one would lose it.
        let loses_cr = self.delimiter.strips_cr && line.last() == Some(&b'\r');
        if loses_cr || self.delimiter.find(&dst[start..]) != Some(line.len()) {
            dst.truncate(start);
            return Err(LineError::DelimiterInLine);
        }
        Ok(())
    }
}

/// Lines get the delimiter appended (and are refused if they contain it);
/// binary frames go out as they are; `EndOfBinary` is nothing.
impl Encoder<LineText2Frame> for LineText2 {
    type Error = LineError;

    fn encode(&mut self, frame: LineText2Frame, dst: &mut BytesMut) -> Result<(), LineError> {
        match frame {
            LineText2Frame::Line(line) => self.encode_line(&line, dst),
            LineText2Frame::Binary(bytes) | LineText2Frame::BinaryChunk(bytes) => {
                dst.extend_from_slice(&bytes);
                Ok(())
            }
            LineText2Frame::EndOfBinary => Ok(()),
        }
    }
}

/// A line: `conn.send_data("250 OK")`.
impl Encoder<&str> for LineText2 {
    type Error = LineError;

    fn encode(&mut self, line: &str, dst: &mut BytesMut) -> Result<(), LineError> {
        self.encode_line(line.as_bytes(), dst)
    }
}

/// A line.
impl Encoder<String> for LineText2 {
    type Error = LineError;

    fn encode(&mut self, line: String, dst: &mut BytesMut) -> Result<(), LineError> {
        self.encode_line(line.as_bytes(), dst)
    }
}

/// What went wrong in a line codec: [`LineText2`],
/// [`LineAndText`](crate::LineAndText) or
/// [`LineProtocol`](crate::LineProtocol). In em, a decoding error ends
/// the connection with `UnbindReason::Codec`, whose `Display` includes
/// this one's.
#[derive(Debug)]
#[non_exhaustive]
pub enum LineError {
    /// A line was longer than the codec's `max_line_length`.
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// `set_binary_mode` asked for a block larger than the codec's
    /// `max_binary_length`.
    BinaryTooLong {
        /// The block's size.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a sized binary block.
    Truncated {
        /// The block's size.
        size: usize,
        /// How many of its bytes never came.
        missing: usize,
    },
    /// A line was not UTF-8 ([`LineAndText`](crate::LineAndText) and
    /// [`LineProtocol`](crate::LineProtocol) only; [`LineText2`] lines are
    /// bytes).
    InvalidUtf8,
    /// Encoding: a line to send contains the delimiter (or, for a
    /// delimiter of several bytes, ends with a part of it that the
    /// delimiter completes), so it would arrive as more than one line; or,
    /// with the `"\n"` delimiter, ends in a `"\r"`, which would be
    /// stripped on arrival.
    DelimiterInLine,
    /// Configuration: a delimiter must be at least one byte.
    EmptyDelimiter,
    /// An I/O error from the stream under the codec (tokio's `Framed`).
    Io(io::Error),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::LineTooLong { max } => {
                write!(f, "line longer than {max} bytes (the codec's max_line_length)")
            }
            LineError::BinaryTooLong { length, max } => write!(
                f,
                "binary block of {length} bytes asked for, over the codec's max_binary_length ({max} bytes)"
            ),
            LineError::Truncated { size, missing } => write!(
                f,
                "the stream ended {missing} bytes before the end of a {size}-byte binary block"
            ),
            LineError::InvalidUtf8 => f.write_str("line is not valid UTF-8"),
            LineError::DelimiterInLine => f.write_str(
                "a line to send contains the delimiter, or ends in a \"\\r\" the \"\\n\" delimiter strips (it would not arrive as that one line)",
            ),
            LineError::EmptyDelimiter => f.write_str("a line delimiter must be at least one byte"),
            LineError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for LineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LineError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for LineError {
    fn from(e: io::Error) -> Self {
        LineError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LineText2Frame::*;

    fn line(s: &str) -> LineText2Frame {
        Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn bin(s: &str) -> LineText2Frame {
        Binary(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Feeds `input` in the pieces `cuts` makes, as em's pump does: after
    /// each piece, decode until nothing more, calling `on_frame` (which may
    /// switch modes) between frames; `decode_eof` at the end.
    fn feed(
        codec: &mut LineText2,
        input: &[u8],
        cuts: &[usize],
        mut on_frame: impl FnMut(&mut LineText2, &LineText2Frame),
    ) -> Result<Vec<LineText2Frame>, LineError> {
        let mut frames = Vec::new();
        let mut buf = BytesMut::new();
        let mut from = 0;
        for &to in cuts.iter().chain([&input.len()]) {
            buf.extend_from_slice(&input[from..to]);
            from = to;
            while let Some(frame) = codec.decode(&mut buf)? {
                on_frame(codec, &frame);
                frames.push(frame);
            }
        }
        while let Some(frame) = codec.decode_eof(&mut buf)? {
            on_frame(codec, &frame);
            frames.push(frame);
        }
        Ok(frames)
    }

    fn lt1_switch(codec: &mut LineText2, frame: &LineText2Frame) {
        if *frame == line("BIN") {
            codec.set_binary_mode(3);
        }
    }

    /// EventMachine's LT1, at every single cut and every pair of cuts.
    #[test]
    fn lt1_same_result_wherever_the_input_is_cut() {
        let input = b"x\r\nBIN\nabcy\n";
        let want = [line("x"), line("BIN"), bin("abc"), EndOfBinary, line("y")];
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let got = feed(&mut LineText2::new(), input, &[a, b], lt1_switch).unwrap();
                assert_eq!(got, want, "cut at {a} and {b}");
            }
        }
        let bytewise: Vec<usize> = (1..input.len()).collect();
        let got = feed(&mut LineText2::new(), input, &bytewise, lt1_switch).unwrap();
        assert_eq!(got, want, "byte by byte");
    }

    #[test]
    fn custom_delimiter_keeps_newlines_inside_lines() {
        let mut codec = LineText2::new_with_delimiter("|").unwrap();
        let got = feed(&mut codec, b"a\nb|c\r\nd|\r|", &[], |_, _| {}).unwrap();
        assert_eq!(got, [line("a\nb"), line("c\r\nd"), line("\r")]);
    }

    #[test]
    fn multi_byte_delimiter_split_anywhere() {
        let input = b"one\r\n\r\ntwo\r\nthree\r\n\r\n";
        for cut in 0..=input.len() {
            let mut codec = LineText2::new_with_delimiter("\r\n\r\n").unwrap();
            let got = feed(&mut codec, input, &[cut], |_, _| {}).unwrap();
            assert_eq!(got, [line("one"), line("two\r\nthree")], "cut at {cut}");
        }
    }

    #[test]
    fn only_one_cr_is_stripped_and_only_for_newline() {
        let got = feed(&mut LineText2::new(), b"a\r\r\nb\r", &[], |_, _| {}).unwrap();
        assert_eq!(got, [line("a\r"), line("b")]);
        let mut codec = LineText2::new_with_delimiter("\r\n").unwrap();
        let got = feed(&mut codec, b"a\r\r\n", &[], |_, _| {}).unwrap();
        assert_eq!(got, [line("a\r")]);
    }

    #[test]
    fn empty_delimiter_is_refused() {
        assert!(matches!(
            LineText2::new_with_delimiter(""),
            Err(LineError::EmptyDelimiter)
        ));
        let mut codec = LineText2::new_with_delimiter("|").unwrap();
        assert!(codec.set_delimiter([]).is_err());
        assert_eq!(codec.delimiter(), b"|");
    }

    #[test]
    fn max_line_length_exactly() {
        for input in [&b"abcd\nabcde\n"[..], b"abcd\r\nabcde\r\n", b"abcd\nabcde"] {
            for cut in 0..=input.len() {
                let mut codec = LineText2::new();
                codec.set_max_line_length(4);
                let mut frames = Vec::new();
                let err =
                    feed(&mut codec, input, &[cut], |_, f| frames.push(f.clone())).unwrap_err();
                assert!(matches!(err, LineError::LineTooLong { max: 4 }), "{err}");
                assert_eq!(frames, [line("abcd")], "{input:?} cut at {cut}");
            }
        }
        // Too long is known before the delimiter comes.
        let mut codec = LineText2::new();
        codec.set_max_line_length(4);
        let mut buf = BytesMut::from("abcdef");
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn long_line_in_small_reads_is_searched_once() {
        // Not a timing test: the scan offset must survive reads and be
        // reset by a consumed line.
        let mut input = vec![b'a'; 10_000];
        input.push(b'\n');
        input.extend_from_slice(b"b\n");
        let cuts: Vec<usize> = (1..input.len()).step_by(7).collect();
        let got = feed(&mut LineText2::new(), &input, &cuts, |_, _| {}).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], line("b"));
    }

    #[test]
    fn binary_block_too_long_is_an_error_at_the_next_decode() {
        let mut codec = LineText2::new();
        codec.set_max_binary_length(10);
        codec.set_binary_mode(11);
        let err = codec.decode(&mut BytesMut::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "binary block of 11 bytes asked for, over the codec's max_binary_length (10 bytes)"
        );
        // Streamed blocks hold nothing, so have no limit.
        codec.set_binary_mode_streamed(11);
        let got = feed(&mut codec, b"0123456789ab\n", &[5], |_, _| {}).unwrap();
        assert_eq!(
            got,
            [
                BinaryChunk("01234".into()),
                BinaryChunk("56789a".into()),
                EndOfBinary,
                line("b")
            ]
        );
    }

    #[test]
    fn zero_sized_blocks_deliver_their_end() {
        let mut codec = LineText2::new();
        codec.set_binary_mode(0);
        let got = feed(&mut codec, b"a\n", &[], |_, _| {}).unwrap();
        assert_eq!(got, [bin(""), EndOfBinary, line("a")]);
        codec.set_binary_mode_streamed(0);
        let got = feed(&mut codec, b"a\n", &[], |_, _| {}).unwrap();
        assert_eq!(got, [EndOfBinary, line("a")]);
    }

    #[test]
    fn blocks_chain_from_the_block_itself() {
        // As EventMachine: line mode is back before the block is handed
        // over, so switching again there starts the next block.
        let mut sizes = vec![2, 1].into_iter();
        let mut on_frame = |codec: &mut LineText2, frame: &LineText2Frame| {
            if matches!(frame, Binary(_)) || *frame == line("GO") {
                if let Some(n) = sizes.next() {
                    codec.set_binary_mode(n);
                }
            }
        };
        let mut codec = LineText2::new();
        let got = feed(&mut codec, b"GO\nabcdone\n", &[], &mut on_frame).unwrap();
        assert_eq!(
            got,
            [
                line("GO"),
                bin("ab"),
                EndOfBinary,
                bin("c"),
                EndOfBinary,
                line("done")
            ]
        );
    }

    #[test]
    fn unsized_mode_passes_everything_until_the_switch() {
        let input = b"RAW\nabc\ndefSTOP\nline\n";
        for cut in 0..=input.len() {
            let mut codec = LineText2::new();
            let mut raw = Vec::new();
            let got = feed(&mut codec, input, &[cut], |codec, frame| match frame {
                Line(l) if l == "RAW" => codec.set_binary_mode_unsized(),
                BinaryChunk(b) => raw.extend_from_slice(b),
                _ => {}
            })
            .unwrap();
            // Without a switch back, everything after RAW is raw.
            assert_eq!(got[0], line("RAW"));
            assert_eq!(raw, b"abc\ndefSTOP\nline\n", "cut at {cut}");
        }
    }

    #[test]
    fn decode_eof_delivers_a_last_line_and_refuses_a_short_block() {
        let got = feed(&mut LineText2::new(), b"a\nlast\r", &[], |_, _| {}).unwrap();
        assert_eq!(got, [line("a"), line("last")]);
        let mut codec = LineText2::new();
        codec.set_binary_mode(10);
        let err = feed(&mut codec, b"abc", &[], |_, _| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the stream ended 7 bytes before the end of a 10-byte binary block"
        );
        let mut codec = LineText2::new();
        codec.set_binary_mode_streamed(10);
        let mut chunks = Vec::new();
        let err = feed(&mut codec, b"abc", &[1], |_, f| chunks.push(f.clone())).unwrap_err();
        assert!(matches!(
            err,
            LineError::Truncated {
                size: 10,
                missing: 7
            }
        ));
        assert_eq!(chunks, [BinaryChunk("a".into()), BinaryChunk("bc".into())]);
        // Unsized mode ends with the stream, and nothing is owed.
        let mut codec = LineText2::new();
        codec.set_binary_mode_unsized();
        assert_eq!(feed(&mut codec, b"", &[], |_, _| {}).unwrap(), []);
    }

    #[test]
    fn encode_appends_the_delimiter_and_refuses_it_inside() {
        let mut codec = LineText2::new_with_delimiter("\r\n").unwrap();
        let mut out = BytesMut::new();
        codec.encode("a\nb", &mut out).unwrap();
        codec.encode(Binary("\r\n".into()), &mut out).unwrap();
        codec.encode(EndOfBinary, &mut out).unwrap();
        codec.encode(String::from("c"), &mut out).unwrap();
        assert_eq!(out, "a\nb\r\n\r\nc\r\n");
        assert!(matches!(
            codec.encode("x\r\ny", &mut out),
            Err(LineError::DelimiterInLine)
        ));
        // "xa" then "aa" would read back as "x".
        let mut codec = LineText2::new_with_delimiter("aa").unwrap();
        let mut out = BytesMut::new();
        assert!(codec.encode("xa", &mut out).is_err());
        assert!(out.is_empty());
        // With "\n", a trailing "\r" would be stripped on arrival.
        let mut codec = LineText2::new();
        assert!(matches!(
            codec.encode("abc\r", &mut out),
            Err(LineError::DelimiterInLine)
        ));
        assert!(out.is_empty());
        codec.encode("a\rb", &mut out).unwrap();
        assert_eq!(out, "a\rb\n");
    }

    #[test]
    fn set_line_mode_drops_the_rest_of_a_block() {
        let mut codec = LineText2::new();
        codec.set_binary_mode_streamed(100);
        let got = feed(&mut codec, b"abc\nd\n", &[2], |codec, frame| {
            if matches!(frame, BinaryChunk(_)) {
                codec.set_line_mode();
            }
        })
        .unwrap();
        assert_eq!(got, [BinaryChunk("ab".into()), line("c"), line("d")]);
        assert!(codec.is_line_mode());
    }
}
