//! WebSocket (RFC 6455), as protocol logic over bytes.
//!
//! The split:
//!
//! - **Frames** are tungstenite's: its [`Frame`], [`FrameHeader`] parser and
//!   writer and its opcodes, wrapped here in [`FrameCodec`], a tokio-util
//!   codec in the server's role that enforces the frame-level rules (client
//!   frames masked, no reserved bits or opcodes, control frames final and
//!   short, a frame size limit checked from the header alone).
//! - **Messages and rules** are ours: the [`Assembler`] joins fragments,
//!   lets control frames through in between, validates text as UTF-8 as it
//!   arrives, enforces a message size limit and the close frame's payload
//!   rules; [`Message`] and the `encode_*` functions write the server's side.
//!   Every violation is a [`WsError`] carrying the close code to fail the
//!   connection with (1002, 1007 or 1009).
//! - **The handshake** ([`negotiate`], [`accept_headers`]) validates an
//!   upgrade request's head and answers `101 Switching Protocols`, or gives a
//!   [`HandshakeError`] with its 400 or 426.
//!
//! Nothing here touches a socket or em. The em integration comes later, in
//! em-http's `websocket` handler API after em-websocket's model: `on_open`,
//! `on_message`, `on_close` callbacks on the upgraded connection.

mod codec;
mod error;
mod handshake;
mod message;

pub use codec::{apply_mask, FrameCodec, DEFAULT_MAX_FRAME_SIZE, MAX_CONTROL_PAYLOAD};
pub use error::{WsError, INVALID_PAYLOAD, MESSAGE_TOO_BIG, PROTOCOL_ERROR};
pub use handshake::{accept_headers, is_upgrade_request, negotiate, Accept, HandshakeError};
pub use message::{
    encode_close, encode_close_reply, encode_message, encode_ping, encode_pong,
    is_valid_close_code, Assembler, Incoming, Message, DEFAULT_MAX_MESSAGE_SIZE,
};
pub use tungstenite::protocol::frame::{Frame, FrameHeader};
