//! Unix-domain streams as a transport.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::task::{Context, Poll};

use tokio::io::Interest;

use tokio::net::UnixStream;

use super::{ByteStream, RawSocket, SocketKind, Transport};
use crate::net::address::Addr;

impl Transport for UnixStream {
    fn kind(&self) -> &'static str {
        "Unix"
    }

    fn peer_addr(&self) -> Option<Addr> {
        UnixStream::peer_addr(self).ok().map(Addr::from)
    }

    fn local_addr(&self) -> Option<Addr> {
        UnixStream::local_addr(self).ok().map(Addr::from)
    }

    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }

    fn socket_kind(&self) -> Option<SocketKind> {
        Some(SocketKind::Unix)
    }

    fn byte_stream(&mut self) -> Option<&mut dyn ByteStream> {
        Some(self)
    }

    fn raw_socket(&self) -> Option<&dyn RawSocket> {
        Some(self)
    }

    fn into_descriptor(self: Box<Self>) -> io::Result<OwnedFd> {
        let std = self.into_std()?;
        std.set_nonblocking(false)?;
        Ok(std.into())
    }
}

impl RawSocket for UnixStream {
    fn poll_ready(&self, cx: &mut Context<'_>, interest: Interest) -> Poll<io::Result<()>> {
        if interest.is_writable() {
            self.poll_write_ready(cx)
        } else {
            self.poll_read_ready(cx)
        }
    }

    fn try_io(
        &self,
        interest: Interest,
        io: &mut dyn FnMut(BorrowedFd<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        UnixStream::try_io(self, interest, || io(self.as_fd()))
    }
}
