//! Watched descriptors (EventMachine's `EM.watch`, `notify_readable=`,
//! `notify_writable=` and `watch_only?`): em polls a descriptor that the
//! program reads and writes itself, and says when it is readable or
//! writable.

use std::os::fd::AsFd;

use crate::error::{Error, Result};
use crate::net::conn::{Conn, Watch};
use crate::net::connection::Connection;
use crate::net::driver::watch::WatchPump;
use crate::net::driver::{Driver, Start};
use crate::net::transport::Watched;
use crate::reactor::core::Core;
use crate::reactor::panic;

/// Watches `fd`, a descriptor the program reads and writes itself
/// (EventMachine's `EM.watch`), with `handler`, and returns its handle after
/// `post_init` has run. Reactor thread only.
///
/// em never reads, writes or closes the descriptor, and leaves its mode
/// (blocking or not) alone. It calls the handler's
/// [`notify_readable`](Connection::notify_readable) while the descriptor is
/// readable and [`notify_writable`](Connection::notify_writable) while it is
/// writable, each only while switched on with
/// [`Conn::set_notify_readable`] / [`Conn::set_notify_writable`]; both are
/// off at first, as in EventMachine. `receive_data` never runs, so any codec
/// will do (`BytesCodec`).
///
/// # Level-triggered
///
/// The notifications are level-triggered, as EventMachine's: while the
/// descriptor stays readable (the handler left input unread, or the peer
/// closed and a read would return end of stream), `notify_readable` runs
/// again on the reactor's next turn, and so does `notify_writable` while
/// the descriptor has room. Read what is there (with a non-blocking
/// descriptor, until it would block), or switch the notification off; at
/// end of stream, close the watch. em emulates this over tokio's
/// edge-triggered readiness: after a notification it asks the system
/// (`poll(2)` with a zero timeout) whether the descriptor is still ready,
/// and yields to the rest of the reactor between two notifications. A
/// notification that is off, or a descriptor that is not ready, costs no
/// CPU: the watch waits for the next readiness event.
///
/// # The descriptor
///
/// `fd` is only borrowed for the call: pass `&stream` or `stream.as_fd()`
/// and keep the descriptor where the handler can use it. em watches a
/// duplicate of it (`dup(2)`, which shares the open file and so its
/// readiness), registered with the reactor and closed when the watch ends;
/// the program's own descriptor stays open after `unbind` (W2). Closing
/// your descriptor during the watch is safe, but the open file (a socket,
/// a pipe end) then lives on in em's duplicate until the watch ends, so end
/// the watch first if the peer should see the close (EventMachine asks the
/// same: detach before closing). With a blocking descriptor, read no more
/// than is ready, or the whole reactor waits.
///
/// # The connection
///
/// [`Conn::is_watch_only`] is true. [`Conn::close_connection`] ends the
/// watch; [`Conn::detach`] ends it and gives back em's duplicate of the
/// descriptor (deregistered, in the mode yours has); either way `unbind`
/// follows exactly once, as on every other path (reactor stop, a panic in a
/// notification). What would move data is refused: `send_data` returns 0
/// (`try_send_data` and the file calls error with `is_unsupported()`), and
/// `reconnect` errors with `is_unsupported()`; `pause` and
/// `close_connection_after_writing` are no-ops (EventMachine raises on
/// `send_data`, `pause` and `close_connection`). The socket options
/// (`with_socket`, `set_sock_opt`, …) error with `is_unsupported()`: a
/// watched descriptor may be anything, and the program has its own to set
/// options on. `peer_addr` and `local_addr` are `None`. The inactivity
/// timeout counts a notification as activity.
///
/// [`attach`](crate::attach) has no such checks the other way: EventMachine's
/// `EM.attach` raises `ArgumentError` for a handler that defines
/// `notify_readable` or `notify_writable`, but a Rust handler always has
/// them (the trait's default bodies), and em cannot tell an override from a
/// default; on an attached connection they are simply never called.
///
/// Errors: `is_no_reactor()` / `is_stopping()`; `is_unsupported()` for a
/// descriptor the system cannot poll (a regular file or a directory, which
/// are always ready); `is_io()` when it cannot be duplicated or registered;
/// `is_panic()` if the handler's `codec()` panicked.
///
/// ```
/// # use em_core as em;
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use std::rc::Rc;
/// use em::{Conn, Connection};
/// use tokio_util::codec::BytesCodec;
///
/// /// Reads the watched socket itself when em says it is readable.
/// struct Reader {
///     socket: Rc<UnixStream>,
/// }
///
/// impl Connection for Reader {
///     type Codec = BytesCodec;
///     fn codec(&self) -> BytesCodec {
///         BytesCodec::new()
///     }
///     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: bytes::BytesMut) {
///         unreachable!("em never reads a watched descriptor")
///     }
///     fn notify_readable(&mut self, conn: &Conn<BytesCodec>) {
///         let mut buf = [0; 64];
///         let n = (&*self.socket).read(&mut buf).expect("readable");
///         assert_eq!(&buf[..n], b"ping");
///         conn.close_connection(); // ends the watch; the socket stays open
///         em::stop();
///     }
/// }
///
/// let (ours, mut theirs) = UnixStream::pair()?;
/// ours.set_nonblocking(true)?;
/// let ours = Rc::new(ours);
/// let socket = ours.clone();
/// em::run(move || -> em::Result<()> {
///     let conn = em::watch(&*socket, Reader { socket: socket.clone() })?;
///     assert!(conn.is_watch_only());
///     conn.set_notify_readable(true)?;
///     theirs.write_all(b"ping").expect("write");
///     Ok(())
/// })?;
/// // Still open after the watch ended: em closed only its own duplicate.
/// assert!(ours.peer_addr().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn watch<H: Connection>(fd: impl AsFd, handler: H) -> Result<Conn<H::Codec>> {
    let core = Core::current_accepting("watch")?;
    let transport = Watched::new(fd.as_fd()).map_err(|e| {
        if e.raw_os_error() == Some(libc::EPERM) {
            Error::unsupported(
                "watch",
                "the system cannot poll this descriptor (a regular file or a directory is always ready)",
            )
        } else {
            Error::io("watch", e)
        }
    })?;
    let codec =
        panic::catch("codec", None, || handler.codec()).map_err(|m| Error::panicked("codec", m))?;
    let conn = Conn::new(&core, codec);
    conn.state().set_watch(Watch {
        only: true,
        ..Watch::default()
    });
    Driver::<H, WatchPump>::start(
        handler,
        conn.clone(),
        core,
        Start::Open(Box::new(transport)),
    );
    Ok(conn)
}

impl<C> Conn<C> {
    /// Switches [`notify_readable`](Connection::notify_readable) on or off
    /// for a watched descriptor ([`watch`]); off at first (EventMachine's
    /// `notify_readable=`). Switched on, it runs as soon as the descriptor is
    /// readable, already is, or stays so. Callable from any callback on the
    /// reactor thread, the notification's own included; it takes effect on
    /// the watch's next turn. Harmless once the watch has ended.
    ///
    /// Errors with `is_unsupported()` on a connection that is not a watched
    /// descriptor (EventMachine raises).
    pub fn set_notify_readable(&self, on: bool) -> Result<()> {
        self.switch("set_notify_readable", |w| w.readable = on)
    }

    /// Switches [`notify_writable`](Connection::notify_writable) on or off
    /// for a watched descriptor ([`watch`]); off at first (EventMachine's
    /// `notify_writable=`). A socket or pipe is writable most of the time,
    /// so switch it on only while there is something to write. Otherwise as
    /// [`set_notify_readable`](Conn::set_notify_readable).
    pub fn set_notify_writable(&self, on: bool) -> Result<()> {
        self.switch("set_notify_writable", |w| w.writable = on)
    }

    /// Whether [`notify_readable`](Connection::notify_readable) is on
    /// (EventMachine's `notify_readable?`); false on any other connection.
    pub fn notify_readable(&self) -> bool {
        self.state().watch().readable
    }

    /// Whether [`notify_writable`](Connection::notify_writable) is on
    /// (EventMachine's `notify_writable?`); false on any other connection.
    pub fn notify_writable(&self) -> bool {
        self.state().watch().writable
    }

    /// Whether this connection watches a descriptor ([`watch`]), which em
    /// neither reads nor writes (EventMachine's `watch_only?`).
    pub fn is_watch_only(&self) -> bool {
        self.state().watch().only
    }

    /// Changes a watched descriptor's switches, and wakes its driver to
    /// act on them.
    fn switch(&self, call: &'static str, change: impl FnOnce(&mut Watch)) -> Result<()> {
        let state = self.state();
        let mut watch = state.watch();
        if !watch.only {
            return Err(Error::unsupported(
                call,
                "only a watched descriptor (em::watch) has notifications",
            ));
        }
        change(&mut watch);
        state.set_watch(watch);
        state.wake();
        Ok(())
    }
}
