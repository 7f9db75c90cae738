//! UDP sockets as connections (EventMachine's `open_datagram_socket`): the
//! same [`Connection`] trait and lifecycle as a stream, one frame per
//! datagram, replies to the last sender, and `send_datagram` to anyone.
//! The socket's broadcast and multicast options are with the other socket
//! options (`socket_options.rs`); the pump that moves the datagrams is
//! `driver/datagram.rs`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use tokio_util::codec::Encoder;

use crate::error::{BoxError, Error, Result};
use crate::net::address::Addr;
use crate::net::conn::Conn;
use crate::net::connection::Connection;
use crate::net::driver::datagram::DatagramPump;
use crate::net::driver::{Driver, Start};
use crate::net::transport::{DatagramSocket, Queued};
use crate::reactor::core::Core;
use crate::reactor::panic;

/// The largest UDP payload over IPv4: 65,535 bytes less the IPv4 header (20)
/// and the UDP header (8).
const MAX_PAYLOAD_V4: usize = 65_507;
/// The largest UDP payload over IPv6: 65,535 bytes less the UDP header (the
/// IPv6 header is not part of its payload length). Jumbograms aside.
const MAX_PAYLOAD_V6: usize = 65_527;

/// Opens a UDP socket bound to `addr` (IPv4 or IPv6; port 0 picks a free
/// port) as a connection with `handler` (EventMachine's
/// `open_datagram_socket`), and returns its handle after `post_init` has
/// run. Reactor thread only.
///
/// The socket has `SO_REUSEADDR` and `SO_BROADCAST` on, as EventMachine's
/// ([`Conn::set_broadcast`] turns broadcast off). It is one connection for
/// every peer, on the same engine as a stream's (codecs, watermarks, the
/// inactivity timeout, close reasons, exactly one `unbind`), with these
/// differences:
///
/// * **One `receive_data` per datagram**, empty ones included.
///   Each datagram is decoded on its own, with the
///   codec's `decode_eof` (the datagram is all there is), into exactly one
///   frame: with `BytesCodec` the whole datagram; with `LinesCodec` one
///   line, its newline optional. An empty datagram the codec makes no frame
///   of arrives as an empty frame when the frame type is `BytesMut`,
///   `Bytes`, `Vec<u8>` or `String`. A datagram the codec cannot make
///   exactly one frame of (a codec error, no frame, or bytes left over) is
///   dropped, with a warning (at most one every few seconds), and the codec
///   is rebuilt with [`Connection::codec`] so that nothing carries over to
///   the next datagram; the socket stays open, since one peer's garbage
///   must not end it for the others (a stream ends with
///   `UnbindReason::Codec` instead).
/// * **Where frames go.** [`Conn::peer_addr`] is the sender of the last
///   datagram delivered, `None` before the first; [`Conn::send_data`]
///   sends each frame as one datagram to it, and
///   [`Conn::send_datagram`] to any address. Queued datagrams keep their
///   boundaries and leave in order, one `sendto(2)` each, after the
///   callback that queued them; the watermarks and `max_outbound` count
///   their bytes as a stream's. A datagram the system refuses to send (no
///   route, a broadcast address with broadcast off) is dropped with a
///   warning, and the socket stays open (EventMachine closes it).
/// * **No connect**: never `connection_completed`, and
///   [`Conn::reconnect`] is an error that `is_unsupported()`. The socket
///   counts in [`connection_count`](crate::connection_count), as in
///   EventMachine.
/// * [`Conn::close_connection_after_writing`] sends what is queued, then
///   ends with `UnbindReason::Closed`; [`Conn::pause`] leaves datagrams in
///   the kernel (which drops them once its receive buffer is full);
///   [`Conn::detach`] gives the UDP socket back.
///
/// Errors: `is_no_reactor()` / `is_stopping()`; `is_bind()` when the
/// address cannot be bound (the message names it); `is_panic()` if the
/// handler's `codec()` panicked (nothing is opened then).
///
/// ```
/// # use em_core as em;
/// use em::{Conn, Connection};
/// use bytes::{Bytes, BytesMut};
/// use tokio_util::codec::BytesCodec;
///
/// /// Echoes every datagram to its sender.
/// struct Echo;
/// impl Connection for Echo {
///     type Codec = BytesCodec;
///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
///     fn receive_data(&mut self, conn: &Conn<BytesCodec>, datagram: BytesMut) {
///         conn.send_data(datagram);
///     }
/// }
///
/// /// Checks the echo.
/// struct Client;
/// impl Connection for Client {
///     type Codec = BytesCodec;
///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
///     fn receive_data(&mut self, _: &Conn<BytesCodec>, datagram: BytesMut) {
///         assert_eq!(&datagram[..], b"ping");
///         em::stop();
///     }
/// }
///
/// em::run(|| -> em::Result<()> {
///     let echo = em::open_datagram_socket("127.0.0.1:0", Echo)?;
///     let client = em::open_datagram_socket("127.0.0.1:0", Client)?;
///     let to = echo.local_addr().expect("bound");
///     client.send_datagram(Bytes::from_static(b"ping"), to)?;
/// #   em_core::spawn(async {
/// #       tokio::time::sleep(std::time::Duration::from_secs(20)).await;
/// #       em_core::stop();
/// #   })?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn open_datagram_socket<A, H>(addr: A, handler: H) -> Result<Conn<H::Codec>>
where
    A: ToSocketAddrs + fmt::Debug,
    H: Connection,
{
    const CALL: &str = "open_datagram_socket";
    let core = Core::current_accepting(CALL)?;
    let shown = format!("{addr:?}");
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| Error::bind(shown.clone(), e))?
        .collect();
    let mut last = (
        shown,
        io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"),
    );
    let mut bound = None;
    for a in addrs {
        match DatagramSocket::bind(a) {
            Ok(socket) => {
                bound = Some(socket);
                break;
            }
            Err(e) => last = (a.to_string(), e),
        }
    }
    let socket = bound.ok_or_else(|| Error::bind(last.0, last.1))?;
    let codec =
        panic::catch("codec", None, || handler.codec()).map_err(|m| Error::panicked("codec", m))?;
    let conn = Conn::new(&core, codec);
    Driver::<H, DatagramPump>::start(handler, conn.clone(), core, Start::Open(Box::new(socket)));
    tracing::debug!(conn = %conn.id(), local = ?conn.local_addr(), "datagram socket open");
    Ok(conn)
}

impl<C> Conn<C> {
    /// Encodes `frame` with the connection's codec and queues it as one
    /// datagram to `to` (EventMachine's `send_datagram`), on a datagram
    /// socket ([`open_datagram_socket`]); never blocks. `to` is an IP socket
    /// address (a `SocketAddr`, or an [`Addr`] such as a `peer_addr()`); no
    /// name is resolved, so the reactor never waits on DNS. An IPv4-mapped
    /// IPv6 address goes to its IPv4 address from an IPv4 socket. Datagrams
    /// leave in the order they were queued, after the current callback. The
    /// connection's peer does not change. Reactor thread.
    ///
    /// Returns the bytes queued (0 for an empty datagram, which is sent
    /// too). A datagram the system then refuses to send is dropped with a
    /// warning, and the socket stays open.
    ///
    /// Errors (nothing is queued, and the socket stays open):
    /// `is_invalid_argument()` when `to` is no destination for this socket
    /// (not an IP address, port 0, the unspecified address, an IPv6 address
    /// from an IPv4 socket) or the encoded frame is larger than a UDP
    /// datagram can carry (65,507 bytes over IPv4, 65,527 over IPv6);
    /// `is_unsupported()` on a connection that is no datagram socket; the
    /// errors of [`try_send_data`](Conn::try_send_data) otherwise
    /// (`is_closed()`, `is_encode()`, `is_outbound_overflow()`).
    ///
    /// ```
    /// # use em_core as em;
    /// use std::net::SocketAddr;
    /// use em::{Conn, Connection};
    /// use tokio_util::codec::LinesCodec;
    ///
    /// struct Quiet;
    /// impl Connection for Quiet {
    ///     type Codec = LinesCodec;
    ///     fn codec(&self) -> LinesCodec { LinesCodec::new() }
    ///     fn receive_data(&mut self, _: &Conn<LinesCodec>, _: String) {}
    /// }
    ///
    /// em::run(|| -> em::Result<()> {
    ///     let socket = em::open_datagram_socket("127.0.0.1:0", Quiet)?;
    ///     let to: SocketAddr = "127.0.0.1:9".parse().unwrap(); // discard
    ///     assert_eq!(socket.send_datagram("hello", to)?, 6); // "hello\n"
    ///     let v6: SocketAddr = "[2001:db8::1]:9".parse().unwrap();
    ///     assert!(socket.send_datagram("hello", v6).unwrap_err().is_invalid_argument());
    ///     em::stop();
    ///     Ok(())
    /// })?;
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn send_datagram<T>(&self, frame: T, to: impl Into<Addr>) -> Result<usize>
    where
        C: Encoder<T>,
        <C as Encoder<T>>::Error: Into<BoxError>,
    {
        const CALL: &str = "send_datagram";
        if !self.state().datagram.get() {
            return Err(Error::unsupported(
                CALL,
                "datagram sockets only (open_datagram_socket); a stream sends with send_data",
            ));
        }
        self.may_queue(CALL)?;
        let ipv4 = self.datagram_socket(CALL, |socket| socket.is_ipv4())?;
        let to = destination(&to.into(), ipv4).map_err(|why| Error::invalid_argument(CALL, why))?;
        self.queue_datagram(CALL, frame, to)
    }

    /// `send_data` on a datagram socket: one datagram to the sender of the
    /// last datagram received.
    pub(crate) fn send_reply<T>(&self, frame: T) -> Result<usize>
    where
        C: Encoder<T>,
        <C as Encoder<T>>::Error: Into<BoxError>,
    {
        const CALL: &str = "send_data";
        let to = self.state().peer.borrow().as_ref().and_then(Addr::inet);
        let Some(to) = to else {
            // A closed socket says so first.
            self.may_queue(CALL)?;
            return Err(Error::no_peer(CALL));
        };
        self.queue_datagram(CALL, frame, to)
    }

    /// Encodes `frame` into the outbound queue as one datagram to `to` (a
    /// destination checked for this socket), and records where it ends and
    /// where it goes.
    fn queue_datagram<T>(&self, call: &'static str, frame: T, to: SocketAddr) -> Result<usize>
    where
        C: Encoder<T>,
        <C as Encoder<T>>::Error: Into<BoxError>,
    {
        let max = max_payload(to);
        let len = self.encode_queued(call, frame, |len| {
            if len > max {
                return Err(Error::invalid_argument(
                    call,
                    "the datagram is larger than UDP can carry (65,507 bytes over IPv4, 65,527 over IPv6)",
                ));
            }
            Ok(())
        })?;
        self.datagram_socket(call, |socket| {
            socket.queue().borrow_mut().push_back(Queued { len, to });
        })?;
        if len == 0 {
            // `queue_output` wakes the driver for bytes only.
            self.state().wake();
        }
        Ok(len)
    }

    /// Runs `f` on the connection's datagram socket; `is_closed()` once it
    /// has none (ended or detached).
    fn datagram_socket<R>(
        &self,
        call: &'static str,
        f: impl FnOnce(&DatagramSocket) -> R,
    ) -> Result<R> {
        let transport = self.state().transport.borrow();
        match transport.as_ref().and_then(|t| t.datagram()) {
            Some(socket) => Ok(f(socket)),
            None => Err(Error::not_open(call, "the datagram socket is gone")),
        }
    }
}

/// Where a datagram to `to` goes from a socket of the family `ipv4` says,
/// or why it cannot go there.
fn destination(to: &Addr, ipv4: bool) -> std::result::Result<SocketAddr, &'static str> {
    let Some(mut to) = to.inet() else {
        return Err("a datagram goes to an IP address and port, and this address is not one");
    };
    if let (true, SocketAddr::V6(v6)) = (ipv4, to) {
        match v6.ip().to_ipv4_mapped() {
            Some(v4) => to = SocketAddr::new(v4.into(), v6.port()),
            None => return Err("an IPv4 socket cannot send to an IPv6 address"),
        }
    }
    if to.port() == 0 {
        return Err("port 0 is no destination");
    }
    if to.ip().is_unspecified() {
        return Err("the unspecified address (0.0.0.0 or ::) is no destination");
    }
    Ok(to)
}

/// The largest datagram that can go to `to`.
fn max_payload(to: SocketAddr) -> usize {
    match to {
        SocketAddr::V4(_) => MAX_PAYLOAD_V4,
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => MAX_PAYLOAD_V4,
        SocketAddr::V6(_) => MAX_PAYLOAD_V6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Addr {
        Addr::Inet(s.parse().unwrap())
    }

    #[test]
    fn destinations_are_checked_against_the_socket_family() {
        assert_eq!(
            destination(&addr("127.0.0.1:9"), true),
            Ok("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(
            destination(&addr("[::ffff:127.0.0.1]:9"), true),
            Ok("127.0.0.1:9".parse().unwrap()),
            "an IPv4-mapped address goes to its IPv4 address"
        );
        assert!(destination(&addr("[::1]:9"), true).is_err());
        assert_eq!(
            destination(&addr("[::1]:9"), false),
            Ok("[::1]:9".parse().unwrap())
        );
        assert!(
            destination(&addr("127.0.0.1:9"), false).is_ok(),
            "a dual-stack IPv6 socket sends to IPv4"
        );
        assert!(destination(&addr("127.0.0.1:0"), true).is_err());
        assert!(destination(&addr("0.0.0.0:9"), true).is_err());
        assert!(destination(&addr("[::]:9"), false).is_err());
        assert!(destination(&Addr::Memory, true).is_err());
    }

    #[test]
    fn the_payload_limit_follows_the_destination() {
        assert_eq!(max_payload("127.0.0.1:9".parse().unwrap()), 65_507);
        assert_eq!(max_payload("[::ffff:127.0.0.1]:9".parse().unwrap()), 65_507);
        assert_eq!(max_payload("[::1]:9".parse().unwrap()), 65_527);
    }
}
