//! What a transport is. Every connection moves its data through one
//! [`Transport`]: a TCP or Unix-domain socket, an attached pipe end, or one
//! end of an in-memory pair (byte streams, which the stream pump reads and
//! writes through tokio's `AsyncRead`/`AsyncWrite`, reached with
//! [`Transport::byte_stream`]), or a UDP socket (a [`DatagramSocket`],
//! which the datagram pump drives, reached with [`Transport::datagram`]). The connection driver never names a socket
//! type; it asks the transport for the little it needs, listed here (as
//! mio's `src/sys/mod.rs` lists what each backend provides). A kind that is
//! not a byte stream (a datagram socket, a watched descriptor) adds its own
//! accessor here and its own pump beneath the same lifecycle.
//!
//! The driver owns the transport as a `Box<dyn Transport>` in the
//! connection's shared state, so it can be taken out of a live connection
//! ([`Conn::detach`](crate::Conn::detach)) or replaced by a wrapper around
//! itself (a TLS stream). `dyn` rather than a type parameter: one virtual
//! call per read or write costs nothing next to the system call behind it
//! (the echo benchmark measured no difference against the driver written
//! for `TcpStream` alone), and it keeps one compiled driver per handler
//! type instead of one per handler and transport.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest};

use crate::net::address::Addr;

mod child;
mod memory;
mod pipe;
mod tcp;
mod tls;
mod udp;
mod unix;
mod watched;

pub(crate) use child::{kill, ChildExit, ChildPipes};
pub(crate) use memory::pair;
pub(crate) use pipe::{PipeReader, PipeWriter};
pub(crate) use tls::Tls;
pub(crate) use udp::{DatagramSocket, Queued, Received, BATCH, RECV_SIZE};
pub(crate) use watched::{register, Directions, Watched};

/// A byte stream: what the stream pump reads and writes.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Unpin {}

impl<T: AsyncRead + AsyncWrite + Unpin> ByteStream for T {}

/// What a connection runs on. Reactor thread only.
pub(crate) trait Transport: 'static {
    /// What kind it is, for messages: `"TCP"`, `"Unix"`, `"pipe"`,
    /// `"in-memory"`.
    fn kind(&self) -> &'static str;

    /// The peer's address; `None` if the system cannot tell.
    fn peer_addr(&self) -> Option<Addr>;

    /// The local address; `None` if the system cannot tell.
    fn local_addr(&self) -> Option<Addr>;

    /// Whether it can be read (a pipe's write end cannot).
    fn readable(&self) -> bool {
        true
    }

    /// Whether it can be written (a pipe's read end cannot).
    fn writable(&self) -> bool {
        true
    }

    /// Its descriptor, where it has one: for socket options, and for the
    /// splice and sendfile fast paths.
    fn descriptor(&self) -> Option<BorrowedFd<'_>>;

    /// Which kind of socket its descriptor is, for socket options; `None`
    /// where it is no socket (a pipe end, an in-memory pair). A wrapper
    /// (TLS) answers for the socket beneath it.
    fn socket_kind(&self) -> Option<SocketKind> {
        None
    }

    /// Gives its descriptor up, deregistered from the reactor and back in
    /// blocking mode, still open (`detach`). An `Unsupported` error where it
    /// has none.
    fn into_descriptor(self: Box<Self>) -> io::Result<OwnedFd>;

    /// The transport as a byte stream, for the stream pump; `None` for a
    /// kind that is not one.
    fn byte_stream(&mut self) -> Option<&mut dyn ByteStream> {
        None
    }

    /// The transport as a watched descriptor, for the watch pump; `None`
    /// for every other kind.
    fn watched(&self) -> Option<&Watched> {
        None
    }

    /// The transport as a plain socket whose bytes em may move with system
    /// calls of its own (a proxy's `splice(2)`); `None` for a kind whose
    /// bytes must pass through its `byte_stream` (a wrapper such as TLS,
    /// an in-memory pair) or that has no socket.
    fn raw_socket(&self) -> Option<&dyn RawSocket> {
        None
    }

    /// The transport as TLS, for the session's details; `None` for a kind
    /// that is not.
    fn tls(&self) -> Option<&Tls> {
        None
    }

    /// The transport as TLS, for the pump to drive its handshake.
    fn tls_mut(&mut self) -> Option<&mut Tls> {
        None
    }

    /// Whether its two directions are independent pipes (a child's stdin
    /// and stdout): shutting the write side leaves it readable, so
    /// `close_connection_after_writing` closes only the write side and
    /// input is delivered to its end; and input is read even while the
    /// output's queue is above the high watermark (a filter such as `cat`
    /// stops reading its input while nobody reads its output, so holding
    /// one back for the other would wait forever).
    fn half_closes(&self) -> bool {
        false
    }

    /// The child process behind it (`popen`), taken out when the
    /// connection ends so that the lifecycle waits for its exit before
    /// `unbind`; `None` for every other kind.
    fn take_child(&mut self) -> Option<tokio::process::Child> {
        None
    }

    /// The transport as a datagram socket, for the datagram pump and for
    /// `send_datagram`; `None` for a kind that is not one.
    fn datagram(&self) -> Option<&DatagramSocket> {
        None
    }
}

/// A socket's descriptor with its readiness in the reactor, for system
/// calls em makes itself: poll for readiness, then try the call. A call
/// that finds the socket not ready returns `WouldBlock`, which clears the
/// readiness, so that the next poll parks the task until the socket is
/// ready again (tokio's `try_io` contract). Only the connection's own task
/// may poll a direction (tokio keeps one waker per direction).
pub(crate) trait RawSocket {
    /// Ready for `interest` (`READABLE` or `WRITABLE`, not both), or
    /// `Pending` with the task's waker registered.
    fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>>;

    /// Runs `io` on the descriptor if the socket is ready for `interest`;
    /// `WouldBlock` if it is not, or if `io` found it not.
    fn try_io(
        &self,
        interest: Interest,
        io: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<usize>,
    ) -> io::Result<usize>;
}

/// The kinds of socket a transport can be, for the options that apply to
/// one kind only (`TCP_NODELAY`, keep-alive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketKind {
    Tcp,
    Unix,
    Udp,
}

/// The boxed transport the driver owns.
pub(crate) type BoxTransport = Box<dyn Transport>;

/// The error of a transport that has no descriptor for `what`.
pub(crate) fn no_descriptor(kind: &str, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what}: an {kind} connection has no descriptor"),
    )
}
