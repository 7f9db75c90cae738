//! SASL (EventMachine's `EM::Protocols::SASLauth` and `SASLauthclient`):
//! the saslauthd wire protocol, an authenticator serving it ([`Sasl`]), a
//! client asking it ([`SaslClient`]), and the RFC 4616 PLAIN message
//! ([`PlainCredentials`]).
//!
//! # The wire protocol
//!
//! The one saslauthd and pwcheck speak, for PLAIN (login and password)
//! checks by a daemon on the same machine, usually over a Unix-domain
//! socket. Every field is a 2-byte big-endian length and that many bytes.
//! A request is four fields: login, password, service (such as `imap`) and
//! realm (either may be empty). The reply is one field: `OK` or `NO`,
//! perhaps followed by a space and a reason. em's [`Sasl`] server takes
//! requests pipelined on one connection and replies in order; the real
//! saslauthd answers one request and closes its socket, so against it use
//! [`SaslClient::validate_once`] (one connection per request). There is no transport
//! security: keep it on a local socket.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::rc::Rc;

use bytes::{Buf, BufMut, BytesMut};
use em_core::{Conn, Connection, Deferred, Endpoint, UnbindReason};
use tokio_util::codec::{Decoder, Encoder};

/// A saslauthd request: the four fields, as text (RFC 4616 makes PLAIN's
/// identities and passwords UTF-8; a field that is not is
/// [`SaslError::InvalidUtf8`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SaslRequest {
    /// The user's login.
    pub login: String,
    /// The user's password.
    pub password: String,
    /// The service asking, such as `imap` or `smtp`; may be empty.
    pub service: String,
    /// The realm; may be empty.
    pub realm: String,
}

impl fmt::Debug for SaslRequest {
    /// Leaves the password out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslRequest")
            .field("login", &self.login)
            .field("password", &"…")
            .field("service", &self.service)
            .field("realm", &self.realm)
            .finish()
    }
}

/// A saslauthd reply: `OK` or `NO`, perhaps followed by a space and a
/// reason (real saslauthd says why it refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslReply {
    text: String,
}

impl SaslReply {
    /// `OK`: the credentials are good.
    pub fn ok() -> Self {
        SaslReply { text: "OK".into() }
    }

    /// `NO`: they are not.
    pub fn no() -> Self {
        SaslReply { text: "NO".into() }
    }

    /// `NO reason`.
    pub fn no_with_reason(reason: &str) -> Self {
        SaslReply {
            text: format!("NO {reason}"),
        }
    }

    /// Whether the reply says yes: it starts with `OK`.
    /// (EventMachine's client takes anything but exactly `NO` for yes, so a
    /// real saslauthd's `NO reason` passed; em does not.)
    pub fn is_ok(&self) -> bool {
        self.text.starts_with("OK")
    }

    /// The reply as sent.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The authenticator's side of the wire: decodes [`SaslRequest`]s, encodes
/// [`SaslReply`]s. A tokio-util codec, for [`Sasl`] or tokio's `Framed`.
/// A field longer than [`max_field_length`](Self::max_field_length) is
/// [`SaslError::FieldTooLong`] as soon as its length is read.
#[derive(Clone, Debug)]
pub struct SaslServerCodec {
    max_field_length: usize,
}

/// The client's side of the wire: encodes [`SaslRequest`]s, decodes
/// [`SaslReply`]s. A tokio-util codec, for [`SaslClient`] or tokio's
/// `Framed`.
#[derive(Clone, Debug)]
pub struct SaslClientCodec {
    max_field_length: usize,
}

macro_rules! field_limit {
    ($codec:ident) => {
        impl Default for $codec {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $codec {
            /// The default longest field, in bytes: 8 KiB (a password that
            /// is a bearer token fits). EventMachine's limit, 128 KiB, is
            /// more than a 2-byte length can say, so it never applied.
            pub const DEFAULT_MAX_FIELD_LENGTH: usize = 8 * 1024;

            /// A codec whose fields may be up to
            /// [`DEFAULT_MAX_FIELD_LENGTH`](Self::DEFAULT_MAX_FIELD_LENGTH)
            /// bytes.
            pub fn new() -> Self {
                $codec {
                    max_field_length: Self::DEFAULT_MAX_FIELD_LENGTH,
                }
            }

            /// The longest field, in bytes, decoded or encoded.
            pub fn max_field_length(&self) -> usize {
                self.max_field_length
            }

            /// Sets the longest field, in bytes (at most 65,535, what the
            /// 2-byte length can say; more is taken as 65,535).
            pub fn set_max_field_length(&mut self, max: usize) {
                self.max_field_length = max.min(usize::from(u16::MAX));
            }
        }
    };
}

field_limit!(SaslServerCodec);
field_limit!(SaslClientCodec);

/// Reads `N` fields from the front of `buf`, or `None` until they are all
/// there. A length over `max` fails as soon as it is seen.
fn decode_fields<const N: usize>(
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<[String; N]>, SaslError> {
    let mut spans = [(0, 0); N];
    let mut pos = 0;
    for span in &mut spans {
        let Some(prefix) = buf.get(pos..pos + 2) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        if len > max {
            return Err(SaslError::FieldTooLong { len, max });
        }
        *span = (pos + 2, pos + 2 + len);
        pos += 2 + len;
    }
    if buf.len() < pos {
        buf.reserve(pos - buf.len());
        return Ok(None);
    }
    let fields = spans.map(|(start, end)| String::from_utf8(buf[start..end].to_vec()));
    buf.advance(pos);
    if fields.iter().any(Result::is_err) {
        return Err(SaslError::InvalidUtf8);
    }
    Ok(Some(fields.map(|f| f.expect("checked"))))
}

fn encode_field(field: &str, max: usize, dst: &mut BytesMut) -> Result<(), SaslError> {
    let len = field.len();
    if len > max || len > usize::from(u16::MAX) {
        return Err(SaslError::FieldTooLong { len, max });
    }
    dst.put_u16(len as u16);
    dst.put_slice(field.as_bytes());
    Ok(())
}

/// At the end of the stream, bytes of an unfinished request or reply are
/// [`SaslError::Truncated`].
fn eof<T>(decoded: Option<T>, buf: &BytesMut) -> Result<Option<T>, SaslError> {
    match decoded {
        None if !buf.is_empty() => Err(SaslError::Truncated),
        decoded => Ok(decoded),
    }
}

impl Decoder for SaslServerCodec {
    type Item = SaslRequest;
    type Error = SaslError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<SaslRequest>, SaslError> {
        Ok(decode_fields::<4>(buf, self.max_field_length)?.map(
            |[login, password, service, realm]| SaslRequest {
                login,
                password,
                service,
                realm,
            },
        ))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<SaslRequest>, SaslError> {
        let decoded = self.decode(buf)?;
        eof(decoded, buf)
    }
}

impl Encoder<SaslReply> for SaslServerCodec {
    type Error = SaslError;

    fn encode(&mut self, reply: SaslReply, dst: &mut BytesMut) -> Result<(), SaslError> {
        encode_field(&reply.text, self.max_field_length, dst)
    }
}

impl Decoder for SaslClientCodec {
    type Item = SaslReply;
    type Error = SaslError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<SaslReply>, SaslError> {
        Ok(decode_fields::<1>(buf, self.max_field_length)?.map(|[text]| SaslReply { text }))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<SaslReply>, SaslError> {
        let decoded = self.decode(buf)?;
        eof(decoded, buf)
    }
}

impl Encoder<&SaslRequest> for SaslClientCodec {
    type Error = SaslError;

    /// Writes all four fields or, when one is too long, nothing.
    fn encode(&mut self, req: &SaslRequest, dst: &mut BytesMut) -> Result<(), SaslError> {
        let mut out = BytesMut::with_capacity(
            8 + req.login.len() + req.password.len() + req.service.len() + req.realm.len(),
        );
        for field in [&req.login, &req.password, &req.service, &req.realm] {
            encode_field(field, self.max_field_length, &mut out)?;
        }
        dst.unsplit(out);
        Ok(())
    }
}

impl Encoder<SaslRequest> for SaslClientCodec {
    type Error = SaslError;

    fn encode(&mut self, req: SaslRequest, dst: &mut BytesMut) -> Result<(), SaslError> {
        self.encode(&req, dst)
    }
}

/// Decides whether credentials are good: the user's half of [`Sasl`]
/// (EventMachine's `validate(username, psw, sysname, realm)` that a
/// `SASLauth` class overrides). Runs on the reactor thread, once per
/// request, in order; it must not block (hand slow checks to `em::defer`
/// in a handler of your own over [`SaslServerCodec`]).
pub trait SaslValidator: 'static {
    /// Whether `login` may log in to `service` in `realm` with `password`.
    fn validate(&mut self, login: &str, password: &str, service: &str, realm: &str) -> bool;
}

/// The authenticator: an em [`Connection`] that answers saslauthd requests
/// with its [`SaslValidator`]'s verdict (EventMachine's `SASLauth`). One per
/// connection: give [`start_server`](em_core::start_server) or
/// [`start_unix_domain_server`](em_core::start_unix_domain_server) a factory.
///
/// Each request is answered `OK` or `NO`, in order, pipelined requests
/// included. A request that breaks the framing (a field over
/// [`max_field_length`](SaslServerCodec::max_field_length), text that is not
/// UTF-8, a stream that ends inside a request) ends that connection only,
/// with `UnbindReason::Codec`. As in EventMachine there is no timeout
/// (use `Conn::set_comm_inactivity_timeout` from a handler of your own).
///
/// ```
/// use em_protocols::Sasl;
///
/// em_core::run(|| -> em_core::Result<()> {
///     let server = em_core::start_server("127.0.0.1:0", || {
///         Sasl::from_fn(|login, password, _service, _realm| login == "alice" && password == "secret")
///     })?;
///     tracing::info!(addr = %server.local_addr(), "authenticator up");
///     em_core::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct Sasl {
    validator: Box<dyn SaslValidator>,
    codec: SaslServerCodec,
}

impl Sasl {
    /// An authenticator asking `validator`.
    pub fn new(validator: impl SaslValidator) -> Self {
        Sasl {
            validator: Box::new(validator),
            codec: SaslServerCodec::new(),
        }
    }

    /// An authenticator asking the closure `validate(login, password,
    /// service, realm)`.
    pub fn from_fn(validate: impl FnMut(&str, &str, &str, &str) -> bool + 'static) -> Self {
        struct FnValidator<F>(F);
        impl<F: FnMut(&str, &str, &str, &str) -> bool + 'static> SaslValidator for FnValidator<F> {
            fn validate(
                &mut self,
                login: &str,
                password: &str,
                service: &str,
                realm: &str,
            ) -> bool {
                (self.0)(login, password, service, realm)
            }
        }
        Self::new(FnValidator(validate))
    }

    /// Sets the longest field a request may have, in bytes (default
    /// [`SaslServerCodec::DEFAULT_MAX_FIELD_LENGTH`]).
    pub fn with_max_field_length(mut self, max: usize) -> Self {
        self.codec.set_max_field_length(max);
        self
    }
}

impl Connection for Sasl {
    type Codec = SaslServerCodec;

    fn codec(&self) -> SaslServerCodec {
        self.codec.clone()
    }

    fn receive_data(&mut self, conn: &Conn<SaslServerCodec>, req: SaslRequest) {
        let ok = self
            .validator
            .validate(&req.login, &req.password, &req.service, &req.realm);
        tracing::debug!(conn = %conn.id(), login = %req.login, service = %req.service, ok, "SASL check");
        conn.send_data(if ok { SaslReply::ok() } else { SaslReply::no() });
    }
}

impl fmt::Debug for Sasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sasl")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

type Pending = Rc<RefCell<VecDeque<Deferred<bool, SaslError>>>>;

/// A client of a saslauthd-protocol authenticator (EventMachine's
/// `SASLauthclient`): one connection on which each
/// [`validate`](Self::validate) sends a request and returns a
/// [`Deferred`] of the answer. Requests are pipelined; answers resolve them
/// in order. A cheap `Clone` handle, `!Send`, reactor thread only.
///
/// Each deferred succeeds with `true` (`OK`) or `false` (`NO`), or fails
/// with a [`SaslError`] when no answer can come: [`SaslError::Closed`] when
/// the connection ended first (a failed connect included), saying why.
///
/// ```
/// use em_protocols::{Sasl, SaslClient};
///
/// em_core::run(|| -> em_core::Result<()> {
///     let server = em_core::start_server("127.0.0.1:0", || {
///         Sasl::from_fn(|login, password, _, _| login == "alice" && password == "secret")
///     })?;
///     let client = SaslClient::connect(server.local_addr())?;
///     client.validate("alice", "secret", "imap", "").callback(move |&ok| {
///         assert!(ok);
///         em_core::stop();
///     });
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
#[derive(Clone)]
pub struct SaslClient {
    conn: Conn<SaslClientCodec>,
    pending: Pending,
}

impl SaslClient {
    /// Connects to the authenticator at `addr` (a `host:port`, an `Addr`,
    /// `Endpoint::unix(path)`…). Reactor thread only. Errors as
    /// [`em_core::connect`]; a connect that fails later fails the
    /// requests already made with [`SaslError::Closed`].
    pub fn connect(addr: impl Into<Endpoint>) -> em_core::Result<SaslClient> {
        let pending = Pending::default();
        let conn = em_core::connect(
            addr,
            ClientHandler {
                pending: pending.clone(),
            },
        )?;
        Ok(SaslClient { conn, pending })
    }

    /// Asks whether `login` may log in to `service` in `realm` with
    /// `password` (EventMachine's `validate?`; `service` and `realm` may be
    /// empty). The deferred fails at once with [`SaslError::FieldTooLong`]
    /// for a field over the limit, or [`SaslError::Closed`] on a closed
    /// connection.
    pub fn validate(
        &self,
        login: &str,
        password: &str,
        service: &str,
        realm: &str,
    ) -> Deferred<bool, SaslError> {
        let answer = Deferred::new();
        let req = SaslRequest {
            login: login.into(),
            password: password.into(),
            service: service.into(),
            realm: realm.into(),
        };
        // Checked here, so that the error is typed (the connection's
        // encoder would say the same in an `em_core::Error`).
        let max = self
            .conn
            .with_codec(|c| c.max_field_length())
            .unwrap_or(SaslClientCodec::DEFAULT_MAX_FIELD_LENGTH);
        let mut check = BytesMut::new();
        for field in [login, password, service, realm] {
            if let Err(e) = encode_field(field, max, &mut check) {
                answer.fail(e);
                return answer;
            }
        }
        match self.conn.try_send_data(&req) {
            Ok(_) => self.pending.borrow_mut().push_back(answer.clone()),
            Err(e) => {
                answer.fail(SaslError::Closed(e.to_string()));
            }
        }
        answer
    }

    /// Connects to `addr`, asks once, and closes the connection once
    /// answered: [`connect`](Self::connect) then [`validate`](Self::validate)
    /// in one call. A connect that cannot start fails the deferred with
    /// [`SaslError::Closed`].
    pub fn validate_once(
        addr: impl Into<Endpoint>,
        login: &str,
        password: &str,
        service: &str,
        realm: &str,
    ) -> Deferred<bool, SaslError> {
        match SaslClient::connect(addr) {
            Ok(client) => {
                let answer = client.validate(login, password, service, realm);
                answer.completion(move |_| client.close());
                answer
            }
            Err(e) => {
                let answer = Deferred::new();
                answer.fail(SaslError::Closed(e.to_string()));
                answer
            }
        }
    }

    /// Closes the connection once the requests already queued are written;
    /// unanswered ones fail with [`SaslError::Closed`].
    pub fn close(&self) {
        self.conn.close_connection_after_writing();
    }

    /// The em connection underneath.
    pub fn conn(&self) -> &Conn<SaslClientCodec> {
        &self.conn
    }
}

impl fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslClient")
            .field("conn", &self.conn.id())
            .field("pending", &self.pending.borrow().len())
            .finish()
    }
}

/// The connection under a [`SaslClient`].
struct ClientHandler {
    pending: Pending,
}

impl Connection for ClientHandler {
    type Codec = SaslClientCodec;

    fn codec(&self) -> SaslClientCodec {
        SaslClientCodec::new()
    }

    fn receive_data(&mut self, conn: &Conn<SaslClientCodec>, reply: SaslReply) {
        let next = self.pending.borrow_mut().pop_front();
        match next {
            Some(answer) => {
                answer.succeed(reply.is_ok());
            }
            None => {
                tracing::debug!(conn = %conn.id(), reply = reply.text(), "SASL reply to no request: closing");
                conn.close_connection();
            }
        }
    }

    fn unbind(&mut self, _: &Conn<SaslClientCodec>, reason: UnbindReason) {
        let unanswered: Vec<_> = self.pending.borrow_mut().drain(..).collect();
        for answer in unanswered {
            answer.fail(SaslError::Closed(reason.to_string()));
        }
    }
}

/// The RFC 4616 PLAIN message: `authzid NUL authcid NUL passwd`, what SMTP
/// `AUTH PLAIN` and IMAP `AUTHENTICATE PLAIN` carry (base64-encoded, which
/// is the protocol's business, not this type's). `authcid` is the login;
/// `authzid`, usually empty, the identity to act as.
///
/// ```
/// use em_protocols::PlainCredentials;
///
/// let creds = PlainCredentials::new("alice", "secret");
/// let msg = creds.encode()?;
/// assert_eq!(msg, b"\0alice\0secret");
/// assert_eq!(PlainCredentials::decode(&msg)?, creds);
/// # Ok::<(), em_protocols::SaslError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The authorization identity: whom to act as; empty for the login
    /// itself.
    pub authzid: String,
    /// The authentication identity: the login.
    pub authcid: String,
    /// The password.
    pub password: String,
}

impl PlainCredentials {
    /// Credentials for `authcid` with `password`, and no `authzid`.
    pub fn new(authcid: impl Into<String>, password: impl Into<String>) -> Self {
        PlainCredentials {
            authzid: String::new(),
            authcid: authcid.into(),
            password: password.into(),
        }
    }

    /// The message's bytes. Errors with [`SaslError::MalformedPlain`] when
    /// a field holds a NUL, or `authcid` or `password` is empty (RFC 4616
    /// requires both).
    pub fn encode(&self) -> Result<Vec<u8>, SaslError> {
        if [&self.authzid, &self.authcid, &self.password]
            .iter()
            .any(|f| f.contains('\0'))
        {
            return Err(SaslError::MalformedPlain("a field holds a NUL"));
        }
        if self.authcid.is_empty() || self.password.is_empty() {
            return Err(SaslError::MalformedPlain(
                "the login and the password must not be empty",
            ));
        }
        Ok([
            self.authzid.as_bytes(),
            b"\0",
            self.authcid.as_bytes(),
            b"\0",
            self.password.as_bytes(),
        ]
        .concat())
    }

    /// Reads a message (already base64-decoded). Errors with
    /// [`SaslError::MalformedPlain`] unless it is three NUL-separated
    /// fields with a non-empty `authcid` and `password`, and with
    /// [`SaslError::InvalidUtf8`] when a field is not UTF-8.
    pub fn decode(message: &[u8]) -> Result<Self, SaslError> {
        let mut parts = message.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SaslError::MalformedPlain(
                "not three fields separated by NULs",
            ));
        };
        if authcid.is_empty() || password.is_empty() {
            return Err(SaslError::MalformedPlain(
                "the login and the password must not be empty",
            ));
        }
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::InvalidUtf8);
        Ok(PlainCredentials {
            authzid: text(authzid)?,
            authcid: text(authcid)?,
            password: text(password)?,
        })
    }
}

impl fmt::Debug for PlainCredentials {
    /// Leaves the password out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"…")
            .finish()
    }
}

/// What went wrong with SASL: a codec error (which ends the connection it
/// came from with `UnbindReason::Codec`), a malformed PLAIN message, or a
/// [`SaslClient`] request that got no answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum SaslError {
    /// A field longer than the codec's `max_field_length`.
    FieldTooLong {
        /// The field's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a request or a reply.
    Truncated,
    /// A field that is not UTF-8.
    InvalidUtf8,
    /// A PLAIN message that is not `authzid NUL authcid NUL passwd`; what is
    /// wrong, in words.
    MalformedPlain(&'static str),
    /// [`SaslClient`]: the connection ended, or was closed, before the
    /// answer came; why, in words (the `UnbindReason`).
    Closed(String),
    /// An I/O error from the transport under a `Framed`.
    Io(io::Error),
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::FieldTooLong { len, max } => {
                write!(f, "SASL field of {len} bytes, over the limit of {max}")
            }
            SaslError::Truncated => f.write_str("the stream ended inside a SASL request or reply"),
            SaslError::InvalidUtf8 => f.write_str("a SASL field is not UTF-8"),
            SaslError::MalformedPlain(what) => write!(f, "malformed PLAIN message: {what}"),
            SaslError::Closed(why) => write!(f, "no SASL answer: the connection ended ({why})"),
            SaslError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for SaslError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SaslError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SaslError {
    fn from(e: io::Error) -> Self {
        SaslError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_at_every_split() {
        let req = SaslRequest {
            login: "alice".into(),
            password: "pässword".into(),
            service: "imap".into(),
            realm: String::new(),
        };
        let mut wire = BytesMut::new();
        SaslClientCodec::new().encode(&req, &mut wire).unwrap();
        assert_eq!(&wire[..7], b"\0\x05alice");
        for split in 0..=wire.len() {
            let mut codec = SaslServerCodec::new();
            let mut buf = BytesMut::from(&wire[..split]);
            let first = codec.decode(&mut buf).unwrap();
            buf.extend_from_slice(&wire[split..]);
            let got = first.or_else(|| codec.decode(&mut buf).unwrap());
            assert_eq!(got.as_ref(), Some(&req), "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn limits_and_eof() {
        let mut codec = SaslServerCodec::new();
        codec.set_max_field_length(4);
        let mut buf = BytesMut::from(&b"\0\x05al"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(SaslError::FieldTooLong { len: 5, max: 4 })
        ));
        let mut buf = BytesMut::from(&b"\0\x02ab\0"[..]);
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(SaslError::Truncated)
        ));
        let mut buf = BytesMut::from(&b"\0\x01\xff\0\0\0\0\0\0"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(SaslError::InvalidUtf8)
        ));
        let mut reply = BytesMut::new();
        assert!(SaslServerCodec::new()
            .encode(
                SaslReply::no_with_reason("x".repeat(70_000).as_str()),
                &mut reply
            )
            .is_err());
    }

    #[test]
    fn replies() {
        let mut codec = SaslClientCodec::new();
        let mut buf = BytesMut::from(&b"\0\x02OK\0\x18NO authentication failed"[..]);
        let ok = codec.decode(&mut buf).unwrap().unwrap();
        let no = codec.decode(&mut buf).unwrap().unwrap();
        assert!(ok.is_ok());
        assert!(!no.is_ok());
        assert_eq!(no.text(), "NO authentication failed");
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn plain() {
        let c = PlainCredentials::decode(b"admin\0alice\0secret").unwrap();
        assert_eq!(c.authzid, "admin");
        assert_eq!(c.authcid, "alice");
        assert_eq!(c.password, "secret");
        assert_eq!(c.encode().unwrap(), b"admin\0alice\0secret");
        assert!(PlainCredentials::decode(b"\0alice").is_err());
        assert!(PlainCredentials::decode(b"\0alice\0pw\0x").is_err());
        assert!(PlainCredentials::decode(b"\0\0pw").is_err());
        assert!(PlainCredentials::new("a\0b", "pw").encode().is_err());
        assert!(!format!("{c:?}").contains("secret"));
    }
}
