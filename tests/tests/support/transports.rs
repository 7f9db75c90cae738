//! One test body, every transport: TCP, Unix-domain sockets, an attached
//! socketpair and an in-memory pair. [`link`] joins a server-side handler and
//! a client handler over the transport; [`per_transport!`] makes one `#[test]`
//! per transport from a rule function `fn(Transport)`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use em::{Conn, Connection};

/// The transports every connection rule is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP server and client on 127.0.0.1, port 0.
    Tcp,
    /// A Unix-domain server and client on a socket file in the temp dir.
    Unix,
    /// Both ends of `UnixStream::pair()`, attached with `em::attach`.
    Socketpair,
    /// `em::connect_pair`: no socket at all.
    Memory,
}

impl Transport {
    /// Whether the client end gets `connection_completed`: an attached
    /// socketpair has no connect to complete; the others do.
    pub fn completes(self) -> bool {
        self != Transport::Socketpair
    }

    /// The transport's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
            Transport::Socketpair => "socketpair",
            Transport::Memory => "memory",
        }
    }
}

static NEXT_SOCKET: AtomicU64 = AtomicU64::new(0);

/// A socket path in the temp dir, unique in this process.
pub fn socket_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "em-test-{}-{}.sock",
        std::process::id(),
        NEXT_SOCKET.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Joins `server` (as an accepted connection) and `client` over `kind`, and
/// returns the client's handle. Reactor thread. For TCP and Unix a server
/// is started that takes exactly this one connection (and stops listening
/// once it has).
pub fn link<S, C>(kind: Transport, server: S, client: C) -> em::Result<Conn<C::Codec>>
where
    S: Connection,
    C: Connection,
{
    match kind {
        Transport::Tcp | Transport::Unix => {
            let slot = Rc::new(Cell::new(Some(server)));
            let listening: Rc<Cell<Option<em::Server>>> = Rc::default();
            let l = listening.clone();
            let factory = move || {
                // One connection per test: stop listening once it is here.
                if let Some(server) = l.take() {
                    server.stop();
                }
                slot.take().expect("one connection per linked server")
            };
            let server = match kind {
                Transport::Tcp => em::start_server("127.0.0.1:0", factory)?,
                _ => em::start_unix_domain_server(socket_path(), factory)?,
            };
            let conn = em::connect(server.local_addr(), client)?;
            listening.set(Some(server));
            Ok(conn)
        }
        Transport::Socketpair => {
            let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
            em::attach(a, server)?;
            em::attach(b, client)
        }
        Transport::Memory => Ok(em::connect_pair(server, client)?.1),
    }
}

/// `per_transport!(rule);` makes a module `rule` with one test per
/// transport (`rule::tcp`, `rule::unix`, `rule::socketpair`,
/// `rule::memory`), each calling `rule(Transport::…)`.
macro_rules! per_transport {
    ($($rule:ident),* $(,)?) => {$(
        mod $rule {
            use super::Transport;
            #[test]
            fn tcp() {
                super::$rule(Transport::Tcp)
            }
            #[test]
            fn unix() {
                super::$rule(Transport::Unix)
            }
            #[test]
            fn socketpair() {
                super::$rule(Transport::Socketpair)
            }
            #[test]
            fn memory() {
                super::$rule(Transport::Memory)
            }
        }
    )*};
}
pub(crate) use per_transport;
