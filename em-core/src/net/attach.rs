//! Attach and detach (EventMachine's `EM.attach`, `EM.attach_server` and
//! `Connection#detach`): make a connection of a socket or pipe the program
//! already has, serve a listener it inherited, and give a connection's
//! descriptor back.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;

use tokio::net::unix::pipe;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::error::{Error, Result};
use crate::net::conn::{Close, Conn};
use crate::net::connection::Connection;
use crate::net::driver::stream::StreamPump;
use crate::net::driver::{Driver, Start};
use crate::net::server::{serve, Listener, Server};
use crate::net::transport::{BoxTransport, PipeReader, PipeWriter};
use crate::reactor::core::Core;
use crate::reactor::panic;

/// A socket or pipe end that [`attach`] can make a connection of: a std or
/// tokio `TcpStream` or `UnixStream` (one end of `UnixStream::pair()`, say),
/// a pipe end (std's `PipeReader`/`PipeWriter` from `std::io::pipe()`,
/// tokio's `pipe::Receiver`/`pipe::Sender`), or an `OwnedFd` of any of these
/// kinds, which em identifies (a socket by its address family, a pipe by its
/// access mode).
pub struct Attachable(Io);

enum Io {
    Tcp(std::net::TcpStream),
    TokioTcp(TcpStream),
    Unix(std::os::unix::net::UnixStream),
    TokioUnix(UnixStream),
    PipeReader(OwnedFd),
    PipeWriter(OwnedFd),
    TokioPipeReader(pipe::Receiver),
    TokioPipeWriter(pipe::Sender),
    Fd(OwnedFd),
}

macro_rules! attachable_from {
    ($($ty:ty => $kind:ident $(via $conv:path)?),* $(,)?) => {$(
        impl From<$ty> for Attachable {
            fn from(io: $ty) -> Self {
                Attachable(Io::$kind($($conv)?(io)))
            }
        }
    )*};
}

attachable_from! {
    std::net::TcpStream => Tcp,
    TcpStream => TokioTcp,
    std::os::unix::net::UnixStream => Unix,
    UnixStream => TokioUnix,
    std::io::PipeReader => PipeReader via OwnedFd::from,
    std::io::PipeWriter => PipeWriter via OwnedFd::from,
    pipe::Receiver => TokioPipeReader,
    pipe::Sender => TokioPipeWriter,
    OwnedFd => Fd,
}

impl fmt::Debug for Attachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            Io::Tcp(_) | Io::TokioTcp(_) => "TCP stream",
            Io::Unix(_) | Io::TokioUnix(_) => "Unix stream",
            Io::PipeReader(_) | Io::TokioPipeReader(_) => "pipe reader",
            Io::PipeWriter(_) | Io::TokioPipeWriter(_) => "pipe writer",
            Io::Fd(_) => "descriptor",
        };
        write!(f, "Attachable({kind})")
    }
}

impl Attachable {
    /// The transport, registered with the reactor and non-blocking.
    pub(crate) fn into_transport(self) -> io::Result<BoxTransport> {
        Ok(match self.0 {
            Io::Tcp(s) => {
                s.set_nonblocking(true)?;
                Box::new(TcpStream::from_std(s)?)
            }
            Io::TokioTcp(s) => Box::new(s),
            Io::Unix(s) => {
                s.set_nonblocking(true)?;
                Box::new(UnixStream::from_std(s)?)
            }
            Io::TokioUnix(s) => Box::new(s),
            Io::PipeReader(fd) => Box::new(PipeReader(pipe::Receiver::from_owned_fd(fd)?)),
            Io::PipeWriter(fd) => Box::new(PipeWriter(pipe::Sender::from_owned_fd(fd)?)),
            Io::TokioPipeReader(r) => Box::new(PipeReader(r)),
            Io::TokioPipeWriter(w) => Box::new(PipeWriter(w)),
            Io::Fd(fd) => return identify(fd)?.into_transport(),
        })
    }
}

/// What kind of descriptor `fd` is: a TCP or Unix-domain stream socket, or
/// a pipe's read or write end. A listening socket is refused: it has no
/// peer to talk to (it is [`attach_server`]'s).
fn identify(fd: OwnedFd) -> io::Result<Attachable> {
    let file_type = File::from(fd.try_clone()?).metadata()?.file_type();
    if file_type.is_socket() {
        let (family, listening) = stream_socket(&fd)?;
        if listening {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a listening socket cannot be attached as a connection (serve it with attach_server)",
            ));
        }
        return Ok(match family {
            Family::Unix => std::os::unix::net::UnixStream::from(fd).into(),
            Family::Inet => std::net::TcpStream::from(fd).into(),
        });
    }
    if file_type.is_fifo() {
        // tokio checks the access mode: a read end (or a read-write FIFO)
        // becomes a reader, a write-only end a writer.
        return match pipe::Receiver::from_owned_fd(fd.try_clone()?) {
            Ok(reader) => Ok(reader.into()),
            Err(_) => Ok(pipe::Sender::from_owned_fd(fd)?.into()),
        };
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "only sockets and pipes can be attached",
    ))
}

/// The address family of a socket em can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// IPv4 or IPv6: TCP.
    Inet,
    Unix,
}

/// The family of the socket `fd`, and whether it listens; `Unsupported`
/// unless it is a TCP or Unix-domain stream socket (a datagram socket,
/// say), and `ENOTSOCK` if it is no socket at all.
fn stream_socket(fd: &OwnedFd) -> io::Result<(Family, bool)> {
    let socket = socket2::SockRef::from(fd);
    if socket.r#type()? != socket2::Type::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "only stream sockets can be attached",
        ));
    }
    let domain = socket.domain()?;
    let family = if domain == socket2::Domain::UNIX {
        Family::Unix
    } else if domain == socket2::Domain::IPV4 || domain == socket2::Domain::IPV6 {
        Family::Inet
    } else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "only TCP and Unix-domain sockets can be attached",
        ));
    };
    Ok((family, socket.is_listener()?))
}

/// Makes a connection of `io`, a socket or pipe end the program already has
/// (EventMachine's `EM.attach`), with `handler`, and returns its handle
/// after `post_init` has run. Reactor thread only.
///
/// `io` is anything [`Attachable`] converts from. em sets it non-blocking
/// and owns it from now on: it is closed when the connection ends, unless
/// [`Conn::detach`] gives it back first. The connection works like any
/// other (codecs, timeouts, watermarks, close, exactly one `unbind`), but
/// it never gets `connection_completed` (there is no connect to complete).
/// A pipe end goes one way: a read end never sends (`try_send_data` errors
/// with `is_unsupported()`), a write end never receives.
///
/// Any handler will do. EventMachine raises `ArgumentError` for a handler
/// that defines `notify_readable` or `notify_writable`; a Rust handler always
/// has them (the trait's default bodies), em cannot tell an override from
/// a default, and on an attached connection they are never called. To be
/// told of readiness instead of reading, [`watch`](crate::watch) the
/// descriptor.
///
/// Errors: `is_no_reactor()` / `is_stopping()`; `is_io()` when the
/// descriptor cannot be registered or identified, `is_unsupported()` for a
/// kind em cannot attach (a datagram socket, a listening socket, which is
/// [`attach_server`]'s, a regular file); `is_panic()`
/// if the handler's `codec()` panicked.
///
/// ```
/// # use em_core as em;
/// use std::io::Write;
/// use em::{Conn, Connection};
/// use tokio_util::codec::LinesCodec;
///
/// struct Reader;
/// impl Connection for Reader {
///     type Codec = LinesCodec;
///     fn codec(&self) -> LinesCodec { LinesCodec::new() }
///     fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
///         assert_eq!(line, "via em");
///         em::stop();
///     }
/// }
///
/// let (reader, mut writer) = std::io::pipe()?;
/// em::run(move || -> em::Result<()> {
///     em::attach(reader, Reader)?;
///     writer.write_all(b"via em\n").expect("write");
///     Ok(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn attach<H: Connection>(io: impl Into<Attachable>, handler: H) -> Result<Conn<H::Codec>> {
    let core = Core::current_accepting("attach")?;
    let io = io.into();
    let unsupported = matches!(io.0, Io::Fd(_));
    let transport = io.into_transport().map_err(|e| {
        if unsupported && e.kind() == io::ErrorKind::Unsupported {
            Error::unsupported("attach", e.to_string())
        } else {
            Error::io("attach", e)
        }
    })?;
    let codec =
        panic::catch("codec", None, || handler.codec()).map_err(|m| Error::panicked("codec", m))?;
    let conn = Conn::new(&core, codec);
    *conn.state().peer.borrow_mut() = transport.peer_addr();
    Driver::<H, StreamPump>::start(handler, conn.clone(), core, Start::Open(transport));
    Ok(conn)
}

/// A listening socket that [`attach_server`] can serve: a std or tokio
/// `TcpListener` or `UnixListener`, or an `OwnedFd` of a listening TCP or
/// Unix-domain socket (one a service manager passed in, say).
pub struct AttachableListener(ListenerIo);

enum ListenerIo {
    Tcp(std::net::TcpListener),
    TokioTcp(TcpListener),
    Unix(std::os::unix::net::UnixListener),
    TokioUnix(UnixListener),
    Fd(OwnedFd),
}

macro_rules! attachable_listener_from {
    ($($ty:ty => $kind:ident),* $(,)?) => {$(
        impl From<$ty> for AttachableListener {
            fn from(l: $ty) -> Self {
                AttachableListener(ListenerIo::$kind(l))
            }
        }
    )*};
}

attachable_listener_from! {
    std::net::TcpListener => Tcp,
    TcpListener => TokioTcp,
    std::os::unix::net::UnixListener => Unix,
    UnixListener => TokioUnix,
    OwnedFd => Fd,
}

impl fmt::Debug for AttachableListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            ListenerIo::Tcp(_) | ListenerIo::TokioTcp(_) => "TCP listener",
            ListenerIo::Unix(_) | ListenerIo::TokioUnix(_) => "Unix listener",
            ListenerIo::Fd(_) => "descriptor",
        };
        write!(f, "AttachableListener({kind})")
    }
}

impl AttachableListener {
    fn into_listener(self) -> io::Result<Listener> {
        Ok(match self.0 {
            ListenerIo::Tcp(l) => {
                l.set_nonblocking(true)?;
                Listener::Tcp(TcpListener::from_std(l)?)
            }
            ListenerIo::TokioTcp(l) => Listener::Tcp(l),
            ListenerIo::Unix(l) => {
                l.set_nonblocking(true)?;
                Listener::Unix(UnixListener::from_std(l)?, None)
            }
            ListenerIo::TokioUnix(l) => Listener::Unix(l, None),
            ListenerIo::Fd(fd) => {
                let (family, listening) = stream_socket(&fd).map_err(|e| {
                    if e.raw_os_error() == Some(ENOTSOCK) {
                        io::Error::new(io::ErrorKind::Unsupported, "the descriptor is not a socket")
                    } else {
                        e
                    }
                })?;
                if !listening {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "the descriptor is not a listening socket",
                    ));
                }
                let listener = match family {
                    Family::Unix => {
                        AttachableListener::from(std::os::unix::net::UnixListener::from(fd))
                    }
                    Family::Inet => AttachableListener::from(std::net::TcpListener::from(fd)),
                };
                return listener.into_listener();
            }
        })
    }
}

/// Linux's errno for a socket call on a descriptor that is no socket; std
/// has no `ErrorKind` for it.
const ENOTSOCK: i32 = 88;

/// Serves `listener`, a listening socket the program already has
/// (EventMachine's `EM.attach_server`; for example one a service manager
/// passed in): every accepted connection gets a handler from `factory`,
/// exactly as with [`start_server`](crate::start_server). em sets it
/// non-blocking and owns it: it is closed when the server stops. A
/// Unix-domain listener's socket file is left where it is (em did not make
/// it). Reactor thread only.
///
/// Errors: `is_no_reactor()` / `is_stopping()`; `is_io()` when it cannot be
/// registered, `is_unsupported()` for a descriptor that is not a listening
/// TCP or Unix-domain stream socket (a connected socket, a datagram socket,
/// a pipe, a regular file).
pub fn attach_server<F, H>(listener: impl Into<AttachableListener>, factory: F) -> Result<Server>
where
    F: FnMut() -> H + 'static,
    H: Connection,
{
    let core = Core::current_accepting("attach_server")?;
    let listener = listener.into().into_listener().map_err(|e| {
        if e.kind() == io::ErrorKind::Unsupported {
            Error::unsupported("attach_server", e.to_string())
        } else {
            Error::io("attach_server", e)
        }
    })?;
    serve(core, listener, factory)
}

impl<C> Conn<C> {
    /// Ends em's ownership of the connection's descriptor and gives it back,
    /// still open, deregistered from the reactor and in blocking mode
    /// (EventMachine's `detach`). Output still queued and input not yet
    /// delivered are dropped. `unbind` follows once, with
    /// [`UnbindReason::Detached`](crate::UnbindReason::Detached), after the
    /// current callback returns. Reactor thread only.
    ///
    /// On a watched descriptor ([`watch`](crate::watch)) it ends the watch
    /// and gives back em's duplicate of the descriptor, in the mode the
    /// program's own descriptor has (em never changed it).
    ///
    /// Errors: `is_closed()` on a connection that has ended, is closing, or
    /// whose connect has not completed; `is_unsupported()` on a transport
    /// with no descriptor (an in-memory pair), and from inside
    /// [`with_socket`](Conn::with_socket)'s closure (the connection stays
    /// open then); `is_io()` if the descriptor cannot be deregistered (it is
    /// closed then, and the connection ends).
    pub fn detach(&self) -> Result<OwnedFd> {
        let state = self.state();
        if state.ended.get() || state.close.get() != Close::Open {
            return Err(Error::closed());
        }
        let Ok(mut slot) = state.transport.try_borrow_mut() else {
            // Borrowed by `with_socket`, whose closure called us.
            return Err(Error::unsupported(
                "detach",
                "the socket is in use (detach called from inside with_socket)",
            ));
        };
        match slot.as_ref() {
            None => return Err(Error::closed()),
            Some(t) if t.descriptor().is_none() => {
                return Err(Error::unsupported(
                    "detach",
                    format!("an {} connection has no descriptor", t.kind()),
                ))
            }
            Some(_) => {}
        }
        let transport = slot.take().expect("checked above");
        drop(slot);
        state.close.set(Close::Detach);
        state.outbound.borrow_mut().clear();
        state.wake();
        let fd = transport
            .into_descriptor()
            .map_err(|e| Error::io("detach", e))?;
        tracing::debug!(conn = %self.id(), "detached");
        Ok(fd)
    }
}
