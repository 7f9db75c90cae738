//! A child process as a transport (`popen`): its stdout (with its stderr
//! when merged) is read, its stdin written, through pipes of em's own. The
//! stream pump moves the bytes as on any byte stream; shutting the write
//! side closes the child's stdin and leaves its stdout readable, so
//! `close_connection_after_writing` lets `sort` and `wc` finish. The child
//! itself is kept here until the connection ends, then handed to the
//! lifecycle ([`Transport::take_child`]), which waits for its exit before
//! `unbind`.

use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::process::ExitStatus;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe::{Receiver, Sender};
use tokio::time::{Instant, Sleep};

use super::{no_descriptor, ByteStream, Transport};
use crate::net::address::Addr;
use crate::os::signal::Signal;

/// A running child: the read end of its stdout, the write end of its
/// stdin (until closed), and the process.
#[derive(Debug)]
pub(crate) struct ChildPipes {
    stdout: Receiver,
    stdin: Option<Sender>,
    child: Option<tokio::process::Child>,
    pid: u32,
}

impl ChildPipes {
    pub(crate) fn new(
        child: tokio::process::Child,
        pid: u32,
        stdin: OwnedFd,
        stdout: OwnedFd,
    ) -> io::Result<ChildPipes> {
        Ok(ChildPipes {
            stdout: Receiver::from_owned_fd(stdout)?,
            stdin: Some(Sender::from_owned_fd(stdin)?),
            child: Some(child),
            pid,
        })
    }
}

impl AsyncRead for ChildPipes {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

/// Writing after stdin was closed.
fn stdin_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the child's stdin is closed")
}

impl AsyncWrite for ChildPipes {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.stdin {
            Some(stdin) => Pin::new(stdin).poll_write(cx, buf),
            None => Poll::Ready(Err(stdin_closed())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.stdin {
            Some(stdin) => Pin::new(stdin).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(stdin_closed())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the child's stdin (it reads end of input); stdout stays.
    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}

impl Transport for ChildPipes {
    fn kind(&self) -> &'static str {
        "child process"
    }

    fn peer_addr(&self) -> Option<Addr> {
        Some(Addr::Process(self.pid))
    }

    fn local_addr(&self) -> Option<Addr> {
        Some(Addr::Pipe)
    }

    /// None: its two pipes are no one descriptor, and no socket option
    /// applies.
    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn into_descriptor(self: Box<Self>) -> io::Result<OwnedFd> {
        Err(no_descriptor(self.kind(), "detach"))
    }

    fn byte_stream(&mut self) -> Option<&mut dyn ByteStream> {
        Some(self)
    }

    fn half_closes(&self) -> bool {
        true
    }

    fn take_child(&mut self) -> Option<tokio::process::Child> {
        self.child.take()
    }
}

/// Where a child's exit stands once its connection has ended: waiting for
/// it, then (when the connection did not end by the child's own doing)
/// SIGTERM after a grace, and SIGKILL after another.
#[derive(Debug)]
pub(crate) struct ChildExit {
    child: tokio::process::Child,
    grace: Duration,
    /// The next escalation and when it is due; `None` while em only waits.
    timer: Option<Pin<Box<Sleep>>>,
    /// Signals sent so far (SIGTERM, then SIGKILL).
    sent: u8,
}

impl ChildExit {
    /// Waits for `child`; escalates at once when `escalate`.
    pub(crate) fn new(child: tokio::process::Child, grace: Duration, escalate: bool) -> ChildExit {
        let mut exit = ChildExit {
            child,
            grace,
            timer: None,
            sent: 0,
        };
        if escalate {
            exit.escalate();
        }
        exit
    }

    /// From now on, ends the child if it does not exit within the grace:
    /// SIGTERM, then SIGKILL a grace later.
    pub(crate) fn escalate(&mut self) {
        if self.timer.is_none() && self.sent == 0 {
            self.timer = Some(Box::pin(tokio::time::sleep(self.grace)));
        }
    }

    /// Ready with the exit status once the child has exited (and been
    /// reaped).
    pub(crate) fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        loop {
            {
                // `wait` is cancel-safe: a new future per poll waits on the
                // same registration (a pidfd where the kernel has them).
                let wait = std::pin::pin!(self.child.wait());
                if let Poll::Ready(status) = wait.poll(cx) {
                    return Poll::Ready(status);
                }
            }
            let Some(timer) = &mut self.timer else {
                return Poll::Pending;
            };
            ready!(timer.as_mut().poll(cx));
            let pid = self.child.id();
            self.sent += 1;
            if self.sent == 1 {
                tracing::debug!(?pid, "child still running after its grace: SIGTERM");
                if let Some(pid) = pid {
                    let _ = kill(pid, Signal::TERM);
                }
                timer.as_mut().reset(Instant::now() + self.grace);
            } else {
                tracing::debug!(?pid, "child still running after SIGTERM: SIGKILL");
                self.timer = None;
                self.child.start_kill()?;
            }
        }
    }
}

/// Sends `signal` to process `pid`.
pub(crate) fn kill(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no such process id"))?;
    let signal = rustix::process::Signal::from_named_raw(signal.as_raw()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{signal} cannot be sent (only named signals)"),
        )
    })?;
    rustix::process::kill_process(pid, signal).map_err(io::Error::from)
}
