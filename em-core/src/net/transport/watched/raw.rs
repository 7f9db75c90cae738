//! The two calls behind a watched descriptor that Rust cannot check:
//! registering it with tokio, and `poll(2)` with a zero timeout, which says
//! whether it is readable or writable *now* and so makes em's notifications
//! level-triggered like EventMachine's over tokio's edge-triggered
//! readiness.
//!
//! Unsafe because:
//! * tokio's `AsyncFd::register` is unsafe (since tokio 1.54, for I/O
//!   safety; the safe `AsyncFd::new` is deprecated): the caller promises
//!   that the descriptor stays open, and the same, for as long as the
//!   `AsyncFd` holds it. Here it holds the `OwnedFd` itself.
//! * neither std, tokio nor socket2 exposes `poll(2)` (mio keeps its own
//!   use of it private), and one call does not justify a new dependency
//!   (rustix has a safe `poll`). This is that call, with libc's
//!   declaration; the one pointer handed to the system points to a live
//!   `pollfd` on the stack.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use super::Directions;

/// Registers `fd` with the reactor of the current tokio runtime, for
/// readability and writability; on failure `fd` is closed. em's one
/// registration of a descriptor it owns: watched descriptors, and the
/// pidfd of [`watch_process`](crate::watch_process).
pub(crate) fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `AsyncFd` takes the `OwnedFd` by value and owns it until
    // it is dropped or `into_inner` gives it back, so the descriptor is
    // valid and open, and refers to the same open file, for the whole
    // registration; `OwnedFd::as_raw_fd` always returns the same number,
    // and em never swaps the inner value (`get_mut` is not used).
    let registered = unsafe { AsyncFd::register(fd) };
    Ok(registered?)
}

/// Which of the `asked` directions of `fd` would not block now, in
/// select(2)'s terms, as EventMachine sees them: readable on data, end of
/// stream (`POLLHUP`) or an error; writable on room or an error (a write
/// then fails at once instead of blocking). Never blocks. Errors as
/// `poll(2)` does; a descriptor the system does not know (`POLLNVAL`,
/// which em's own duplicate cannot be) is `EBADF`.
pub(super) fn level(fd: BorrowedFd<'_>, asked: Directions) -> io::Result<Directions> {
    let mut events = 0;
    if asked.readable {
        events |= libc::POLLIN;
    }
    if asked.writable {
        events |= libc::POLLOUT;
    }
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `pollfd` is one live, writable `pollfd` and `nfds` is 1,
        // so the system reads and writes exactly that struct, during the
        // call only. `fd` is borrowed for the whole call, so it stays open.
        // The timeout of 0 returns at once.
        let rc = unsafe { libc::poll(&mut pollfd, 1, 0) };
        if rc != -1 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let revents = pollfd.revents;
    if revents & libc::POLLNVAL != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(Directions {
        readable: asked.readable && revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0,
        writable: asked.writable && revents & (libc::POLLOUT | libc::POLLERR) != 0,
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    const BOTH: Directions = Directions {
        readable: true,
        writable: true,
    };

    #[test]
    fn readable_while_data_is_unread_and_at_end_of_stream() {
        let (mut a, b) = UnixStream::pair().unwrap();
        assert!(!level(b.as_fd(), BOTH).unwrap().readable);
        a.write_all(b"x").unwrap();
        assert!(level(b.as_fd(), BOTH).unwrap().readable);
        // Level-triggered: still readable when asked again.
        assert!(level(b.as_fd(), BOTH).unwrap().readable);
        (&b).read_exact(&mut [0]).unwrap();
        assert!(!level(b.as_fd(), BOTH).unwrap().readable);
        drop(a);
        // End of stream: a read would return at once.
        assert!(level(b.as_fd(), BOTH).unwrap().readable);
    }

    #[test]
    fn only_the_directions_asked() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"x").unwrap();
        let read_only = Directions {
            readable: true,
            writable: false,
        };
        assert_eq!(level(b.as_fd(), read_only).unwrap(), read_only);
        let write_only = Directions {
            readable: false,
            writable: true,
        };
        assert_eq!(level(b.as_fd(), write_only).unwrap(), write_only);
    }

    #[test]
    fn a_pipe_read_end_is_never_writable_and_its_write_end_never_readable() {
        let (r, mut w) = std::io::pipe().unwrap();
        w.write_all(b"x").unwrap();
        let level_r = level(r.as_fd(), BOTH).unwrap();
        assert!(level_r.readable && !level_r.writable);
        let level_w = level(w.as_fd(), BOTH).unwrap();
        assert!(!level_w.readable && level_w.writable);
        drop(r);
        // The reader is gone: an error is pending (POLLERR), so the write
        // end counts as both, as select(2) has it (EventMachine too calls
        // both notifications on an error).
        assert_eq!(level(w.as_fd(), BOTH).unwrap(), BOTH);
    }

    #[test]
    fn a_full_socket_is_not_writable_until_its_peer_reads() {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        assert!(level(a.as_fd(), BOTH).unwrap().writable);
        let chunk = [0u8; 4096];
        loop {
            match (&a).write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
        }
        assert!(!level(a.as_fd(), BOTH).unwrap().writable);
        b.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        while (&b).read(&mut buf).is_ok() {}
        assert!(level(a.as_fd(), BOTH).unwrap().writable);
    }
}
