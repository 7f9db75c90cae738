//! TLS on any byte-stream connection: [`Conn::start_tls`] (from `post_init`
//! for TLS from the first byte, or later for STARTTLS), its options
//! ([`TlsOptions`]), why a handshake failed ([`TlsError`]), and the
//! session's details on [`Conn`].
//!
//! `start_tls` files the upgrade; the stream pump carries it out at its
//! next step (`driver/stream/tls_io.rs`): it sends the output queued before
//! the call in plain text, puts the TLS transport (`transport/tls.rs`)
//! around the one beneath, hands it the input read past the upgrade point,
//! drives the handshake, asks `ssl_verify_peer` where the options say so,
//! and calls `ssl_handshake_completed`. Decoding resumes afterwards with a
//! fresh codec, on the decrypted stream.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use crate::error::{Error, Result};
use crate::net::conn::Conn;

mod error;
mod options;
mod verify;

pub use error::{TlsError, TlsErrorKind};
pub use options::{TlsOptions, TlsVersion};

/// `ConnState::tls`: `start_tls` was called; the pump has not wrapped the
/// transport yet.
pub(crate) const UPGRADE: u8 = 1;
/// The handshake is under way.
pub(crate) const HANDSHAKE: u8 = 2;
/// TLS runs on the connection (from the call on).
pub(crate) const ON: u8 = 4;
/// The handler's `ssl_verify_peer` decides on the peer's certificate.
pub(crate) const BY_CALLBACK: u8 = 8;

/// A `start_tls` waiting for the pump.
pub(crate) struct TlsUpgrade {
    pub(crate) side: Side,
    /// Output bytes queued before the call, which leave in plain text.
    pub(crate) plain_len: usize,
}

/// Which side of the handshake a `start_tls` takes, with its configuration
/// (built by the call, so the pump has nothing left to fail on).
pub(crate) enum Side {
    Server(Arc<ServerConfig>),
    /// With the name to verify and send, else the peer's IP address.
    Client(Arc<ClientConfig>, Option<ServerName<'static>>),
}

impl<C> Conn<C> {
    /// Starts TLS on the connection (EventMachine's `start_tls`): as the
    /// server if the connection was accepted by a server, else as the
    /// client ([`start_tls_server`](Conn::start_tls_server) picks the
    /// server side on any connection). Reactor thread only.
    ///
    /// Call it from `post_init` for TLS from the first byte, or later for
    /// STARTTLS: output queued before the call still leaves in plain text
    /// (the "go ahead" line), output queued after it is encrypted, and the
    /// input already read past the current frame (a client's ClientHello
    /// sent right behind its STARTTLS line) goes to the handshake, not to
    /// `receive_data`. `ssl_handshake_completed` runs when the handshake is
    /// done; a failed one ends the connection with [`UnbindReason::Tls`](crate::UnbindReason::Tls),
    /// which says why. Nothing is delivered or sent while it runs.
    ///
    /// Errors: `is_tls_config()` for options that cannot work (a server
    /// without a certificate, an unreadable file…; the rustls configuration
    /// is built here, once per [`TlsOptions`] and its clones);
    /// `is_already_started()` when TLS already runs on it (EventMachine
    /// raises the same); `is_closed()` on a closed connection;
    /// `is_unsupported()` on a datagram socket, a watched descriptor, or a
    /// pipe end (TLS needs both directions).
    pub fn start_tls(&self, options: &TlsOptions) -> Result<()> {
        let server = {
            let accepted = self.state().server.take();
            let is = accepted.is_some();
            self.state().server.set(accepted);
            is
        };
        self.start_tls_as(server, options)
    }

    /// [`start_tls`](Conn::start_tls) as the server side, whatever made
    /// the connection (an attached socket, an in-memory pair, a client
    /// that turns the roles around). Reactor thread only.
    pub fn start_tls_server(&self, options: &TlsOptions) -> Result<()> {
        self.start_tls_as(true, options)
    }

    fn start_tls_as(&self, server: bool, options: &TlsOptions) -> Result<()> {
        const CALL: &str = "start_tls";
        let state = self.state();
        if self.is_closed() {
            return Err(Error::closed());
        }
        if state.tls.get() != 0 {
            return Err(Error::already_started(CALL));
        }
        if state.datagram.get() || state.read_only.get() || self.is_watch_only() {
            return Err(Error::unsupported(
                CALL,
                "TLS runs on byte streams that go both ways",
            ));
        }
        if let Some(t) = state.transport.borrow().as_ref() {
            if !t.writable() {
                return Err(Error::unsupported(CALL, "TLS needs both directions"));
            }
        }
        let side = if server {
            Side::Server(options.server_config()?)
        } else {
            let name = match options.name() {
                Some(n) => Some(ServerName::try_from(n.to_owned()).map_err(|e| {
                    Error::tls_config(format!("server_name {n:?} is not a valid name: {e}"))
                })?),
                None => None,
            };
            Side::Client(options.client_config()?, name)
        };
        state.put_tls_upgrade(TlsUpgrade {
            side,
            plain_len: state.outbound.borrow().len(),
        });
        let by_callback = if options.verifies_by_callback() {
            BY_CALLBACK
        } else {
            0
        };
        state.tls.set(UPGRADE | ON | by_callback);
        state.wake_again();
        Ok(())
    }

    /// Whether `start_tls` was called on the connection. Reactor thread.
    pub fn is_tls(&self) -> bool {
        self.state().tls.get() & ON != 0
    }

    fn session<R>(&self, read: impl FnOnce(&rustls::CommonState) -> Option<R>) -> Option<R> {
        let transport = self.state().transport.borrow();
        transport
            .as_ref()
            .and_then(|t| t.tls())
            .and_then(|t| t.session())
            .and_then(read)
    }

    /// The peer's certificate chain (DER, its own first) once the
    /// handshake is done (EventMachine's `get_peer_cert`, which gives PEM);
    /// `None` before, without TLS, or when the peer sent none. Reactor
    /// thread, as every `Conn` call.
    pub fn peer_cert(&self) -> Option<Vec<Vec<u8>>> {
        self.session(|s| {
            s.peer_certificates()
                .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
        })
    }

    /// The protocol version agreed, once the handshake is done. Reactor
    /// thread.
    pub fn tls_protocol_version(&self) -> Option<TlsVersion> {
        self.session(|s| match s.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => Some(TlsVersion::Tls13),
            rustls::ProtocolVersion::TLSv1_2 => Some(TlsVersion::Tls12),
            _ => None,
        })
    }

    /// The cipher suite agreed, by its IANA name as rustls spells it
    /// (`"TLS13_AES_256_GCM_SHA384"`), once the handshake is done
    /// (EventMachine's `get_cipher_name`). Reactor thread.
    pub fn tls_cipher_suite(&self) -> Option<&'static str> {
        self.session(|s| s.negotiated_cipher_suite()?.suite().as_str())
    }

    /// The ALPN protocol agreed, if any, once the handshake is done.
    /// Reactor thread.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.session(|s| s.alpn_protocol().map(<[u8]>::to_vec))
    }

    /// A server: the host name the client asked for by SNI
    /// (EventMachine's `get_sni_hostname`), once the handshake is done.
    /// Reactor thread.
    pub fn sni_hostname(&self) -> Option<String> {
        let transport = self.state().transport.borrow();
        transport
            .as_ref()
            .and_then(|t| t.tls())
            .and_then(|t| t.server_session())
            .and_then(|s| s.server_name())
            .map(str::to_owned)
    }
}
