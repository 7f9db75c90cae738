//! Testing with em (feature `testing`, off by default): a reactor the test
//! drives from its own thread, fake servers, a fault-injecting proxy, a
//! recorder of callbacks, the paused clock and in-memory pairs, for
//! testing network code written with em or anything else.
//!
//! * [`TestReactor`]: a reactor on a background thread; `block_on` and
//!   `run` run code on it and bring the result back; `stop` reports any
//!   panic contained on it during the test.
//! * [`Recording`] and [`Recorder`]: the callbacks a handler got, in
//!   order, with their times; [`assert_sequence!`] checks them.
//! * [`pair`]: two connections joined in memory.
//! * [`FaultProxy`] and [`Toxic`]: a TCP proxy between the code under
//!   test and its server that injects faults (latency, bandwidth, black
//!   holes, resets, …), added and removed while connections are open.

mod fault_proxy;
mod pair;
mod reactor;
mod recorder;

pub use crate::assert_sequence;
pub use fault_proxy::{Direction, FaultProxy, Toxic, ToxicId};
pub use pair::pair;
pub use reactor::{TestReactor, TestReactorError, ANSWER_LIMIT};
pub use recorder::{Event, Recorded, Recorder, Recording};
