//! EventMachine's bundled protocols (`EM::Protocols`) for em.
//!
//! * **Codecs** (tokio-util `Decoder`/`Encoder`s, so they work with
//!   tokio's `Framed` outside em too).
//! * **Conversations** (handlers over em's connections).
//!
//! Everything runs on the reactor thread of the connection it serves,
//! like any handler; the codecs are plain data and run wherever their
//! `Framed` runs.

#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod smtp;
