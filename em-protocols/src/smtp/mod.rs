//! SMTP (EventMachine's `EM::Protocols::SmtpServer` and `SmtpClient`): a
//! server as an em connection with hooks for each command and the
//! message, and a client that sends one message per connection, with
//! `STARTTLS` and `AUTH` on both sides.
//!
//! * [`SmtpServer`] with an [`SmtpHandler`]: `EHLO`/`HELO`, `AUTH PLAIN`
//!   and `AUTH LOGIN`, `MAIL`/`RCPT`/`DATA` with dot-unstuffing and a size
//!   limit, `RSET`, `NOOP`, `QUIT`, `VRFY`, `HELP`, `STARTTLS`, pipelining;
//!   enough to receive mail from any real client, and what the integration
//!   tests of mail-sending code want.
//! * [`SmtpClient`]: [`send`](SmtpClient::send) returns a
//!   [`Deferred`](em_core::Deferred) (EventMachine's Deferrable),
//!   [`send_mail`](SmtpClient::send_mail) is its `async fn`; either gives
//!   a [`Delivery`] with the server's reply to each recipient, or an
//!   [`SmtpError`].
//! * [`SmtpCodec`]: the line framing both use, a tokio-util codec.
//!
//! Everything runs on the reactor thread.

mod answer;
mod auth;
mod codec;
mod reply;
mod server;

pub use answer::{Answer, Responder};
pub use codec::{SmtpCodec, SmtpLine, DEFAULT_MAX_LINE_LENGTH};
pub use reply::Reply;
pub use server::{
    Message, Session, SmtpHandler, SmtpServer, SmtpServerOptions, DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_RECIPIENTS, DEFAULT_SERVER_TIMEOUT,
};
