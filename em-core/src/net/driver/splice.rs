//! The kernel pipe of a proxy's target, and `splice(2)` through it: a
//! proxy between two plain sockets moves bytes from the source's socket
//! into the pipe and from the pipe into the target's socket, kernel to
//! kernel, without copying them through the process.
//!
//! The system calls are rustix's safe wrappers (Linux only); elsewhere a
//! pipe cannot be made, and proxies always copy.
//!
//! Both calls are non-blocking on the pipe (`SPLICE_F_NONBLOCK`) and on the
//! socket (tokio keeps its sockets in non-blocking mode). Either may return
//! `WouldBlock`; what it means is for the caller to tell (see
//! [`Pipe::splice_in`]).

use std::io;
use std::os::fd::BorrowedFd;

/// The capacity asked for a new pipe: every `splice(2)` from a socket moves
/// at most a pipe's worth, so a larger pipe means fewer calls per byte.
/// The kernel may grant less (the per-user pipe budget,
/// `/proc/sys/fs/pipe-user-pages-soft`); the pipe then keeps its default
/// capacity (64 KiB).
const PIPE_SIZE: usize = 256 * 1024;

/// A pipe for splicing, both ends non-blocking; closed when dropped.
#[derive(Debug)]
pub(crate) struct Pipe {
    #[cfg(target_os = "linux")]
    read: std::os::fd::OwnedFd,
    #[cfg(target_os = "linux")]
    write: std::os::fd::OwnedFd,
    /// How many bytes it holds at most.
    capacity: usize,
}

#[cfg(target_os = "linux")]
impl Pipe {
    /// A new pipe; an error if the process is out of descriptors.
    pub(crate) fn new() -> io::Result<Pipe> {
        use rustix::pipe::{fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, PipeFlags};
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let capacity = match fcntl_setpipe_size(&write, PIPE_SIZE) {
            Ok(capacity) => capacity,
            Err(e) => {
                tracing::debug!(error = %e, "the pipe keeps its default capacity");
                fcntl_getpipe_size(&write)?
            }
        };
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    /// Moves up to `len` bytes from socket `from` into the pipe. `Ok(0)` at
    /// the end of the stream. `WouldBlock` when the socket has nothing to
    /// read **or** the pipe has no room left: a caller that knows the pipe
    /// is empty knows it is the former.
    pub(crate) fn splice_in(&self, from: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
        use rustix::pipe::{splice, SpliceFlags};
        let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
        Ok(splice(from, None, &self.write, None, len, flags)?)
    }

    /// Moves up to `len` bytes (at most what the pipe holds) from the pipe
    /// into socket `to`. `WouldBlock` when the socket has no room (the
    /// caller only calls with bytes in the pipe).
    pub(crate) fn splice_out(&self, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
        use rustix::pipe::{splice, SpliceFlags};
        let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
        Ok(splice(&self.read, None, to, None, len, flags)?)
    }
}

#[cfg(not(target_os = "linux"))]
impl Pipe {
    /// No pipe outside Linux: proxies copy.
    pub(crate) fn new() -> io::Result<Pipe> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(crate) fn splice_in(&self, _: BorrowedFd<'_>, _: usize) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(crate) fn splice_out(&self, _: BorrowedFd<'_>, _: usize) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

impl Pipe {
    /// How many bytes it holds at most.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}
