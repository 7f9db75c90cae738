//! In-memory pairs as a transport: two ends of a `tokio::io::duplex` pipe,
//! no socket and no port, and no real time needed (they run under the
//! paused clock). Twisted's `StringTransport` idea, for tests.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use tokio::io::DuplexStream;

use super::{no_descriptor, ByteStream, Transport};
use crate::net::address::Addr;

/// The bytes each direction of an in-memory pair buffers before a writer
/// waits for its reader.
const PAIR_BUFFER: usize = 256 * 1024;

/// Two connected in-memory ends.
pub(crate) fn pair() -> (DuplexStream, DuplexStream) {
    tokio::io::duplex(PAIR_BUFFER)
}

impl Transport for DuplexStream {
    fn kind(&self) -> &'static str {
        "in-memory"
    }

    fn peer_addr(&self) -> Option<Addr> {
        Some(Addr::Memory)
    }

    fn local_addr(&self) -> Option<Addr> {
        Some(Addr::Memory)
    }

    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn byte_stream(&mut self) -> Option<&mut dyn ByteStream> {
        Some(self)
    }

    fn into_descriptor(self: Box<Self>) -> io::Result<OwnedFd> {
        Err(no_descriptor(self.kind(), "detach"))
    }
}
