//! The stream pump's TLS steps: carrying out a `start_tls` (plain output
//! first, then the TLS transport around the old one, with the input read
//! past the upgrade point) and driving the handshake to its callbacks.
//! The pump runs them before anything else while `ConnState::tls` says an
//! upgrade or a handshake is under way; nothing is delivered or written
//! meanwhile.

use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use rustls::pki_types::ServerName;

use super::StreamPump;
use crate::net::connection::{Connection, UnbindReason};
use crate::net::driver::Session;
use crate::net::tls::{Side, TlsError, TlsUpgrade, BY_CALLBACK, HANDSHAKE, UPGRADE};
use crate::net::transport::{BoxTransport, Tls};
use crate::reactor::panic;

impl StreamPump {
    /// Carries out a pending `start_tls` and drives its handshake:
    /// `Ready(Ok)` once both are done (the callbacks have run), `Pending`
    /// while waiting for the socket, `Ready(Err)` with the reason the
    /// connection ends.
    pub(super) fn poll_tls<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), UnbindReason>> {
        let state = s.conn.state();
        if state.tls.get() & UPGRADE != 0 {
            let Some(mut upgrade) = state.take_tls_upgrade() else {
                state.tls.set(state.tls.get() & !UPGRADE);
                return Poll::Ready(Ok(()));
            };
            let sent = self.send_plain(s, cx, &mut upgrade);
            match sent {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(UnbindReason::Io(e))),
                Poll::Pending => {
                    state.put_tls_upgrade(*upgrade);
                    return Poll::Pending;
                }
            }
            self.wrap(s, *upgrade)?;
            state.tls.set(state.tls.get() & !UPGRADE | HANDSHAKE);
        }
        if state.tls.get() & HANDSHAKE != 0 {
            let polled = {
                let mut transport = state.transport.borrow_mut();
                match transport.as_mut().and_then(|t| t.tls_mut()) {
                    Some(tls) => tls.poll_handshake(cx),
                    None => return Poll::Pending,
                }
            };
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(match TlsError::from_handshake(e) {
                        Ok(tls) => UnbindReason::Tls(tls),
                        Err(io) => UnbindReason::Io(io),
                    }))
                }
                Poll::Ready(Ok(())) => {}
            }
            self.active = true;
            state.tls.set(state.tls.get() & !HANDSHAKE);
            self.handshake_done(s)?;
        }
        Poll::Ready(Ok(()))
    }

    /// Writes the output queued before `start_tls`, in plain text.
    fn send_plain<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        cx: &mut Context<'_>,
        upgrade: &mut TlsUpgrade,
    ) -> Poll<std::io::Result<()>> {
        let state = s.conn.state();
        let mut transport = state.transport.borrow_mut();
        let Some(t) = transport.as_mut().and_then(|t| t.byte_stream()) else {
            // Still connecting: the connect wakes the driver.
            return Poll::Pending;
        };
        let mut out = state.outbound.borrow_mut();
        while upgrade.plain_len > 0 {
            let n = std::task::ready!(Pin::new(&mut *t).poll_write(cx, &out[..upgrade.plain_len]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.active = true;
            out.advance(n);
            upgrade.plain_len -= n;
        }
        Pin::new(&mut *t).poll_flush(cx)
    }

    /// Puts the TLS transport around the one beneath, with the input read
    /// past the upgrade point, and starts decoding afresh.
    fn wrap<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
        upgrade: TlsUpgrade,
    ) -> Result<(), UnbindReason> {
        let state = s.conn.state();
        let prefix = self.pending.take().map(|b| *b).filter(|b| !b.is_empty());
        self.held = false;
        let fresh = panic::catch("codec", Some(s.conn.id()), || s.handler.codec())
            .map_err(UnbindReason::Panicked)?;
        *s.conn.codec().borrow_mut() = fresh;
        let mut transport = state.transport.borrow_mut();
        let inner: BoxTransport = transport
            .take()
            .ok_or_else(|| UnbindReason::Io(std::io::ErrorKind::NotConnected.into()))?;
        let tls = match upgrade.side {
            Side::Server(config) => Tls::server(inner, prefix, config),
            Side::Client(config, name) => {
                let name = match name {
                    Some(name) => name,
                    None => match inner.peer_addr().and_then(|a| a.inet()) {
                        Some(addr) => ServerName::IpAddress(addr.ip().into()),
                        None => {
                            *transport = Some(inner);
                            return Err(UnbindReason::Io(std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "start_tls: a client on a connection without an IP address needs TlsOptions::server_name",
                        )));
                        }
                    },
                };
                Tls::client(inner, prefix, config, name)
            }
        };
        *transport = Some(Box::new(tls));
        Ok(())
    }

    /// The handshake is done: `ssl_verify_peer` where asked, then
    /// `ssl_handshake_completed`.
    fn handshake_done<H: Connection>(
        &mut self,
        s: &mut Session<'_, H>,
    ) -> Result<(), UnbindReason> {
        let by_callback = s.conn.state().tls.get() & BY_CALLBACK != 0;
        let running = Cell::new("ssl_verify_peer");
        if by_callback {
            let chain = s.conn.peer_cert().unwrap_or_default();
            for cert in &chain {
                let ok = panic::guard(&running, Some(s.conn.id()), || {
                    s.handler.ssl_verify_peer(s.conn, cert)
                })
                .map_err(UnbindReason::Panicked)?;
                if !ok {
                    return Err(UnbindReason::Tls(TlsError::refused_by_callback()));
                }
            }
        }
        running.set("ssl_handshake_completed");
        panic::guard(&running, Some(s.conn.id()), || {
            s.handler.ssl_handshake_completed(s.conn)
        })
        .map_err(UnbindReason::Panicked)
    }
}
