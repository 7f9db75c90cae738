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
