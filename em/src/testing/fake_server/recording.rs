//! The recording server: accepts anything, records everything.

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em_core::{Conn, Handler, UnbindReason};

use super::host::{self, Host, Tracked};
use super::script_error::escape;
use crate::testing::TestReactor;

/// The options of a recording server, then [`start`](RecordingBuilder::start);
/// made by [`FakeServer::recording`](super::FakeServer::recording). Any
/// thread.
///
/// By default the server sends nothing; [`greeting`](RecordingBuilder::greeting)
/// and [`echo`](RecordingBuilder::echo) give it a canned behaviour.
#[derive(Debug, Clone, Default)]
pub struct RecordingBuilder {
    greeting: Option<Bytes>,
    echo: bool,
}

impl RecordingBuilder {
    pub(super) fn new() -> RecordingBuilder {
        RecordingBuilder::default()
    }

    /// Sends `bytes` to each connection as soon as it is accepted (a
    /// banner, such as SMTP's `220`).
    pub fn greeting(mut self, bytes: impl Into<Bytes>) -> RecordingBuilder {
        self.greeting = Some(bytes.into());
        self
    }

    /// Sends every byte received straight back.
    pub fn echo(mut self) -> RecordingBuilder {
        self.echo = true;
        self
    }

    /// Starts the server on a reactor of its own, listening on 127.0.0.1
    /// (port 0), and returns once it listens. Test thread. Panics if it
    /// cannot listen.
    pub fn start(self) -> RecordingServer {
        self.start_with(None)
    }

    /// [`start`](RecordingBuilder::start) on `reactor`, the test's own;
    /// dropping the server stops its listener and closes its connections,
    /// and leaves the reactor running.
    pub fn start_on(self, reactor: &TestReactor) -> RecordingServer {
        self.start_with(Some(reactor))
    }

    fn start_with(self, reactor: Option<&TestReactor>) -> RecordingServer {
        let (host, (addr, log)) = Host::launch("FakeServer::recording", reactor, move |signal| {
            let log = Arc::new(Log::new());
            let conns = Rc::new(RefCell::new(Vec::new()));
            let (l, c) = (log.clone(), conns.clone());
            let server = em_core::start_server("127.0.0.1:0", move || Tracked {
                conns: c.clone(),
                inner: Record {
                    log: l.clone(),
                    index: usize::MAX,
                    greeting: self.greeting.clone(),
                    echo: self.echo,
                },
            })?;
            let addr = server
                .local_addr()
                .inet()
                .expect("a TCP server has an inet address");
            host::hold_until_stopped(signal, server, conns)?;
            Ok((addr, log))
        });
        tracing::debug!(%addr, "fake server (recording) listening");
        RecordingServer { host, addr, log }
    }
}

/// Something that happened on one of a [`RecordingServer`]'s connections.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireEvent {
    /// The connection was accepted.
    Connected,
    /// Bytes were read: one event per read, so how a client's writes are
    /// split or merged is the network's choice; join them with
    /// [`RecordingServer::received`].
    Data(Bytes),
    /// The peer shut its write side (its FIN arrived: end of stream). em
    /// ends a connection there, once the replies to what was read are
    /// written, so a [`Closed`](WireEvent::Closed) follows at once. A peer
    /// that closes entirely sends the same FIN: the two cannot be told
    /// apart from this side.
    HalfClosed,
    /// The connection ended; how, as em's reason says it (`closed by the
    /// peer`, `I/O error: Connection reset by peer…`, `closed locally`
    /// when the server was stopped).
    Closed(String),
}

impl fmt::Display for WireEvent {
    /// The short form: `connected`, `data "hi\r\n"`, `half-closed`,
    /// `closed (closed by the peer)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireEvent::Connected => f.write_str("connected"),
            WireEvent::Data(bytes) => write!(f, "data \"{}\"", escape(bytes)),
            WireEvent::HalfClosed => f.write_str("half-closed"),
            WireEvent::Closed(how) => write!(f, "closed ({how})"),
        }
    }
}

/// One recorded [`WireEvent`], with when and on which connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRecord {
    /// When, since the server started (on its reactor's clock).
    pub at: Duration,
    /// The connection: 0 for the first accepted, 1 for the next…
    pub conn: usize,
    /// What happened.
    pub event: WireEvent,
}

/// A running recording server; made by [`RecordingBuilder::start`]. Its
/// accessors read, from any thread, what the reactor thread recorded so
/// far; its `wait_for_*` methods block the test's thread, within a bound,
/// until something is recorded. Dropping it stops the server.
///
/// ```
/// use std::io::{Read, Write};
/// use em::testing::{FakeServer, WireEvent};
/// use em::Duration;
///
/// let server = FakeServer::recording().echo().start();
/// let mut client = std::net::TcpStream::connect(server.local_addr())?;
/// client.write_all(b"hello")?;
/// client.shutdown(std::net::Shutdown::Write)?;
/// let mut echoed = Vec::new();
/// client.read_to_end(&mut echoed)?;
/// assert_eq!(echoed, b"hello");
///
/// server.wait_for_close(0, Duration::from_secs(10));
/// assert_eq!(server.received(0), b"hello");
/// let events: Vec<WireEvent> = server.events_of(0).into_iter().map(|r| r.event).collect();
/// assert_eq!(events.first(), Some(&WireEvent::Connected));
/// assert_eq!(events[events.len() - 2], WireEvent::HalfClosed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RecordingServer {
    host: Host,
    addr: SocketAddr,
    log: Arc<Log>,
}

impl RecordingServer {
    /// The address the server listens on. Any thread.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections were accepted so far. Any thread.
    pub fn connections(&self) -> usize {
        self.log.lock().conns
    }

    /// Every event recorded so far, on every connection, in order. Any
    /// thread.
    pub fn events(&self) -> Vec<WireRecord> {
        self.log.lock().records.clone()
    }

    /// The events of connection `conn` (0 for the first accepted), in
    /// order. Any thread.
    pub fn events_of(&self, conn: usize) -> Vec<WireRecord> {
        events_of(&self.log.lock(), conn)
    }

    /// Every byte read on connection `conn` so far, joined; empty for a
    /// connection that sent nothing or does not exist. Any thread.
    pub fn received(&self, conn: usize) -> Vec<u8> {
        received(&self.log.lock(), conn)
    }

    /// Waits until `n` connections have been accepted. Test thread.
    /// Panics, listing what was recorded, if they are not within `limit`.
    #[track_caller]
    pub fn wait_for_connections(&self, n: usize, limit: Duration) {
        self.wait(limit, &format!("{n} connection(s)"), |s| {
            (s.conns >= n).then_some(())
        })
    }

    /// Waits until connection `conn` has sent at least `n` bytes, and
    /// returns all it sent. Test thread. Panics, listing what was
    /// recorded, if they do not come within `limit`.
    #[track_caller]
    pub fn wait_for_received(&self, conn: usize, n: usize, limit: Duration) -> Vec<u8> {
        self.wait(limit, &format!("{n} byte(s) on connection {conn}"), |s| {
            let bytes = received(s, conn);
            (bytes.len() >= n).then_some(bytes)
        })
    }

    /// Waits until connection `conn` has ended, and returns how (the
    /// reason of its [`WireEvent::Closed`]). Test thread. Panics, listing
    /// what was recorded, if it has not within `limit`.
    #[track_caller]
    pub fn wait_for_close(&self, conn: usize, limit: Duration) -> String {
        self.wait(limit, &format!("the close of connection {conn}"), |s| {
            events_of(s, conn).into_iter().find_map(|r| match r.event {
                WireEvent::Closed(how) => Some(how),
                _ => None,
            })
        })
    }

    #[track_caller]
    fn wait<T>(
        &self,
        limit: Duration,
        what: &str,
        mut ready: impl FnMut(&LogState) -> Option<T>,
    ) -> T {
        let deadline = std::time::Instant::now() + limit;
        let mut state = self.log.lock();
        loop {
            if let Some(value) = ready(&state) {
                return value;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                let lines: String = state
                    .records
                    .iter()
                    .map(|r| format!("  {:>8.3?} #{} {}\n", r.at, r.conn, r.event))
                    .collect();
                drop(state);
                panic!("fake server: no {what} within {limit:?}; recorded:\n{lines}");
            }
            state = self
                .log
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }
}

impl fmt::Debug for RecordingServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingServer")
            .field("local_addr", &self.addr)
            .field("connections", &self.connections())
            .field("host", &self.host)
            .finish()
    }
}

fn events_of(state: &LogState, conn: usize) -> Vec<WireRecord> {
    state
        .records
        .iter()
        .filter(|r| r.conn == conn)
        .cloned()
        .collect()
}

fn received(state: &LogState, conn: usize) -> Vec<u8> {
    state
        .records
        .iter()
        .filter(|r| r.conn == conn)
        .filter_map(|r| match &r.event {
            WireEvent::Data(bytes) => Some(&bytes[..]),
            _ => None,
        })
        .collect::<Vec<&[u8]>>()
        .concat()
}

/// The records, written on the reactor thread, read and waited on from
/// the test's.
struct Log {
    start: tokio::time::Instant,
    state: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Default)]
struct LogState {
    conns: usize,
    records: Vec<WireRecord>,
}

impl Log {
    /// Reactor thread: its clock starts now.
    fn new() -> Log {
        Log {
            start: tokio::time::Instant::now(),
            state: Mutex::new(LogState::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap()
    }

    /// Records a new connection and returns its index.
    fn connect(&self) -> usize {
        let index = {
            let mut state = self.lock();
            state.conns += 1;
            state.conns - 1
        };
        self.push(index, WireEvent::Connected);
        index
    }

    fn push(&self, conn: usize, event: WireEvent) {
        let at = self.start.elapsed();
        self.lock().records.push(WireRecord { at, conn, event });
        self.changed.notify_all();
    }
}

/// The handler of each recorded connection. Reactor thread.
struct Record {
    log: Arc<Log>,
    index: usize,
    greeting: Option<Bytes>,
    echo: bool,
}

impl Handler for Record {
    fn post_init(&mut self, conn: &Conn) {
        self.index = self.log.connect();
        if let Some(greeting) = &self.greeting {
            conn.send_data(greeting.clone());
        }
    }

    fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
        let data = data.freeze();
        self.log.push(self.index, WireEvent::Data(data.clone()));
        if self.echo {
            conn.send_data(data);
        }
    }

    fn unbind(&mut self, _conn: &Conn, reason: UnbindReason) {
        if let UnbindReason::PeerClosed = reason {
            self.log.push(self.index, WireEvent::HalfClosed);
        }
        self.log
            .push(self.index, WireEvent::Closed(reason.to_string()));
    }
}
