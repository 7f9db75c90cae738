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
//! A crate of its own rather than a module of em-core: protocols are
//! libraries on top of the engine, not part of it. em-core knows nothing
//! of them; the codecs use nothing of em's, so each works with tokio's
//! `Framed` in a program without em; and a program that wants em without
//! them does not build them (nor serde).
//!
//! # A first example
//!
//! A request/response service over [`ObjectCodec`]: the server decodes
//! `Ask`s and sends `Answer`s, the client the other way round (here over
//! an in-memory pair; `start_server`/`connect` are the same over TCP).
//!
//! ```
//! use em_core::{Conn, Connection};
//! use em_protocols::ObjectCodec;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Ask {
//!     numbers: Vec<i64>,
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Answer {
//!     sum: i64,
//! }
//!
//! struct Adder;
//! impl Connection for Adder {
//!     type Codec = ObjectCodec<Ask>;
//!     fn codec(&self) -> ObjectCodec<Ask> {
//!         ObjectCodec::new()
//!     }
//!     fn receive_data(&mut self, conn: &Conn<ObjectCodec<Ask>>, ask: Ask) {
//!         conn.send_data(Answer { sum: ask.numbers.iter().sum() });
//!     }
//! }
//!
//! struct Client;
//! impl Connection for Client {
//!     type Codec = ObjectCodec<Answer>;
//!     fn codec(&self) -> ObjectCodec<Answer> {
//!         ObjectCodec::new()
//!     }
//!     fn connection_completed(&mut self, conn: &Conn<ObjectCodec<Answer>>) {
//!         conn.send_data(Ask { numbers: vec![1, 2, 3] });
//!     }
//!     fn receive_data(&mut self, _: &Conn<ObjectCodec<Answer>>, answer: Answer) {
//!         assert_eq!(answer.sum, 6);
//!         em_core::stop();
//!     }
//! }
//!
//! em_core::run(|| em_core::connect_pair(Adder, Client).map(drop))?;
//! # Ok::<(), em_core::Error>(())
//! ```
//!
//! # The codecs
//!
//! | Codec | Decodes | Encodes | EventMachine |
//! |---|---|---|---|
//! | [`LineText2`] | [`LineText2Frame`]: `Line(Bytes)`, `Binary(Bytes)` (a sized block, whole), `BinaryChunk(Bytes)` (a streamed block or unsized mode), `EndOfBinary` | frames, `&str`, `String` | `LineText2` |
//! | [`LineAndText`] | [`LineAndTextFrame`]: `Line(String)`, `Binary(Bytes)` | frames, `&str`, `String` | `LineAndTextProtocol` |
//! | [`LineProtocol`] | `String` lines | `&str`, `String` | `LineProtocol` |
//! | [`HeaderAndContent`] | [`HeaderAndContentMessage`]: start line, headers, body | messages | `HeaderAndContentProtocol` |
//! | [`ObjectCodec<T, F>`](ObjectCodec) | `T: Deserialize` | anything `Serialize` | `ObjectProtocol` |
//!
//! A handler names one as its `Connection::Codec` and gets one decoded
//! frame per `receive_data`; `conn.send_data(x)` encodes `x` with it.
//! Outside em, `tokio_util::codec::Framed::new(stream, LineText2::new())`.
//!
//! ## Lines and binary data: LineText2
//!
//! Lines with a delimiter of one or more bytes (`"\n"` by default, and
//! then a `"\r"` before it is stripped too), switched mid-stream to a
//! sized binary block delivered whole ([`LineText2::set_binary_mode`]) or
//! in chunks ([`LineText2::set_binary_mode_streamed`]), each followed by
//! `EndOfBinary` and line mode again, or to unsized binary mode until the
//! next switch ([`LineText2::set_binary_mode_unsized`]); back to lines with
//! [`LineText2::set_line_mode`]; another delimiter with
//! [`LineText2::set_delimiter`]. [`LineAndText`] and [`LineProtocol`] run
//! on the same engine with `"\n"` and `String` lines.
//!
//! ## Switching modes from a handler
//!
//! The codec lives in the connection: a handler switches it from
//! `receive_data` with [`Conn::with_codec`](em_core::Conn::with_codec),
//! and the next frame is decoded under the new mode. em decodes one frame,
//! delivers it, then decodes the next from the same buffer, so bytes that
//! arrived in the same read as the line announcing a block are neither
//! lost nor delivered twice:
//!
//! ```
//! # #![allow(dead_code)]
//! # use em_core::Conn;
//! # use em_protocols::{LineText2, LineText2Frame};
//! // In `impl Connection for … { type Codec = LineText2; … }`:
//! fn receive_data(conn: &Conn<LineText2>, frame: LineText2Frame) {
//!     if frame == LineText2Frame::Line("DATA 512".into()) {
//!         conn.with_codec(|codec| codec.set_binary_mode(512)).unwrap();
//!     }
//! }
//! ```
//!
//! With `Framed`, switch through `decoder_mut()` between frames.
//!
//! ## Limits and errors
//!
//! Every limit has a name, a default and a setter, and passing it is an
//! error of the codec's own typed error (each with `From<io::Error>` and a
//! `Display` that names the limit). In em a decoding error ends that
//! connection only, with `UnbindReason::Codec`, whose `Display` includes
//! the codec's.
//!
//! | Codec | Limit (default) | Error |
//! |---|---|---|
//! | [`LineText2`], [`LineAndText`], [`LineProtocol`] | `max_line_length` ([`DEFAULT_MAX_LINE_LENGTH`], 16 KiB) | [`LineError::LineTooLong`] |
//! | [`LineText2`], [`LineAndText`] | `max_binary_length`, for whole blocks ([`DEFAULT_MAX_BINARY_LENGTH`], 32 MiB) | [`LineError::BinaryTooLong`] |
//! | [`HeaderAndContent`] | `max_headers` ([`DEFAULT_MAX_HEADERS`], 100) | [`HeaderAndContentError::TooManyHeaders`] |
//! | [`HeaderAndContent`] | `max_header_size` ([`DEFAULT_MAX_HEADER_SIZE`], 64 KiB) | [`HeaderAndContentError::HeaderTooLarge`] |
//! | [`HeaderAndContent`] | `max_body_length` ([`DEFAULT_MAX_BODY_LENGTH`], 32 MiB) | [`HeaderAndContentError::BodyTooLong`] |
//! | [`ObjectCodec`] | `max_frame_length` ([`DEFAULT_MAX_FRAME_LENGTH`], 8 MiB) | [`ObjectCodecError::FrameTooLong`] |
//!
//! ## At the end of the stream
//!
//! `decode_eof` delivers an unfinished last line (the peer sent it;
//! tokio-util's `LinesCodec` does the same) and refuses anything else left
//! unfinished: a sized block ([`LineError::Truncated`]), a message
//! ([`HeaderAndContentError::Truncated`]), an object frame
//! ([`ObjectCodecError::Truncated`]). EventMachine hands a short block or
//! body to the handler as if it were whole.
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
//! # EventMachine → em
//!
//! | EventMachine | em | Notable difference |
//! |---|---|---|
//! | `include EM::Protocols::LineText2` | `type Codec = LineText2;` | lines are `Bytes` (protocols that mix text and binary carry 8-bit lines) |
//! | `receive_line(line)` | `receive_data(conn, LineText2Frame::Line(line))` | an unfinished last line is delivered at the end of the stream (EventMachine drops it) |
//! | `receive_binary_data(data)` | `receive_data(conn, LineText2Frame::Binary(block))`; `BinaryChunk(chunk)` when streamed or unsized | a block cut short by the end of the stream is an error, not a short block |
//! | `receive_end_of_binary_data` | `receive_data(conn, LineText2Frame::EndOfBinary)` | also after a streamed block |
//! | `set_binary_mode(n)`, `set_text_mode(n)` | `conn.with_codec(\|c\| c.set_binary_mode(n))`; `set_binary_mode_streamed(n)`; `set_text_mode(Some(n))` | over `max_binary_length` (32 MiB) is an error; `0` gives an empty block and its end (EventMachine: nothing) |
//! | `set_binary_mode` / `set_text_mode` with no size | `set_binary_mode_unsized()`, `set_text_mode(None)` | |
//! | `set_line_mode(data)` | `set_line_mode()` | nothing to feed back: bytes past a switch are never lost |
//! | `set_delimiter(string)` | `set_delimiter(bytes)?`, `LineText2::new_with_delimiter` | no `Regexp`; an empty one is an error |
//! | `LineText2::MaxLineLength` (not enforced) | `set_max_line_length(n)` (16 KiB) | enforced: [`LineError::LineTooLong`] |
//! | `EM::Protocols::LineAndTextProtocol` | [`LineAndText`] | `String` lines; an overlong line ends the connection with `UnbindReason::Codec` naming the limit, a panic with `Panicked` (EventMachine calls either `receive_error("overlength line")`, LTP1) |
//! | `EM::Protocols::LineProtocol` | [`LineProtocol`] | no repeated lines |
//! | `HeaderAndContentProtocol#receive_request(headers, content)` | `receive_data(conn, HeaderAndContentMessage { start_line, headers, body })` | headers parsed, in order, looked up by name ([`HeaderAndContentMessage::header`]); a message cut short is an error |
//! | `receive_first_header_line`, `receive_headers`, `headers_2_hash` | `message.start_line`, `message.headers`, `message.header(name)` | |
//! | `ObjectProtocol#receive_object(obj)` | `receive_data(conn, obj)` with `type Codec = ObjectCodec<T>` | typed: a payload that does not parse ends that connection (`UnbindReason::Codec`) |
//! | `ObjectProtocol#send_object(obj)` | `conn.send_data(obj)` | any `Serialize`; over `max_frame_length` is refused, nothing queued |
//! | `ObjectProtocol#serializer` (Marshal) | `ObjectCodec<T, Json>` (default), `ObjectCodec<T, MessagePack>` (feature `msgpack`), or your [`ObjectFormat`] | |
//! | `include EM::Protocols::Stomp`, `EM.connect(h, p, StompClient)` | `impl StompHandler`; `em::connect(addr, StompConnection::new(handler))` | the handler gets a [`Stomp`] handle in every callback |
//! | Stomp `connect(login: …, passcode: …)` | `stomp.connect(login, passcode, host)`, `stomp.connect_with_headers(&[…])` | `connect` offers versions 1.0 to 1.2 and takes the one `CONNECTED` names |
//! | Stomp `send(dest, body, parms)` | `stomp.send(dest, body, &[(name, value)])` | the body is bytes; no `content-type` added (EM adds `text/plain`) |
//! | Stomp `subscribe(dest, ack)` | `stomp.subscribe(dest, AckMode::…)` → subscription id; `stomp.unsubscribe(id)` | `AckMode` for EM's boolean (`Auto`, `Client`, `ClientIndividual`) |
//! | Stomp `ack(msgid)` | `stomp.ack(&msg)`, `stomp.nack(&msg)` | takes the message, so the header the version wants is sent |
//! | Stomp `receive_msg(msg)` with `command`, `header`, `body` | `StompHandler::receive_msg(stomp, frame)` with `command`, `header(name)`, `headers`, `body` | headers keep their order and repeats |
//! | Stomp `send_frame` | `stomp.send_frame(frame)`, `stomp.disconnect()` → receipt id | the connection closes after the `RECEIPT` of `DISCONNECT` |
//! | `include EM::Protocols::SASLauth`, `validate(user, psw, sysname, realm)` | `Sasl::from_fn(\|login, password, service, realm\| …)` or `Sasl::new(impl SaslValidator)` | a bad request (field over the limit, not UTF-8, cut short) ends that connection |
//! | `include EM::Protocols::SASLauthclient`, `validate?(user, psw, sysname, realm)` → Deferrable | `SaslClient::connect(addr)?.validate(…)` → `Deferred<bool, SaslError>`; `SaslClient::validate_once(addr, …)` | `NO reason` is a no (EM took anything but `NO` for yes); errors when no answer can come |
//! | `EM::Protocols::SmtpClient.send(domain:, host:, port:, starttls:, from:, to:, header:, body:, auth:)` → Deferrable | `SmtpClient::new("host:port").domain(d).starttls(StartTls::Required).auth(SmtpAuth::plain(user, password)).send(from, to, message)` → `Deferred<SmtpDelivery, SmtpError>`; `.send_mail(…).await` | `header:`/`body:` become one message text (headers, a blank line, the body), always dot-stuffed (no `content:`); success comes with the server's reply to each recipient; STARTTLS may be opportunistic; AUTH LOGIN too; EHLO falls back to HELO; PIPELINING when offered; the errback gets an `SmtpError` with `is_*()` predicates, the reply and the recipients, not an OpenStruct |
//! | `class S < EM::Protocols::SmtpServer`, `EM.start_server(h, p, S)` | `impl SmtpHandler for H`; `em::start_server(addr, \|\| SmtpServer::new_with_options(H, &options))` | a handler per connection, the protocol engine beside it |
//! | `SmtpServer.parms = {starttls:, auth:}`, `get_server_domain`, `get_server_greeting` | `SmtpServerOptions` `tls(TlsOptions)`, `require_tls`, `auth`, `require_auth`, `domain`, `greeting`, `max_message_size`, `max_line_length`, `max_recipients`, `timeout` | options, not overrides; STARTTLS with your certificate (EM: a built-in one) |
//! | `receive_ehlo_domain(domain)`, `receive_plain_auth(user, password)`, `receive_sender(sender)`, `receive_recipient(rcpt)`, `receive_data_command` → true, false or a Deferrable | the same hooks with an `&SmtpSession` first, → `SmtpAnswer` (`accept()`, `refuse()`, `reply(SmtpReply)`, `bool.into()`, or `SmtpAnswer::later()` and its `SmtpResponder`) | every hook may answer later (EM: some); `receive_plain_auth` serves AUTH LOGIN too and refuses by default (EM accepts anyone) |
//! | `receive_data_chunk(lines)` | `receive_data_chunk(&session, chunk)` | one dot-unstuffed line with its CRLF per call |
//! | `receive_message` → true, false or a Deferrable | `receive_message(&session, SmtpMessage { sender, recipients, data })` → `SmtpAnswer` | gets the whole message, dot-unstuffed, with its envelope; the transaction ends after it (EM keeps sender and recipients) |
//! | `receive_reset`, `connection_ended`, `receive_transaction` | `receive_reset`, `connection_ended(&session, &UnbindReason)`; no `receive_transaction` | `EHLO`, `RSET` and each message start a transaction: their hooks mark it |
//!
//! # Feature flags
//!
//! * `msgpack` (off): [`ObjectCodec`]'s `MessagePack` format, through
//!   rmp-serde: compact, binary, and read by every language, for peers
//!   that do not want JSON's size or parsing cost. JSON (serde_json) is
//!   the default format and needs no feature.

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

mod header_and_content;
mod line;
mod line_text2;
mod object;

pub use header_and_content::{
    HeaderAndContent, HeaderAndContentError, HeaderAndContentMessage, DEFAULT_MAX_BODY_LENGTH,
    DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADER_SIZE,
};
pub use line::{LineAndText, LineAndTextFrame, LineProtocol};
pub use line_text2::{
    LineError, LineText2, LineText2Frame, DEFAULT_MAX_BINARY_LENGTH, DEFAULT_MAX_LINE_LENGTH,
};
#[cfg(feature = "msgpack")]
pub use object::MessagePack;
pub use object::{
    FormatError, Json, ObjectCodec, ObjectCodecError, ObjectFormat, DEFAULT_MAX_FRAME_LENGTH,
};
