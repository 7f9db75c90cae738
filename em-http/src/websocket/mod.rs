//! WebSocket (RFC 6455) servers, em-websocket's way: answer an upgrade
//! request with [`accept`] and a [`WebSocketHandler`], whose callbacks
//! (`on_open`, `on_message`, `on_close`…) run on the reactor thread and
//! answer through a [`WebSocket`].
//!
//! ```
//! use em_http::websocket::{self, Message, WebSocket, WebSocketHandler};
//! use em_http::{Body, IntoResponse};
//! use http::{Request, StatusCode};
//!
//! /// Sends every message back.
//! struct Echo;
//!
//! impl WebSocketHandler for Echo {
//!     fn on_message(&mut self, ws: &WebSocket, message: Message) {
//!         let _ = ws.send(message);
//!     }
//! }
//!
//! em_core::run(|| -> em_core::Result<()> {
//!     em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
//!         if request.uri().path() == "/ws" {
//!             websocket::accept(&request, Echo).into_response()
//!         } else {
//!             (StatusCode::NOT_FOUND, "not found\n").into_response()
//!         }
//!     })?;
//!     em_core::stop();
//!     Ok(())
//! })?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # What em does for you
//!
//! - **The handshake**: [`accept`] validates the request and answers `101
//!   Switching Protocols`, or refuses it with 400 or 426 (see
//!   [`accept_with`]). Subprotocols are chosen from
//!   [`WebSocketOptions::protocols`].
//! - **Messages**: fragments are joined, text is checked as UTF-8, sizes
//!   are limited ([`WebSocketOptions`]); the handler sees whole
//!   [`Message`]s. Sends go out as single frames.
//! - **Control frames**: pings are answered with pongs; the peer's close
//!   is echoed with its code and the connection closed; keep-alive pings
//!   are sent if [`WebSocketOptions::ping_interval`] is set.
//! - **Protocol errors** (an unmasked frame, a reserved opcode or bit, bad
//!   fragmentation: 1002; invalid UTF-8: 1007; a frame or message over its
//!   limit: 1009) fail the connection: em sends a close frame with the
//!   code, closes after writing it, and reports the code to
//!   [`on_close`](WebSocketHandler::on_close).
//!
//! # Threads and order
//!
//! Everything here runs on the reactor thread: handlers, [`WebSocket`]
//! (which is `!Send`), timers. `on_open` comes first, `on_close` exactly
//! once and last; see [`WebSocketHandler`].
//!
//! Frames are tungstenite's (its frame header parser and writer); messages,
//! limits, the handshake and the em integration are em-http's.
//!
//! # em-websocket → em_http::websocket
//!
//! | em-websocket | em_http::websocket | Notable differences |
//! |---|---|---|
//! | `EM::WebSocket.run(host:, port:) { \|ws\| … }` | [`accept`]`(&request, handler)` inside any em-http handler | shares the HTTP server's port and routes |
//! | `ws.onopen`, `ws.onmessage`, `ws.onclose` | [`WebSocketHandler`]: `on_open`, `on_message`, `on_close` (and `on_ping`) | a trait per connection instead of blocks |
//! | `ws.send(text)` | [`WebSocket::send`] | returns an error once closing instead of raising |
//! | `ws.close(code, reason)` | [`WebSocket::close`] | |
//! | protocol errors | fragmentation, masking, UTF-8 and size rules enforced with the right close codes (1002, 1007, 1009) | |

mod accept;
mod codec;
mod connection;
mod error;
mod handler;
mod handshake;
mod message;
mod options;
mod socket;

pub use accept::{accept, accept_with, is_upgrade};
pub use codec::DEFAULT_MAX_FRAME_SIZE;
pub use handler::WebSocketHandler;
pub use message::{is_valid_close_code, Message, DEFAULT_MAX_MESSAGE_SIZE};
pub use options::{WebSocketOptions, DEFAULT_CLOSE_TIMEOUT};
pub use socket::{SendError, WebSocket};
