//! EventMachine's bundled protocols (`EM::Protocols`) for em.
//!
//! * **Codecs** (tokio-util `Decoder`/`Encoder`s, so they work with
//!   tokio's `Framed` outside em too).
//! * **Conversations** (handlers over em's connections).
//!
//! Everything runs on the reactor thread of the connection it serves,
//! like any handler; the codecs are plain data and run wherever their
//! `Framed` runs.

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
