//! The callback recorder: a wrapper around any handler that records the
//! callbacks it gets, in order, with their times.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use em_core::{Conn, Connection, ConnectionId, Frame, UnbindReason};

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// When, since the [`Recording`] was made (on the reactor's clock, so
    /// paused time on a paused reactor).
    pub at: Duration,
    /// The connection it happened on; `None` for a [`note`](Recording::note).
    pub conn: Option<ConnectionId>,
    /// What happened.
    pub event: Event,
}

/// A recorded callback (or note).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `post_init`.
    PostInit,
    /// `connection_completed`.
    ConnectionCompleted,
    /// `receive_data`, with the frame's `Debug` form.
    ReceiveData(String),
    /// `outbound_drained`.
    OutboundDrained,
    /// `unbind`, with the reason's `Display` form.
    Unbind(String),
    /// `ssl_handshake_completed`.
    SslHandshakeCompleted,
    /// `proxy_target_unbound`.
    ProxyTargetUnbound,
    /// `proxy_completed`.
    ProxyCompleted,
    /// A note of the test's own ([`Recording::note`]): a timer that fired,
    /// a tick that ran.
    Note(String),
}

impl fmt::Display for Event {
    /// The short form [`Recording::assert_sequence`] matches:
    /// `post_init`, `connection_completed`, `receive_data b"hi"`,
    /// `outbound_drained`, `unbind closed locally`, `note timer`…
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::PostInit => f.write_str("post_init"),
            Event::ConnectionCompleted => f.write_str("connection_completed"),
            Event::ReceiveData(frame) => write!(f, "receive_data {frame}"),
            Event::OutboundDrained => f.write_str("outbound_drained"),
            Event::Unbind(reason) => write!(f, "unbind {reason}"),
            Event::SslHandshakeCompleted => f.write_str("ssl_handshake_completed"),
            Event::ProxyTargetUnbound => f.write_str("proxy_target_unbound"),
            Event::ProxyCompleted => f.write_str("proxy_completed"),
            Event::Note(what) => write!(f, "note {what}"),
        }
    }
}

/// The events recorded by the [`Recorder`]s it made, in the order they
/// happened, across connections. Cheap to clone, `Send` and `Sync`: made
/// and filled on the reactor thread, read from the test's thread.
///
/// ```
/// use em::prelude::*;
/// use em::testing::{Recording, TestReactor};
///
/// struct Echo;
/// impl Handler for Echo {
///     fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
///         conn.send_data(data);
///         conn.close_connection_after_writing();
///     }
/// }
///
/// let reactor = TestReactor::start();
/// let recording = reactor.block_on(Recording::new);
/// let r = recording.clone();
/// let addr = reactor.block_on(move || {
///     let server = em::start_server("127.0.0.1:0", move || r.wrap(Echo)).unwrap();
///     server.local_addr().inet().unwrap()
/// });
/// use std::io::{Read, Write};
/// let mut client = std::net::TcpStream::connect(addr)?;
/// client.write_all(b"hi")?;
/// client.read_to_end(&mut Vec::new())?;
/// recording.wait_for("unbind*", em::Duration::from_secs(10));
/// em::testing::assert_sequence!(recording, "post_init", r#"receive_data b"hi""#, "unbind closed locally");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Recording {
    inner: Arc<Shared>,
}

struct Shared {
    start: tokio::time::Instant,
    events: Mutex<Vec<Recorded>>,
    changed: std::sync::Condvar,
}

impl Recording {
    /// An empty recording, its clock starting now. Reactor thread (it
    /// reads the reactor's clock).
    pub fn new() -> Recording {
        Recording {
            inner: Arc::new(Shared {
                start: tokio::time::Instant::now(),
                events: Mutex::new(Vec::new()),
                changed: std::sync::Condvar::new(),
            }),
        }
    }

    /// Wraps `handler` so that its callbacks are recorded here; the wrapper
    /// is a [`Connection`] with the same codec, calling `handler` after
    /// recording each callback. Reactor thread.
    pub fn wrap<H: Connection>(&self, handler: H) -> Recorder<H> {
        Recorder {
            inner: handler,
            recording: self.clone(),
        }
    }

    /// Records a note of the test's own (a timer fired, a tick ran), with
    /// no connection. Reactor thread.
    pub fn note(&self, what: impl Into<String>) {
        self.push(None, Event::Note(what.into()));
    }

    fn push(&self, conn: Option<ConnectionId>, event: Event) {
        let at = self.inner.start.elapsed();
        self.inner
            .events
            .lock()
            .unwrap()
            .push(Recorded { at, conn, event });
        self.inner.changed.notify_all();
    }

    /// Everything recorded so far, in order. Any thread.
    pub fn events(&self) -> Vec<Recorded> {
        self.inner.events.lock().unwrap().clone()
    }

    /// The short forms of everything recorded so far (see [`Event`]'s
    /// `Display`). Any thread.
    pub fn lines(&self) -> Vec<String> {
        self.events().iter().map(|e| e.event.to_string()).collect()
    }

    /// Waits (on the test's thread, never on the reactor's) until an event
    /// matching `pattern` (as in [`assert_sequence`](Self::assert_sequence))
    /// has been recorded, and returns the first such event of the whole
    /// recording (one recorded earlier answers at once); panics with
    /// everything recorded if none comes within `limit`.
    #[track_caller]
    pub fn wait_for(&self, pattern: &str, limit: Duration) -> Recorded {
        let deadline = std::time::Instant::now() + limit;
        let mut events = self.inner.events.lock().unwrap();
        loop {
            if let Some(e) = events
                .iter()
                .find(|e| matches(pattern, &e.event.to_string()))
            {
                return e.clone();
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                let lines: Vec<String> = events.iter().map(|e| e.event.to_string()).collect();
                drop(events);
                panic!(
                    "no event matching {pattern:?} within {limit:?}; recorded:\n{}",
                    numbered(&lines)
                );
            }
            events = self
                .inner
                .changed
                .wait_timeout(events, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Asserts that the events recorded are exactly `expected`, in order:
    /// each is an event's short form (see [`Event`]'s `Display`), or a
    /// prefix of one followed by `*` (`"receive_data*"`, `"unbind*"`). On
    /// a mismatch it panics with both lists side by side and the first
    /// difference marked. [`assert_sequence!`](crate::testing::assert_sequence)
    /// is the macro form.
    #[track_caller]
    pub fn assert_sequence(&self, expected: &[&str]) {
        let got = self.lines();
        let first_difference =
            (0..expected.len().max(got.len())).find(|&i| match (expected.get(i), got.get(i)) {
                (Some(want), Some(have)) => !matches(want, have),
                _ => true,
            });
        if let Some(i) = first_difference {
            let mut report = String::from("the recorded events differ from the expected ones:\n");
            let width = expected.iter().map(|e| e.len()).max().unwrap_or(0).max(8);
            report.push_str(&format!("     {:<width$}   recorded\n", "expected"));
            for row in 0..expected.len().max(got.len()) {
                let mark = if row == i { "=>" } else { "  " };
                report.push_str(&format!(
                    "{mark} {row:>2} {:<width$}   {}\n",
                    expected.get(row).copied().unwrap_or("(nothing)"),
                    got.get(row).map(String::as_str).unwrap_or("(nothing)"),
                ));
            }
            panic!("{report}");
        }
    }
}

impl Default for Recording {
    fn default() -> Self {
        Recording::new()
    }
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.lines()).finish()
    }
}

/// `pattern` matches `line` exactly, or by prefix with a trailing `*`.
fn matches(pattern: &str, line: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => line.starts_with(prefix),
        None => pattern == line,
    }
}

fn numbered(lines: &[String]) -> String {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("  {i:>2} {l}\n"))
        .collect()
}

/// Asserts the events of a [`Recording`] in order, with a readable report
/// of both lists on a mismatch: `assert_sequence!(recording, "post_init",
/// "receive_data*", "unbind*")`. See [`Recording::assert_sequence`].
#[macro_export]
macro_rules! assert_sequence {
    ($recording:expr $(, $event:expr)* $(,)?) => {
        $recording.assert_sequence(&[$($event),*])
    };
}

/// A handler whose callbacks are recorded in a [`Recording`] before they
/// reach it; made by [`Recording::wrap`]. A [`Connection`] with the
/// wrapped handler's codec; runs on the reactor thread.
pub struct Recorder<H> {
    inner: H,
    recording: Recording,
}

impl<H> Recorder<H> {
    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H> fmt::Debug for Recorder<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl<H> Connection for Recorder<H>
where
    H: Connection,
    Frame<H>: fmt::Debug,
{
    type Codec = H::Codec;

    fn codec(&self) -> H::Codec {
        self.inner.codec()
    }
    fn post_init(&mut self, conn: &Conn<H::Codec>) {
        self.recording.push(Some(conn.id()), Event::PostInit);
        self.inner.post_init(conn)
    }
    fn connection_completed(&mut self, conn: &Conn<H::Codec>) {
        self.recording
            .push(Some(conn.id()), Event::ConnectionCompleted);
        self.inner.connection_completed(conn)
    }
    fn receive_data(&mut self, conn: &Conn<H::Codec>, frame: Frame<H>) {
        self.recording
            .push(Some(conn.id()), Event::ReceiveData(format!("{frame:?}")));
        self.inner.receive_data(conn, frame)
    }
    fn outbound_drained(&mut self, conn: &Conn<H::Codec>) {
        self.recording.push(Some(conn.id()), Event::OutboundDrained);
        self.inner.outbound_drained(conn)
    }
    fn unbind(&mut self, conn: &Conn<H::Codec>, reason: UnbindReason) {
        self.recording
            .push(Some(conn.id()), Event::Unbind(reason.to_string()));
        self.inner.unbind(conn, reason)
    }
    fn notify_readable(&mut self, conn: &Conn<H::Codec>) {
        self.inner.notify_readable(conn)
    }
    fn notify_writable(&mut self, conn: &Conn<H::Codec>) {
        self.inner.notify_writable(conn)
    }
    fn proxy_target_unbound(&mut self, conn: &Conn<H::Codec>) {
        self.recording
            .push(Some(conn.id()), Event::ProxyTargetUnbound);
        self.inner.proxy_target_unbound(conn)
    }
    fn proxy_completed(&mut self, conn: &Conn<H::Codec>) {
        self.recording.push(Some(conn.id()), Event::ProxyCompleted);
        self.inner.proxy_completed(conn)
    }
    fn ssl_handshake_completed(&mut self, conn: &Conn<H::Codec>) {
        self.recording
            .push(Some(conn.id()), Event::SslHandshakeCompleted);
        self.inner.ssl_handshake_completed(conn)
    }
    fn ssl_verify_peer(&mut self, conn: &Conn<H::Codec>, cert_der: &[u8]) -> bool {
        self.inner.ssl_verify_peer(conn, cert_der)
    }
}
