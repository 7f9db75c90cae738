//! `SmtpError`: why [`SmtpClient`](super::SmtpClient) could not deliver a
//! message.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use super::client::SmtpRecipientStatus;
use super::reply::SmtpReply;

/// Why a message was not delivered, from
/// [`SmtpClient::send_mail`](super::SmtpClient::send_mail) or the errback
/// of [`SmtpClient::send`](super::SmtpClient::send).
///
/// Its `Display` says what failed, with the server's reply where there is
/// one; the `is_*()` predicates sort it; [`reply`](SmtpError::reply) is
/// the server's reply that ended the attempt, and
/// [`recipients`](SmtpError::recipients) what it said to each recipient
/// so far. Cheap to clone (the result of a `Deferred` is shared), `Send`
/// and `Sync`.
#[derive(Clone)]
pub struct SmtpError {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    message: String,
    timeout: bool,
    reply: Option<SmtpReply>,
    recipients: Vec<SmtpRecipientStatus>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    InvalidInput,
    Connect,
    Tls,
    SmtpAuth,
    SenderRefused,
    RecipientsRefused,
    MessageRefused,
    Protocol,
    Timeout,
    Closed,
    Io,
}

impl SmtpError {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> SmtpError {
        SmtpError {
            inner: Arc::new(Inner {
                kind,
                message: message.into(),
                timeout: kind == Kind::Timeout,
                reply: None,
                recipients: Vec::new(),
                source: None,
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("an error is built before it is shared")
    }

    pub(crate) fn with_reply(mut self, reply: SmtpReply) -> SmtpError {
        self.inner_mut().reply = Some(reply);
        self
    }

    pub(crate) fn with_recipients(mut self, recipients: Vec<SmtpRecipientStatus>) -> SmtpError {
        self.inner_mut().recipients = recipients;
        self
    }

    pub(crate) fn with_source(
        mut self,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> SmtpError {
        self.inner_mut().source = Some(source.into());
        self
    }

    pub(crate) fn timed_out(mut self) -> SmtpError {
        self.inner_mut().timeout = true;
        self
    }

    /// The sender or a recipient cannot be sent (a CR, an LF, an angle
    /// bracket or a space in it), or there is no recipient: nothing was
    /// sent.
    pub fn is_invalid_input(&self) -> bool {
        self.inner.kind == Kind::InvalidInput
    }

    /// The connect failed (refused, unreachable, a name that does not
    /// resolve, the connect timeout), or no reactor runs here.
    pub fn is_connect(&self) -> bool {
        self.inner.kind == Kind::Connect
    }

    /// TLS failed: STARTTLS required but not offered or refused, a bad
    /// certificate, a failed handshake.
    pub fn is_tls(&self) -> bool {
        self.inner.kind == Kind::Tls
    }

    /// Authentication failed: credentials refused (`535`), or no mechanism
    /// in common.
    pub fn is_auth(&self) -> bool {
        self.inner.kind == Kind::SmtpAuth
    }

    /// The server refused `MAIL FROM` (a `552` there means the declared
    /// size is over its limit).
    pub fn is_sender_refused(&self) -> bool {
        self.inner.kind == Kind::SenderRefused
    }

    /// The server refused every recipient; [`recipients`](Self::recipients)
    /// says what it answered to each.
    pub fn is_recipients_refused(&self) -> bool {
        self.inner.kind == Kind::RecipientsRefused
    }

    /// The server refused `DATA` or the message itself (a `552` for its
    /// size, a `554`…).
    pub fn is_message_refused(&self) -> bool {
        self.inner.kind == Kind::MessageRefused
    }

    /// The server broke the protocol or refused the session: a greeting
    /// or `EHLO`/`HELO` refused, a reply that is not SMTP, an unexpected
    /// code (a `421` when it shuts down).
    pub fn is_protocol(&self) -> bool {
        self.inner.kind == Kind::Protocol
    }

    /// Nothing moved for the client's timeout while it waited for the
    /// server, or the connect did not complete in time.
    pub fn is_timeout(&self) -> bool {
        self.inner.timeout
    }

    /// The server closed the connection before the end, or the reactor
    /// stopped.
    pub fn is_closed(&self) -> bool {
        self.inner.kind == Kind::Closed
    }

    /// An I/O error on the established connection (a reset).
    pub fn is_io(&self) -> bool {
        self.inner.kind == Kind::Io
    }

    /// The server's reply that ended the attempt, if one did.
    pub fn reply(&self) -> Option<&SmtpReply> {
        self.inner.reply.as_ref()
    }

    /// What the server answered to each recipient it was asked about
    /// before the failure, in order.
    pub fn recipients(&self) -> &[SmtpRecipientStatus] {
        &self.inner.recipients
    }
}

impl fmt::Display for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SMTP: {}", self.inner.message)
    }
}

/// `{:?}` prints what `Display` prints (so that `fn main() -> Result<…>`
/// shows a readable message, as anyhow's and hyper's errors do); `{:#?}`
/// the structure.
impl fmt::Debug for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        f.debug_struct("SmtpError")
            .field("kind", &self.inner.kind)
            .field("message", &self.inner.message)
            .field("reply", &self.inner.reply)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

impl StdError for SmtpError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// `?` on an SMTP error in code returning `em::Result` (a run block):
/// `em::Error::other`, with this error as its `source()`.
impl From<SmtpError> for em_core::Error {
    fn from(e: SmtpError) -> Self {
        em_core::Error::other(e)
    }
}
