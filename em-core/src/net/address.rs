//! `Addr`: the address of either end of any connection, whatever carries
//! it: an IP socket address, a Unix-domain path, abstract name or unnamed
//! socket, or no address at all (a pipe, an in-memory pair).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::net::SocketAddr as StdUnixAddr;
use std::path::Path;
use std::sync::Arc;
use std::vec;

/// The address of one end of a connection or of a server.
///
/// Returned by [`Conn::peer_addr`](crate::Conn::peer_addr),
/// [`Conn::local_addr`](crate::Conn::local_addr) and
/// [`Server::local_addr`](crate::Server::local_addr). `Display` prints an IP
/// address as `ip:port`, a Unix path as the path, an abstract name as `@name`,
/// and the rest as `(unnamed)`, `(pipe)` and `(in-memory)`.
///
/// An `Addr` can be given back to [`connect`](crate::connect) (a TCP or
/// Unix-domain connect, by kind), and an IP one to anything that takes
/// `std::net::ToSocketAddrs` (a Unix one is an `InvalidInput` error there).
///
/// ```
/// # use em_core as em;
/// use em::Addr;
/// let addr: Addr = "127.0.0.1:80".parse::<std::net::SocketAddr>().unwrap().into();
/// assert_eq!(addr.to_string(), "127.0.0.1:80");
/// assert_eq!(addr.inet().map(|a| a.port()), Some(80));
/// assert!(addr.unix_path().is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Addr {
    /// An IPv4 or IPv6 socket address (TCP, and later UDP).
    Inet(SocketAddr),
    /// A Unix-domain socket address: a path, an abstract name (Linux), or
    /// unnamed (one end of a socketpair, or a client that did not bind).
    Unix(UnixAddr),
    /// A pipe, which has no address.
    Pipe,
    /// An in-memory pair ([`connect_pair`](crate::connect_pair)), which has
    /// no address.
    Memory,
    /// A child process ([`popen`](crate::popen)): the peer of its
    /// connection, by process id.
    Process(u32),
}

impl Addr {
    /// The IP socket address, for [`Addr::Inet`].
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            Addr::Inet(a) => Some(*a),
            _ => None,
        }
    }

    /// The path of a Unix-domain socket bound to one.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Addr::Unix(u) => u.path(),
            _ => None,
        }
    }

    /// The Unix-domain address, for [`Addr::Unix`].
    pub fn unix(&self) -> Option<&UnixAddr> {
        match self {
            Addr::Unix(u) => Some(u),
            _ => None,
        }
    }
}

impl From<SocketAddr> for Addr {
    fn from(addr: SocketAddr) -> Self {
        Addr::Inet(addr)
    }
}

impl From<StdUnixAddr> for Addr {
    fn from(addr: StdUnixAddr) -> Self {
        Addr::Unix(UnixAddr(Arc::new(addr)))
    }
}

impl From<tokio::net::unix::SocketAddr> for Addr {
    fn from(addr: tokio::net::unix::SocketAddr) -> Self {
        Addr::from(StdUnixAddr::from(addr))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet(a) => a.fmt(f),
            Addr::Unix(u) => u.fmt(f),
            Addr::Pipe => f.write_str("(pipe)"),
            Addr::Memory => f.write_str("(in-memory)"),
            Addr::Process(pid) => write!(f, "(process {pid})"),
        }
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Inet(a) => write!(f, "Inet({a})"),
            Addr::Unix(u) => write!(f, "Unix({u})"),
            Addr::Pipe => f.write_str("Pipe"),
            Addr::Memory => f.write_str("Memory"),
            Addr::Process(pid) => write!(f, "Process({pid})"),
        }
    }
}

/// Lets an IP `Addr` go wherever `std::net::ToSocketAddrs` goes (std's
/// `TcpStream::connect`, say); any other kind is an `InvalidInput` error.
impl std::net::ToSocketAddrs for Addr {
    type Iter = vec::IntoIter<SocketAddr>;

    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        match self {
            Addr::Inet(a) => Ok(vec![*a].into_iter()),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{other} is not an IP socket address"),
            )),
        }
    }
}

/// Shows a Unix-domain socket path the way [`UnixAddr`] shows an address:
/// a leading NUL byte (an abstract name) as `@`, so that messages and logs
/// never carry a NUL byte.
pub(crate) fn show_unix_path(path: &Path) -> String {
    match path.as_os_str().as_encoded_bytes().split_first() {
        Some((0, name)) => format!("@{}", String::from_utf8_lossy(name)),
        _ => path.display().to_string(),
    }
}

/// A Unix-domain socket address: a path, an abstract name (Linux) or
/// unnamed. Cheap to clone.
#[derive(Clone)]
pub struct UnixAddr(Arc<StdUnixAddr>);

impl UnixAddr {
    /// The path the socket is bound to, if it is bound to one.
    pub fn path(&self) -> Option<&Path> {
        self.0.as_pathname()
    }

    /// The abstract name (Linux), without its leading NUL byte.
    pub fn abstract_name(&self) -> Option<&[u8]> {
        use std::os::linux::net::SocketAddrExt;
        self.0.as_abstract_name()
    }

    /// Whether the socket is unnamed (one end of a socketpair, or a client
    /// that did not bind).
    pub fn is_unnamed(&self) -> bool {
        self.0.is_unnamed()
    }

    /// The standard library's form of the address.
    pub fn as_std(&self) -> &StdUnixAddr {
        &self.0
    }
}

impl PartialEq for UnixAddr {
    fn eq(&self, other: &Self) -> bool {
        (self.path(), self.abstract_name()) == (other.path(), other.abstract_name())
    }
}

impl Eq for UnixAddr {}

impl std::hash::Hash for UnixAddr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.path(), self.abstract_name()).hash(state);
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = self.path() {
            path.display().fmt(f)
        } else if let Some(name) = self.abstract_name() {
            write!(f, "@{}", String::from_utf8_lossy(name))
        } else {
            f.write_str("(unnamed)")
        }
    }
}

impl fmt::Debug for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnixAddr({self})")
    }
}
