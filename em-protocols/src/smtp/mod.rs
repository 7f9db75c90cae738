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
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! use em_protocols::smtp::{Answer, Message, Session, SmtpClient, SmtpHandler, SmtpServer};
//!
//! struct Inbox(Rc<RefCell<Vec<Message>>>);
//!
//! impl SmtpHandler for Inbox {
//!     fn receive_message(&mut self, _: &Session<'_>, message: Message) -> Answer {
//!         self.0.borrow_mut().push(message);
//!         Answer::accept()
//!     }
//! }
//!
//! let inbox = Rc::new(RefCell::new(Vec::new()));
//! let kept = inbox.clone();
//! let delivery = em_core::synchrony(async move {
//!     let server = em_core::start_server("127.0.0.1:0", move || {
//!         SmtpServer::new(Inbox(kept.clone()))
//!     })?;
//!     let client = SmtpClient::new(server.local_addr());
//!     let delivery = client
//!         .send_mail("me@example.org", ["you@example.org"], "Subject: hi\n\n.hidden dot\n")
//!         .await?;
//!     Ok::<_, Box<dyn std::error::Error>>(delivery)
//! })??;
//! assert_eq!(delivery.accepted().collect::<Vec<_>>(), ["you@example.org"]);
//! let inbox = inbox.borrow();
//! assert_eq!(inbox[0].sender, "me@example.org");
//! assert_eq!(&inbox[0].data[..], b"Subject: hi\r\n\r\n.hidden dot\r\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod answer;
mod auth;
mod client;
mod codec;
mod error;
mod reply;
mod server;

pub use answer::{Answer, Responder};
pub use auth::AuthMechanism;
pub use client::{
    Auth, Delivery, RecipientStatus, SmtpClient, StartTls, DEFAULT_CLIENT_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
};
pub use codec::{SmtpCodec, SmtpLine, DEFAULT_MAX_LINE_LENGTH};
pub use error::SmtpError;
pub use reply::Reply;
pub use server::{
    Message, Session, SmtpHandler, SmtpServer, SmtpServerOptions, DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_RECIPIENTS, DEFAULT_SERVER_TIMEOUT,
};
