//! `SmtpClient`: sends one message per connection (EventMachine's
//! `EM::Protocols::SmtpClient.send`), as a [`Deferred`] or a future.
//!
//! The conversation is a private [`Connection`] handler (`Attempt`)
//! driven by the server's replies: each command sent pushes what its
//! reply means onto a queue (`Step`), and each reply read pops one, so
//! the same code runs one command at a time and, when the server offers
//! PIPELINING, with `MAIL`, every `RCPT` and `DATA` sent at once.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use em_core::{Conn, Connection, Deferred, Endpoint, TlsOptions, UnbindReason};

use super::auth::{self, SmtpAuthMechanism};
use super::codec::{SmtpCodec, SmtpLine};
use super::error::{Kind, SmtpError};
use super::reply::{ReplyReader, SmtpReply};

/// Whether the client upgrades the connection with `STARTTLS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartTls {
    /// Never (EventMachine's default).
    #[default]
    Off,
    /// When the server offers it; in plain text when it does not, or
    /// when it answers `STARTTLS` with an error. A handshake that fails
    /// (a certificate not trusted) is still an error: the client never
    /// falls back to plain text after trying TLS.
    Opportunistic,
    /// Always (EventMachine's `starttls: true`): a server that does not
    /// offer it, or refuses it, fails the delivery with
    /// [`is_tls`](SmtpError::is_tls).
    Required,
}

/// Credentials for `AUTH` (EventMachine's `auth: {type: :plain,
/// username:, password:}`). Its `Debug` hides the password.
#[derive(Clone)]
pub struct SmtpAuth {
    user: String,
    password: String,
    mechanism: SmtpAuthMechanism,
}

impl SmtpAuth {
    /// PLAIN if the server offers it, else LOGIN.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> SmtpAuth {
        SmtpAuth {
            user: user.into(),
            password: password.into(),
            mechanism: SmtpAuthMechanism::Auto,
        }
    }

    /// `AUTH PLAIN` only.
    pub fn plain(user: impl Into<String>, password: impl Into<String>) -> SmtpAuth {
        SmtpAuth {
            mechanism: SmtpAuthMechanism::Plain,
            ..SmtpAuth::new(user, password)
        }
    }

    /// `AUTH LOGIN` only.
    pub fn login(user: impl Into<String>, password: impl Into<String>) -> SmtpAuth {
        SmtpAuth {
            mechanism: SmtpAuthMechanism::Login,
            ..SmtpAuth::new(user, password)
        }
    }
}

impl fmt::Debug for SmtpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpAuth")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// What the server answered to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpRecipientStatus {
    /// The recipient, as given.
    pub address: String,
    /// The server's reply to its `RCPT TO`.
    pub reply: SmtpReply,
}

impl SmtpRecipientStatus {
    /// Whether the server accepted it (a 2xx).
    pub fn is_accepted(&self) -> bool {
        self.reply.is_positive()
    }
}

/// A delivered message: the server accepted it for at least one
/// recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmtpDelivery {
    /// What the server answered to each recipient, in the order given:
    /// some may have been refused.
    pub recipients: Vec<SmtpRecipientStatus>,
    /// The server's reply to the message (`250 …`, often with a queue id).
    pub reply: SmtpReply,
}

impl SmtpDelivery {
    /// The recipients the server accepted.
    pub fn accepted(&self) -> impl Iterator<Item = &str> {
        self.recipients
            .iter()
            .filter(|r| r.is_accepted())
            .map(|r| r.address.as_str())
    }

    /// The recipients the server refused, with its replies.
    pub fn refused(&self) -> impl Iterator<Item = &SmtpRecipientStatus> {
        self.recipients.iter().filter(|r| !r.is_accepted())
    }
}

/// An SMTP client (EventMachine's `EM::Protocols::SmtpClient`): where to
/// connect and how to talk, built once (on any thread; it is `Send` and
/// cheap to clone), then one [`send`](SmtpClient::send) or
/// [`send_mail`](SmtpClient::send_mail) per message, each on a connection
/// of its own, on the reactor thread.
///
/// ```
/// use em_protocols::{SmtpAuth, SmtpClient, StartTls};
///
/// let client = SmtpClient::new("mail.example.org:587")
///     .domain("app.example.org")
///     .starttls(StartTls::Required)
///     .auth(SmtpAuth::new("app", "secret"));
/// # let _ = client;
/// ```
///
/// # The conversation
///
/// The greeting (`220`), `EHLO` (`HELO` if `EHLO` is refused), `STARTTLS`
/// and `EHLO` again as [`starttls`](SmtpClient::starttls) asks, `AUTH`
/// with [`auth`](SmtpClient::auth), `MAIL FROM` (with `SIZE=` and
/// `BODY=8BITMIME` where the server offers them), one `RCPT TO` per
/// recipient, `DATA` if any was accepted, the message, and `QUIT`. With a
/// server that offers `PIPELINING`, `MAIL`, the `RCPT`s and `DATA` go in
/// one write.
///
/// The message is sent as SMTP needs it: every line ending becomes CRLF,
/// a line starting with `.` gets another (dot-stuffing), and the final
/// `.` line is added.
#[derive(Debug, Clone)]
pub struct SmtpClient {
    addr: Endpoint,
    domain: String,
    starttls: StartTls,
    tls: Option<TlsOptions>,
    auth: Option<SmtpAuth>,
    timeout: Duration,
    connect_timeout: Duration,
    pipelining: bool,
    max_line_length: usize,
}

impl SmtpClient {
    /// How long the client waits with nothing moving, unless set
    /// otherwise: 5 minutes (RFC 5321 §4.5.3.2's timeouts are 2 to 10
    /// minutes).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

    /// How long a connect may take unless set otherwise: 20 s (em's
    /// pending-connect timeout).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

    /// A client of the server at `addr` (any [`Endpoint`]:
    /// `"host:port"`, a `SocketAddr`, a server's `Addr`), saying
    /// `EHLO localhost`, without TLS or AUTH.
    pub fn new(addr: impl Into<Endpoint>) -> SmtpClient {
        SmtpClient {
            addr: addr.into(),
            domain: "localhost".into(),
            starttls: StartTls::Off,
            tls: None,
            auth: None,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            pipelining: true,
            max_line_length: SmtpCodec::DEFAULT_MAX_LINE_LENGTH,
        }
    }

    /// The domain said in `EHLO`/`HELO` (EventMachine's `domain:`).
    pub fn domain(mut self, domain: impl Into<String>) -> SmtpClient {
        self.domain = domain.into();
        self
    }

    /// Whether to upgrade with `STARTTLS` (EventMachine's `starttls:`).
    pub fn starttls(mut self, starttls: StartTls) -> SmtpClient {
        self.starttls = starttls;
        self
    }

    /// The TLS options for `STARTTLS`. Without them: em's defaults
    /// (Mozilla's roots), checking the host name of `addr` when it is
    /// one (`"mail.example.org:25"`), else its IP address.
    pub fn tls_options(mut self, options: TlsOptions) -> SmtpClient {
        self.tls = Some(options);
        self
    }

    /// Authenticate with these credentials after `EHLO` (and `STARTTLS`).
    pub fn auth(mut self, auth: SmtpAuth) -> SmtpClient {
        self.auth = Some(auth);
        self
    }

    /// Gives up when nothing is read or written for `timeout` (the
    /// connection's inactivity timeout), with
    /// [`is_timeout`](SmtpError::is_timeout). Default
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT).
    pub fn timeout(mut self, timeout: Duration) -> SmtpClient {
        self.timeout = timeout;
        self
    }

    /// Gives up a connect that has not completed after `timeout`, with
    /// [`is_connect`](SmtpError::is_connect) and
    /// [`is_timeout`](SmtpError::is_timeout). Default
    /// [`DEFAULT_CONNECT_TIMEOUT`](Self::DEFAULT_CONNECT_TIMEOUT).
    pub fn connect_timeout(mut self, timeout: Duration) -> SmtpClient {
        self.connect_timeout = timeout;
        self
    }

    /// Whether to pipeline (RFC 2920) with servers that offer it; on by
    /// default.
    pub fn pipelining(mut self, on: bool) -> SmtpClient {
        self.pipelining = on;
        self
    }

    /// The longest reply line accepted, line ending not counted; a longer
    /// one fails the delivery with [`is_protocol`](SmtpError::is_protocol).
    /// Default [`SmtpCodec::DEFAULT_MAX_LINE_LENGTH`].
    pub fn max_line_length(mut self, bytes: usize) -> SmtpClient {
        self.max_line_length = bytes;
        self
    }

    /// Sends `message` (headers, a blank line, the body) from `from` to
    /// each of `to` (addresses without angle brackets): EventMachine's
    /// `SmtpClient.send`, which returns a Deferrable. The [`Deferred`]
    /// succeeds with the [`SmtpDelivery`] once the server accepted the message
    /// for at least one recipient, and fails with an [`SmtpError`]
    /// otherwise; add `callback`s and `errback`s, or `.await` it. Reactor
    /// thread only (the connect starts now).
    ///
    /// A failure found before connecting (an address that cannot be
    /// sent, no recipient, no reactor) fails the `Deferred` at once.
    pub fn send(
        &self,
        from: &str,
        to: impl IntoIterator<Item = impl AsRef<str>>,
        message: impl AsRef<[u8]>,
    ) -> Deferred<SmtpDelivery, SmtpError> {
        let result = Deferred::new();
        let to: Vec<String> = to.into_iter().map(|t| t.as_ref().to_owned()).collect();
        if let Err(e) = check_addresses(from, &to) {
            result.fail(e);
            return result;
        }
        let (data, eight_bit) = dot_stuff(message.as_ref());
        let session = Attempt {
            client: self.clone(),
            from: from.to_owned(),
            to,
            data,
            eight_bit,
            result: result.clone(),
            reader: ReplyReader::default(),
            expect: VecDeque::from([Step::Greeting]),
            ext: Extensions::default(),
            handshaking: false,
            recipients: Vec::new(),
            pipelined: false,
            done: false,
        };
        if let Err(e) = em_core::connect(self.addr.clone(), session) {
            result.fail(
                SmtpError::new(
                    Kind::Connect,
                    format!("cannot connect to {}: {e}", self.addr),
                )
                .with_source(e),
            );
        }
        result
    }

    /// [`send`](SmtpClient::send) as an `async fn`, for procedural code
    /// under `em::spawn` or `em::synchrony`: the [`SmtpDelivery`], or why
    /// there was none.
    ///
    /// ```no_run
    /// use em_protocols::SmtpClient;
    ///
    /// let delivery = em_core::synchrony(async {
    ///     SmtpClient::new("127.0.0.1:2525")
    ///         .send_mail("me@example.org", ["you@example.org"], "Subject: hi\r\n\r\nHello.\r\n")
    ///         .await
    /// })??;
    /// println!("accepted: {}", delivery.reply);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn send_mail(
        &self,
        from: &str,
        to: impl IntoIterator<Item = impl AsRef<str>>,
        message: impl AsRef<[u8]>,
    ) -> Result<SmtpDelivery, SmtpError> {
        self.send(from, to, message).await
    }

    /// The TLS options for `STARTTLS`: the ones given, else em's defaults
    /// with the host name of `addr` when it has one.
    fn tls(&self) -> TlsOptions {
        if let Some(options) = &self.tls {
            return options.clone();
        }
        let options = TlsOptions::new();
        let shown = self.addr.to_string();
        let host = shown.rsplit_once(':').map_or("", |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() || host.contains('/') {
            options
        } else {
            options.server_name(host)
        }
    }
}

/// Refuses addresses that would break the command line they go in.
fn check_addresses(from: &str, to: &[String]) -> Result<(), SmtpError> {
    if to.is_empty() {
        return Err(SmtpError::new(
            Kind::InvalidInput,
            "no recipient to send to",
        ));
    }
    for address in std::iter::once(from).chain(to.iter().map(String::as_str)) {
        if address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return Err(SmtpError::new(
                Kind::InvalidInput,
                format!("{address:?} cannot be sent as an address (a space, a control character or an angle bracket in it)"),
            ));
        }
    }
    if to.iter().any(String::is_empty) {
        return Err(SmtpError::new(Kind::InvalidInput, "an empty recipient"));
    }
    Ok(())
}

/// The message as `DATA` sends it: line endings made CRLF (a bare LF or
/// CR too), dot-stuffed, ended by CRLF and the final `.` line; and whether
/// it has 8-bit bytes.
pub(crate) fn dot_stuff(message: &[u8]) -> (Bytes, bool) {
    let mut out = BytesMut::with_capacity(message.len() + message.len() / 64 + 5);
    let mut line_start = true;
    let mut eight_bit = false;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if line_start && b == b'.' {
            out.put_u8(b'.');
        }
        match b {
            b'\r' => {
                out.put_slice(b"\r\n");
                if message.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                line_start = true;
            }
            b'\n' => {
                out.put_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                eight_bit |= b >= 0x80;
                out.put_u8(b);
                line_start = false;
            }
        }
        i += 1;
    }
    if !line_start {
        out.put_slice(b"\r\n");
    }
    out.put_slice(b".\r\n");
    (out.freeze(), eight_bit)
}

/// What the server said it can do, in its `EHLO` reply.
#[derive(Debug, Default)]
struct Extensions {
    size: bool,
    eight_bit_mime: bool,
    pipelining: bool,
    starttls: bool,
    auth: Vec<String>,
}

impl Extensions {
    fn parse(reply: &SmtpReply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines().skip(1) {
            let mut words = line.split([' ', '=']);
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "SIZE" => ext.size = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "PIPELINING" => ext.pipelining = true,
                "STARTTLS" => ext.starttls = true,
                "AUTH" => ext
                    .auth
                    .extend(words.filter(|w| !w.is_empty()).map(str::to_ascii_uppercase)),
                _ => {}
            }
        }
        ext
    }
}

/// What the next reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AuthPlain,
    AuthLogin,
    AuthLoginUser,
    AuthLoginPassword,
    Mail,
    Rcpt(usize),
    Data,
    Message,
    Quit,
}

impl Step {
    fn what(self) -> &'static str {
        match self {
            Step::Greeting => "the greeting",
            Step::Ehlo => "the reply to EHLO",
            Step::Helo => "the reply to HELO",
            Step::StartTls => "the reply to STARTTLS",
            Step::AuthPlain | Step::AuthLogin | Step::AuthLoginUser | Step::AuthLoginPassword => {
                "the reply to AUTH"
            }
            Step::Mail => "the reply to MAIL FROM",
            Step::Rcpt(_) => "the reply to RCPT TO",
            Step::Data => "the reply to DATA",
            Step::Message => "the reply to the message",
            Step::Quit => "the reply to QUIT",
        }
    }
}

/// One delivery's connection.
struct Attempt {
    client: SmtpClient,
    from: String,
    to: Vec<String>,
    data: Bytes,
    eight_bit: bool,
    result: Deferred<SmtpDelivery, SmtpError>,
    reader: ReplyReader,
    /// What the replies still due answer, in order.
    expect: VecDeque<Step>,
    ext: Extensions,
    /// STARTTLS accepted; the handshake runs.
    handshaking: bool,
    recipients: Vec<SmtpRecipientStatus>,
    /// MAIL, the RCPTs and DATA went in one write.
    pipelined: bool,
    /// The result is known.
    done: bool,
}

type C = Conn<SmtpCodec>;

impl Attempt {
    fn send(&mut self, conn: &C, command: String, step: Step) {
        conn.send_data(command);
        self.expect.push_back(step);
    }

    /// Fails the delivery, says QUIT and closes.
    fn fail(&mut self, conn: &C, error: SmtpError) {
        self.resolve(Err(error));
        self.expect.clear();
        conn.send_data("QUIT");
        conn.close_connection_after_writing();
    }

    fn resolve(&mut self, result: Result<SmtpDelivery, SmtpError>) {
        if !self.done {
            self.done = true;
            self.result.resolve(result);
        }
    }

    fn refused(&mut self, conn: &C, kind: Kind, what: &str, reply: SmtpReply) {
        let error = SmtpError::new(kind, format!("{what}: {reply}"))
            .with_reply(reply)
            .with_recipients(self.recipients.clone());
        self.fail(conn, error);
    }

    fn on_reply(&mut self, conn: &C, reply: SmtpReply) {
        let Some(step) = self.expect.pop_front() else {
            if !self.done {
                let what = if reply.code() == 421 {
                    "the server is closing the session"
                } else {
                    "a reply to no command"
                };
                self.refused(conn, Kind::Protocol, what, reply);
            }
            return;
        };
        let code = reply.code();
        match step {
            Step::Greeting if reply.is_positive() => {
                self.send(conn, format!("EHLO {}", self.client.domain), Step::Ehlo);
            }
            Step::Greeting => self.refused(
                conn,
                Kind::Protocol,
                "the server refused the session",
                reply,
            ),
            Step::Ehlo if reply.is_positive() => {
                self.ext = Extensions::parse(&reply);
                self.after_hello(conn);
            }
            Step::Ehlo if code == 421 => {
                self.refused(conn, Kind::Protocol, "the server refused EHLO", reply);
            }
            Step::Ehlo => {
                self.send(conn, format!("HELO {}", self.client.domain), Step::Helo);
            }
            Step::Helo if reply.is_positive() => {
                self.ext = Extensions::default();
                self.after_hello(conn);
            }
            Step::Helo => self.refused(
                conn,
                Kind::Protocol,
                "the server refused EHLO and HELO",
                reply,
            ),
            Step::StartTls if code == 220 => {
                if let Err(e) = conn.start_tls(&self.client.tls()) {
                    let error =
                        SmtpError::new(Kind::Tls, format!("cannot start TLS: {e}")).with_source(e);
                    self.fail(conn, error);
                } else {
                    self.handshaking = true;
                }
            }
            Step::StartTls if self.client.starttls == StartTls::Opportunistic && code != 421 => {
                tracing::debug!(conn = %conn.id(), %reply, "STARTTLS refused; going on in plain text");
                self.authenticate(conn);
            }
            Step::StartTls => self.refused(conn, Kind::Tls, "the server refused STARTTLS", reply),
            Step::AuthPlain | Step::AuthLoginPassword if reply.is_positive() => self.mail(conn),
            Step::AuthLogin if code == 334 => {
                let user = auth::encode(&self.auth().user);
                self.send(conn, user, Step::AuthLoginUser);
            }
            Step::AuthLoginUser if code == 334 => {
                let password = auth::encode(&self.auth().password);
                self.send(conn, password, Step::AuthLoginPassword);
            }
            Step::AuthPlain | Step::AuthLogin | Step::AuthLoginUser | Step::AuthLoginPassword => {
                let user = self.auth().user.clone();
                self.refused(
                    conn,
                    Kind::SmtpAuth,
                    &format!("authentication as {user:?} failed"),
                    reply,
                );
            }
            Step::Mail if reply.is_positive() => {
                if !self.pipelined {
                    self.send(conn, format!("RCPT TO:<{}>", self.to[0]), Step::Rcpt(0));
                }
            }
            Step::Mail => {
                let what = format!("the server refused the sender <{}>", self.from);
                self.refused(conn, Kind::SenderRefused, &what, reply);
            }
            Step::Rcpt(i) => {
                self.recipients.push(SmtpRecipientStatus {
                    address: self.to[i].clone(),
                    reply,
                });
                if self.pipelined {
                    return;
                }
                if i + 1 < self.to.len() {
                    self.send(
                        conn,
                        format!("RCPT TO:<{}>", self.to[i + 1]),
                        Step::Rcpt(i + 1),
                    );
                } else if self.recipients.iter().any(SmtpRecipientStatus::is_accepted) {
                    self.send(conn, "DATA".into(), Step::Data);
                } else {
                    self.all_refused(conn);
                }
            }
            Step::Data if code == 354 => {
                if self.recipients.iter().any(SmtpRecipientStatus::is_accepted) {
                    conn.send_data(self.data.clone());
                    self.expect.push_back(Step::Message);
                } else {
                    // Pipelined, and the server took DATA with no recipient:
                    // an empty message ends it.
                    conn.send_data(Bytes::from_static(b".\r\n"));
                    self.all_refused(conn);
                }
            }
            Step::Data if !self.recipients.iter().any(SmtpRecipientStatus::is_accepted) => {
                self.all_refused(conn);
            }
            Step::Data => {
                self.refused(conn, Kind::MessageRefused, "the server refused DATA", reply)
            }
            Step::Message if reply.is_positive() => {
                let delivery = SmtpDelivery {
                    recipients: std::mem::take(&mut self.recipients),
                    reply,
                };
                self.resolve(Ok(delivery));
                self.send(conn, "QUIT".into(), Step::Quit);
            }
            Step::Message => self.refused(
                conn,
                Kind::MessageRefused,
                "the server refused the message",
                reply,
            ),
            Step::Quit => conn.close_connection(),
        }
    }

    fn auth(&self) -> &SmtpAuth {
        self.client
            .auth
            .as_ref()
            .expect("AUTH steps only with credentials")
    }

    fn all_refused(&mut self, conn: &C) {
        let list: Vec<String> = self
            .recipients
            .iter()
            .map(|r| format!("<{}>: {}", r.address, r.reply))
            .collect();
        let error = SmtpError::new(
            Kind::RecipientsRefused,
            format!("the server refused every recipient ({})", list.join("; ")),
        )
        .with_recipients(self.recipients.clone());
        let error = match self.recipients.last() {
            Some(last) => error.with_reply(last.reply.clone()),
            None => error,
        };
        self.fail(conn, error);
    }

    /// After `EHLO`/`HELO`: `STARTTLS` if asked and not done yet, else on.
    fn after_hello(&mut self, conn: &C) {
        if !conn.is_tls() {
            match self.client.starttls {
                StartTls::Required | StartTls::Opportunistic if self.ext.starttls => {
                    return self.send(conn, "STARTTLS".into(), Step::StartTls);
                }
                StartTls::Required => {
                    let error = SmtpError::new(
                        Kind::Tls,
                        format!(
                            "STARTTLS is required but {} does not offer it",
                            self.client.addr
                        ),
                    );
                    return self.fail(conn, error);
                }
                StartTls::Opportunistic | StartTls::Off => {}
            }
        }
        self.authenticate(conn);
    }

    /// `AUTH` if asked, else on to `MAIL`.
    fn authenticate(&mut self, conn: &C) {
        let Some(credentials) = &self.client.auth else {
            return self.mail(conn);
        };
        let offered = |m: &str| self.ext.auth.iter().any(|a| a == m);
        let mechanism = match credentials.mechanism {
            SmtpAuthMechanism::Auto if offered("PLAIN") => Some(SmtpAuthMechanism::Plain),
            SmtpAuthMechanism::Auto if offered("LOGIN") => Some(SmtpAuthMechanism::Login),
            m @ (SmtpAuthMechanism::Plain | SmtpAuthMechanism::Login) if offered(m.name()) => {
                Some(m)
            }
            _ => None,
        };
        match mechanism {
            Some(SmtpAuthMechanism::Plain) => {
                match auth::plain_response(&credentials.user, &credentials.password) {
                    Ok(response) => {
                        self.send(conn, format!("AUTH PLAIN {response}"), Step::AuthPlain)
                    }
                    Err(e) => {
                        let error = SmtpError::new(
                            Kind::SmtpAuth,
                            format!("cannot authenticate with AUTH PLAIN: {e}"),
                        );
                        self.fail(conn, error);
                    }
                }
            }
            Some(SmtpAuthMechanism::Login) => self.send(conn, "AUTH LOGIN".into(), Step::AuthLogin),
            _ => {
                let offers = if self.ext.auth.is_empty() {
                    "no AUTH".to_owned()
                } else {
                    format!("AUTH {}", self.ext.auth.join(" "))
                };
                let error = SmtpError::new(
                    Kind::SmtpAuth,
                    format!(
                        "cannot authenticate with AUTH {}: the server offers {offers}",
                        credentials.mechanism.name()
                    ),
                );
                self.fail(conn, error);
            }
        }
    }

    /// `MAIL FROM`, then the `RCPT`s and `DATA` too when pipelining.
    fn mail(&mut self, conn: &C) {
        let mut command = format!("MAIL FROM:<{}>", self.from);
        if self.ext.size {
            command.push_str(&format!(" SIZE={}", self.data.len()));
        }
        if self.eight_bit && self.ext.eight_bit_mime {
            command.push_str(" BODY=8BITMIME");
        }
        self.send(conn, command, Step::Mail);
        if self.client.pipelining && self.ext.pipelining {
            self.pipelined = true;
            for i in 0..self.to.len() {
                self.send(conn, format!("RCPT TO:<{}>", self.to[i]), Step::Rcpt(i));
            }
            self.send(conn, "DATA".into(), Step::Data);
        }
    }

    /// What the client waits for, for error messages.
    fn waiting_for(&self) -> &'static str {
        if self.handshaking {
            "the TLS handshake"
        } else {
            self.expect.front().map_or("the server", |s| s.what())
        }
    }
}

impl Connection for Attempt {
    type Codec = SmtpCodec;

    fn codec(&self) -> SmtpCodec {
        SmtpCodec::new_with_max_length(self.client.max_line_length)
    }

    fn post_init(&mut self, conn: &C) {
        conn.set_pending_connect_timeout(self.client.connect_timeout);
        if !self.client.timeout.is_zero() {
            conn.set_comm_inactivity_timeout(self.client.timeout);
        }
    }

    fn receive_data(&mut self, conn: &C, line: SmtpLine) {
        if self.done && self.expect.is_empty() {
            return;
        }
        let line = match line {
            SmtpLine::Line(line) | SmtpLine::BareLf(line) => line,
            SmtpLine::TooLong => {
                let error = SmtpError::new(
                    Kind::Protocol,
                    format!(
                        "a reply line longer than {} bytes (waiting for {})",
                        self.client.max_line_length,
                        self.waiting_for()
                    ),
                );
                return self.fail(conn, error);
            }
        };
        match self.reader.push(&line) {
            Ok(Some(reply)) => {
                tracing::trace!(conn = %conn.id(), %reply, "SMTP reply");
                self.on_reply(conn, reply);
            }
            Ok(None) => {}
            Err(what) => {
                let error = SmtpError::new(
                    Kind::Protocol,
                    format!("{what} (waiting for {})", self.waiting_for()),
                );
                self.fail(conn, error);
            }
        }
    }

    fn ssl_handshake_completed(&mut self, conn: &C) {
        self.handshaking = false;
        // RFC 3207 §4.2: everything learnt before TLS is forgotten.
        self.ext = Extensions::default();
        self.send(conn, format!("EHLO {}", self.client.domain), Step::Ehlo);
    }

    fn unbind(&mut self, _conn: &C, reason: UnbindReason) {
        if self.done {
            return;
        }
        let addr = &self.client.addr;
        let waiting = self.waiting_for();
        let error = match reason {
            UnbindReason::ConnectFailed(e) => {
                SmtpError::new(Kind::Connect, format!("cannot connect to {addr}: {e}"))
                    .with_source(e)
            }
            UnbindReason::ConnectTimeout => SmtpError::new(
                Kind::Connect,
                format!(
                    "cannot connect to {addr}: no connection within {:?}",
                    self.client.connect_timeout
                ),
            )
            .timed_out(),
            UnbindReason::InactivityTimeout => SmtpError::new(
                Kind::Timeout,
                format!(
                    "nothing from {addr} within {:?} (waiting for {waiting})",
                    self.client.timeout
                ),
            ),
            UnbindReason::Tls(e) => {
                SmtpError::new(Kind::Tls, format!("TLS with {addr} failed: {e}")).with_source(e)
            }
            UnbindReason::Io(e) => SmtpError::new(
                Kind::Io,
                format!("I/O error with {addr} (waiting for {waiting}): {e}"),
            )
            .with_source(e),
            UnbindReason::Codec(e) => SmtpError::new(
                Kind::Protocol,
                format!("unreadable input from {addr} (waiting for {waiting}): {e}"),
            ),
            UnbindReason::PeerClosed | UnbindReason::Closed => SmtpError::new(
                Kind::Closed,
                format!("{addr} closed the connection (waiting for {waiting})"),
            ),
            other => SmtpError::new(
                Kind::Closed,
                format!("the connection to {addr} ended: {other} (waiting for {waiting})"),
            ),
        };
        let recipients = std::mem::take(&mut self.recipients);
        self.resolve(Err(error.with_recipients(recipients)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(m: &str) -> String {
        String::from_utf8(dot_stuff(m.as_bytes()).0.to_vec()).unwrap()
    }

    #[test]
    fn dot_stuffing_and_line_endings() {
        assert_eq!(stuffed(""), ".\r\n");
        assert_eq!(stuffed("a"), "a\r\n.\r\n");
        assert_eq!(stuffed("a\r\n"), "a\r\n.\r\n");
        assert_eq!(stuffed(".\n..x\r\ny.\n"), "..\r\n...x\r\ny.\r\n.\r\n");
        assert_eq!(stuffed("a\rb\n\nc"), "a\r\nb\r\n\r\nc\r\n.\r\n");
        assert_eq!(stuffed(".start"), "..start\r\n.\r\n");
        assert!(!dot_stuff(b"ascii").1);
        assert!(dot_stuff("caf\u{e9}".as_bytes()).1);
    }

    #[test]
    fn extensions_from_an_ehlo_reply() {
        let ext = Extensions::parse(&SmtpReply::new(
            250,
            "mx greets me\nSIZE 1000\n8BITMIME\npipelining\nAUTH=LOGIN\nAUTH PLAIN login\nSTARTTLS",
        ));
        assert!(ext.size && ext.eight_bit_mime && ext.pipelining && ext.starttls);
        assert_eq!(ext.auth, ["LOGIN", "PLAIN", "LOGIN"]);
    }

    #[test]
    fn addresses_that_would_break_a_command_are_refused() {
        assert!(check_addresses("a@b", &["c@d".into()]).is_ok());
        assert!(check_addresses("", &["c@d".into()]).is_ok()); // the null sender
        assert!(check_addresses("a@b", &[]).unwrap_err().is_invalid_input());
        assert!(check_addresses("a@b\r\nRCPT TO:<x>", &["c@d".into()])
            .unwrap_err()
            .is_invalid_input());
        assert!(check_addresses("a@b", &["c@d>".into()]).is_err());
        assert!(check_addresses("a@b", &["".into()]).is_err());
    }

    #[test]
    fn the_tls_name_comes_from_a_host_name() {
        let name = |addr: &str| format!("{:?}", SmtpClient::new(addr).tls());
        assert!(name("mail.example.org:25").contains("Some(\"mail.example.org\")"));
        assert!(name("127.0.0.1:25").contains("server_name: None"));
        assert!(name("[::1]:25").contains("server_name: None"));
    }
}
