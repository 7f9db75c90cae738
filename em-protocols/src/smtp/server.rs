//! `SmtpServer`: an ESMTP server as an em [`Connection`], calling an
//! [`SmtpHandler`]'s hooks (EventMachine's `EM::Protocols::SmtpServer`
//! overrides) for each command and for the message, and replying with the
//! codes of RFC 5321 and its extensions.
//!
//! The engine (`Inner`) sits behind an `Rc`, shared with the
//! [`SmtpResponder`](super::SmtpResponder)s of answers given later, which apply
//! their answer on a later tick and resume the connection.

use std::cell::{OnceCell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em_core::{Addr, Conn, Connection, TlsOptions, UnbindReason};

use super::answer::{Kind, SmtpAnswer, Verdict};
use super::auth;
use super::codec::{SmtpCodec, SmtpLine};
use super::reply::SmtpReply;

/// A message as the server received it: its envelope and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmtpMessage {
    /// The reverse path of `MAIL FROM`, without its angle brackets (empty
    /// for the null sender `<>` of bounces).
    pub sender: String,
    /// The recipients the handler accepted, in order.
    pub recipients: Vec<String>,
    /// The message (headers, a blank line, the body), dot-unstuffed, with
    /// its lines ended by CRLF, the final `.` line not included. A bare LF
    /// the client sent is kept as it came: it does not end a line (a `.`
    /// after it is neither unstuffed nor the end of the data).
    pub data: Bytes,
}

/// What a hook knows of its connection: the peer, the client's `EHLO`
/// domain, TLS, the authenticated user, the transaction so far.
pub struct SmtpSession<'a> {
    conn: &'a Conn<SmtpCodec>,
    state: &'a State,
}

impl SmtpSession<'_> {
    /// The connection, for everything else (its id, TLS details such as
    /// [`tls_protocol_version`](Conn::tls_protocol_version), timeouts).
    /// Send nothing on it: the server writes the replies.
    pub fn conn(&self) -> &Conn<SmtpCodec> {
        self.conn
    }

    /// The client's address.
    pub fn peer_addr(&self) -> Option<Addr> {
        self.conn.peer_addr()
    }

    /// The domain the client gave in `EHLO` or `HELO`, once accepted.
    pub fn ehlo_domain(&self) -> Option<&str> {
        self.state.ehlo.as_deref()
    }

    /// Whether the client said `EHLO` (rather than `HELO`).
    pub fn is_extended(&self) -> bool {
        self.state.extended
    }

    /// Whether the connection runs TLS (after `STARTTLS`).
    pub fn is_tls(&self) -> bool {
        self.conn.is_tls()
    }

    /// The user `AUTH` authenticated, if any.
    pub fn authenticated_user(&self) -> Option<&str> {
        self.state.user.as_deref()
    }

    /// The sender of the transaction under way, once `MAIL` was accepted.
    pub fn sender(&self) -> Option<&str> {
        self.state.sender.as_deref()
    }

    /// The recipients accepted so far in the transaction under way.
    pub fn recipients(&self) -> &[String] {
        &self.state.recipients
    }
}

impl fmt::Debug for SmtpSession<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSession")
            .field("conn", &self.conn.id())
            .field("ehlo", &self.state.ehlo)
            .field("user", &self.state.user)
            .field("sender", &self.state.sender)
            .field("recipients", &self.state.recipients)
            .finish()
    }
}

/// The hooks of an [`SmtpServer`] (EventMachine's `SmtpServer` methods to
/// override), called on the reactor thread in the order the client's
/// commands come. Every hook but [`receive_message`](Self::receive_message)
/// has a default.
///
/// Hooks that decide return an [`SmtpAnswer`]: accept, refuse, an exact
/// [`SmtpReply`], or [`SmtpAnswer::later`] to decide after the hook returned
/// (EventMachine's Deferrable). The server checks the command's syntax and
/// sequence first: a hook sees only commands it may accept.
pub trait SmtpHandler: 'static {
    /// `EHLO` or `HELO` with the client's `domain`
    /// ([`SmtpSession::is_extended`] tells which). Accepted: the server
    /// replies with its domain (and, for `EHLO`, its extensions) and any
    /// transaction under way is dropped. Refused: `550 5.7.1`. Default:
    /// accept.
    fn receive_ehlo_domain(&mut self, session: &SmtpSession<'_>, domain: &str) -> SmtpAnswer {
        let _ = (session, domain);
        SmtpAnswer::accept()
    }

    /// `AUTH PLAIN` or `AUTH LOGIN` gave `user` and `password` (only when
    /// [`SmtpServerOptions::auth`] is on). Accepted: `235 2.7.0`, and
    /// [`SmtpSession::authenticated_user`] is `user` from then on. Refused:
    /// `535 5.7.8`. Default: **refuse** (EventMachine accepts anyone; a
    /// server that turns AUTH on says whom it lets in).
    fn receive_plain_auth(
        &mut self,
        session: &SmtpSession<'_>,
        user: &str,
        password: &str,
    ) -> SmtpAnswer {
        let _ = (session, user, password);
        SmtpAnswer::refuse()
    }

    /// `MAIL FROM:<sender>` (empty for `<>`). Accepted: `250 2.1.0`.
    /// Refused: `550 5.7.1`. Default: accept.
    fn receive_sender(&mut self, session: &SmtpSession<'_>, sender: &str) -> SmtpAnswer {
        let _ = (session, sender);
        SmtpAnswer::accept()
    }

    /// `RCPT TO:<recipient>`, once per recipient. Accepted: `250 2.1.5`,
    /// and the recipient is in the [`SmtpMessage`]. Refused: `550 5.1.1`, and
    /// the client may go on with the others. Default: accept.
    fn receive_recipient(&mut self, session: &SmtpSession<'_>, recipient: &str) -> SmtpAnswer {
        let _ = (session, recipient);
        SmtpAnswer::accept()
    }

    /// `DATA`, after at least one accepted recipient. Accepted: `354`, and
    /// the message follows. Refused: `554 5.7.1`. Default: accept.
    fn receive_data_command(&mut self, session: &SmtpSession<'_>) -> SmtpAnswer {
        let _ = session;
        SmtpAnswer::accept()
    }

    /// A piece of the message as it arrives: one line, dot-unstuffed, with
    /// its CRLF (for handlers that stream a message to disk). Not called
    /// once the message has passed the size limit. Default: nothing.
    fn receive_data_chunk(&mut self, session: &SmtpSession<'_>, chunk: &[u8]) {
        let _ = (session, chunk);
    }

    /// The whole message, after its final `.` line. Accepted:
    /// `250 2.0.0 Message accepted`. Refused: `554 5.7.1`. Either way the
    /// transaction ends, and the client may send the next `MAIL`.
    fn receive_message(&mut self, session: &SmtpSession<'_>, message: SmtpMessage) -> SmtpAnswer;

    /// `RSET`: the transaction under way (if any) is dropped. The reply is
    /// always `250 2.0.0`.
    fn receive_reset(&mut self, session: &SmtpSession<'_>) {
        let _ = session;
    }

    /// The connection ended (EventMachine's `connection_ended`), and why.
    fn connection_ended(&mut self, session: &SmtpSession<'_>, reason: &UnbindReason) {
        let _ = (session, reason);
    }
}

/// The options of an [`SmtpServer`], shared by its connections (cheap to
/// clone). Build them once, on any thread.
///
/// ```
/// use em_protocols::SmtpServerOptions;
///
/// let options = SmtpServerOptions::new()
///     .domain("mx.example.org")
///     .max_message_size(1024 * 1024)
///     .auth(true);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct SmtpServerOptions {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    domain: String,
    greeting: String,
    max_message_size: usize,
    max_line_length: usize,
    max_recipients: usize,
    timeout: Duration,
    tls: Option<TlsOptions>,
    auth: bool,
    require_tls: bool,
    require_auth: bool,
}

impl Default for SmtpServerOptions {
    fn default() -> Self {
        SmtpServerOptions::new()
    }
}

impl SmtpServerOptions {
    /// The largest message accepted unless set otherwise: 10 MiB
    /// (announced as `SIZE 10485760`).
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

    /// The most recipients per message unless set otherwise: 100, the
    /// least RFC 5321 §4.5.3.1.8 lets a server accept.
    pub const DEFAULT_MAX_RECIPIENTS: usize = 100;

    /// How long a server waits for a client that sends nothing, unless
    /// set otherwise: 5 minutes (RFC 5321 §4.5.3.2.7).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

    /// The defaults: domain `localhost`, no TLS, no AUTH, messages up to
    /// [`DEFAULT_MAX_MESSAGE_SIZE`](Self::DEFAULT_MAX_MESSAGE_SIZE), lines
    /// up to [`SmtpCodec::DEFAULT_MAX_LINE_LENGTH`],
    /// [`DEFAULT_MAX_RECIPIENTS`](Self::DEFAULT_MAX_RECIPIENTS)
    /// recipients, [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT).
    pub fn new() -> SmtpServerOptions {
        SmtpServerOptions {
            config: Arc::new(Config {
                domain: "localhost".into(),
                greeting: "ESMTP em".into(),
                max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
                max_line_length: SmtpCodec::DEFAULT_MAX_LINE_LENGTH,
                max_recipients: Self::DEFAULT_MAX_RECIPIENTS,
                timeout: Self::DEFAULT_TIMEOUT,
                tls: None,
                auth: false,
                require_tls: false,
                require_auth: false,
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> SmtpServerOptions {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// The server's domain (EventMachine's `get_server_domain`): first in
    /// the greeting and in the `EHLO` reply.
    pub fn domain(self, domain: impl Into<String>) -> SmtpServerOptions {
        let domain = domain.into();
        self.with(|c| c.domain = domain)
    }

    /// The greeting's text after the domain (EventMachine's
    /// `get_server_greeting`): `220 DOMAIN GREETING`. Default `ESMTP em`.
    pub fn greeting(self, greeting: impl Into<String>) -> SmtpServerOptions {
        let greeting = greeting.into();
        self.with(|c| c.greeting = greeting)
    }

    /// The largest message accepted, in bytes after dot-unstuffing
    /// (announced as `SIZE`). A `MAIL FROM` whose `SIZE=` says more is
    /// refused at once, and a message that grows past it is refused after
    /// its final `.` line; both with `552 5.3.4`, and the connection stays.
    pub fn max_message_size(self, bytes: usize) -> SmtpServerOptions {
        self.with(|c| c.max_message_size = bytes)
    }

    /// The longest line, commands and message lines alike, line ending not
    /// counted. A longer command is answered `500 5.5.2 Line too long`; a
    /// message with a longer line is refused after its final `.` line with
    /// the same reply. **The connection stays open** either way (the rest
    /// of the line is dropped as it arrives, so memory stays bounded).
    pub fn max_line_length(self, bytes: usize) -> SmtpServerOptions {
        self.with(|c| c.max_line_length = bytes)
    }

    /// The most recipients per message; the next `RCPT` gets
    /// `452 4.5.3 Too many recipients` (a client sends the rest in another
    /// transaction).
    pub fn max_recipients(self, n: usize) -> SmtpServerOptions {
        self.with(|c| c.max_recipients = n)
    }

    /// How long a client may send nothing before it is disconnected
    /// ([`Conn::set_comm_inactivity_timeout`]); `Duration::ZERO` for never.
    pub fn timeout(self, timeout: Duration) -> SmtpServerOptions {
        self.with(|c| c.timeout = timeout)
    }

    /// Offers `STARTTLS` with these options (a certificate and its key):
    /// on `STARTTLS`, `220`, then [`Conn::start_tls`]; the client starts
    /// over with `EHLO` on the encrypted connection (RFC 3207: the server
    /// forgets the `EHLO` domain, the authentication and the transaction).
    /// Check them at start with [`TlsOptions::check_server`]: a bad
    /// certificate found at `STARTTLS` closes that connection.
    pub fn tls(self, options: TlsOptions) -> SmtpServerOptions {
        self.with(|c| c.tls = Some(options))
    }

    /// Offers `AUTH PLAIN LOGIN`; the credentials go to
    /// [`SmtpHandler::receive_plain_auth`]. Both mechanisms send the
    /// password in the clear: pair it with [`tls`](Self::tls) and
    /// [`require_tls`](Self::require_tls) outside tests.
    pub fn auth(self, on: bool) -> SmtpServerOptions {
        self.with(|c| c.auth = on)
    }

    /// `MAIL` and `AUTH` before `STARTTLS` get
    /// `530 5.7.0 Must issue a STARTTLS command first`, and AUTH is
    /// offered only over TLS.
    pub fn require_tls(self, on: bool) -> SmtpServerOptions {
        self.with(|c| c.require_tls = on)
    }

    /// `MAIL` before a successful `AUTH` gets
    /// `530 5.7.0 Authentication required`.
    pub fn require_auth(self, on: bool) -> SmtpServerOptions {
        self.with(|c| c.require_auth = on)
    }
}

/// An ESMTP server connection (EventMachine's
/// `EM::Protocols::SmtpServer`): give [`em::start_server`] a factory of
/// these, each with its [`SmtpHandler`].
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use em_protocols::{SmtpAnswer, SmtpMessage, SmtpSession, SmtpHandler, SmtpServer, SmtpServerOptions};
///
/// /// Keeps every message; refuses mail for `nobody@`.
/// struct Sink(Rc<RefCell<Vec<SmtpMessage>>>);
///
/// impl SmtpHandler for Sink {
///     fn receive_recipient(&mut self, _: &SmtpSession<'_>, rcpt: &str) -> SmtpAnswer {
///         (!rcpt.starts_with("nobody@")).into()
///     }
///     fn receive_message(&mut self, _: &SmtpSession<'_>, message: SmtpMessage) -> SmtpAnswer {
///         self.0.borrow_mut().push(message);
///         SmtpAnswer::accept()
///     }
/// }
///
/// em_core::run(|| -> em_core::Result<()> {
///     let inbox = Rc::new(RefCell::new(Vec::new()));
///     let options = SmtpServerOptions::new().domain("mx.example.org");
///     let server = em_core::start_server("127.0.0.1:0", move || {
///         SmtpServer::new_with_options(Sink(inbox.clone()), &options)
///     })?;
///     # server.stop(); em_core::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
///
/// # The conversation
///
/// The greeting `220 DOMAIN GREETING` goes out in `post_init`. Then, per
/// command (verbs in any case):
///
/// | Command | Reply |
/// |---|---|
/// | `EHLO d` | `250-DOMAIN`, `SIZE n`, `8BITMIME`, `PIPELINING`, `ENHANCEDSTATUSCODES`, `AUTH PLAIN LOGIN` (when on), `STARTTLS` (with TLS options, until TLS runs), `HELP` |
/// | `HELO d` | `250 DOMAIN` |
/// | `MAIL FROM:<a> [SIZE=n] [BODY=8BITMIME\|7BIT] [AUTH=…]` | `250`; `503` before `EHLO`/`HELO` or inside a transaction; `552` for a `SIZE` over the limit; `555` for another parameter; `530` while TLS or AUTH is required and missing; `501` for bad syntax |
/// | `RCPT TO:<a>` | `250`; `503` before `MAIL`; `452` past the recipient limit |
/// | `DATA` | `354`, then the message up to a `.` line, then `250` (or `552`, `500`); `503` before `MAIL` or `RCPT`, `554` when every recipient was refused |
/// | `RSET`, `NOOP`, `QUIT` | `250`, `250`, `221` and the close |
/// | `VRFY a` | `252` (RFC 5321 §3.5.3: nothing is verified) |
/// | `HELP` | `214` and the commands |
/// | `STARTTLS` | `220` and the handshake; `502` without TLS options, `503` before `EHLO` or once TLS runs |
/// | `AUTH PLAIN [r]`, `AUTH LOGIN [r]` | `334` prompts, then `235` or `535`; `502` when AUTH is off, `503` before `EHLO`, once authenticated or inside a transaction, `504` for another mechanism, `501` for a response that is not base64 (or `*`, which cancels) |
/// | `EXPN`, `TURN`, `ETRN`, `BDAT`, … | `502` |
/// | anything else, an empty line | `500` |
/// | a line too long | `500`; the connection stays |
///
/// Replies carry enhanced status codes (RFC 3463). Pipelined commands
/// (RFC 2920) are answered in order; the replies to one batch leave
/// together.
///
/// # Answers given later
///
/// A hook that returns [`SmtpAnswer::later`] pauses the connection until its
/// [`SmtpResponder`](super::SmtpResponder) answers: commands pipelined behind it
/// wait unread, the reply goes out when the answer comes, then the next
/// commands are read. One command waits at a time, so replies stay in
/// order.
///
/// [`em::start_server`]: em_core::start_server
pub struct SmtpServer<H: SmtpHandler> {
    inner: Rc<Inner<H>>,
}

impl<H: SmtpHandler> SmtpServer<H> {
    /// A server connection with the default [`SmtpServerOptions`].
    pub fn new(handler: H) -> SmtpServer<H> {
        SmtpServer::new_with_options(handler, &SmtpServerOptions::new())
    }

    /// A server connection with `options`.
    pub fn new_with_options(handler: H, options: &SmtpServerOptions) -> SmtpServer<H> {
        SmtpServer {
            inner: Rc::new(Inner {
                handler: RefCell::new(handler),
                state: RefCell::new(State::default()),
                config: options.config.clone(),
                conn: OnceCell::new(),
            }),
        }
    }
}

impl<H: SmtpHandler> fmt::Debug for SmtpServer<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpServer")
            .field("domain", &self.inner.config.domain)
            .field("conn", &self.inner.conn.get().map(Conn::id))
            .finish_non_exhaustive()
    }
}

impl<H: SmtpHandler> Connection for SmtpServer<H> {
    type Codec = SmtpCodec;

    fn codec(&self) -> SmtpCodec {
        SmtpCodec::new_with_max_length(self.inner.config.max_line_length)
    }

    fn post_init(&mut self, conn: &Conn<SmtpCodec>) {
        let _ = self.inner.conn.set(conn.clone());
        let config = &self.inner.config;
        if !config.timeout.is_zero() {
            conn.set_comm_inactivity_timeout(config.timeout);
        }
        conn.send_data(SmtpReply::new(
            220,
            format!("{} {}", config.domain, config.greeting),
        ));
    }

    fn receive_data(&mut self, conn: &Conn<SmtpCodec>, line: SmtpLine) {
        Inner::receive(&self.inner, conn, line);
    }

    fn unbind(&mut self, conn: &Conn<SmtpCodec>, reason: UnbindReason) {
        tracing::debug!(conn = %conn.id(), %reason, "SMTP session ended");
        let state = self.inner.state.borrow();
        let session = SmtpSession {
            conn,
            state: &state,
        };
        self.inner
            .handler
            .borrow_mut()
            .connection_ended(&session, &reason);
    }
}

/// Where the conversation is.
#[derive(Debug, Default)]
struct State {
    ehlo: Option<String>,
    extended: bool,
    user: Option<String>,
    /// An `AUTH` exchange under way: the next line is its response.
    auth: AuthStep,
    /// The transaction: `MAIL` accepted.
    sender: Option<String>,
    recipients: Vec<String>,
    /// A `RCPT` was refused in this transaction (for `DATA`'s reply).
    refused_recipient: bool,
    /// `DATA` accepted: the message's lines come.
    data: Option<DataState>,
    /// A hook's answer, awaited.
    awaiting: Option<Awaiting>,
}

impl State {
    /// Ends the transaction (after `RSET`, `EHLO`, a message).
    fn reset_transaction(&mut self) {
        self.sender = None;
        self.recipients.clear();
        self.refused_recipient = false;
        self.data = None;
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
enum AuthStep {
    #[default]
    None,
    /// `AUTH PLAIN` without an initial response: the response comes.
    Plain,
    /// `AUTH LOGIN`: the user name comes.
    LoginUser,
    /// `AUTH LOGIN`: the password for this user comes.
    LoginPassword(String),
}

#[derive(Debug, Default)]
struct DataState {
    message: BytesMut,
    size: usize,
    too_big: bool,
    too_long: bool,
    /// The line before did not end in CRLF (a bare LF, or a line too long
    /// whose ending is unknown): the next line does not start a line of
    /// the message as RFC 5321 counts them, so it is neither unstuffed nor
    /// taken for the final `.`.
    mid_line: bool,
}

/// The command whose hook's answer is awaited, with what applying it needs.
#[derive(Debug)]
enum Awaiting {
    Ehlo {
        domain: String,
        extended: bool,
        was_extended: bool,
    },
    Auth {
        user: String,
    },
    Mail {
        sender: String,
    },
    Rcpt {
        recipient: String,
    },
    Data,
    Message,
}

/// The engine: the handler, the conversation's state and the options.
struct Inner<H> {
    handler: RefCell<H>,
    state: RefCell<State>,
    config: Arc<Config>,
    conn: OnceCell<Conn<SmtpCodec>>,
}

fn reply(code: u16, text: &str) -> SmtpReply {
    SmtpReply::new(code, text)
}

/// The verbs this server knows but does not implement.
const NOT_IMPLEMENTED: &[&str] = &[
    "EXPN", "TURN", "ETRN", "ATRN", "BDAT", "SEND", "SOML", "SAML",
];

impl<H: SmtpHandler> Inner<H> {
    fn receive(this: &Rc<Self>, conn: &Conn<SmtpCodec>, line: SmtpLine) {
        let (in_data, in_auth) = {
            let state = this.state.borrow();
            (state.data.is_some(), state.auth != AuthStep::None)
        };
        if in_data {
            return Self::data_line(this, conn, line);
        }
        let line = match line {
            // A command's bare LF is forgiven.
            SmtpLine::Line(line) | SmtpLine::BareLf(line) => line,
            SmtpLine::TooLong => {
                this.state.borrow_mut().auth = AuthStep::None;
                conn.send_data(reply(500, "5.5.2 Line too long"));
                return;
            }
        };
        let text = String::from_utf8_lossy(&line);
        if in_auth {
            return Self::auth_response(this, conn, text.trim());
        }
        Self::command(this, conn, &text);
    }

    /// Calls a hook with the session.
    fn hook<R>(
        &self,
        conn: &Conn<SmtpCodec>,
        call: impl FnOnce(&mut H, &SmtpSession<'_>) -> R,
    ) -> R {
        let state = self.state.borrow();
        let session = SmtpSession {
            conn,
            state: &state,
        };
        call(&mut self.handler.borrow_mut(), &session)
    }

    fn command(this: &Rc<Self>, conn: &Conn<SmtpCodec>, text: &str) {
        let (verb, arg) = match text.split_once(' ') {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (text.trim(), ""),
        };
        let verb = verb.to_ascii_uppercase();
        let config = &this.config;
        match verb.as_str() {
            "EHLO" | "HELO" => {
                if arg.is_empty() {
                    conn.send_data(reply(501, &format!("5.5.4 Syntax: {verb} domain")));
                    return;
                }
                let domain = arg.split_whitespace().next().unwrap_or(arg).to_owned();
                let extended = verb == "EHLO";
                // The hook sees which greeting this is; a refusal puts the
                // previous one back.
                let was_extended =
                    std::mem::replace(&mut this.state.borrow_mut().extended, extended);
                let answer = this.hook(conn, |h, s| h.receive_ehlo_domain(s, &domain));
                Self::settle(
                    this,
                    conn,
                    answer,
                    Awaiting::Ehlo {
                        domain,
                        extended,
                        was_extended,
                    },
                );
            }
            "MAIL" => Self::mail(this, conn, arg),
            "RCPT" => Self::rcpt(this, conn, arg),
            "DATA" => {
                let state = this.state.borrow();
                let refusal = if !arg.is_empty() {
                    Some(reply(501, "5.5.4 Syntax: DATA"))
                } else if state.sender.is_none() {
                    Some(reply(503, "5.5.1 Bad sequence of commands: MAIL first"))
                } else if state.recipients.is_empty() && state.refused_recipient {
                    Some(reply(554, "5.5.1 No valid recipients"))
                } else if state.recipients.is_empty() {
                    Some(reply(503, "5.5.1 Bad sequence of commands: RCPT first"))
                } else {
                    None
                };
                drop(state);
                if let Some(r) = refusal {
                    conn.send_data(r);
                    return;
                }
                let answer = this.hook(conn, |h, s| h.receive_data_command(s));
                Self::settle(this, conn, answer, Awaiting::Data);
            }
            "RSET" => {
                if !arg.is_empty() {
                    conn.send_data(reply(501, "5.5.4 Syntax: RSET"));
                    return;
                }
                this.state.borrow_mut().reset_transaction();
                this.hook(conn, |h, s| h.receive_reset(s));
                conn.send_data(reply(250, "2.0.0 OK"));
            }
            "NOOP" => {
                conn.send_data(reply(250, "2.0.0 OK"));
            }
            "QUIT" => {
                conn.send_data(reply(
                    221,
                    &format!("2.0.0 {} closing connection", config.domain),
                ));
                conn.close_connection_after_writing();
            }
            "VRFY" => {
                if arg.is_empty() {
                    conn.send_data(reply(501, "5.5.4 Syntax: VRFY address"));
                } else {
                    conn.send_data(reply(
                        252,
                        "2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
                    ));
                }
            }
            "HELP" => {
                let mut commands =
                    String::from("HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
                if config.auth {
                    commands.push_str(" AUTH");
                }
                if config.tls.is_some() {
                    commands.push_str(" STARTTLS");
                }
                conn.send_data(reply(214, &format!("2.0.0 Commands: {commands}")));
            }
            "STARTTLS" => Self::starttls(this, conn, arg),
            "AUTH" => Self::auth(this, conn, arg),
            "" => {
                conn.send_data(reply(500, "5.5.2 Syntax error, command unrecognized"));
            }
            v if NOT_IMPLEMENTED.contains(&v) => {
                conn.send_data(reply(502, "5.5.1 Command not implemented"));
            }
            _ => {
                conn.send_data(reply(500, "5.5.2 Syntax error, command unrecognized"));
            }
        }
    }

    /// Whether `MAIL` or `AUTH` may go on as far as TLS and AUTH go; if
    /// not, the refusal is sent.
    fn required_done(&self, conn: &Conn<SmtpCodec>, for_mail: bool) -> bool {
        let config = &self.config;
        if config.require_tls && !conn.is_tls() {
            conn.send_data(reply(530, "5.7.0 Must issue a STARTTLS command first"));
            return false;
        }
        if for_mail && config.require_auth && self.state.borrow().user.is_none() {
            conn.send_data(reply(530, "5.7.0 Authentication required"));
            return false;
        }
        true
    }

    fn mail(this: &Rc<Self>, conn: &Conn<SmtpCodec>, arg: &str) {
        {
            let state = this.state.borrow();
            if state.ehlo.is_none() {
                drop(state);
                conn.send_data(reply(
                    503,
                    "5.5.1 Bad sequence of commands: send HELO/EHLO first",
                ));
                return;
            }
            if state.sender.is_some() {
                drop(state);
                conn.send_data(reply(
                    503,
                    "5.5.1 Bad sequence of commands: nested MAIL command",
                ));
                return;
            }
        }
        if !this.required_done(conn, true) {
            return;
        }
        let Some((sender, params)) = parse_path(arg, "FROM:") else {
            conn.send_data(reply(501, "5.5.4 Syntax: MAIL FROM:<address>"));
            return;
        };
        for (key, value) in params {
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.and_then(|v| v.parse::<u64>().ok()) {
                    Some(n) if n > this.config.max_message_size as u64 => {
                        conn.send_data(reply(
                            552,
                            "5.3.4 Message size exceeds fixed maximum message size",
                        ));
                        return;
                    }
                    Some(_) => {}
                    None => {
                        conn.send_data(reply(501, "5.5.4 Syntax: SIZE=number"));
                        return;
                    }
                },
                "BODY"
                    if value.is_some_and(|v| {
                        v.eq_ignore_ascii_case("8BITMIME") || v.eq_ignore_ascii_case("7BIT")
                    }) => {}
                "AUTH" if this.config.auth => {}
                _ => {
                    conn.send_data(reply(
                        555,
                        &format!("5.5.4 MAIL parameter {key} not recognized"),
                    ));
                    return;
                }
            }
        }
        let answer = this.hook(conn, |h, s| h.receive_sender(s, &sender));
        Self::settle(this, conn, answer, Awaiting::Mail { sender });
    }

    fn rcpt(this: &Rc<Self>, conn: &Conn<SmtpCodec>, arg: &str) {
        {
            let state = this.state.borrow();
            if state.sender.is_none() {
                drop(state);
                conn.send_data(reply(503, "5.5.1 Bad sequence of commands: MAIL first"));
                return;
            }
            if state.recipients.len() >= this.config.max_recipients {
                drop(state);
                conn.send_data(reply(452, "4.5.3 Too many recipients"));
                return;
            }
        }
        let recipient = match parse_path(arg, "TO:") {
            Some((r, _)) if r.is_empty() => None,
            Some((r, params)) if params.is_empty() => Some(r),
            Some((_, params)) => {
                let (key, _) = params[0];
                conn.send_data(reply(
                    555,
                    &format!("5.5.4 RCPT parameter {key} not recognized"),
                ));
                return;
            }
            None => None,
        };
        let Some(recipient) = recipient else {
            conn.send_data(reply(501, "5.5.4 Syntax: RCPT TO:<address>"));
            return;
        };
        let answer = this.hook(conn, |h, s| h.receive_recipient(s, &recipient));
        Self::settle(this, conn, answer, Awaiting::Rcpt { recipient });
    }

    fn starttls(this: &Rc<Self>, conn: &Conn<SmtpCodec>, arg: &str) {
        let Some(tls) = &this.config.tls else {
            conn.send_data(reply(502, "5.5.1 STARTTLS not available"));
            return;
        };
        if !arg.is_empty() {
            conn.send_data(reply(501, "5.5.4 Syntax: STARTTLS"));
        } else if conn.is_tls() {
            conn.send_data(reply(503, "5.5.1 TLS already active"));
        } else if this.state.borrow().ehlo.is_none() {
            conn.send_data(reply(
                503,
                "5.5.1 Bad sequence of commands: send EHLO first",
            ));
        } else {
            // RFC 3207 §4.2: the client starts over.
            {
                let mut state = this.state.borrow_mut();
                state.reset_transaction();
                state.ehlo = None;
                state.extended = false;
                state.user = None;
            }
            // Queued before `start_tls`, so it leaves in plain text.
            conn.send_data(reply(220, "2.0.0 Ready to start TLS"));
            if let Err(e) = conn.start_tls(tls) {
                tracing::warn!(conn = %conn.id(), error = %e, "STARTTLS: start_tls failed; closing");
                conn.close_connection();
            }
        }
    }

    fn auth(this: &Rc<Self>, conn: &Conn<SmtpCodec>, arg: &str) {
        if !this.config.auth {
            conn.send_data(reply(502, "5.5.1 AUTH not available"));
            return;
        }
        {
            let state = this.state.borrow();
            let refusal = if state.ehlo.is_none() {
                Some("5.5.1 Bad sequence of commands: send EHLO first")
            } else if state.user.is_some() {
                Some("5.5.1 Already authenticated")
            } else if state.sender.is_some() {
                Some("5.5.1 AUTH not allowed during a mail transaction")
            } else {
                None
            };
            drop(state);
            if let Some(text) = refusal {
                conn.send_data(reply(503, text));
                return;
            }
        }
        if !this.required_done(conn, false) {
            return;
        }
        let mut words = arg.split_whitespace();
        let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next();
        if words.next().is_some() {
            conn.send_data(reply(
                501,
                "5.5.4 Syntax: AUTH mechanism [initial-response]",
            ));
            return;
        }
        match (mechanism.as_str(), initial) {
            ("PLAIN", Some(response)) => Self::auth_plain(this, conn, response),
            ("PLAIN", None) => {
                this.state.borrow_mut().auth = AuthStep::Plain;
                conn.send_data(reply(334, ""));
            }
            ("LOGIN", Some(response)) => Self::login_user(this, conn, response),
            ("LOGIN", None) => {
                this.state.borrow_mut().auth = AuthStep::LoginUser;
                conn.send_data(reply(334, auth::LOGIN_USERNAME));
            }
            ("", _) => {
                conn.send_data(reply(501, "5.5.4 Syntax: AUTH mechanism"));
            }
            _ => {
                conn.send_data(reply(504, "5.5.4 Unrecognized authentication type"));
            }
        }
    }

    fn auth_response(this: &Rc<Self>, conn: &Conn<SmtpCodec>, response: &str) {
        let step = std::mem::take(&mut this.state.borrow_mut().auth);
        if response == "*" {
            conn.send_data(reply(501, "5.0.0 Authentication cancelled"));
            return;
        }
        match step {
            AuthStep::None => {}
            AuthStep::Plain => Self::auth_plain(this, conn, response),
            AuthStep::LoginUser => Self::login_user(this, conn, response),
            AuthStep::LoginPassword(user) => match auth::parse_login(response) {
                Some(password) => Self::check_credentials(this, conn, user, &password),
                None => {
                    conn.send_data(reply(501, "5.5.2 Cannot decode response"));
                }
            },
        }
    }

    fn auth_plain(this: &Rc<Self>, conn: &Conn<SmtpCodec>, response: &str) {
        match auth::parse_plain(response) {
            Some((user, password)) => Self::check_credentials(this, conn, user, &password),
            None => {
                conn.send_data(reply(501, "5.5.2 Cannot decode response"));
            }
        }
    }

    fn login_user(this: &Rc<Self>, conn: &Conn<SmtpCodec>, response: &str) {
        match auth::parse_login(response) {
            Some(user) => {
                this.state.borrow_mut().auth = AuthStep::LoginPassword(user);
                conn.send_data(reply(334, auth::LOGIN_PASSWORD));
            }
            None => {
                conn.send_data(reply(501, "5.5.2 Cannot decode response"));
            }
        }
    }

    fn check_credentials(this: &Rc<Self>, conn: &Conn<SmtpCodec>, user: String, password: &str) {
        let answer = this.hook(conn, |h, s| h.receive_plain_auth(s, &user, password));
        Self::settle(this, conn, answer, Awaiting::Auth { user });
    }

    /// A line of message data. The message ends only on a `.` line ended
    /// by CRLF after a line ended by CRLF (or after DATA): a `.` between
    /// bare LFs (`\n.\n`, `\n.\r\n`, `\r\n.\n`) is data, kept as
    /// it came, bare LFs included, so that no command can be smuggled
    /// in the data (the CVE-2023-51764 family). Bare LFs are accepted as
    /// data rather than refused.
    fn data_line(this: &Rc<Self>, conn: &Conn<SmtpCodec>, line: SmtpLine) {
        let (line, crlf) = match line {
            SmtpLine::Line(line) => (line, true),
            SmtpLine::BareLf(line) => (line, false),
            SmtpLine::TooLong => {
                if let Some(data) = this.state.borrow_mut().data.as_mut() {
                    data.too_long = true;
                    // Whether it ended in CRLF is not known: the next line
                    // cannot end the message.
                    data.mid_line = true;
                }
                return;
            }
        };
        let mid_line = {
            let mut state = this.state.borrow_mut();
            let Some(data) = state.data.as_mut() else {
                return;
            };
            std::mem::replace(&mut data.mid_line, !crlf)
        };
        if crlf && !mid_line && &line[..] == b"." {
            return Self::end_of_data(this, conn);
        }
        let unstuffed = if mid_line {
            &line[..]
        } else {
            line.strip_prefix(b".").unwrap_or(&line)
        };
        let ending: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let max = this.config.max_message_size;
        let chunk_at = {
            let mut state = this.state.borrow_mut();
            let Some(data) = state.data.as_mut() else {
                return;
            };
            data.size = data.size.saturating_add(unstuffed.len() + ending.len());
            if data.too_big || data.size > max {
                if !data.too_big {
                    data.too_big = true;
                    data.message = BytesMut::new();
                }
                return;
            }
            let at = data.message.len();
            data.message.extend_from_slice(unstuffed);
            data.message.extend_from_slice(ending);
            at
        };
        this.hook(conn, |h, s| {
            let chunk = &s.state.data.as_ref().expect("in DATA").message[chunk_at..];
            h.receive_data_chunk(s, chunk);
        });
    }

    fn end_of_data(this: &Rc<Self>, conn: &Conn<SmtpCodec>) {
        let message = {
            let mut state = this.state.borrow_mut();
            let data = state.data.take().unwrap_or_default();
            let refusal = if data.too_big {
                Some(reply(
                    552,
                    "5.3.4 Message size exceeds fixed maximum message size",
                ))
            } else if data.too_long {
                Some(reply(500, "5.5.2 Line too long"))
            } else {
                None
            };
            if let Some(r) = refusal {
                state.reset_transaction();
                drop(state);
                conn.send_data(r);
                return;
            }
            SmtpMessage {
                sender: state.sender.clone().unwrap_or_default(),
                recipients: state.recipients.clone(),
                data: data.message.freeze(),
            }
        };
        let answer = this.hook(conn, |h, s| h.receive_message(s, message));
        Self::settle(this, conn, answer, Awaiting::Message);
    }

    /// Applies a hook's answer now, or waits for it with the connection
    /// paused.
    fn settle(this: &Rc<Self>, conn: &Conn<SmtpCodec>, answer: SmtpAnswer, awaiting: Awaiting) {
        let slot = match answer.0 {
            Kind::Now(verdict) => return this.apply(conn, awaiting, verdict),
            Kind::Later(slot) => slot,
        };
        if let Some(verdict) = slot.take_early() {
            return this.apply(conn, awaiting, verdict);
        }
        this.state.borrow_mut().awaiting = Some(awaiting);
        conn.pause();
        let engine: Weak<Self> = Rc::downgrade(this);
        slot.wait(Box::new(move |verdict| {
            if engine.strong_count() == 0 {
                return; // the connection is gone
            }
            // On a tick of its own: the responder may answer from anywhere,
            // a hook of this very server included.
            em_core::next_tick(move || {
                if let Some(engine) = engine.upgrade() {
                    engine.resume(verdict);
                }
            });
        }));
    }

    /// A later answer came: applies it and reads on.
    fn resume(&self, verdict: Verdict) {
        let Some(conn) = self.conn.get() else {
            return;
        };
        let awaiting = self.state.borrow_mut().awaiting.take();
        if conn.is_closed() {
            return;
        }
        if let Some(awaiting) = awaiting {
            self.apply(conn, awaiting, verdict);
        }
        conn.resume();
    }

    /// Replies to a command as its hook decided, and moves on.
    fn apply(&self, conn: &Conn<SmtpCodec>, awaiting: Awaiting, verdict: Verdict) {
        let accepted = verdict.accepted();
        let mut state = self.state.borrow_mut();
        let out = match awaiting {
            Awaiting::Ehlo {
                domain,
                extended,
                was_extended,
            } => {
                let positive = if extended {
                    self.ehlo_reply(conn, &domain)
                } else {
                    reply(250, &self.config.domain)
                };
                if accepted {
                    state.reset_transaction();
                    state.ehlo = Some(domain);
                } else {
                    state.extended = was_extended;
                }
                verdict.into_reply(positive, reply(550, "5.7.1 Requested action not taken"))
            }
            Awaiting::Auth { user } => {
                if accepted {
                    state.user = Some(user);
                }
                verdict.into_reply(
                    reply(235, "2.7.0 Authentication successful"),
                    reply(535, "5.7.8 Authentication credentials invalid"),
                )
            }
            Awaiting::Mail { sender } => {
                if accepted {
                    state.reset_transaction();
                    state.sender = Some(sender);
                }
                verdict.into_reply(
                    reply(250, "2.1.0 Sender OK"),
                    reply(550, "5.7.1 Sender refused"),
                )
            }
            Awaiting::Rcpt { recipient } => {
                if accepted {
                    state.recipients.push(recipient);
                } else {
                    state.refused_recipient = true;
                }
                verdict.into_reply(
                    reply(250, "2.1.5 Recipient OK"),
                    reply(550, "5.1.1 Recipient refused"),
                )
            }
            Awaiting::Data => {
                let r = verdict.into_reply(
                    reply(354, "End data with <CR><LF>.<CR><LF>"),
                    reply(554, "5.7.1 Transaction failed"),
                );
                if r.is_intermediate() {
                    state.data = Some(DataState::default());
                }
                r
            }
            Awaiting::Message => {
                state.reset_transaction();
                verdict.into_reply(
                    reply(250, "2.0.0 Message accepted"),
                    reply(554, "5.7.1 Message refused"),
                )
            }
        };
        drop(state);
        conn.send_data(out);
    }

    /// The reply to an accepted `EHLO`: the domain, then the extensions.
    fn ehlo_reply(&self, conn: &Conn<SmtpCodec>, client: &str) -> SmtpReply {
        let config = &self.config;
        let mut lines = vec![
            format!("{} greets {client}", config.domain),
            format!("SIZE {}", config.max_message_size),
            "8BITMIME".to_owned(),
            "PIPELINING".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
        ];
        if config.auth && (conn.is_tls() || !config.require_tls) {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        if config.tls.is_some() && !conn.is_tls() {
            lines.push("STARTTLS".into());
        }
        lines.push("HELP".into());
        SmtpReply::new(250, lines.join("\n"))
    }
}

/// A `MAIL` or `RCPT` parameter: `KEY=value`, or `KEY` alone.
type Param<'a> = (&'a str, Option<&'a str>);

/// Parses `FROM:<address> PARAM=value…` (or `TO:…`): the address without
/// its brackets, and the parameters. `None` for bad syntax. Lenient as
/// RFC 5321 asks (§4.1.1.2: a space after the colon, and a path without
/// brackets, are common).
fn parse_path<'a>(arg: &'a str, prefix: &str) -> Option<(String, Vec<Param<'a>>)> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let (address, params) = if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        (&inner[..end], &inner[end + 1..])
    } else {
        match rest.split_once(' ') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        }
    };
    if address
        .chars()
        .any(|c| c.is_whitespace() || c == '<' || c == '>')
    {
        return None;
    }
    if !params.is_empty() && !params.starts_with(' ') {
        return None;
    }
    // A source route (`@a,@b:user@c`, RFC 5321 §4.1.1.2) is dropped.
    let address = match address.rsplit_once(':') {
        Some((route, a)) if route.starts_with('@') => a,
        _ => address,
    };
    let params = params
        .split_whitespace()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        })
        .collect();
    Some((address.to_owned(), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_parameters() {
        assert_eq!(
            parse_path("FROM:<a@b.c> SIZE=12 BODY=8BITMIME", "FROM:"),
            Some((
                "a@b.c".into(),
                vec![("SIZE", Some("12")), ("BODY", Some("8BITMIME"))]
            ))
        );
        assert_eq!(
            parse_path("from: <a@b>", "FROM:"),
            Some(("a@b".into(), vec![]))
        );
        assert_eq!(
            parse_path("FROM:<>", "FROM:"),
            Some((String::new(), vec![]))
        );
        assert_eq!(parse_path("TO:a@b", "TO:"), Some(("a@b".into(), vec![])));
        assert_eq!(
            parse_path("TO:<@x,@y:a@b>", "TO:"),
            Some(("a@b".into(), vec![]))
        );
        assert_eq!(parse_path("FROM:<a@b", "FROM:"), None);
        assert_eq!(parse_path("FROM:<a b@c>", "FROM:"), None);
        assert_eq!(parse_path("FROM:<a@b>x", "FROM:"), None);
        assert_eq!(parse_path("TO:<a@b>", "FROM:"), None);
        assert_eq!(parse_path("", "FROM:"), None);
    }
}
