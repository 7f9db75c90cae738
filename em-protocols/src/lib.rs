//! EventMachine's bundled protocols (`EM::Protocols`) for em.
//!
//! * **Codecs** (tokio-util `Decoder`/`Encoder`s, so they work with
//!   tokio's `Framed` outside em too).
//! * **Conversations** (handlers over em's connections).
//!
//! Everything runs on the reactor thread of the connection it serves,
//! like any handler; the codecs are plain data and run wherever their
//! `Framed` runs.
//!
//! # STOMP
//!
//! [`StompCodec`] frames [`StompFrame`]s: STOMP 1.2 (header escaping,
//! `content-length` bodies that may hold NULs, heart-beats between frames),
//! reading and writing 1.0 and 1.1 peers too, with a frame-length and a
//! header-count limit. [`StompConnection`] is a client connection for
//! your [`StompHandler`] (EventMachine's `include EM::Protocols::Stomp`):
//! its callbacks get the [`Stomp`] handle, with EventMachine's verbs
//! (`connect`, `send`, `subscribe`, `ack`), and each server frame comes to
//! `receive_msg`.
//!
//! ```no_run
//! use em_protocols::{AckMode, Stomp, StompConnection, StompFrame, StompHandler};
//!
//! struct Worker;
//!
//! impl StompHandler for Worker {
//!     fn connection_completed(&mut self, stomp: &Stomp) {
//!         stomp.connect("guest", "guest", "/");
//!     }
//!     fn receive_msg(&mut self, stomp: &Stomp, msg: StompFrame) {
//!         match msg.command.as_str() {
//!             "CONNECTED" => {
//!                 stomp.subscribe("/queue/jobs", AckMode::ClientIndividual);
//!             }
//!             "MESSAGE" => {
//!                 stomp.send("/queue/done", msg.body.clone(), &[]);
//!                 stomp.ack(&msg);
//!             }
//!             _ => tracing::warn!(?msg, "from the broker"),
//!         }
//!     }
//! }
//!
//! em_core::run(|| em_core::connect("localhost:61613", StompConnection::new(Worker)).map(drop))?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # SASL
//!
//! saslauthd's protocol (EventMachine's `SASLauth` and `SASLauthclient`):
//! [`Sasl`] answers login checks with your validator, [`SaslClient`] asks
//! them and gets a [`Deferred`](em_core::Deferred) of the answer. Their
//! codecs, [`SaslServerCodec`] and [`SaslClientCodec`], work with `Framed`
//! too. [`PlainCredentials`] reads and writes the RFC 4616 PLAIN message
//! that SMTP and IMAP `AUTH PLAIN` carry.
//!
//! ```
//! use em_protocols::{Sasl, SaslClient};
//!
//! em_core::run(|| -> em_core::Result<()> {
//!     // Usually a Unix-domain socket (em_core::start_unix_domain_server).
//!     let server = em_core::start_server("127.0.0.1:0", || {
//!         Sasl::from_fn(|login, password, _service, _realm| login == "alice" && password == "secret")
//!     })?;
//!     SaslClient::validate_once(server.local_addr(), "alice", "wrong", "imap", "")
//!         .callback(|&ok| {
//!             assert!(!ok);
//!             em_core::stop();
//!         });
//!     Ok(())
//! })?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # EventMachine → em
//!
//! | EventMachine | em | Notable difference |
//! |---|---|---|
//! | `include EM::Protocols::Stomp`, `EM.connect(h, p, StompClient)` | `impl StompHandler`; `em::connect(addr, StompConnection::new(handler))` | the handler gets a [`Stomp`] handle in every callback |
//! | Stomp `connect(login: …, passcode: …)` | `stomp.connect(login, passcode, host)`, `stomp.connect_with_headers(&[…])` | `connect` offers versions 1.0 to 1.2 and takes the one `CONNECTED` names |
//! | Stomp `send(dest, body, parms)` | `stomp.send(dest, body, &[(name, value)])` | the body is bytes; no `content-type` added (EM adds `text/plain`) |
//! | Stomp `subscribe(dest, ack)` | `stomp.subscribe(dest, AckMode::…)` → subscription id; `stomp.unsubscribe(id)` | `AckMode` for EM's boolean (`Auto`, `Client`, `ClientIndividual`) |
//! | Stomp `ack(msgid)` | `stomp.ack(&msg)`, `stomp.nack(&msg)` | takes the message, so the header the version wants is sent |
//! | Stomp `receive_msg(msg)` with `command`, `header`, `body` | `StompHandler::receive_msg(stomp, frame)` with `command`, `header(name)`, `headers`, `body` | headers keep their order and repeats |
//! | Stomp `send_frame` | `stomp.send_frame(frame)`, `stomp.disconnect()` → receipt id | the connection closes after the `RECEIPT` of `DISCONNECT` |
//! | `include EM::Protocols::SASLauth`, `validate(user, psw, sysname, realm)` | `Sasl::from_fn(\|login, password, service, realm\| …)` or `Sasl::new(impl SaslValidator)` | a bad request (field over the limit, not UTF-8, cut short) ends that connection |
//! | `include EM::Protocols::SASLauthclient`, `validate?(user, psw, sysname, realm)` → Deferrable | `SaslClient::connect(addr)?.validate(…)` → `Deferred<bool, SaslError>`; `SaslClient::validate_once(addr, …)` | `NO reason` is a no (EM took anything but `NO` for yes); errors when no answer can come |
//!
//! # SMTP
//!
//! [`SmtpServer`] is an ESMTP server connection for your [`SmtpHandler`]
//! (EventMachine's `EM::Protocols::SmtpServer` and its hooks):
//! `EHLO`/`HELO`, `AUTH PLAIN` and `AUTH LOGIN`, `MAIL`/`RCPT`/`DATA` with
//! dot-unstuffing and a size limit, `RSET`, `NOOP`, `QUIT`, `VRFY`,
//! `HELP`, `STARTTLS` and pipelining; enough to receive mail from any real
//! client, and what the tests of mail-sending code want. Each hook that
//! decides returns an [`SmtpAnswer`]: now, or later through an
//! [`SmtpResponder`] (EventMachine's Deferrable return), the connection
//! waiting meanwhile. [`SmtpClient`] sends one message per connection:
//! [`send`](SmtpClient::send) returns a [`Deferred`](em_core::Deferred)
//! (EventMachine's `SmtpClient.send`), [`send_mail`](SmtpClient::send_mail)
//! is its `async fn`; either gives an [`SmtpDelivery`] with the server's
//! reply to each recipient, or an [`SmtpError`]. Both sides do `STARTTLS`
//! with em's [`TlsOptions`](em_core::TlsOptions). [`SmtpCodec`] is the
//! line framing both use.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use em_protocols::{SmtpAnswer, SmtpClient, SmtpHandler, SmtpMessage, SmtpServer, SmtpSession};
//!
//! /// Keeps every message; refuses mail for `nobody@`.
//! struct Inbox(Rc<RefCell<Vec<SmtpMessage>>>);
//!
//! impl SmtpHandler for Inbox {
//!     fn receive_recipient(&mut self, _: &SmtpSession<'_>, rcpt: &str) -> SmtpAnswer {
//!         (!rcpt.starts_with("nobody@")).into()
//!     }
//!     fn receive_message(&mut self, _: &SmtpSession<'_>, message: SmtpMessage) -> SmtpAnswer {
//!         self.0.borrow_mut().push(message);
//!         SmtpAnswer::accept()
//!     }
//! }
//!
//! let inbox = Rc::new(RefCell::new(Vec::new()));
//! let kept = inbox.clone();
//! let delivery = em_core::synchrony(async move {
//!     let server = em_core::start_server("127.0.0.1:0", move || SmtpServer::new(Inbox(kept.clone())))?;
//!     let client = SmtpClient::new(server.local_addr());
//!     let delivery = client
//!         .send_mail("me@example.org", ["you@example.org", "nobody@example.org"], "Subject: hi\n\n.a dot\n")
//!         .await?;
//!     Ok::<_, Box<dyn std::error::Error>>(delivery)
//! })??;
//! assert_eq!(delivery.accepted().collect::<Vec<_>>(), ["you@example.org"]);
//! assert_eq!(delivery.refused().next().unwrap().reply.code(), 550);
//! let inbox = inbox.borrow();
//! assert_eq!(inbox[0].recipients, ["you@example.org"]);
//! assert_eq!(&inbox[0].data[..], b"Subject: hi\r\n\r\n.a dot\r\n"); // stuffed, then unstuffed
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # EventMachine → em: SMTP
//!
//! | EventMachine | em | Notable difference |
//! |---|---|---|
//! | `EM::Protocols::SmtpClient.send(domain:, host:, port:, starttls:, from:, to:, header:, body:, auth:)` → Deferrable | `SmtpClient::new("host:port").domain(d).starttls(StartTls::Required).auth(SmtpAuth::plain(user, password)).send(from, to, message)` → `Deferred<SmtpDelivery, SmtpError>`; `.send_mail(…).await` | `header:`/`body:` become one message text (headers, a blank line, the body), always dot-stuffed (no `content:`); success comes with the server's reply to each recipient; STARTTLS may be opportunistic; AUTH LOGIN too; EHLO falls back to HELO; PIPELINING when offered; the errback gets an `SmtpError` with `is_*()` predicates, the reply and the recipients, not an OpenStruct |
//! | `class S < EM::Protocols::SmtpServer`, `EM.start_server(h, p, S)` | `impl SmtpHandler for H`; `em::start_server(addr, \|\| SmtpServer::new_with_options(H, &options))` | a handler per connection, the protocol engine beside it |
//! | `SmtpServer.parms = {starttls:, auth:}`, `get_server_domain`, `get_server_greeting` | `SmtpServerOptions` `tls(TlsOptions)`, `require_tls`, `auth`, `require_auth`, `domain`, `greeting`, `max_message_size`, `max_line_length`, `max_recipients`, `timeout` | options, not overrides; STARTTLS with your certificate (EM: a built-in one) |
//! | `receive_ehlo_domain(domain)`, `receive_plain_auth(user, password)`, `receive_sender(sender)`, `receive_recipient(rcpt)`, `receive_data_command` → true, false or a Deferrable | the same hooks with an `&SmtpSession` first, → `SmtpAnswer` (`accept()`, `refuse()`, `reply(SmtpReply)`, `bool.into()`, or `SmtpAnswer::later()` and its `SmtpResponder`) | every hook may answer later (EM: some); `receive_plain_auth` serves AUTH LOGIN too and refuses by default (EM accepts anyone) |
//! | `receive_data_chunk(lines)` | `receive_data_chunk(&session, chunk)` | one dot-unstuffed line with its CRLF per call |
//! | `receive_message` → true, false or a Deferrable | `receive_message(&session, SmtpMessage { sender, recipients, data })` → `SmtpAnswer` | gets the whole message, dot-unstuffed, with its envelope; the transaction ends after it (EM keeps sender and recipients) |
//! | `receive_reset`, `connection_ended`, `receive_transaction` | `receive_reset`, `connection_ended(&session, &UnbindReason)`; no `receive_transaction` | `EHLO`, `RSET` and each message start a transaction: their hooks mark it |

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod sasl;
mod stomp;

pub use sasl::{
    PlainCredentials, Sasl, SaslClient, SaslClientCodec, SaslError, SaslReply, SaslRequest,
    SaslServerCodec, SaslValidator,
};
pub use stomp::{
    AckMode, Stomp, StompCodec, StompCodecError, StompConnection, StompFrame, StompHandler,
    StompVersion,
};

mod smtp;

pub use smtp::{
    SmtpAnswer, SmtpAuth, SmtpAuthMechanism, SmtpClient, SmtpCodec, SmtpDelivery, SmtpError,
    SmtpHandler, SmtpLine, SmtpMessage, SmtpRecipientStatus, SmtpReply, SmtpResponder, SmtpServer,
    SmtpServerOptions, SmtpSession, StartTls,
};
