//! The `Connection` trait (EventMachine's `EM::Connection`) and why a
//! connection ended (`UnbindReason`). The handle callbacks get is
//! [`Conn`](crate::Conn), in `conn.rs`.

use std::fmt;
use std::io;

use tokio_util::codec::Decoder;

use crate::error::BoxError;
use crate::net::conn::Conn;
use crate::reactor::stats::Ending;

/// A connection handler: one instance per connection, called back on the
/// reactor thread (EventMachine's `EM::Connection`).
///
/// # The contract
///
/// * **Order.** `post_init` runs first, right after the handler exists and
///   before any data; for a client it runs inside [`connect`](crate::connect),
///   before the connect completes, and data it sends is queued and delivered
///   once connected. Clients then get `connection_completed`, exactly once
///   and before the first `receive_data`; accepted connections never do.
///   Then `receive_data` once per decoded frame, in order. Last, `unbind`.
/// * **Exactly one `unbind`**, on every path: local close, peer close, I/O
///   error, codec error, failed connect, a panic in a callback, reactor
///   stop, [`Conn::detach`].
///   It is never called re-entrantly: `close_connection` inside a callback
///   only requests the close, and `unbind` follows after that callback returns.
/// * **After a close request** no further `receive_data` is delivered, even
///   for frames already read (EventMachine may still deliver them).
/// * **Re-entrancy.** Any callback may call any [`Conn`] method on any
///   connection, start servers, connect, queue ticks or stop the reactor.
/// * **Panics** in a callback are caught: the connection is closed with
///   [`UnbindReason::Panicked`] (and `unbind` is not called again if it was
///   `unbind` that panicked); everything else carries on. The
///   [error handler](crate::set_error_handler) is told first.
/// * **Backpressure.** `outbound_drained` runs when output that passed the
///   high watermark has drained to the low one. While the output is above
///   the high watermark, and while [`Conn::pause`]d, no `receive_data` runs
///   and nothing more is read: frames already read wait, in order, and are
///   delivered once the output drains to the low watermark (or on
///   [`Conn::resume`]). Past `max_outbound` the connection ends with
///   [`UnbindReason::OutboundOverflow`]. A child process's connection
///   ([`popen`](crate::popen)) is the exception: its output is read while
///   its stdin's queue is above the high watermark (a filter such as `cat`
///   stops reading its input while its output is not read, so holding one
///   back for the other would wait forever); pause it to hold its output.
/// * **Reconnect.** From `unbind`, [`Conn::reconnect`] connects the same
///   handler again: no second `post_init`, a new `connection_completed`,
///   and later exactly one more `unbind`.
/// * **TLS.** After [`Conn::start_tls`], no `receive_data` runs until the
///   handshake is done; then `ssl_verify_peer` (where the options ask for
///   it) and `ssl_handshake_completed`, once, before the first decrypted
///   frame. A failed handshake goes straight to `unbind` with
///   [`UnbindReason::Tls`].
/// * **Other callbacks** run only for connections that ask for them:
///   `notify_readable`/`notify_writable` on a [`watch`](crate::watch), the
///   proxy callbacks on a connection that proxies.
///
/// The [`Codec`](Connection::Codec) frames the byte stream: tokio-util's
/// `BytesCodec` for raw bytes, `LinesCodec::new_with_max_length(..)`,
/// `LengthDelimitedCodec`, or any `Decoder` of your own. Frames are sent with
/// [`Conn::send_data`], which takes anything the codec can encode.
///
/// ```
/// # use em_core as em;
/// use em::{Conn, Connection, UnbindReason};
/// use tokio_util::codec::LinesCodec;
///
/// /// Answers every line with its length.
/// struct Counter;
///
/// impl Connection for Counter {
///     type Codec = LinesCodec;
///     fn codec(&self) -> LinesCodec {
///         LinesCodec::new_with_max_length(8 * 1024)
///     }
///     fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
///         conn.send_data(line.len().to_string());
///     }
///     fn unbind(&mut self, conn: &Conn<LinesCodec>, reason: UnbindReason) {
///         eprintln!("{} gone: {reason}", conn.id());
///     }
/// }
///
/// em::run(|| -> em::Result<()> {
///     let server = em::start_server("[::1]:0", || Counter)
///         .or_else(|_| em::start_server("127.0.0.1:0", || Counter))?;
///     server.stop();
///     em::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub trait Connection: 'static {
    /// The framing of this connection's byte stream.
    type Codec: Decoder<Error: Into<BoxError>> + 'static;

    /// Builds this connection's codec (once, when the handler is bound), so
    /// that limits such as a maximum line length can be set per handler.
    fn codec(&self) -> Self::Codec;

    /// Right after the handler is bound to its connection, before any data.
    fn post_init(&mut self, conn: &Conn<Self::Codec>) {
        let _ = conn;
    }

    /// Clients only: the connect succeeded. Exactly once, before the first
    /// `receive_data`.
    fn connection_completed(&mut self, conn: &Conn<Self::Codec>) {
        let _ = conn;
    }

    /// One decoded frame arrived.
    fn receive_data(&mut self, conn: &Conn<Self::Codec>, frame: <Self::Codec as Decoder>::Item);

    /// The queued output, which had passed the high watermark, has drained
    /// to the low watermark or below: the peer caught up, so a producer that
    /// held back because [`Conn::is_above_high_watermark`] was true may send
    /// again. Once per crossing. See [`Conn::set_outbound_watermarks`].
    fn outbound_drained(&mut self, conn: &Conn<Self::Codec>) {
        let _ = conn;
    }

    /// The connection is gone, and why. Exactly once per connection.
    fn unbind(&mut self, conn: &Conn<Self::Codec>, reason: UnbindReason) {
        let _ = (conn, reason);
    }

    /// Watched descriptors only (`em::watch`): the descriptor is readable,
    /// and `set_notify_readable(true)` is on. em reads nothing itself; the
    /// handler reads (or not) as it sees fit. Called again while the
    /// descriptor stays readable (EventMachine's level-triggered
    /// `notify_readable`).
    fn notify_readable(&mut self, conn: &Conn<Self::Codec>) {
        let _ = conn;
    }

    /// Watched descriptors only: the descriptor is writable, and
    /// `set_notify_writable(true)` is on. Called again while it stays
    /// writable.
    fn notify_writable(&mut self, conn: &Conn<Self::Codec>) {
        let _ = conn;
    }

    /// The target of this connection's proxy
    /// ([`Conn::proxy_incoming_to`]) went away: proxying stopped, and
    /// `receive_data` gets the input again. Once per
    /// proxy, after the target's `unbind`.
    fn proxy_target_unbound(&mut self, conn: &Conn<Self::Codec>) {
        let _ = conn;
    }

    /// The proxy's length was reached
    /// ([`Conn::proxy_incoming_to_with_length`]): exactly that many bytes
    /// went to the target, proxying stopped, and the input after them goes
    /// to `receive_data`, after this callback. Once per
    /// proxy; a proxy started from here takes that input instead.
    fn proxy_completed(&mut self, conn: &Conn<Self::Codec>) {
        let _ = conn;
    }

    /// The TLS handshake started by [`Conn::start_tls`] is done (and the
    /// peer's certificate accepted): the [`Conn`]'s TLS details
    /// (`tls_protocol_version`, `peer_cert`…) are known now. Once per
    /// handshake, before the first `receive_data` of decrypted data.
    fn ssl_handshake_completed(&mut self, conn: &Conn<Self::Codec>) {
        let _ = conn;
    }

    /// With [`TlsOptions::verify_peer`](crate::TlsOptions::verify_peer)
    /// on, decides whether the peer's certificate chain is accepted:
    /// called once per certificate, the peer's own first (DER), until one
    /// returns false, which ends the connection with
    /// [`UnbindReason::Tls`] ([`TlsErrorKind::RefusedByCallback`](crate::TlsErrorKind::RefusedByCallback)).
    /// Runs once the handshake is done, before `ssl_handshake_completed`
    /// and before any data moves. The default refuses, so that turning
    /// `verify_peer` on without writing this accepts nothing.
    fn ssl_verify_peer(&mut self, conn: &Conn<Self::Codec>, cert_der: &[u8]) -> bool {
        let _ = (conn, cert_der);
        false
    }
}

/// The frame type a handler receives.
pub type Frame<H> = <<H as Connection>::Codec as Decoder>::Item;

/// Why a connection ended, as given to [`Connection::unbind`].
#[derive(Debug)]
#[non_exhaustive]
pub enum UnbindReason {
    /// Closed locally with `close_connection` or `close_connection_after_writing`.
    Closed,
    /// The peer closed its side (read returned end of stream). On a half
    /// close (the peer shut down only its write side) every byte it sent has
    /// been delivered first, the last unfinished frame through the codec's
    /// `decode_eof`, and output still queued, including replies sent from
    /// those last `receive_data` calls, is flushed before this `unbind`
    /// (if that write fails, the reason is still `PeerClosed`).
    PeerClosed,
    /// A client's connect (or the name resolution before it) failed.
    ConnectFailed(io::Error),
    /// A socket error, such as a reset by the peer.
    Io(io::Error),
    /// The codec rejected the input; the error is the codec's own.
    Codec(BoxError),
    /// A callback of this connection panicked; the panic message.
    Panicked(String),
    /// The reactor stopped.
    ReactorStopped,
    /// Nothing was read or written for the connection's inactivity timeout
    /// ([`Conn::set_comm_inactivity_timeout`]).
    InactivityTimeout,
    /// A client's connect did not complete within its pending-connect
    /// timeout ([`Conn::set_pending_connect_timeout`]).
    ConnectTimeout,
    /// `send_data` would have queued more than the connection's
    /// `max_outbound` bytes ([`Conn::set_max_outbound`]), or the reactor's
    /// queued output passed its `max_total_outbound` and this connection had
    /// the most queued ([`Builder::max_total_outbound`](crate::Builder::max_total_outbound)).
    OutboundOverflow,
    /// [`Conn::detach`] gave the descriptor back to the program; it is
    /// still open.
    Detached,
    /// The TLS handshake failed ([`Conn::start_tls`]): why, in words and
    /// as a [`TlsErrorKind`](crate::TlsErrorKind).
    Tls(crate::TlsError),
    /// A child process ([`popen`](crate::popen)) closed its output and
    /// exited, on its own: how it ended (`code()`, or with
    /// `std::os::unix::process::ExitStatusExt`, `signal()`). Every byte it
    /// wrote has been delivered first, as for [`PeerClosed`](UnbindReason::PeerClosed).
    /// A child whose connection ended otherwise (closed, timed out, the
    /// reactor stopped) has its status in [`Conn::exit_status`] during
    /// `unbind`.
    Exited(std::process::ExitStatus),
}

impl UnbindReason {
    /// Whether the connection ended because something went wrong (everything
    /// but a local close, a peer close, a reactor stop, a detach and a
    /// child's exit, whatever its status).
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            UnbindReason::Closed
                | UnbindReason::PeerClosed
                | UnbindReason::ReactorStopped
                | UnbindReason::Detached
                | UnbindReason::Exited(_)
        )
    }
}

impl UnbindReason {
    /// The kind of ending the reactor's stats count it as.
    pub(crate) fn ending(&self) -> Ending {
        match self {
            UnbindReason::Closed => Ending::Closed,
            UnbindReason::PeerClosed => Ending::PeerClosed,
            UnbindReason::ConnectFailed(_) => Ending::ConnectFailed,
            UnbindReason::Io(_) => Ending::Io,
            UnbindReason::Codec(_) => Ending::Codec,
            UnbindReason::Panicked(_) => Ending::Panicked,
            UnbindReason::ReactorStopped => Ending::ReactorStopped,
            UnbindReason::InactivityTimeout => Ending::InactivityTimeout,
            UnbindReason::ConnectTimeout => Ending::ConnectTimeout,
            UnbindReason::OutboundOverflow => Ending::OutboundOverflow,
            UnbindReason::Detached => Ending::Detached,
            UnbindReason::Tls(_) => Ending::Tls,
            UnbindReason::Exited(_) => Ending::Exited,
        }
    }
}

impl fmt::Display for UnbindReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnbindReason::Closed => f.write_str("closed locally"),
            UnbindReason::PeerClosed => f.write_str("closed by the peer"),
            UnbindReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            UnbindReason::Io(e) => write!(f, "I/O error: {e}"),
            UnbindReason::Codec(e) => write!(f, "codec error: {e}"),
            UnbindReason::Panicked(m) => write!(f, "a callback panicked: {m}"),
            UnbindReason::ReactorStopped => f.write_str("the reactor stopped"),
            UnbindReason::InactivityTimeout => f.write_str("inactivity timeout"),
            UnbindReason::ConnectTimeout => f.write_str("connect timed out"),
            UnbindReason::OutboundOverflow => {
                f.write_str("outbound overflow (more output queued than max_outbound, or than the reactor's max_total_outbound)")
            }
            UnbindReason::Detached => f.write_str("detached"),
            UnbindReason::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            UnbindReason::Exited(status) => write!(f, "the child process exited ({status})"),
        }
    }
}

/// An error type, so that a [`Socket`](crate::Socket)'s last item can be
/// returned with `?` from a function returning `Box<dyn Error>`. `source()`
/// is the `io::Error` or the codec's error.
impl std::error::Error for UnbindReason {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UnbindReason::ConnectFailed(e) | UnbindReason::Io(e) => Some(e),
            UnbindReason::Codec(e) => Some(&**e),
            UnbindReason::Tls(e) => Some(e),
            _ => None,
        }
    }
}

/// `?` on a [`Socket::read`](crate::Socket::read) in code returning
/// `em::Result`: [`Error::other`](crate::Error::other) with the reason.
impl From<UnbindReason> for crate::Error {
    fn from(reason: UnbindReason) -> Self {
        crate::Error::other(reason)
    }
}
