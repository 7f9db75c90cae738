//! `Handler`: a connection handler on raw bytes, the shape of
//! EventMachine's `EM::Connection`, without the codec a [`Connection`]
//! names.

use bytes::BytesMut;

use crate::net::conn::Conn;
use crate::net::connection::{Connection, UnbindReason};
use crate::net::raw_codec::RawCodec;

/// A connection handler on raw bytes: what EventMachine's `EM::Connection`
/// is, each read's bytes given to `receive_data` as they arrived. Every
/// `Handler` is a [`Connection`] whose codec is [`RawCodec`], so it goes
/// wherever a `Connection` does ([`start_server`](crate::start_server),
/// [`connect`](crate::connect), [`attach`](crate::attach)…), and its
/// callbacks keep [`Connection`]'s contract (order, exactly one `unbind`,
/// contained panics, backpressure), on the reactor thread. Implement
/// `Connection` instead to frame the stream with a codec (lines, lengths,
/// a protocol).
///
/// ```
/// # use em_core as em;
/// use bytes::BytesMut;
/// use em::{Conn, UnbindReason};
///
/// struct Echo;
///
/// impl em::Handler for Echo {
///     fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
///         conn.send_data(data);
///     }
///     fn unbind(&mut self, conn: &Conn, reason: UnbindReason) {
///         eprintln!("{} gone: {reason}", conn.id());
///     }
/// }
///
/// em::run(|| {
///     let server = em::start_server("127.0.0.1:0", || Echo)?;
///     server.stop();
///     em::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em::Error>(())
/// ```
pub trait Handler: 'static {
    /// [`Connection::post_init`]: bound to its connection, before any data.
    fn post_init(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// [`Connection::connection_completed`]: clients only, the connect
    /// succeeded.
    fn connection_completed(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// [`Connection::receive_data`]: bytes arrived, as one read gave them
    /// (a message may come in several pieces, or several in one).
    fn receive_data(&mut self, conn: &Conn, data: BytesMut);

    /// [`Connection::outbound_drained`]: output that passed the high
    /// watermark has drained to the low one.
    fn outbound_drained(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// [`Connection::unbind`]: the connection is gone, and why. Exactly once.
    fn unbind(&mut self, conn: &Conn, reason: UnbindReason) {
        let _ = (conn, reason);
    }

    /// [`Connection::notify_readable`]: watched descriptors only.
    fn notify_readable(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// [`Connection::notify_writable`]: watched descriptors only.
    fn notify_writable(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// [`Connection::proxy_target_unbound`]: this connection's proxy target
    /// went away.
    fn proxy_target_unbound(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// [`Connection::proxy_completed`]: the proxy's length was reached.
    fn proxy_completed(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// [`Connection::ssl_handshake_completed`]: the TLS handshake is done.
    fn ssl_handshake_completed(&mut self, conn: &Conn) {
        let _ = conn;
    }

    /// [`Connection::ssl_verify_peer`]: accept this certificate of the
    /// peer's chain? The default refuses.
    fn ssl_verify_peer(&mut self, conn: &Conn, cert_der: &[u8]) -> bool {
        let _ = (conn, cert_der);
        false
    }
}

impl<H: Handler> Connection for H {
    type Codec = RawCodec;

    fn codec(&self) -> RawCodec {
        RawCodec
    }
    fn post_init(&mut self, conn: &Conn) {
        Handler::post_init(self, conn)
    }
    fn connection_completed(&mut self, conn: &Conn) {
        Handler::connection_completed(self, conn)
    }
    fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
        Handler::receive_data(self, conn, data)
    }
    fn outbound_drained(&mut self, conn: &Conn) {
        Handler::outbound_drained(self, conn)
    }
    fn unbind(&mut self, conn: &Conn, reason: UnbindReason) {
        Handler::unbind(self, conn, reason)
    }
    fn notify_readable(&mut self, conn: &Conn) {
        Handler::notify_readable(self, conn)
    }
    fn notify_writable(&mut self, conn: &Conn) {
        Handler::notify_writable(self, conn)
    }
    fn proxy_target_unbound(&mut self, conn: &Conn) {
        Handler::proxy_target_unbound(self, conn)
    }
    fn proxy_completed(&mut self, conn: &Conn) {
        Handler::proxy_completed(self, conn)
    }
    fn ssl_handshake_completed(&mut self, conn: &Conn) {
        Handler::ssl_handshake_completed(self, conn)
    }
    fn ssl_verify_peer(&mut self, conn: &Conn, cert_der: &[u8]) -> bool {
        Handler::ssl_verify_peer(self, conn, cert_der)
    }
}
