//! Fake servers for tests: a scripted dialogue, a recorder of everything a
//! client does, and a server made of one closure. Each listens on
//! 127.0.0.1 with a port of its own and runs on a [`TestReactor`].

mod closure;
mod host;
mod recording;
mod script;
mod script_error;

pub use recording::{RecordingBuilder, RecordingServer, WireEvent, WireRecord};
pub use script::{Script, ScriptedServer, DEFAULT_FINISH_LIMIT, DEFAULT_STEP_TIMEOUT};
pub use script_error::ScriptError;

use std::fmt;
use std::net::SocketAddr;

use host::Host;

#[cfg(doc)]
use crate::testing::TestReactor;

/// A fake server for a test, listening on 127.0.0.1 (port 0: the kernel
/// picks a free one) on a [`TestReactor`] of its own (or one the test
/// passes in), for any client: em's, tokio's, std's, `curl`.
///
/// Three kinds, one constructor each:
///
/// * [`FakeServer::script`]: a dialogue written in advance (expect this
///   line, send that one, wait, stall, reset, close); [`finish`](ScriptedServer::finish)
///   says whether the client kept to it, and if not, where and how it
///   strayed.
/// * [`FakeServer::recording`]: accepts anything and records every
///   connection, byte, half-close and close with its time, for the test
///   to read and wait on.
/// * [`FakeServer::handler`]: a closure on raw bytes with em's connection
///   API, as [`em::handler`](crate::handler), when a canned behaviour is
///   not enough. This type is that server.
///
/// Dropping any of them (on the test's thread) stops it, and returns once
/// it has: the listener is closed (new connects are refused) and its
/// connections are closing. A fake on a reactor of its own stops that reactor too, and
/// fails the test (panics) if a callback panicked on it during the test,
/// as dropping a [`TestReactor`] does.
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use em::testing::FakeServer;
///
/// let server = FakeServer::script()
///     .send_line("220 fake.example ESMTP")
///     .expect_line("HELO client.example")
///     .send_line("250 hello")
///     .expect_line("QUIT")
///     .send_line("221 bye")
///     .close()
///     .start();
///
/// // The client under test; a std client here.
/// let stream = std::net::TcpStream::connect(server.local_addr())?;
/// let mut reader = BufReader::new(stream.try_clone()?);
/// let mut writer = stream;
/// let mut line = String::new();
/// reader.read_line(&mut line)?;
/// assert_eq!(line, "220 fake.example ESMTP\r\n");
/// writer.write_all(b"HELO client.example\r\n")?;
/// line.clear();
/// reader.read_line(&mut line)?;
/// assert_eq!(line, "250 hello\r\n");
/// writer.write_all(b"QUIT\n")?; // `\n` alone is a line end too
///
/// server.finish()?; // the client said everything the script expected
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FakeServer {
    host: Host,
    addr: SocketAddr,
}

impl FakeServer {
    /// Starts writing a scripted server: see [`Script`]. Any thread.
    pub fn script() -> Script {
        Script::new()
    }

    /// Starts configuring a recording server: see [`RecordingBuilder`].
    /// Any thread.
    pub fn recording() -> RecordingBuilder {
        RecordingBuilder::new()
    }

    /// The address the server listens on (127.0.0.1 and the port the
    /// kernel chose). Any thread.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeServer")
            .field("local_addr", &self.addr)
            .field("host", &self.host)
            .finish()
    }
}
