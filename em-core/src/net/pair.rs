//! In-memory pairs: two handlers joined through an in-memory duplex pipe,
//! with no socket and no port (Twisted's `StringTransport` idea).

use crate::error::{Error, Result};
use crate::net::address::Addr;
use crate::net::conn::Conn;
use crate::net::connection::Connection;
use crate::net::driver::stream::StreamPump;
use crate::net::driver::{Driver, Start};
use crate::net::transport::{self, BoxTransport};
use crate::reactor::core::Core;
use crate::reactor::panic;

/// Joins handlers `a` and `b` through an in-memory pipe and returns both
/// handles, after each `post_init` has run. Reactor thread only.
///
/// No socket, no port and no system call: bytes go through a
/// `tokio::io::duplex` buffer of 256 KiB each way, so a pair runs under the
/// paused clock (`start_paused`) with no real time passing, which makes it
/// the transport for deterministic tests of protocol code. Everything else
/// is the same engine as TCP: codecs, watermarks, timeouts, close reasons,
/// exactly one `unbind`. `a` is like an accepted connection; `b` is like a
/// client, and gets `connection_completed` (on a later pass, before any
/// `receive_data`), so handlers written for TCP servers and clients run
/// unchanged. Both ends' addresses are [`Addr::Memory`].
///
/// Errors: `is_no_reactor()` / `is_stopping()`; `is_panic()` if a handler's
/// `codec()` panicked (nothing is created then).
///
/// ```
/// # use em_core as em;
/// use em::{Conn, Connection};
/// use tokio_util::codec::LinesCodec;
///
/// struct Greeter;
/// impl Connection for Greeter {
///     type Codec = LinesCodec;
///     fn codec(&self) -> LinesCodec { LinesCodec::new() }
///     fn receive_data(&mut self, conn: &Conn<LinesCodec>, name: String) {
///         conn.send_data(format!("hello, {name}"));
///     }
/// }
///
/// struct Visitor;
/// impl Connection for Visitor {
///     type Codec = LinesCodec;
///     fn codec(&self) -> LinesCodec { LinesCodec::new() }
///     fn connection_completed(&mut self, conn: &Conn<LinesCodec>) {
///         conn.send_data("em");
///     }
///     fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
///         assert_eq!(line, "hello, em");
///         em::stop();
///     }
/// }
///
/// em::run(|| -> em::Result<()> {
///     em::connect_pair(Greeter, Visitor)?;
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
// The two handles, each typed by its own handler's codec.
#[allow(clippy::type_complexity)]
pub fn connect_pair<A: Connection, B: Connection>(
    a: A,
    b: B,
) -> Result<(Conn<A::Codec>, Conn<B::Codec>)> {
    let core = Core::current_accepting("connect_pair")?;
    let codec_a =
        panic::catch("codec", None, || a.codec()).map_err(|m| Error::panicked("codec", m))?;
    let codec_b =
        panic::catch("codec", None, || b.codec()).map_err(|m| Error::panicked("codec", m))?;
    let (end_a, end_b) = transport::pair();
    let conn_a = Conn::new(&core, codec_a);
    *conn_a.state().peer.borrow_mut() = Some(Addr::Memory);
    let conn_b = Conn::new(&core, codec_b);
    Driver::<A, StreamPump>::start(
        a,
        conn_a.clone(),
        core.clone(),
        Start::Open(Box::new(end_a)),
    );
    // A connect that completes at once: `b` gets `connection_completed`.
    let end_b: BoxTransport = Box::new(end_b);
    let connected = Box::pin(async move { Ok(end_b) });
    Driver::<B, StreamPump>::start(b, conn_b.clone(), core, Start::Connecting(connected));
    Ok((conn_a, conn_b))
}
