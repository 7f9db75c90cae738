//! Why a TLS handshake failed, as `unbind` hears it.

use std::fmt;
use std::io;

use rustls::{AlertDescription, CertificateError, Error as RustlsError};

/// The kinds of TLS failure a program may want to tell apart, from
/// [`TlsError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The peer's certificate is not signed by a trusted root.
    UnknownIssuer,
    /// The peer's certificate has expired (or is not valid yet).
    Expired,
    /// The peer's certificate is not valid for the name asked for.
    WrongHostName,
    /// The peer sent no certificate where one was required
    /// (`fail_if_no_peer_cert`), or told us it required ours.
    NoPeerCertificate,
    /// `ssl_verify_peer` refused the peer's certificate.
    RefusedByCallback,
    /// The peer refused our certificate (it sent an alert saying so).
    CertificateRefusedByPeer,
    /// No protocol version, cipher suite or ALPN protocol in common.
    ProtocolMismatch,
    /// What the peer sent is not TLS (garbage instead of a ClientHello).
    NotTls,
    /// The peer closed the connection before the handshake was done.
    Eof,
    /// Anything else: the peer's alert, a bad signature, a decryption
    /// failure.
    Other,
}

/// A failed TLS handshake: its kind and the underlying error, in
/// [`UnbindReason::Tls`](crate::UnbindReason::Tls). `Display` says why in
/// words, `source()` is the rustls error where there is one.
pub struct TlsError {
    kind: TlsErrorKind,
    source: io::Error,
}

/// `{:?}` prints what `Display` prints (so that `fn main() -> Result<…>`
/// shows a readable message, as anyhow's and hyper's errors do); `{:#?}`
/// the structure.
impl fmt::Debug for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.debug_struct("TlsError")
                .field("kind", &self.kind)
                .field("source", &self.source)
                .finish()
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

impl TlsError {
    /// The kind of failure.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// The rustls error behind it, if it came from rustls.
    pub fn rustls_error(&self) -> Option<&RustlsError> {
        self.source.get_ref().and_then(|e| e.downcast_ref())
    }

    /// A copy, with the underlying error kept as its message.
    pub(crate) fn copy(&self) -> TlsError {
        TlsError {
            kind: self.kind,
            source: io::Error::new(self.source.kind(), self.source.to_string()),
        }
    }

    /// `ssl_verify_peer` said no.
    pub(crate) fn refused_by_callback() -> TlsError {
        TlsError {
            kind: TlsErrorKind::RefusedByCallback,
            source: io::Error::other("ssl_verify_peer refused the peer's certificate"),
        }
    }

    /// The handshake's error, classified; `None` for a plain I/O error that
    /// has nothing to do with TLS (a reset), which ends the connection as
    /// `UnbindReason::Io`.
    pub(crate) fn from_handshake(e: io::Error) -> Result<TlsError, io::Error> {
        let kind = match e.get_ref().and_then(|r| r.downcast_ref::<RustlsError>()) {
            Some(r) => classify(r),
            None if e.kind() == io::ErrorKind::UnexpectedEof => TlsErrorKind::Eof,
            None if e.kind() == io::ErrorKind::InvalidData => TlsErrorKind::NotTls,
            None => return Err(e),
        };
        Ok(TlsError { kind, source: e })
    }
}

fn classify(e: &RustlsError) -> TlsErrorKind {
    match e {
        RustlsError::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => TlsErrorKind::UnknownIssuer,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsErrorKind::Expired,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsErrorKind::WrongHostName
            }
            CertificateError::ApplicationVerificationFailure => TlsErrorKind::RefusedByCallback,
            _ => TlsErrorKind::Other,
        },
        RustlsError::NoCertificatesPresented => TlsErrorKind::NoPeerCertificate,
        RustlsError::PeerIncompatible(_) | RustlsError::NoApplicationProtocol => {
            TlsErrorKind::ProtocolMismatch
        }
        RustlsError::InvalidMessage(_)
        | RustlsError::InappropriateMessage { .. }
        | RustlsError::InappropriateHandshakeMessage { .. } => TlsErrorKind::NotTls,
        RustlsError::AlertReceived(alert) => match alert {
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::UnsupportedCertificate => TlsErrorKind::CertificateRefusedByPeer,
            AlertDescription::CertificateRequired => TlsErrorKind::NoPeerCertificate,
            AlertDescription::ProtocolVersion
            | AlertDescription::HandshakeFailure
            | AlertDescription::InsufficientSecurity
            | AlertDescription::NoApplicationProtocol => TlsErrorKind::ProtocolMismatch,
            _ => TlsErrorKind::Other,
        },
        _ => TlsErrorKind::Other,
    }
}

impl fmt::Display for TlsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsErrorKind::UnknownIssuer => "the peer's certificate has an unknown issuer",
            TlsErrorKind::Expired => "the peer's certificate has expired or is not valid yet",
            TlsErrorKind::WrongHostName => "the peer's certificate is for another host name",
            TlsErrorKind::NoPeerCertificate => "no peer certificate where one is required",
            TlsErrorKind::RefusedByCallback => "ssl_verify_peer refused the peer's certificate",
            TlsErrorKind::CertificateRefusedByPeer => "the peer refused our certificate",
            TlsErrorKind::ProtocolMismatch => {
                "no protocol version, cipher suite or ALPN protocol in common"
            }
            TlsErrorKind::NotTls => "the peer does not speak TLS",
            TlsErrorKind::Eof => "the peer closed the connection during the handshake",
            TlsErrorKind::Other => "TLS failure",
        })
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kind, self.source)
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `?` on a TLS error in code returning `em::Result` (a run block):
/// `em::Error::other`, with this error as its `source()`.
impl From<TlsError> for crate::Error {
    fn from(e: TlsError) -> Self {
        crate::Error::other(e)
    }
}
