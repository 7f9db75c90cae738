//! Clients: [`connect`] (TCP or Unix-domain, by [`Endpoint`]),
//! [`connect_unix_domain`] and [`bind_connect`]. Each returns at once and
//! completes the connect (and any name resolution) without blocking the
//! reactor.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::{Path, PathBuf};

use tokio::net::{TcpSocket, TcpStream, UnixStream};

use crate::error::{Error, Result};
use crate::net::address::{show_unix_path, Addr};
use crate::net::conn::Conn;
use crate::net::connection::Connection;
use crate::net::driver::stream::StreamPump;
use crate::net::driver::{Driver, Start};
use crate::net::transport::BoxTransport;
use crate::reactor::core::Core;
use crate::reactor::panic;

pub(crate) use crate::net::driver::Connecting;

/// Where [`connect`] (and [`Conn::reconnect`]) connects to: a TCP host and
/// port in any of the usual forms, or a Unix-domain socket path.
///
/// It converts from a `SocketAddr` (or its V4/V6 forms), `(IpAddr, u16)`,
/// `(Ipv4Addr, u16)`, `(Ipv6Addr, u16)`, `(&str, u16)`, `(String, u16)`, a
/// `"host:port"` `&str` or `String`, a slice or `Vec` of `SocketAddr`s
/// (tried in turn), and an [`Addr`] (TCP for [`Addr::Inet`], Unix-domain
/// for [`Addr::Unix`]), so that `em::connect(server.local_addr(), h)` works
/// for either kind of server. [`Endpoint::unix`] makes a Unix-domain one
/// from a path. Host names are resolved when the connect starts, on tokio's
/// blocking pool, never on the reactor thread.
///
/// ```
/// # use em_core as em;
/// use em::Endpoint;
/// let by_name: Endpoint = "localhost:80".into();
/// let by_addr: Endpoint = ([127, 0, 0, 1], 80).into();
/// let by_path = Endpoint::unix("/run/app.sock");
/// assert_eq!(by_path.to_string(), "/run/app.sock");
/// let abstract_name = Endpoint::unix("\0app"); // Linux's abstract namespace
/// assert_eq!(abstract_name.to_string(), "@app");
/// # let _ = (by_name, by_addr);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint(Kind);

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Addrs(Vec<SocketAddr>),
    /// `"host:port"`.
    Host(String),
    HostPort(String, u16),
    Unix(PathBuf),
}

impl Endpoint {
    /// A Unix-domain socket at `path` (a leading NUL byte names Linux's
    /// abstract namespace).
    pub fn unix(path: impl AsRef<Path>) -> Self {
        Endpoint(Kind::Unix(path.as_ref().to_owned()))
    }

    /// Connects: resolves the name if it is one, then tries each address in
    /// turn, binding to `bind` first if given (TCP only). Runs on the
    /// reactor when polled.
    pub(crate) fn connect(self, bind: Option<SocketAddr>) -> Connecting {
        Box::pin(async move {
            let addrs = match self.0 {
                Kind::Unix(path) => {
                    if bind.is_some() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "bind_connect binds TCP clients only",
                        ));
                    }
                    let stream = UnixStream::connect(&path).await?;
                    return Ok(Box::new(stream) as BoxTransport);
                }
                Kind::Addrs(addrs) => addrs,
                Kind::Host(host) => tokio::net::lookup_host(host).await?.collect(),
                Kind::HostPort(host, port) => {
                    tokio::net::lookup_host((host, port)).await?.collect()
                }
            };
            let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
            for addr in addrs {
                if bind.is_some_and(|b| b.is_ipv4() != addr.is_ipv4()) {
                    continue;
                }
                match connect_tcp(addr, bind).await {
                    Ok(stream) => {
                        if let Err(e) = stream.set_nodelay(true) {
                            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                        }
                        return Ok(Box::new(stream) as BoxTransport);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }
}

async fn connect_tcp(addr: SocketAddr, bind: Option<SocketAddr>) -> io::Result<TcpStream> {
    let Some(local) = bind else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(local)?;
    socket.connect(addr).await
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Addrs(addrs) => match addrs.as_slice() {
                [one] => one.fmt(f),
                many => write!(f, "{many:?}"),
            },
            Kind::Host(host) => f.write_str(host),
            Kind::HostPort(host, port) => write!(f, "{host}:{port}"),
            Kind::Unix(path) => f.write_str(&show_unix_path(path)),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self})")
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint(Kind::Addrs(vec![addr]))
    }
}

impl From<&SocketAddr> for Endpoint {
    fn from(addr: &SocketAddr) -> Self {
        Endpoint::from(*addr)
    }
}

impl From<SocketAddrV4> for Endpoint {
    fn from(addr: SocketAddrV4) -> Self {
        SocketAddr::V4(addr).into()
    }
}

impl From<SocketAddrV6> for Endpoint {
    fn from(addr: SocketAddrV6) -> Self {
        SocketAddr::V6(addr).into()
    }
}

macro_rules! from_ip_and_port {
    ($($ip:ty),*) => {$(
        impl From<($ip, u16)> for Endpoint {
            fn from((ip, port): ($ip, u16)) -> Self {
                SocketAddr::new(IpAddr::from(ip), port).into()
            }
        }
    )*};
}

from_ip_and_port!(IpAddr, Ipv4Addr, Ipv6Addr, [u8; 4], [u16; 8]);

impl From<(&str, u16)> for Endpoint {
    fn from((host, port): (&str, u16)) -> Self {
        Endpoint(Kind::HostPort(host.to_owned(), port))
    }
}

impl From<(String, u16)> for Endpoint {
    fn from((host, port): (String, u16)) -> Self {
        Endpoint(Kind::HostPort(host, port))
    }
}

impl From<&str> for Endpoint {
    fn from(host: &str) -> Self {
        match host.parse::<SocketAddr>() {
            Ok(addr) => addr.into(),
            Err(_) => Endpoint(Kind::Host(host.to_owned())),
        }
    }
}

impl From<String> for Endpoint {
    fn from(host: String) -> Self {
        host.as_str().into()
    }
}

impl From<&String> for Endpoint {
    fn from(host: &String) -> Self {
        host.as_str().into()
    }
}

impl From<&[SocketAddr]> for Endpoint {
    fn from(addrs: &[SocketAddr]) -> Self {
        Endpoint(Kind::Addrs(addrs.to_vec()))
    }
}

impl From<Vec<SocketAddr>> for Endpoint {
    fn from(addrs: Vec<SocketAddr>) -> Self {
        Endpoint(Kind::Addrs(addrs))
    }
}

impl From<Addr> for Endpoint {
    fn from(addr: Addr) -> Self {
        Endpoint::from(&addr)
    }
}

/// An [`Addr::Inet`] connects over TCP and an [`Addr::Unix`] with a path
/// (or abstract name) over a Unix-domain socket; an address that cannot be
/// connected to (unnamed, a pipe, in-memory) gives an endpoint whose
/// connect fails with `InvalidInput`.
impl From<&Addr> for Endpoint {
    fn from(addr: &Addr) -> Self {
        match addr {
            Addr::Inet(a) => (*a).into(),
            Addr::Unix(u) => {
                if let Some(path) = u.path() {
                    Endpoint::unix(path)
                } else if let Some(name) = u.abstract_name() {
                    let mut bytes = vec![0];
                    bytes.extend_from_slice(name);
                    use std::os::unix::ffi::OsStringExt;
                    Endpoint::unix(std::ffi::OsString::from_vec(bytes))
                } else {
                    Endpoint(Kind::Addrs(Vec::new()))
                }
            }
            _ => Endpoint(Kind::Addrs(Vec::new())),
        }
    }
}

/// Connects to `addr` with `handler` and returns the connection's handle at
/// once, after `post_init` has run. Reactor thread only.
///
/// `addr` is any [`Endpoint`]: a `SocketAddr`, `(host, port)`, a
/// `"host:port"` string, a server's [`Addr`], or [`Endpoint::unix`]. Host
/// names resolve on tokio's blocking pool, never on the reactor thread;
/// each resolved address is tried in turn. Data sent from `post_init` is
/// queued and leaves once connected; `connection_completed` then runs,
/// before any `receive_data`. A failed connect or resolution ends in
/// `unbind(UnbindReason::ConnectFailed(..))` (EventMachine raises for a bad
/// name instead, because it resolves synchronously). TCP clients get
/// `TCP_NODELAY`.
///
/// Errors (nothing is created then): `is_no_reactor()` where no reactor
/// runs, `is_stopping()` while it stops, `is_panic()` if the handler's
/// `codec()` panicked.
///
/// ```
/// # use em_core as em;
/// use em::{Conn, Connection, UnbindReason};
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
///         em::stop();
///     }
/// }
///
/// em::run(|| -> em::Result<()> {
///     // Nothing listens on port 1 of localhost: the connect is refused.
///     em::connect("127.0.0.1:1", Hello)?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn connect<H: Connection>(addr: impl Into<Endpoint>, handler: H) -> Result<Conn<H::Codec>> {
    start_client("connect", addr.into(), None, handler)
}

/// Connects to the Unix-domain socket at `path` with `handler`
/// (EventMachine's `connect_unix_domain`): [`connect`] with
/// [`Endpoint::unix`]. The connection's `peer_addr()` is the path.
///
/// Errors as [`connect`].
pub fn connect_unix_domain<H: Connection>(
    path: impl AsRef<Path>,
    handler: H,
) -> Result<Conn<H::Codec>> {
    start_client("connect_unix_domain", Endpoint::unix(path), None, handler)
}

/// Connects to `addr` over TCP from the local address `local`
/// (EventMachine's `bind_connect`): the socket is bound to `local` (port 0
/// picks a free port) before it connects; only addresses of `local`'s family
/// are tried. A `local` that cannot be bound ends in
/// `unbind(ConnectFailed(..))`, like any other failed connect.
///
/// Errors as [`connect`].
pub fn bind_connect<H: Connection>(
    local: SocketAddr,
    addr: impl Into<Endpoint>,
    handler: H,
) -> Result<Conn<H::Codec>> {
    start_client("bind_connect", addr.into(), Some(local), handler)
}

pub(crate) fn start_client<H: Connection>(
    call: &'static str,
    endpoint: Endpoint,
    bind: Option<SocketAddr>,
    handler: H,
) -> Result<Conn<H::Codec>> {
    let core = Core::current_accepting(call)?;
    let codec =
        panic::catch("codec", None, || handler.codec()).map_err(|m| Error::panicked("codec", m))?;
    let conn = Conn::new(&core, codec);
    let connecting = endpoint.connect(bind);
    Driver::<H, StreamPump>::start(handler, conn.clone(), core, Start::Connecting(connecting));
    Ok(conn)
}
