//! EventMachine's bundled protocols (`EM::Protocols`) for em.
//!
//! * **Codecs** (tokio-util `Decoder`/`Encoder`s, so they work with
//!   tokio's `Framed` outside em too).
//! * **Conversations** (handlers over em's connections).
//!
//! Everything runs on the reactor thread of the connection it serves,
//! like any handler; the codecs are plain data and run wherever their
//! `Framed` runs.
//!
//! A crate of its own rather than a module of em-core: protocols are
//! libraries on top of the engine, not part of it. em-core knows nothing
//! of them; the codecs use nothing of em's, so each works with tokio's
//! `Framed` in a program without em; and a program that wants em without
//! them does not build them (nor serde).
//!
//! # A first example
//!
//! A request/response service over [`ObjectCodec`]: the server decodes
//! `Ask`s and sends `Answer`s, the client the other way round (here over
//! an in-memory pair; `start_server`/`connect` are the same over TCP).
//!
//! ```
//! use em_core::{Conn, Connection};
//! use em_protocols::ObjectCodec;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Ask {
//!     numbers: Vec<i64>,
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Answer {
//!     sum: i64,
//! }
//!
//! struct Adder;
//! impl Connection for Adder {
//!     type Codec = ObjectCodec<Ask>;
//!     fn codec(&self) -> ObjectCodec<Ask> {
//!         ObjectCodec::new()
//!     }
//!     fn receive_data(&mut self, conn: &Conn<ObjectCodec<Ask>>, ask: Ask) {
//!         conn.send_data(Answer { sum: ask.numbers.iter().sum() });
//!     }
//! }
//!
//! struct Client;
//! impl Connection for Client {
//!     type Codec = ObjectCodec<Answer>;
//!     fn codec(&self) -> ObjectCodec<Answer> {
//!         ObjectCodec::new()
//!     }
//!     fn connection_completed(&mut self, conn: &Conn<ObjectCodec<Answer>>) {
//!         conn.send_data(Ask { numbers: vec![1, 2, 3] });
//!     }
//!     fn receive_data(&mut self, _: &Conn<ObjectCodec<Answer>>, answer: Answer) {
//!         assert_eq!(answer.sum, 6);
//!         em_core::stop();
//!     }
//! }
//!
//! em_core::run(|| em_core::connect_pair(Adder, Client).map(drop))?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # The codecs
//!
//! | Codec | Decodes | Encodes | EventMachine |
//! |---|---|---|---|
//! | [`LineText2`] | [`LineText2Frame`]: `Line(Bytes)`, `Binary(Bytes)` (a sized block, whole), `BinaryChunk(Bytes)` (a streamed block or unsized mode), `EndOfBinary` | frames, `&str`, `String` | `LineText2` |
//! | [`LineAndText`] | [`LineAndTextFrame`]: `Line(String)`, `Binary(Bytes)` | frames, `&str`, `String` | `LineAndTextProtocol` |
//! | [`LineProtocol`] | `String` lines | `&str`, `String` | `LineProtocol` |
//! | [`HeaderAndContent`] | [`HeaderAndContentMessage`]: start line, headers, body | messages | `HeaderAndContentProtocol` |
//! | [`ObjectCodec<T, F>`](ObjectCodec) | `T: Deserialize` | anything `Serialize` | `ObjectProtocol` |
//!
//! A handler names one as its `Connection::Codec` and gets one decoded
//! frame per `receive_data`; `conn.send_data(x)` encodes `x` with it.
//! Outside em, `tokio_util::codec::Framed::new(stream, LineText2::new())`.
//!
//! ## Lines and binary data: LineText2
//!
//! Lines with a delimiter of one or more bytes (`"\n"` by default, and
//! then a `"\r"` before it is stripped too), switched mid-stream to a
//! sized binary block delivered whole ([`LineText2::set_binary_mode`]) or
//! in chunks ([`LineText2::set_binary_mode_streamed`]), each followed by
//! `EndOfBinary` and line mode again, or to unsized binary mode until the
//! next switch ([`LineText2::set_binary_mode_unsized`]); back to lines with
//! [`LineText2::set_line_mode`]; another delimiter with
//! [`LineText2::set_delimiter`]. [`LineAndText`] and [`LineProtocol`] run
//! on the same engine with `"\n"` and `String` lines.
//!
//! ## Switching modes from a handler
//!
//! The codec lives in the connection: a handler switches it from
//! `receive_data` with [`Conn::with_codec`](em_core::Conn::with_codec),
//! and the next frame is decoded under the new mode. em decodes one frame,
//! delivers it, then decodes the next from the same buffer, so bytes that
//! arrived in the same read as the line announcing a block are neither
//! lost nor delivered twice:
//!
//! ```
//! # #![allow(dead_code)]
//! # use em_core::Conn;
//! # use em_protocols::{LineText2, LineText2Frame};
//! // In `impl Connection for … { type Codec = LineText2; … }`:
//! fn receive_data(conn: &Conn<LineText2>, frame: LineText2Frame) {
//!     if frame == LineText2Frame::Line("DATA 512".into()) {
//!         conn.with_codec(|codec| codec.set_binary_mode(512)).unwrap();
//!     }
//! }
//! ```
//!
//! With `Framed`, switch through `decoder_mut()` between frames.
//!
//! ## Limits and errors
//!
//! Every limit has a name, a default and a setter, and passing it is an
//! error of the codec's own typed error (each with `From<io::Error>` and a
//! `Display` that names the limit). In em a decoding error ends that
//! connection only, with `UnbindReason::Codec`, whose `Display` includes
//! the codec's.
//!
//! | Codec | Limit (default) | Error |
//! |---|---|---|
//! | [`LineText2`], [`LineAndText`], [`LineProtocol`] | `max_line_length` ([`DEFAULT_MAX_LINE_LENGTH`], 16 KiB) | [`LineError::LineTooLong`] |
//! | [`LineText2`], [`LineAndText`] | `max_binary_length`, for whole blocks ([`DEFAULT_MAX_BINARY_LENGTH`], 32 MiB) | [`LineError::BinaryTooLong`] |
//! | [`HeaderAndContent`] | `max_headers` ([`DEFAULT_MAX_HEADERS`], 100) | [`HeaderAndContentError::TooManyHeaders`] |
//! | [`HeaderAndContent`] | `max_header_size` ([`DEFAULT_MAX_HEADER_SIZE`], 64 KiB) | [`HeaderAndContentError::HeaderTooLarge`] |
//! | [`HeaderAndContent`] | `max_body_length` ([`DEFAULT_MAX_BODY_LENGTH`], 32 MiB) | [`HeaderAndContentError::BodyTooLong`] |
//! | [`ObjectCodec`] | `max_frame_length` ([`DEFAULT_MAX_FRAME_LENGTH`], 8 MiB) | [`ObjectCodecError::FrameTooLong`] |
//!
//! ## At the end of the stream
//!
//! `decode_eof` delivers an unfinished last line (the peer sent it;
//! tokio-util's `LinesCodec` does the same) and refuses anything else left
//! unfinished: a sized block ([`LineError::Truncated`]), a message
//! ([`HeaderAndContentError::Truncated`]), an object frame
//! ([`ObjectCodecError::Truncated`]). EventMachine hands a short block or
//! body to the handler as if it were whole.
//!
//! # Feature flags
//!
//! * `msgpack` (off): [`ObjectCodec`]'s `MessagePack` format, through
//!   rmp-serde: compact, binary, and read by every language, for peers
//!   that do not want JSON's size or parsing cost. JSON (serde_json) is
//!   the default format and needs no feature.
//!
//! # EventMachine → em
//!
//! | EventMachine | em | Notable difference |
//! |---|---|---|
//! | `include EM::Protocols::LineText2` | `type Codec = LineText2;` | lines are `Bytes` (protocols that mix text and binary carry 8-bit lines) |
//! | `receive_line(line)` | `receive_data(conn, LineText2Frame::Line(line))` | an unfinished last line is delivered at the end of the stream (EventMachine drops it) |
//! | `receive_binary_data(data)` | `receive_data(conn, LineText2Frame::Binary(block))`; `BinaryChunk(chunk)` when streamed or unsized | a block cut short by the end of the stream is an error, not a short block |
//! | `receive_end_of_binary_data` | `receive_data(conn, LineText2Frame::EndOfBinary)` | also after a streamed block |
//! | `set_binary_mode(n)`, `set_text_mode(n)` | `conn.with_codec(\|c\| c.set_binary_mode(n))`; `set_binary_mode_streamed(n)`; `set_text_mode(Some(n))` | over `max_binary_length` (32 MiB) is an error; `0` gives an empty block and its end (EventMachine: nothing) |
//! | `set_binary_mode` / `set_text_mode` with no size | `set_binary_mode_unsized()`, `set_text_mode(None)` | |
//! | `set_line_mode(data)` | `set_line_mode()` | nothing to feed back: bytes past a switch are never lost |
//! | `set_delimiter(string)` | `set_delimiter(bytes)?`, `LineText2::new_with_delimiter` | no `Regexp`; an empty one is an error |
//! | `LineText2::MaxLineLength` (not enforced) | `set_max_line_length(n)` (16 KiB) | enforced: [`LineError::LineTooLong`] |
//! | `EM::Protocols::LineAndTextProtocol` | [`LineAndText`] | `String` lines; an overlong line ends the connection with `UnbindReason::Codec` naming the limit, a panic with `Panicked` (EventMachine calls either `receive_error("overlength line")`, LTP1) |
//! | `EM::Protocols::LineProtocol` | [`LineProtocol`] | no repeated lines (LP1) |
//! | `HeaderAndContentProtocol#receive_request(headers, content)` | `receive_data(conn, HeaderAndContentMessage { start_line, headers, body })` | headers parsed, in order, looked up by name ([`HeaderAndContentMessage::header`]); a message cut short is an error |
//! | `receive_first_header_line`, `receive_headers`, `headers_2_hash` | `message.start_line`, `message.headers`, `message.header(name)` | |
//! | `ObjectProtocol#receive_object(obj)` | `receive_data(conn, obj)` with `type Codec = ObjectCodec<T>` | typed: a payload that does not parse ends that connection (`UnbindReason::Codec`) |
//! | `ObjectProtocol#send_object(obj)` | `conn.send_data(obj)` | any `Serialize`; over `max_frame_length` is refused, nothing queued |
//! | `ObjectProtocol#serializer` (Marshal) | `ObjectCodec<T, Json>` (default), `ObjectCodec<T, MessagePack>` (feature `msgpack`), or your [`ObjectFormat`] | |

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod header_and_content;
mod line;
mod line_text2;
mod object;

pub use header_and_content::{
    HeaderAndContent, HeaderAndContentError, HeaderAndContentMessage, DEFAULT_MAX_BODY_LENGTH,
    DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADER_SIZE,
};
pub use line::{LineAndText, LineAndTextFrame, LineProtocol};
pub use line_text2::{
    LineError, LineText2, LineText2Frame, DEFAULT_MAX_BINARY_LENGTH, DEFAULT_MAX_LINE_LENGTH,
};
#[cfg(feature = "msgpack")]
pub use object::MessagePack;
pub use object::{
    FormatError, Json, ObjectCodec, ObjectCodecError, ObjectFormat, DEFAULT_MAX_FRAME_LENGTH,
};
