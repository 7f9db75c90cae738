//! The keyboard (EventMachine's `EM.open_keyboard`): standard input as a
//! read-only connection, through the handler's codec.
//!
//! Two ways in, one connection. Where standard input is a pipe, a FIFO or
//! a stream socket, em reads a duplicate of descriptor 0 through the
//! reactor's own readiness, as [`attach`](crate::attach) would. Anything
//! else (a terminal, a regular file, `/dev/null`: epoll refuses regular
//! files, and a terminal's open file is shared with the shell, so em must
//! not make it non-blocking) is read by a copier thread of em's own, which
//! writes what it reads into a pipe whose read end is the connection's
//! transport. Neither uses tokio's blocking pool.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

use crate::error::{Error, Result};
use crate::net::address::Addr;
use crate::net::attach::Attachable;
use crate::net::conn::Conn;
use crate::net::connection::Connection;
use crate::net::driver::stream::StreamPump;
use crate::net::driver::{Driver, Start};
use crate::net::transport::{BoxTransport, ByteStream, PipeReader, Transport};
use crate::reactor::core::Core;
use crate::reactor::panic;

/// How much the copier thread reads at once.
const COPY_CHUNK: usize = 16 * 1024;

/// How long the copier waits before reading again a standard input that
/// someone else left non-blocking (a terminal whose open file has
/// `O_NONBLOCK`), where a read says it would block: em has no readiness
/// for it on that thread, and taking it for end of input would be wrong.
const RETRY_WOULD_BLOCK: Duration = Duration::from_millis(20);

/// Opens standard input as a connection with `handler` (EventMachine's
/// `EM.open_keyboard`), and returns its handle after `post_init` has run.
/// Reactor thread only.
///
/// The connection works like an [attached](crate::attach) pipe's read end:
/// what arrives goes through the handler's codec to `receive_data` (lines
/// with `LinesCodec`; with `BytesCodec`, whatever each read returns, where
/// EventMachine calls `receive_data` once per byte, KB1), the codec's
/// limits apply (a line longer than `LinesCodec`'s maximum ends the
/// connection with `UnbindReason::Codec`), end of input ends it with
/// `unbind(UnbindReason::PeerClosed)`, and
/// [`close_connection`](Conn::close_connection) ends it early. It is
/// read-only: `send_data` returns 0 and `try_send_data` errors with
/// `is_unsupported()`; write to standard output yourself. `peer_addr` is
/// [`Addr::Pipe`] (a stream socket's peer, where standard input is one). It
/// never gets `connection_completed`.
///
/// # How em reads standard input
///
/// * **A pipe, a FIFO or a stream socket** (`producer | program`, a
///   supervisor's pipe, inetd's socket): em reads a duplicate of descriptor
///   0 through the reactor, like any connection. tokio puts it in
///   non-blocking mode, and `O_NONBLOCK` belongs to the open file, which
///   the duplicate shares with descriptor 0 and with any process that
///   inherited it: while the keyboard is open, a blocking read of standard
///   input elsewhere in the program fails with `WouldBlock`. em puts it
///   in blocking mode when the keyboard ends (even if it was non-blocking
///   before: em does not read the mode it found).
/// * **Anything else**: a terminal, a regular file redirected into
///   standard input (`program < file`), `/dev/null`. The system gives no
///   readiness for a regular file, and a terminal's open file is shared
///   with the shell, whose mode em must not change. A thread of em's own
///   (named `em-keyboard`, not one of tokio's blocking pool) reads it in
///   blocking mode and copies what it reads into a pipe, whose read end is
///   the connection's transport: the connection is the same either way. The
///   thread ends at end of input, or when a write into the pipe fails
///   because the connection has ended (EPIPE: Rust programs ignore
///   SIGPIPE). A thread blocked reading a terminal stays until the next
///   line is typed, or until the process exits, and `em::stop` does not
///   wait for it. That next line is read by the thread and lost: a
///   program that reads standard input itself after the keyboard closed
///   (after `run` returns, say) does not see it. A read error on that thread ends the
///   input like end of input (it is logged at warn level).
///
/// Bytes the program already read through `std::io::stdin()`'s buffer are
/// not seen again: open the keyboard before reading standard input
/// otherwise.
///
/// # The paused clock
///
/// Neither way uses tokio's blocking pool, so under tokio's paused clock
/// (`Reactor::builder().start_paused(true)`, feature `test-util`) time
/// still jumps to the next timer whenever the reactor is idle, even while
/// the copier thread waits for a line.
///
/// # One keyboard at a time
///
/// A process has one standard input, so one keyboard may be open at a
/// time, across all reactors: opening a second is an error that
/// [`is_already_started()`](Error::is_already_started), until the first
/// has ended and, on the copier's way, its thread has ended too (else two
/// readers would share the input, and the old one would swallow a line).
///
/// Errors: `is_no_reactor()` / `is_stopping()`; `is_already_started()`
/// while a keyboard is open; `is_panic()` if the handler's `codec()`
/// panicked; `is_unsupported()` where standard input is a socket em cannot
/// read as a stream (a datagram or listening socket) or a pipe's write
/// end; `is_io()` where it is closed, or a duplicate, the pipe or the
/// thread cannot be made.
///
/// ```no_run
/// # use em_core as em;
/// use em::{Conn, Connection};
/// use tokio_util::codec::LinesCodec;
///
/// /// Echoes each line typed; `quit` stops.
/// struct Echo;
///
/// impl Connection for Echo {
///     type Codec = LinesCodec;
///     fn codec(&self) -> LinesCodec {
///         LinesCodec::new_with_max_length(4096)
///     }
///     fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
///         if line == "quit" {
///             em::stop();
///         } else {
///             println!("you typed {line:?}");
///         }
///     }
///     fn unbind(&mut self, _: &Conn<LinesCodec>, _: em::UnbindReason) {
///         em::stop(); // end of input (Ctrl-D)
///     }
/// }
///
/// em::run(|| em::open_keyboard(Echo).map(drop))?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn open_keyboard<H: Connection>(handler: H) -> Result<Conn<H::Codec>> {
    let core = Core::current_accepting("open_keyboard")?;
    let claim = Claim::take()?;
    let codec =
        panic::catch("codec", None, || handler.codec()).map_err(|m| Error::panicked("codec", m))?;
    let inner = open_stdin(&claim).map_err(|e| {
        if e.kind() == io::ErrorKind::Unsupported {
            Error::unsupported("open_keyboard", format!("standard input: {e}"))
        } else {
            Error::io("open_keyboard", e)
        }
    })?;
    let transport: BoxTransport = Box::new(Keyboard {
        inner: Some(inner),
        _claim: claim,
    });
    let conn = Conn::new(&core, codec);
    *conn.state().peer.borrow_mut() = transport.peer_addr();
    Driver::<H, StreamPump>::start(handler, conn.clone(), core, Start::Open(transport));
    Ok(conn)
}

/// Whether a keyboard is open in this process.
static OPEN: AtomicBool = AtomicBool::new(false);

/// The process's one keyboard, held by the connection's transport and by
/// the copier thread, if any: free again once both are gone.
#[derive(Debug)]
struct Claim(());

impl Claim {
    fn take() -> Result<Arc<Claim>> {
        if OPEN.swap(true, Ordering::AcqRel) {
            return Err(Error::already_started("open_keyboard"));
        }
        Ok(Arc::new(Claim(())))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        OPEN.store(false, Ordering::Release);
    }
}

/// The transport that reads standard input: through the reactor for a pipe,
/// FIFO or stream socket, through the copier thread for anything else.
fn open_stdin(claim: &Arc<Claim>) -> io::Result<BoxTransport> {
    // A duplicate (close-on-exec): em closes its own, never descriptor 0.
    let stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let file_type = stdin.metadata()?.file_type();
    if file_type.is_fifo() || file_type.is_socket() {
        let transport = Attachable::from(OwnedFd::from(stdin)).into_transport()?;
        if !transport.readable() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "it is a pipe's write end",
            ));
        }
        tracing::debug!(
            kind = transport.kind(),
            "keyboard: standard input read through the reactor"
        );
        return Ok(transport);
    }
    let (reader, writer) = io::pipe()?;
    let reader = PipeReader(pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?);
    let claim = claim.clone();
    std::thread::Builder::new()
        .name("em-keyboard".into())
        .spawn(move || copy(stdin, writer, claim))?;
    tracing::debug!("keyboard: standard input read by a copier thread");
    Ok(Box::new(reader))
}

/// The copier thread: standard input into the pipe, until end of input or
/// until the pipe's reader is gone.
fn copy(mut stdin: File, mut pipe: io::PipeWriter, claim: Arc<Claim>) {
    let mut buf = vec![0; COPY_CHUNK];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => {
                tracing::debug!("keyboard: end of standard input");
                break;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(RETRY_WOULD_BLOCK);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "keyboard: cannot read standard input; taken as its end");
                break;
            }
        };
        if let Err(e) = pipe.write_all(&buf[..n]) {
            // EPIPE: the keyboard has ended; what was just read is dropped.
            tracing::debug!(error = %e, "keyboard: the connection has ended");
            break;
        }
    }
    // Closed before the claim is given back: a keyboard opened next never
    // shares the input with this thread.
    drop(pipe);
    drop(claim);
}

/// The keyboard's transport: the one that reads standard input (a
/// duplicate of descriptor 0, or the copier's pipe), read-only, holding the
/// process's claim on the keyboard.
struct Keyboard {
    /// `None` once given away by `detach`.
    inner: Option<BoxTransport>,
    _claim: Arc<Claim>,
}

impl Keyboard {
    fn inner(&self) -> &dyn Transport {
        self.inner
            .as_deref()
            .expect("present until into_descriptor")
    }
}

impl Transport for Keyboard {
    fn kind(&self) -> &'static str {
        "keyboard"
    }

    fn peer_addr(&self) -> Option<Addr> {
        self.inner().peer_addr()
    }

    fn local_addr(&self) -> Option<Addr> {
        self.inner().local_addr()
    }

    fn writable(&self) -> bool {
        false
    }

    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        self.inner().descriptor()
    }

    fn into_descriptor(mut self: Box<Self>) -> io::Result<OwnedFd> {
        self.inner
            .take()
            .expect("present until into_descriptor")
            .into_descriptor()
    }

    fn byte_stream(&mut self) -> Option<&mut dyn ByteStream> {
        Some(self)
    }
}

/// Reads through the transport beneath; never writes, and never shuts the
/// transport beneath down (where standard input is a socket, it may be
/// standard output too).
impl AsyncRead for Keyboard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut().and_then(|t| t.byte_stream()) {
            Some(stream) => Pin::new(stream).poll_read(cx, buf),
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the keyboard was detached",
            ))),
        }
    }
}

impl AsyncWrite for Keyboard {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the keyboard cannot be written",
        )))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for Keyboard {
    fn drop(&mut self) {
        // Back in blocking mode (for a duplicate of descriptor 0, the mode
        // of standard input's open file), deregistered, then closed.
        if let Some(inner) = self.inner.take() {
            if let Err(e) = inner.into_descriptor() {
                tracing::debug!(error = %e, "keyboard: cannot put standard input back in blocking mode");
            }
        }
    }
}
