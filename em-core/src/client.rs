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

/// Exponential backoff for reconnecting clients (what Twisted's
/// `ReconnectingClientFactory` gives): each [`next_delay`](Backoff::next_delay)
/// is the previous one times the factor, from `initial` up to `max`, with
/// [`reset`](Backoff::reset) once connected. A plain value, any thread.
///
/// ```
/// use std::time::Duration;
/// use em_core::{Backoff, Conn, Connection, UnbindReason};
/// use bytes::BytesMut;
/// use tokio_util::codec::BytesCodec;
///
/// /// A long-lived client: reconnects after 0.1 s, 0.2 s, 0.4 s, … up to 30 s.
/// struct Persistent {
///     addr: std::net::SocketAddr,
///     backoff: Backoff,
/// }
///
/// impl Connection for Persistent {
///     type Codec = BytesCodec;
///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
///     fn connection_completed(&mut self, _: &Conn<BytesCodec>) {
///         self.backoff.reset();
///     }
///     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
///     fn unbind(&mut self, conn: &Conn<BytesCodec>, reason: UnbindReason) {
///         if !matches!(reason, UnbindReason::ReactorStopped) {
///             let _ = conn.reconnect_after(self.backoff.next_delay(), self.addr);
///         }
///     }
/// }
///
/// let _client = Persistent {
///     addr: "127.0.0.1:7".parse().unwrap(),
///     backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(30)),
/// };
/// let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
/// assert_eq!(backoff.next_delay(), Duration::from_millis(100));
/// assert_eq!(backoff.next_delay(), Duration::from_millis(200));
/// backoff.reset();
/// assert_eq!(backoff.next_delay(), Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: std::time::Duration,
    max: std::time::Duration,
    factor: u32,
    next: std::time::Duration,
}

impl Backoff {
    /// Delays from `initial`, doubling, capped at `max` (at least `initial`).
    pub fn new(initial: std::time::Duration, max: std::time::Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            factor: 2,
            next: initial,
        }
    }

    /// The same with growth `factor` instead of 2 (1 keeps the delay
    /// constant; 0 is taken as 1).
    pub fn with_factor(mut self, factor: u32) -> Self {
        self.factor = factor.max(1);
        self
    }

    /// The delay before the next attempt; the one after grows by the factor.
    pub fn next_delay(&mut self) -> std::time::Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(self.factor).min(self.max);
        delay
    }

    /// Back to `initial` (call it once connected).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}
