//! TLS as a transport: a wrapper around the transport a connection already
//! has (TCP, Unix-domain, a pipe pair, an in-memory pair), put in its place
//! by `Conn::start_tls`, so that the stream pump reads and writes plain
//! text through it as through any byte stream (ntex's filter layer idea).
//!
//! The record layer and the handshake are tokio-rustls's: the wrapper only
//! drives its handshake future when the pump asks ([`Tls::poll_handshake`])
//! and answers the transport questions for the socket beneath. Bytes the
//! connection read past the upgrade point (a STARTTLS client that pipelined
//! its ClientHello behind the command) are read again first, from
//! [`Plain`]'s prefix (hyper's `Rewind`).

use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::{client, server, Connect, TlsAcceptor, TlsConnector};

use super::{BoxTransport, ByteStream, SocketKind, Transport};
use crate::net::address::Addr;

/// The transport beneath TLS, as tokio-rustls's I/O: what it reads comes
/// first from the bytes read before the upgrade.
pub(crate) struct Plain {
    inner: BoxTransport,
    /// Read past the upgrade point, not decoded: the start of the TLS
    /// stream. Freed once read.
    prefix: Option<BytesMut>,
}

impl Plain {
    fn stream(&mut self) -> io::Result<&mut dyn ByteStream> {
        self.inner
            .byte_stream()
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "not a byte stream"))
    }
}

impl AsyncRead for Plain {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(prefix) = &mut self.prefix {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix[..n]);
            prefix.advance(n);
            if prefix.is_empty() {
                self.prefix = None;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(self.stream()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for Plain {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()?).poll_write(cx, buf)
    }

    /// tokio-rustls sends the records it has in one `writev(2)` where the
    /// stream beneath takes vectors (a socket does).
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()?).poll_shutdown(cx)
    }
}

/// Where a TLS connection is in its life.
enum Stage {
    /// A server's handshake under way.
    Accepting(tokio_rustls::Accept<Plain>),
    /// A client's handshake under way.
    Connecting(Connect<Plain>),
    Server(server::TlsStream<Plain>),
    Client(client::TlsStream<Plain>),
    /// The handshake failed; the error went to the pump.
    Failed,
}

/// A connection's transport once `start_tls` has run. The questions a
/// transport answers (addresses, descriptor) go to the one beneath.
pub(crate) struct Tls {
    stage: Stage,
}

impl Tls {
    /// `inner` as a TLS server, `prefix` the bytes already read past the
    /// upgrade point.
    pub(crate) fn server(
        inner: BoxTransport,
        prefix: Option<BytesMut>,
        config: Arc<ServerConfig>,
    ) -> Tls {
        let plain = Plain { inner, prefix };
        Tls {
            stage: Stage::Accepting(TlsAcceptor::from(config).accept(plain)),
        }
    }

    /// `inner` as a TLS client of `name`.
    pub(crate) fn client(
        inner: BoxTransport,
        prefix: Option<BytesMut>,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Tls {
        let plain = Plain { inner, prefix };
        Tls {
            stage: Stage::Connecting(TlsConnector::from(config).connect(name, plain)),
        }
    }

    /// Drives the handshake: `Ready(Ok)` once it is done (at once when it
    /// already was), `Ready(Err)` when it failed (with the rustls error
    /// inside the `io::Error`, and the alert sent where one could be).
    pub(crate) fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = match &mut self.stage {
            Stage::Accepting(accept) => match Pin::new(accept).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r.map(Stage::Server),
            },
            Stage::Connecting(connect) => match Pin::new(connect).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r.map(Stage::Client),
            },
            Stage::Server(_) | Stage::Client(_) => return Poll::Ready(Ok(())),
            Stage::Failed => return Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        };
        match done {
            Ok(stage) => {
                self.stage = stage;
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                self.stage = Stage::Failed;
                Poll::Ready(Err(e))
            }
        }
    }

    /// The session's state (versions, suites, certificates) once the
    /// handshake is done.
    pub(crate) fn session(&self) -> Option<&rustls::CommonState> {
        match &self.stage {
            Stage::Server(s) => Some(s.get_ref().1),
            Stage::Client(s) => Some(s.get_ref().1),
            _ => None,
        }
    }

    /// The server's session, for what only a server knows (the client's
    /// SNI name).
    pub(crate) fn server_session(&self) -> Option<&rustls::ServerConnection> {
        match &self.stage {
            Stage::Server(s) => Some(s.get_ref().1),
            _ => None,
        }
    }

    /// The established stream, or an error while there is none.
    fn established(&mut self) -> io::Result<Pin<&mut dyn ByteStream>> {
        match &mut self.stage {
            Stage::Server(s) => Ok(Pin::new(s)),
            Stage::Client(s) => Ok(Pin::new(s)),
            _ => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TLS handshake is not done",
            )),
        }
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.established()?.poll_read(cx, buf) {
            // A peer that closes without close_notify ends the stream all
            // the same (the pump's framing decides whether data was cut).
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                tracing::debug!("peer closed without close_notify");
                Poll::Ready(Ok(()))
            }
            polled => polled,
        }
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().established()?.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().established()?.poll_flush(cx)
    }

    /// Sends close_notify, then shuts the socket beneath down.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().established()?.poll_shutdown(cx)
    }
}

impl Tls {
    /// The transport beneath; `None` once a failed handshake dropped it.
    fn inner(&self) -> Option<&dyn Transport> {
        let plain = match &self.stage {
            Stage::Accepting(a) => a.get_ref(),
            Stage::Connecting(c) => c.get_ref(),
            Stage::Server(s) => Some(s.get_ref().0),
            Stage::Client(s) => Some(s.get_ref().0),
            Stage::Failed => None,
        };
        plain.map(|p| &*p.inner)
    }

    /// The transport beneath, to take what it owns; `None` once a failed
    /// handshake dropped it.
    fn inner_mut(&mut self) -> Option<&mut dyn Transport> {
        let plain = match &mut self.stage {
            Stage::Accepting(a) => a.get_mut(),
            Stage::Connecting(c) => c.get_mut(),
            Stage::Server(s) => Some(s.get_mut().0),
            Stage::Client(s) => Some(s.get_mut().0),
            Stage::Failed => None,
        };
        plain.map(|p| &mut *p.inner)
    }
}

impl Transport for Tls {
    fn kind(&self) -> &'static str {
        match self.inner().map(|t| t.kind()) {
            Some("TCP") => "TLS over TCP",
            Some("Unix") => "TLS over Unix",
            Some("in-memory") => "TLS over in-memory",
            _ => "TLS",
        }
    }

    fn peer_addr(&self) -> Option<Addr> {
        self.inner()?.peer_addr()
    }

    fn local_addr(&self) -> Option<Addr> {
        self.inner()?.local_addr()
    }

    fn descriptor(&self) -> Option<BorrowedFd<'_>> {
        self.inner()?.descriptor()
    }

    fn socket_kind(&self) -> Option<SocketKind> {
        self.inner()?.socket_kind()
    }

    fn into_descriptor(self: Box<Self>) -> io::Result<OwnedFd> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "detach: a TLS connection's session state would be lost with its descriptor",
        ))
    }

    fn byte_stream(&mut self) -> Option<&mut dyn ByteStream> {
        Some(self)
    }

    /// A child's (TLS over its pipes): the lifecycle still waits for it.
    fn take_child(&mut self) -> Option<tokio::process::Child> {
        self.inner_mut()?.take_child()
    }

    fn tls(&self) -> Option<&Tls> {
        Some(self)
    }

    fn tls_mut(&mut self) -> Option<&mut Tls> {
        Some(self)
    }
}
