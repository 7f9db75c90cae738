//! Servers: a listener (TCP or Unix-domain, bound here or inherited) and the
//! accept loop that builds one handler per accepted connection.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, UnixListener};

use crate::error::{Error, Result};
use crate::net::address::{show_unix_path, Addr};
use crate::net::conn::Conn;
use crate::net::connection::Connection;
use crate::net::driver::stream::StreamPump;
use crate::net::driver::{Driver, Start};
use crate::net::shared_server::{self, Handed};
use crate::net::transport::BoxTransport;
use crate::reactor::core::{Core, Member};
use crate::reactor::panic;
use crate::reactor::stats;

/// Accepts per poll of a listener before it lets other work run.
const ACCEPTS_PER_POLL: usize = 64;
/// How long a listener pauses when the process is out of descriptors.
const EXHAUSTED_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning per this interval about descriptor exhaustion.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// A listening socket of any kind.
pub(crate) enum Listener {
    Tcp(TcpListener),
    /// With the socket file this server made, removed when it stops.
    Unix(UnixListener, Option<SocketFile>),
    /// One reactor's share of a server a group serves by hand-off.
    Handed(Rc<Handed>),
}

/// A Unix-domain socket file a server bound, and its identity, so that
/// stopping the server removes that file and not one that replaced it.
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The file just bound at `path`.
    pub(crate) fn bound(path: &Path) -> Option<SocketFile> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Removes the file if it is still the one bound.
    fn remove(&self) {
        let Ok(meta) = std::fs::symlink_metadata(&self.path) else {
            return;
        };
        if (meta.dev(), meta.ino()) != (self.dev, self.ino) {
            tracing::debug!(path = %self.path.display(), "socket file replaced since bound; left alone");
            return;
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::debug!(path = %self.path.display(), error = %e, "cannot remove the socket file");
        }
    }
}

impl Listener {
    fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(Addr::Inet),
            Listener::Unix(l, _) => l.local_addr().map(Addr::from),
            Listener::Handed(h) => Ok(h.local_addr()),
        }
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(BoxTransport, Addr)>> {
        match self {
            Listener::Tcp(l) => l.poll_accept(cx).map_ok(|(stream, peer)| {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
                (Box::new(stream) as BoxTransport, Addr::Inet(peer))
            }),
            Listener::Unix(l, _) => l
                .poll_accept(cx)
                .map_ok(|(stream, peer)| (Box::new(stream) as BoxTransport, Addr::from(peer))),
            Listener::Handed(h) => h.poll_accept(cx),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, Some(file)) = self {
            file.remove();
        }
    }
}

/// The reactor's side of a server.
pub(crate) struct ServerInner {
    local_addr: Addr,
    listener: RefCell<Option<Listener>>,
    waker: RefCell<Option<Waker>>,
    accepted: Cell<u64>,
    /// Connections of this server still open.
    live: Cell<usize>,
    max_connections: Cell<Option<usize>>,
    refused: Cell<u64>,
}

impl ServerInner {
    /// One of this server's connections ended.
    pub(crate) fn connection_ended(&self) {
        self.live.set(self.live.get().saturating_sub(1));
    }

    fn is_stopped(&self) -> bool {
        self.listener.borrow().is_none()
    }

    /// Closes the listener now (and removes its socket file); connections
    /// already accepted live on.
    fn stop(&self) {
        let listener = self.listener.borrow_mut().take();
        if let Some(listener) = listener {
            drop(listener);
            tracing::debug!(addr = %self.local_addr, "server stopped");
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// The next accepted transport, or `None` once stopped.
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Option<io::Result<(BoxTransport, Addr)>>> {
        match &*self.listener.borrow() {
            None => Poll::Ready(None),
            Some(listener) => {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                listener.poll_accept(cx).map(Some)
            }
        }
    }
}

/// The reactor's core stops a server through this when it stops.
impl Member for ServerInner {
    fn reactor_stopping(&self) {
        self.stop();
    }

    fn is_gone(&self) -> bool {
        self.is_stopped()
    }
}

/// A running server, TCP or Unix-domain: a handle to its listener, `!Send`.
///
/// Dropping the handle does not stop the server; [`stop`](Server::stop) does,
/// and so does stopping the reactor.
///
/// ```compile_fail
/// # use em_core as em;
/// fn on_another_thread(server: em::Server) {
///     std::thread::spawn(move || server.stop()); // error: `Server` is not `Send`
/// }
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Rc<ServerInner>,
}

impl Server {
    /// The address the server listens on: with port 0, the port the kernel
    /// chose; for a Unix-domain server, its path (or abstract name). It can
    /// be passed to [`connect`](crate::connect) as it is.
    pub fn local_addr(&self) -> Addr {
        self.inner.local_addr.clone()
    }

    /// Stops accepting: the listening socket is closed before this returns,
    /// so new connects are refused, and a Unix-domain server's socket file
    /// is removed (if it is still the one it bound). Connections already
    /// accepted live on. Idempotent.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Whether [`stop`](Server::stop) was called (or the reactor stopped).
    pub fn is_stopped(&self) -> bool {
        self.inner.is_stopped()
    }

    /// How many connections this server has accepted so far (refused ones
    /// not included).
    pub fn accepted_count(&self) -> u64 {
        self.inner.accepted.get()
    }

    /// Caps the connections of this server open at once (default `None`:
    /// no cap). A connection arriving while `max` are open is accepted and
    /// closed at once (the peer reads end of stream), without a handler,
    /// and counted in [`refused_count`](Server::refused_count). Lowering the
    /// cap closes no open connection.
    pub fn set_max_connections(&self, max: Option<usize>) {
        self.inner.max_connections.set(max);
    }

    /// The cap set with [`set_max_connections`](Server::set_max_connections).
    pub fn max_connections(&self) -> Option<usize> {
        self.inner.max_connections.get()
    }

    /// How many of this server's connections are open now.
    pub fn connection_count(&self) -> usize {
        self.inner.live.get()
    }

    /// How many connections were refused because the server was at its
    /// [`max_connections`](Server::set_max_connections).
    pub fn refused_count(&self) -> u64 {
        self.inner.refused.get()
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr())
            .field("stopped", &self.is_stopped())
            .field("accepted", &self.accepted_count())
            .field("open", &self.connection_count())
            .field("refused", &self.refused_count())
            .finish()
    }
}

/// Starts a TCP server on `addr` (IPv4 or IPv6; port 0 picks a free port):
/// every accepted connection gets a handler from `factory`, then its
/// `post_init`. Reactor thread only.
///
/// The listener has `SO_REUSEADDR` and the reactor's listen backlog; every
/// accepted socket has `TCP_NODELAY`. Out of file descriptors (EMFILE), the
/// server keeps its listener, warns (at most every few seconds), pauses
/// briefly and resumes.
///
/// Errors: `is_no_reactor()` / `is_stopping()` when no reactor runs here or
/// it stops; `is_bind()` when the address cannot be bound (the message
/// names it).
///
/// ```
/// # use em_core as em;
/// use em::{Conn, Connection};
/// use bytes::BytesMut;
/// use tokio_util::codec::BytesCodec;
///
/// struct Echo;
/// impl Connection for Echo {
///     type Codec = BytesCodec;
///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
///     fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
///         conn.send_data(data);
///     }
/// }
///
/// em::run(|| -> em::Result<()> {
///     let server = em::start_server("127.0.0.1:0", || Echo)?;
///     assert_ne!(server.local_addr().inet().unwrap().port(), 0);
///     em::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn start_server<A, F, H>(addr: A, factory: F) -> Result<Server>
where
    A: ToSocketAddrs + fmt::Debug,
    F: FnMut() -> H + 'static,
    H: Connection,
{
    let core = Core::current_accepting("start_server")?;
    let shown = format!("{addr:?}");
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| Error::bind(shown.clone(), e))?
        .collect();
    if let Some(member) = core.config.member.clone().filter(|m| m.group.size() > 1) {
        return shared_server::start(core, member, shown, addrs, factory);
    }
    let mut last = (
        shown,
        io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"),
    );
    for a in addrs {
        match bind_tcp(a, core.config.listen_backlog, false) {
            Ok(listener) => return serve(core, Listener::Tcp(listener), factory),
            Err(e) => last = (a.to_string(), e),
        }
    }
    Err(Error::bind(last.0, last.1))
}

/// Binds and listens on `addr`; with `reuseport`, `SO_REUSEPORT` first, so
/// that the other reactors of a group may bind the same port.
pub(crate) fn bind_tcp(addr: SocketAddr, backlog: u32, reuseport: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuseport {
        #[cfg(all(
            unix,
            not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
        ))]
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Starts a Unix-domain server on `path` (EventMachine's
/// `start_unix_domain_server`): every accepted connection gets a handler
/// from `factory`, then its `post_init`, exactly as for TCP. Reactor thread
/// only.
///
/// A socket file already at `path` is removed first, as EventMachine does
/// (a stale file from a process that died would otherwise make the bind
/// fail); anything else there (a regular file, a directory) is left alone
/// and the bind fails. The server removes its own socket file when it
/// stops, by [`Server::stop`] or with the reactor (EventMachine leaves it
/// behind). A path starting with a NUL byte (`"\0name"`) names a socket in
/// Linux's abstract namespace, which has no file at all.
///
/// Errors: `is_no_reactor()` / `is_stopping()`; `is_bind()` when the path
/// cannot be bound (the message names it).
///
/// ```
/// # use em_core as em;
/// # use em_core::{Conn, Connection};
/// # use bytes::BytesMut;
/// # use tokio_util::codec::BytesCodec;
/// # struct Echo;
/// # impl Connection for Echo {
/// #     type Codec = BytesCodec;
/// #     fn codec(&self) -> BytesCodec { BytesCodec::new() }
/// #     fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) { conn.send_data(data); }
/// # }
/// let path = std::env::temp_dir().join(format!("em-doc-{}.sock", std::process::id()));
/// let p = path.clone();
/// em::run(move || -> em::Result<()> {
///     let server = em::start_unix_domain_server(&p, || Echo)?;
///     assert_eq!(server.local_addr().unix_path(), Some(p.as_path()));
///     assert!(p.exists());
///     server.stop();
///     assert!(!p.exists(), "the socket file goes with the server");
///     em::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn start_unix_domain_server<P, F, H>(path: P, factory: F) -> Result<Server>
where
    P: AsRef<Path>,
    F: FnMut() -> H + 'static,
    H: Connection,
{
    let core = Core::current_accepting("start_unix_domain_server")?;
    if core
        .config
        .member
        .as_ref()
        .is_some_and(|m| m.group.size() > 1)
    {
        return Err(Error::unsupported(
            "start_unix_domain_server",
            "a Unix-domain server cannot be shared by the reactors of a group; start it on one reactor (say, reactor_index() == 0)",
        ));
    }
    let path = path.as_ref();
    let shown = || show_unix_path(path);
    let is_abstract = path.as_os_str().as_encoded_bytes().first() == Some(&0);
    if !is_abstract {
        remove_stale_socket(path).map_err(|e| Error::bind(shown(), e))?;
    }
    let listener =
        bind_unix(path, core.config.listen_backlog).map_err(|e| Error::bind(shown(), e))?;
    let file = if is_abstract {
        None
    } else {
        SocketFile::bound(path)
    };
    serve(core, Listener::Unix(listener, file), factory)
}

/// Removes a socket file left at `path`; anything else is left in place.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn bind_unix(path: &Path, backlog: u32) -> io::Result<UnixListener> {
    use socket2::{Domain, SockAddr, Socket, Type};
    // socket2 takes a leading NUL byte as an abstract name.
    let addr = SockAddr::unix(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    socket.bind(&addr)?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    UnixListener::from_std(socket.into())
}

/// Serves `listener`: registers the server and starts its accept loop.
pub(crate) fn serve<F, H>(core: Rc<Core>, listener: Listener, factory: F) -> Result<Server>
where
    F: FnMut() -> H + 'static,
    H: Connection,
{
    let local_addr = listener
        .local_addr()
        .map_err(|e| Error::bind("the listener", e))?;
    let inner = Rc::new(ServerInner {
        local_addr,
        listener: RefCell::new(Some(listener)),
        waker: RefCell::new(None),
        accepted: Cell::new(0),
        live: Cell::new(0),
        max_connections: Cell::new(None),
        refused: Cell::new(0),
    });
    core.register_server(inner.clone());
    tracing::debug!(addr = %inner.local_addr, "server listening");
    tokio::task::spawn_local(accept_loop(core, inner.clone(), factory));
    Ok(Server { inner })
}

async fn accept_loop<F, H>(core: Rc<Core>, server: Rc<ServerInner>, mut factory: F)
where
    F: FnMut() -> H + 'static,
    H: Connection,
{
    let mut last_warning: Option<Instant> = None;
    let mut accepted_in_poll = 0;
    loop {
        let Some(result) = poll_fn(|cx| server.poll_accept(cx)).await else {
            return;
        };
        match result {
            Ok((transport, peer)) => {
                if server
                    .max_connections
                    .get()
                    .is_some_and(|max| server.live.get() >= max)
                {
                    server.refused.set(server.refused.get() + 1);
                    tracing::debug!(addr = %server.local_addr, %peer,
                        "at max_connections; connection refused");
                    drop(transport);
                } else {
                    server.accepted.set(server.accepted.get() + 1);
                    stats::add(&core.counters.accepted, 1);
                    accept(&core, &server, &mut factory, transport, peer);
                }
                accepted_in_poll += 1;
                if accepted_in_poll >= ACCEPTS_PER_POLL {
                    accepted_in_poll = 0;
                    tokio::task::yield_now().await;
                }
            }
            Err(e) if out_of_descriptors(&e) => {
                if last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(addr = %server.local_addr, error = %e,
                        "accept: out of file descriptors; pausing this listener briefly");
                }
                tokio::time::sleep(EXHAUSTED_BACKOFF).await;
            }
            Err(e) => tracing::debug!(addr = %server.local_addr, error = %e, "accept failed"),
        }
        if core.stopping() {
            return;
        }
    }
}

fn accept<F, H>(
    core: &Rc<Core>,
    server: &Rc<ServerInner>,
    factory: &mut F,
    transport: BoxTransport,
    peer: Addr,
) where
    F: FnMut() -> H,
    H: Connection,
{
    let handler = match panic::catch("handler factory", None, &mut *factory) {
        Ok(h) => h,
        // The socket closes here; the panic was logged.
        Err(_) => return,
    };
    let codec = match panic::catch("codec", None, || handler.codec()) {
        Ok(c) => c,
        Err(_) => return,
    };
    let conn = Conn::new(core, codec);
    *conn.state().peer.borrow_mut() = Some(peer);
    server.live.set(server.live.get() + 1);
    conn.state().server.replace(Some(server.clone()));
    Driver::<H, StreamPump>::start(handler, conn, core.clone(), Start::Open(transport));
}

/// EMFILE, ENFILE, ENOBUFS or ENOMEM: the process or the system is out of
/// something an accept needs, and retrying at once would spin.
fn out_of_descriptors(e: &io::Error) -> bool {
    // Linux errno values; std exposes no ErrorKind for them.
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    matches!(e.raw_os_error(), Some(ENFILE | EMFILE | ENOBUFS | ENOMEM))
}
