//! A watched descriptor (`em::watch`) as a transport: em neither reads nor
//! writes it, it only tells when it is readable or writable.
//!
//! em registers a duplicate of the caller's descriptor (`dup(2)`, which
//! shares the open file and so its readiness) with tokio's `AsyncFd`, and
//! owns that duplicate: dropping the transport deregisters and closes it,
//! and the caller's own descriptor is never closed (EventMachine W2). The
//! caller's descriptor may even be closed while the watch runs without
//! harm to the reactor (the registration is em's own), though the open
//! file then lives on until the watch ends.
//!
//! tokio's readiness is edge-triggered: it is set by an event and stays set
//! until cleared, whatever has been read since. EventMachine's
//! notifications are level-triggered. [`Watched::poll_level`] joins the
//! two: it asks tokio which wanted directions may be ready (registering for
//! a wake-up on the others), then asks the system with a zero-timeout
//! `poll(2)` whether they are ready *now*, and clears tokio's readiness
//! where they are not, so that the next edge wakes the connection again.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;

use super::Transport;
use crate::net::address::Addr;

mod raw;

pub(crate) use raw::register;

/// Which directions of a watched descriptor: those wanted, or those ready.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Directions {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

impl Directions {
    /// Neither direction.
    pub(crate) fn none(self) -> bool {
        !self.readable && !self.writable
    }
}

/// A watched descriptor: em's duplicate of it, registered with the reactor.
#[derive(Debug)]
pub(crate) struct Watched(AsyncFd<OwnedFd>);

impl Watched {
    /// Registers a duplicate of `fd` (close-on-exec) with the reactor, for
    /// readability and writability. Its mode (blocking or not) is left as
    /// it is: the open file's flags belong to the caller. Errors as
    /// `dup(2)` and `epoll_ctl(2)` do (`EPERM` for a regular file or a
    /// directory, which epoll cannot watch).
    pub(crate) fn new(fd: BorrowedFd<'_>) -> io::Result<Self> {
        Ok(Watched(raw::register(fd.try_clone_to_owned()?)?))
    }

    /// Which of the `wanted` directions are ready now, by the level (see
    /// the module's comment). For every wanted direction found not ready,
    /// the task is registered to be woken by its next readiness event.
    /// Errors if the reactor's I/O driver is gone or `poll(2)` fails.
    pub(crate) fn poll_level(
        &self,
        cx: &mut Context<'_>,
        wanted: Directions,
    ) -> io::Result<Directions> {
        let mut read = None;
        let mut write = None;
        if wanted.readable {
            if let Poll::Ready(guard) = self.0.poll_read_ready(cx) {
                read = Some(guard?);
            }
        }
        if wanted.writable {
            if let Poll::Ready(guard) = self.0.poll_write_ready(cx) {
                write = Some(guard?);
            }
        }
        if read.is_none() && write.is_none() {
            // Nothing happened since the last edge: tokio wakes us.
            return Ok(Directions::default());
        }
        let level = raw::level(
            self.0.as_fd(),
            Directions {
                readable: read.is_some(),
                writable: write.is_some(),
            },
        )?;
        let mut stale = Directions::default();
        if let Some(mut guard) = read {
            if !level.readable {
                // Consumed since the event: wait for the next one. An event
                // that came after the guard was taken is not cleared.
                guard.clear_ready();
                stale.readable = true;
            }
        }
        if let Some(mut guard) = write {
            if !level.writable {
                guard.clear_ready();
                stale.writable = true;
            }
        }
        // Register for the next edge of what was cleared; if one came
        // already, look again on the next poll.
        let again = (stale.readable && self.0.poll_read_ready(cx).is_ready())
            || (stale.writable && self.0.poll_write_ready(cx).is_ready());
        if again {
            cx.waker().wake_by_ref();
        }
        Ok(level)
    }
}

impl Transport for Watched {
    fn kind(&self) -> &'static str {
        "watched descriptor"
    }

    fn peer_addr(&self) -> Option<Addr> {
        None
    }

    fn local_addr(&self) -> Option<Addr> {
        None
    }

    // em neither reads nor writes a watched descriptor: the handler does.
    fn readable(&self) -> bool {
        false
    }

    fn writable(&self) -> bool {
        false
    }

    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        Some(self.0.as_fd())
    }

    /// em's duplicate, deregistered, in the mode the caller's descriptor
    /// has (em never changed it).
    fn into_descriptor(self: Box<Self>) -> io::Result<OwnedFd> {
        Ok(self.0.into_inner())
    }

    fn watched(&self) -> Option<&Watched> {
        Some(self)
    }
}
