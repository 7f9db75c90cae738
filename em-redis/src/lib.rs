//! Redis for em: commands with typed replies and pipelining, pub/sub, and
//! a bridge that shares an em [`Channel`](em_core::Channel) between
//! processes through a Redis channel, all on em's own connections on the
//! reactor thread (em-hiredis for EventMachine).
//!
//! ```no_run
//! em::synchrony(async {
//!     let redis = em_redis::Client::connect("127.0.0.1:6379")?;
//!     redis.set("visits", 0).await?;
//!     for _ in 0..3 {
//!         redis.incr("visits").callback(|n| println!("visit {}", n.unwrap()));
//!     }
//!     let visits: Option<i64> = redis.get("visits").await?;
//!     assert_eq!(visits, Some(3));
//!     Ok::<(), em_redis::RedisError>(())
//! })??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! * [`Client`]: any command ([`Client::cmd`], [`Cmd`]) and the common
//!   ones typed (`get`, `set`, `incr`, `del`, `exists`, `expire`,
//!   `publish`), each a [`Reply`] to await or to give a
//!   [`callback`](Reply::callback). Commands go out as they are given, so
//!   several given before their replies come are pipelined.
//! * [`Subscriber`]: `subscribe` and `psubscribe` on a connection of its
//!   own.
//! * [`Bridge`]: an em `Channel` joined to a Redis channel.
//!
//! Every connection reconnects by itself with a back-off ([`Options`])
//! and a subscriber subscribes again; what happens to commands and
//! messages meanwhile is said on each type.
//!
//! The wire is RESP2 on an em connection. Replies are parsed by the
//! `redis-protocol` crate (the parser of the fred client): em-redis parses
//! no RESP by hand. It keeps redis-protocol's parse (where each part lies)
//! over the reply's bytes, taken from the read buffer as one handle, and
//! hands out bulk strings (a message's payload) as handles on it, without
//! a copy.
//! Commands, always arrays of bulk strings, are written by em-redis itself
//! (the same bytes as redis-protocol's writer, which a test checks; that
//! writer measured each length with a floating-point `log10`). Every reply
//! is handled on the reactor thread like any other frame, with em's
//! backpressure, timeouts and contained panics.
//! (The `redis` crate's async API would bring its own connection tasks and
//! `Send` bounds, outside the reactor's model.)
//!
//! # EventMachine → em-redis
//!
//! | em-hiredis | em-redis |
//! |---|---|
//! | `EM::Hiredis.connect(url)` | [`Client::connect`]`(addr)` |
//! | `redis.get('k').callback { \|v\| … }` | `redis.get("k").callback(\|v\| …)`, or `redis.get("k").await` |
//! | `redis.set`, `incr`, `del`, any command through `method_missing` | typed methods; [`Client::cmd`]`(["LPUSH", "q", "x"])`, [`Cmd`] |
//! | `redis.pubsub.subscribe('ch') { \|msg\| … }` | [`Subscriber::subscribe`]`("ch", \|msg\| …)` (a separate connection, as em-hiredis's `pubsub` is) |
//! | `psubscribe` | [`Subscriber::psubscribe`] |
//! | `reconnect_failed`, `reconnected` events | [`Client::reconnects`], [`Client::is_connected`] |

#![deny(missing_docs)]

mod bridge;
mod client;
mod codec;
mod error;
mod link;
mod options;
mod pubsub;
mod reply;
mod value;

pub use bridge::Bridge;
pub use client::Client;
pub use codec::{Cmd, ToArg, DEFAULT_MAX_REPLY};
pub use error::{RedisError, RedisResult};
pub use options::Options;
pub use pubsub::Subscriber;
pub use reply::Reply;
pub use value::{FromValue, Value};
