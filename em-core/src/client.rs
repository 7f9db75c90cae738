//! TCP clients: `connect` returns at once and completes the connect (and any
//! name resolution) without blocking the reactor.

use tokio::net::{TcpStream, ToSocketAddrs};

use crate::connection::{Conn, Connection};
use crate::driver::{Driver, Socket};
use crate::error::Result;
use crate::panic;
use crate::reactor::Core;

/// Connects to `addr` with `handler` and returns the connection's handle at
/// once, after `post_init` has run. Reactor thread only.
///
/// `addr` is anything tokio can connect to: a `SocketAddr`, `(host, port)`,
/// or a `"host:port"` string (owned or `'static`). Host names resolve on
/// tokio's blocking pool, never on the reactor thread; each resolved address
/// is tried in turn. Data sent from `post_init` is queued and leaves once
/// connected; `connection_completed` then runs, before any `receive_data`.
/// A failed connect or resolution ends in
/// `unbind(UnbindReason::ConnectFailed(..))` (EventMachine raises for a bad
/// name instead, C8, because it resolves synchronously).
///
/// Errors (nothing is created then): `is_no_reactor()` where no reactor
/// runs, `is_stopping()` while it stops.
///
/// ```
/// use em_core::{Conn, Connection, UnbindReason};
/// use bytes::{Bytes, BytesMut};
/// use tokio_util::codec::BytesCodec;
///
/// struct Hello;
/// impl Connection for Hello {
///     type Codec = BytesCodec;
///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
///     fn post_init(&mut self, conn: &Conn<BytesCodec>) {
///         conn.send_data(Bytes::from_static(b"hello")); // queued until connected
///     }
///     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
///     fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
///         assert!(matches!(reason, UnbindReason::ConnectFailed(_)));
///         em_core::stop();
///     }
/// }
///
/// em_core::run(|| -> em_core::Result<()> {
///     // Nothing listens on port 1 of localhost: the connect is refused.
///     em_core::connect("127.0.0.1:1", Hello)?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn connect<A, H>(addr: A, handler: H) -> Result<Conn<H::Codec>>
where
    A: ToSocketAddrs + 'static,
    H: Connection,
{
    let core = Core::current_accepting("connect")?;
    let codec = panic::catch("codec", None, || handler.codec())
        .map_err(|m| crate::Error::panicked("codec", m))?;
    let conn = Conn::new(core.next_conn_id(), codec);
    let connecting = Box::pin(TcpStream::connect(addr));
    Driver::start(handler, conn.clone(), core, Socket::Connecting(connecting));
    Ok(conn)
}
