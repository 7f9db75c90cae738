//! The reactor: one current-thread tokio runtime plus a `LocalSet` per
//! reactor, the run loop and its teardown ([`run`](run::run)), the
//! `next_tick` queue ([`ticks`]), the cross-thread [`Handle`](remote::Handle),
//! panic containment with the error handler ([`panic`]), and what the
//! reactor counts ([`stats`]).
//!
//! The core knows connections and servers only through
//! [`core::Member`]; nothing here imports the network engine.

pub(crate) mod builder;
pub(crate) mod core;
pub(crate) mod group;
pub(crate) mod panic;
pub(crate) mod remote;
pub(crate) mod run;
pub(crate) mod stats;
pub(crate) mod ticks;
