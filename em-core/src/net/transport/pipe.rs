//! Pipe ends as a transport: the read end only reads, the write end only
//! writes. tokio's pipe types implement only their own direction; the
//! wrappers here add the other one as an error, which the driver never
//! reaches (it checks [`readable`](Transport::readable) and
//! [`writable`](Transport::writable) first).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe::{Receiver, Sender};

use super::{ByteStream, Transport};
use crate::net::address::Addr;

/// A pipe's read end.
#[derive(Debug)]
pub(crate) struct PipeReader(pub(crate) Receiver);

/// A pipe's write end.
#[derive(Debug)]
pub(crate) struct PipeWriter(pub(crate) Sender);

fn wrong_way(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("this end of the pipe cannot be {what}"),
    )
}

impl AsyncRead for PipeReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PipeReader {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(wrong_way("written")))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for PipeWriter {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(wrong_way("read")))
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Transport for PipeReader {
    fn kind(&self) -> &'static str {
        "pipe"
    }

    fn peer_addr(&self) -> Option<Addr> {
        Some(Addr::Pipe)
    }

    fn local_addr(&self) -> Option<Addr> {
        Some(Addr::Pipe)
    }

    fn writable(&self) -> bool {
        false
    }

    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        Some(self.0.as_fd())
    }

    fn byte_stream(&mut self) -> Option<&mut dyn ByteStream> {
        Some(self)
    }

    fn into_descriptor(self: Box<Self>) -> io::Result<OwnedFd> {
        self.0.into_blocking_fd()
    }
}

impl Transport for PipeWriter {
    fn kind(&self) -> &'static str {
        "pipe"
    }

    fn peer_addr(&self) -> Option<Addr> {
        Some(Addr::Pipe)
    }

    fn local_addr(&self) -> Option<Addr> {
        Some(Addr::Pipe)
    }

    fn readable(&self) -> bool {
        false
    }

    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        Some(self.0.as_fd())
    }

    fn byte_stream(&mut self) -> Option<&mut dyn ByteStream> {
        Some(self)
    }

    fn into_descriptor(self: Box<Self>) -> io::Result<OwnedFd> {
        self.0.into_blocking_fd()
    }
}
