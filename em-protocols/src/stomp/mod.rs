//! STOMP (EventMachine's `EM::Protocols::Stomp`): frames, their codec, and
//! a client.
//!
//! * `frame.rs`: [`StompFrame`] and [`StompVersion`].
//! * `codec.rs`: [`StompCodec`], a tokio-util codec of frames, and its
//!   errors.
//! * `client.rs`: the [`Stomp`] handle with EventMachine's verbs, the
//!   [`StompHandler`] trait the user implements, and [`StompConnection`],
//!   the em `Connection` joining them.

mod client;
mod codec;
mod frame;

pub use client::{AckMode, Stomp, StompConnection, StompHandler};
pub use codec::{StompCodec, StompCodecError};
pub use frame::{StompFrame, StompVersion};
