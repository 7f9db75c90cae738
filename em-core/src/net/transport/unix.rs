//! Unix-domain streams as a transport.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio::net::UnixStream;

use super::{ByteStream, SocketKind, Transport};
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

    fn into_descriptor(self: Box<Self>) -> io::Result<OwnedFd> {
        let std = self.into_std()?;
        std.set_nonblocking(false)?;
        Ok(std.into())
    }
}
