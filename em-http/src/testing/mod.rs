//! Testing HTTP clients (feature `testing`, off by default): a fake HTTP
//! server with canned responses per route and a log of the requests it
//! got, on a reactor of its own, for any client (em-http's, curl, a
//! client under test).
//!
//! * [`FakeHttpServer`]: routes (method and path) to [`CannedResponse`]s,
//!   a `404` for anything else, optional delays; [`LoggedRequest`]s to
//!   read and wait on from the test's thread.
//!
//! It runs on em's [`TestReactor`](em::testing::TestReactor); the
//! byte-level fakes (scripted, recording) are in
//! [`em::testing`].

mod canned;
mod fake_http_server;
mod request_log;

pub use canned::CannedResponse;
pub use fake_http_server::{FakeHttpBuilder, FakeHttpServer};
pub use request_log::LoggedRequest;
