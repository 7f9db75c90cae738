//! TCP streams as a transport.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio::net::TcpStream;

use super::{ByteStream, SocketKind, Transport};
use crate::net::address::Addr;

impl Transport for TcpStream {
    fn kind(&self) -> &'static str {
        "TCP"
    }

    fn peer_addr(&self) -> Option<Addr> {
        TcpStream::peer_addr(self).ok().map(Addr::Inet)
    }

    fn local_addr(&self) -> Option<Addr> {
        TcpStream::local_addr(self).ok().map(Addr::Inet)
    }

    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }

    fn socket_kind(&self) -> Option<SocketKind> {
        Some(SocketKind::Tcp)
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
