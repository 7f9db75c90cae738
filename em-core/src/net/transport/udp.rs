//! UDP sockets as a transport: a [`DatagramSocket`], which is the socket and
//! the destinations of the datagrams queued on it.
//!
//! The bytes of queued datagrams stay in the connection's outbound queue
//! (`ConnState::outbound`), back to back, so that the watermarks,
//! `max_outbound` and the reactor's budget count them exactly as they count
//! a stream's output. What a byte stream does not need, where each datagram
//! ends and where it goes, is kept here beside the socket, so that it goes
//! with the socket: when the connection ends or is detached, both go at
//! once.
//!
//! Datagrams move in batches where there are several (`batch.rs`:
//! `recvmmsg(2)` and `sendmmsg(2)`, one system call for many).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::{SocketKind, Transport};
use crate::net::address::Addr;

mod batch;

pub(crate) use batch::{Received, BATCH};

/// The room a receive gives each datagram: every UDP datagram fits (at most
/// 65,527 bytes of payload, over IPv6), so none is ever cut short.
pub(crate) const RECV_SIZE: usize = 64 * 1024;

/// A UDP socket, and the datagrams queued on it.
#[derive(Debug)]
pub(crate) struct DatagramSocket {
    socket: UdpSocket,
    /// Whether the socket is IPv4 (else IPv6): destinations are checked
    /// against it without a system call.
    ipv4: bool,
    /// The length and destination of each queued datagram, oldest first.
    /// Their bytes are the connection's outbound queue, in the same order.
    queue: RefCell<VecDeque<Queued>>,
}

/// One queued datagram: its length (its bytes are the next `len` of the
/// outbound queue) and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued {
    pub(crate) len: usize,
    pub(crate) to: SocketAddr,
}

impl DatagramSocket {
    /// A socket bound to `addr` (port 0 picks one), made as EventMachine
    /// makes one: `SO_REUSEADDR` and `SO_BROADCAST` on; non-blocking and
    /// registered with the reactor. Reactor thread only.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<DatagramSocket> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM.cloexec(),
            Some(Protocol::UDP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_broadcast(true)?;
        socket.bind(&addr.into())?;
        socket.set_nonblocking(true)?;
        Ok(DatagramSocket {
            socket: UdpSocket::from_std(socket.into())?,
            ipv4: addr.is_ipv4(),
            queue: RefCell::new(VecDeque::new()),
        })
    }

    /// Whether the socket is IPv4 (else IPv6).
    pub(crate) fn is_ipv4(&self) -> bool {
        self.ipv4
    }

    /// The queued datagrams' lengths and destinations.
    pub(crate) fn queue(&self) -> &RefCell<VecDeque<Queued>> {
        &self.queue
    }

    /// Receives the datagrams waiting, at most `max` (at most [`BATCH`]),
    /// with one system call, into `buf` (empty, with room for at least
    /// [`RECV_SIZE`] bytes): `buf` then holds them back to back, and
    /// `received` where each ends and who sent it. How many; `Pending` once
    /// none is waiting (the task is woken when one arrives).
    pub(crate) fn poll_recv_batch(
        &self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        max: usize,
        received: &mut [Received; BATCH],
    ) -> Poll<io::Result<usize>> {
        loop {
            let got = self.socket.try_io(Interest::READABLE, || {
                batch::recv_batch(self.socket.as_fd(), buf, RECV_SIZE, max, received)
            });
            match got {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.socket.poll_recv_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Sends queued datagrams from the front of `queue`, whose bytes are
    /// `bytes` back to back, in order: one with `sendto(2)`, more with one
    /// `sendmmsg(2)` of at most [`BATCH`]. How many left (0 if the first
    /// one's bytes are not in `bytes`); the error of the first one if the
    /// system refused it; `Pending` while the socket's send buffer is full
    /// (the task is woken when it has room).
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        bytes: &[u8],
        queue: &VecDeque<Queued>,
    ) -> Poll<io::Result<usize>> {
        let Some(first) = queue.front() else {
            return Poll::Ready(Ok(0));
        };
        if queue.len() == 1 {
            return match bytes.get(..first.len) {
                Some(datagram) => self
                    .socket
                    .poll_send_to(cx, datagram, first.to)
                    .map_ok(|_| 1),
                None => Poll::Ready(Ok(0)),
            };
        }
        loop {
            let sent = self.socket.try_io(Interest::WRITABLE, || {
                batch::send_batch(self.socket.as_fd(), bytes, queue.iter())
            });
            match sent {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.socket.poll_send_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Transport for DatagramSocket {
    fn kind(&self) -> &'static str {
        "UDP"
    }

    /// A datagram socket has no peer of its own: the connection's peer is
    /// the sender of the last datagram (kept in `ConnState::peer`).
    fn peer_addr(&self) -> Option<Addr> {
        None
    }

    fn local_addr(&self) -> Option<Addr> {
        self.socket.local_addr().ok().map(Addr::Inet)
    }

    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        Some(self.socket.as_fd())
    }

    fn socket_kind(&self) -> Option<SocketKind> {
        Some(SocketKind::Udp)
    }

    fn datagram(&self) -> Option<&DatagramSocket> {
        Some(self)
    }

    fn into_descriptor(self: Box<Self>) -> io::Result<OwnedFd> {
        let std = self.socket.into_std()?;
        std.set_nonblocking(false)?;
        Ok(std.into())
    }
}
