//! The callbacks a WebSocket's owner writes: em-websocket's `onopen`,
//! `onmessage`, `onclose`, plus pings, pongs and drained output.

use bytes::Bytes;

use super::message::Message;
use super::socket::WebSocket;

/// What happens on a WebSocket, as callbacks (em-websocket's model). One
/// handler per connection, given to [`accept`](super::accept). Every
/// callback runs on the reactor thread, one at a time, and gets the
/// [`WebSocket`] to answer on; it may keep a clone of it to send later,
/// from a timer, a channel or another socket's callback.
///
/// # Order
///
/// `on_open` first, once the `101` response is written; then any number of
/// `on_message`, `on_ping`, `on_pong` and `on_drained`; then `on_close`,
/// exactly once, and nothing after it. A connection that ends before its
/// `101` is written never opens: the handler is dropped with no callback.
///
/// Pings are answered with pongs before `on_ping` is called; the close
/// handshake is answered by em (see [`on_close`](Self::on_close)).
/// Once the server has started closing ([`WebSocket::close`]), incoming
/// messages are no longer delivered.
pub trait WebSocketHandler: 'static {
    /// The WebSocket is open: the handshake's response is written.
    fn on_open(&mut self, ws: &WebSocket) {
        let _ = ws;
    }

    /// A whole message arrived (its fragments joined, text checked as
    /// UTF-8).
    fn on_message(&mut self, ws: &WebSocket, message: Message);

    /// A ping arrived; em has already queued the pong answering it.
    fn on_ping(&mut self, ws: &WebSocket, payload: Bytes) {
        let _ = (ws, payload);
    }

    /// A pong arrived (an answer to [`WebSocket::ping`], or a heartbeat).
    fn on_pong(&mut self, ws: &WebSocket, payload: Bytes) {
        let _ = (ws, payload);
    }

    /// The connection's output, having passed its high watermark, drained
    /// to the low one: a producer that paused on
    /// [`WebSocket::is_above_high_watermark`] may send again.
    fn on_drained(&mut self, ws: &WebSocket) {
        let _ = ws;
    }

    /// The WebSocket is closed; called exactly once. `code` and `reason`:
    ///
    /// - the peer sent a close frame (it started the closing handshake, or
    ///   answered [`WebSocket::close`]): its code and reason, or `None` and
    ///   `""` if its frame had no payload (RFC 6455's 1005). When the peer
    ///   started, em has echoed its code back.
    /// - the peer broke the protocol: the code em sent it (1002 protocol
    ///   error, 1007 invalid UTF-8, 1009 too big) and what was wrong.
    /// - the connection ended with no close frame from the peer (it
    ///   dropped, a keep-alive ping went unanswered, or
    ///   [`WebSocket::close`] timed out): `None` (RFC 6455's 1006, abnormal
    ///   closure) and why the connection ended.
    ///
    /// The TCP connection may still be writing its last bytes; the
    /// [`WebSocket`] refuses to send from now on.
    fn on_close(&mut self, ws: &WebSocket, code: Option<u16>, reason: &str) {
        let _ = (ws, code, reason);
    }
}
