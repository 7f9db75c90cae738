//! SMTP (EventMachine's `EM::Protocols::SmtpServer` and `SmtpClient`):
//! the line framing (`codec.rs`), replies (`reply.rs`), the server
//! (`server.rs`) and how its hooks answer (`answer.rs`), the client
//! (`client.rs`) and its error (`error.rs`), and the AUTH mechanisms both
//! share (`auth.rs`). The crate docs hold the tour.

mod answer;
mod auth;
mod client;
mod codec;
mod error;
mod reply;
mod server;

pub use answer::{SmtpAnswer, SmtpResponder};
pub use auth::SmtpAuthMechanism;
pub use client::{SmtpAuth, SmtpClient, SmtpDelivery, SmtpRecipientStatus, StartTls};
pub use codec::{SmtpCodec, SmtpLine};
pub use error::SmtpError;
pub use reply::SmtpReply;
pub use server::{SmtpHandler, SmtpMessage, SmtpServer, SmtpServerOptions, SmtpSession};
