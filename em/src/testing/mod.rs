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
//! * [`FakeServer`]: fake servers on 127.0.0.1 for any client: a
//!   [`Script`] of lines and bytes to expect and send (with waits, stalls,
//!   resets), checked by [`ScriptedServer::finish`]; a
//!   [`RecordingServer`] that keeps every byte and close; a closure on
//!   raw bytes ([`FakeServer::handler`]).

mod fake_server;
mod pair;
mod reactor;
mod recorder;

pub use crate::assert_sequence;
pub use fake_server::{
    FakeServer, RecordingBuilder, RecordingServer, Script, ScriptError, ScriptedServer, WireEvent,
    WireRecord, DEFAULT_FINISH_LIMIT, DEFAULT_STEP_TIMEOUT,
};
pub use pair::pair;
pub use reactor::{TestReactor, TestReactorError, ANSWER_LIMIT};
pub use recorder::{Event, Recorded, Recorder, Recording};
