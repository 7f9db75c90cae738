//! Helpers shared by the integration tests: a watchdog for every reactor run,
//! blocking std-socket peers, an event log for callback order, and a few
//! handlers that several areas need.
#![allow(dead_code, unreachable_pub, unused_macros, unused_imports)]

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::BytesMut;
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::{BytesCodec, LinesCodec, LinesCodecError};

pub mod certs;
pub mod forward_proxy;
pub mod http;
pub mod nginx;
pub mod python;
pub mod rabbitmq;
pub mod redis;
pub mod transports;

/// The longest any test's reactor may run before the watchdog fails it.
pub const WATCHDOG: Duration = Duration::from_secs(30);

/// The longest a test waits for one event from another thread.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `em::run(init)` on this thread with a watchdog: if the reactor has
/// not returned within `WATCHDOG`, the watchdog stops it and the test fails.
pub fn run_with_watchdog<R: em::RunResult>(init: impl FnOnce() -> R + 'static) -> em::Result<()> {
    run_builder_with_watchdog(em::Reactor::builder(), init)
}

/// Like [`run_with_watchdog`], with options.
pub fn run_builder_with_watchdog<R: em::RunResult>(
    builder: em::Builder,
    init: impl FnOnce() -> R + 'static,
) -> em::Result<()> {
    run_builder_with_watchdog_for(builder, WATCHDOG, init)
}

/// Like [`run_builder_with_watchdog`], with a watchdog of `limit` instead
/// of `WATCHDOG`: for the few tests that move a lot of data.
pub fn run_builder_with_watchdog_for<R: em::RunResult>(
    builder: em::Builder,
    limit: Duration,
    init: impl FnOnce() -> R + 'static,
) -> em::Result<()> {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (handle_tx, handle_rx) = mpsc::channel::<em::Handle>();
    let watchdog = thread::spawn(move || {
        let Ok(handle) = handle_rx.recv() else {
            return false;
        };
        match done_rx.recv_timeout(limit) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => false,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                handle.stop();
                true
            }
        }
    });
    let result = builder.run(move || {
        handle_tx.send(em::handle().expect("handle")).ok();
        init()
    });
    drop(done_tx);
    let fired = watchdog.join().expect("watchdog thread");
    assert!(!fired, "watchdog: the reactor ran longer than {limit:?}");
    result
}

/// Runs `builder.run_each(init)` (several reactors) with a watchdog: if
/// the group has not returned within `WATCHDOG`, the watchdog stops it
/// (stopping one reactor stops all) and the test fails.
pub fn run_each_with_watchdog<R: em::RunResult>(
    builder: em::Builder,
    init: impl Fn(usize) -> R + Send + Sync + 'static,
) -> em::Result<()> {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (handle_tx, handle_rx) = mpsc::channel::<em::Handle>();
    let handle_tx = std::sync::Mutex::new(handle_tx);
    let watchdog = thread::spawn(move || {
        let Ok(handle) = handle_rx.recv() else {
            return false;
        };
        match done_rx.recv_timeout(WATCHDOG) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => false,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                handle.stop();
                true
            }
        }
    });
    let result = builder.run_each(move |index| {
        if index == 0 {
            let handle = em::handle().expect("handle");
            handle_tx.lock().unwrap().send(handle).ok();
        }
        init(index)
    });
    drop(done_tx);
    let fired = watchdog.join().expect("watchdog thread");
    assert!(
        !fired,
        "watchdog: the reactors ran longer than {WATCHDOG:?}"
    );
    result
}

/// Waits (bounded) for one value from another thread.
pub fn recv<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(EVENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("no event within {EVENT_TIMEOUT:?}: {e}"))
}

/// Stops the reactor when dropped: a peer thread holds one so that the
/// reactor stops even if the thread panics, and the test fails at once
/// instead of at the watchdog.
#[derive(Debug)]
pub struct StopOnDrop(pub em::Handle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// What a [`spawn_peer`] thread sends back: its value, or its panic.
pub type PeerResult<T> = std::thread::Result<T>;

/// Spawns a peer thread running `f` and sends its result (or its panic) on
/// `done`; [`join_peer`] takes it. The reactor is stopped when `f` ends,
/// however it ends, so a failing peer fails the test at once.
pub fn spawn_peer<T: Send + 'static>(
    handle: em::Handle,
    done: mpsc::Sender<PeerResult<T>>,
    f: impl FnOnce() -> T + Send + 'static,
) {
    thread::spawn(move || {
        let _stop = StopOnDrop(handle);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        done.send(result).ok();
    });
}

/// Waits (bounded) for a [`spawn_peer`] thread's value; re-raises its panic.
pub fn join_peer<T>(done: &mpsc::Receiver<PeerResult<T>>) -> T {
    match recv(done) {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A blocking client socket with read and write timeouts.
pub fn client(addr: impl std::net::ToSocketAddrs) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Writes `data`, then reads exactly `data.len()` bytes back.
pub fn echo_round(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).unwrap();
    let mut buf = vec![0; data.len()];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Reads until end of stream (bounded by the socket's read timeout).
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to end");
    out
}

/// Reads until the peer closed, by end of stream or by a reset; what was
/// read before. Panics on a timeout: the peer never closed.
pub fn read_until_closed(s: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return out,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("the peer did not close (read: {e})"),
        }
    }
}

/// A blocking line-protocol client, for servers using `LinesCodec`.
#[derive(Debug)]
pub struct LineClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl LineClient {
    pub fn connect(addr: impl std::net::ToSocketAddrs) -> Self {
        let s = client(addr);
        LineClient {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    pub fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    /// The next line, without its terminator.
    pub fn recv(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read line");
        assert!(n > 0, "the server closed instead of answering");
        line.truncate(line.trim_end_matches(['\r', '\n']).len());
        line
    }

    /// The socket, for raw writes (an unterminated line, a half close).
    pub fn writer(&mut self) -> &mut TcpStream {
        &mut self.writer
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.writer.peer_addr().expect("peer address")
    }

    /// Sends `line` and returns the answer.
    pub fn round(&mut self, line: &str) -> String {
        self.send(line);
        self.recv()
    }

    /// What arrived until the server closed (end of stream or reset).
    pub fn read_until_closed(&mut self) -> Vec<u8> {
        let mut out = self.reader.buffer().to_vec();
        self.reader.consume(out.len());
        out.extend(read_until_closed(self.reader.get_mut()));
        out
    }
}

/// An address where nothing listens and nothing else can bind while the
/// guard lives: a socket bound to a free port without `listen`, so a connect
/// there is refused.
pub fn refusing_addr() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().unwrap())
        .expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// A listener with a backlog of 1 whose accept queue is full: further SYNs
/// are dropped by the kernel, so a connect there hangs without leaving the
/// machine. Returns the listener, the connections that fill it, its address.
pub fn full_backlog() -> (std::net::TcpListener, Vec<std::net::TcpStream>, SocketAddr) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = {
        let _guard = rt.enter();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        socket.listen(1).unwrap().into_std().unwrap()
    };
    let addr = listener.local_addr().unwrap();
    let mut fill = Vec::new();
    // Linux queues backlog + 1 connections; connect until one hangs (the
    // bounded wait of the probe is the proof that the queue is full).
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fill.push(s),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
                return (listener, fill, addr);
            }
        }
    }
    panic!("the accept queue never filled");
}

/// `len` bytes of a pattern that differs with `seed` and does not repeat for
/// 251 bytes, so that a lost, duplicated or reordered chunk shows.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_add(seed.wrapping_mul(7919))) % 251) as u8)
        .collect()
}

/// Callback events in order, shared by the handlers of one reactor.
#[derive(Debug, Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn push(&self, event: impl Into<String>) {
        self.0.borrow_mut().push(event.into());
    }

    pub fn events(&self) -> Vec<String> {
        self.0.borrow().clone()
    }

    /// How many events are `event`.
    pub fn count(&self, event: &str) -> usize {
        self.0.borrow().iter().filter(|e| *e == event).count()
    }
}

/// A short, comparable form of an unbind reason: the variant, and for
/// errors the `io::ErrorKind`, the codec error or the panic message.
pub fn reason(reason: &UnbindReason) -> String {
    match reason {
        UnbindReason::Closed => "Closed".into(),
        UnbindReason::PeerClosed => "PeerClosed".into(),
        UnbindReason::ReactorStopped => "ReactorStopped".into(),
        UnbindReason::ConnectFailed(e) => format!("ConnectFailed({:?})", e.kind()),
        UnbindReason::Io(e) => format!("Io({:?})", e.kind()),
        UnbindReason::Codec(e) => match e.downcast_ref::<LinesCodecError>() {
            Some(LinesCodecError::MaxLineLengthExceeded) => "Codec(MaxLineLengthExceeded)".into(),
            _ => format!("Codec({e})"),
        },
        UnbindReason::Panicked(message) => format!("Panicked({message})"),
        UnbindReason::InactivityTimeout => "InactivityTimeout".into(),
        UnbindReason::ConnectTimeout => "ConnectTimeout".into(),
        UnbindReason::OutboundOverflow => "OutboundOverflow".into(),
        UnbindReason::Detached => "Detached".into(),
        other => format!("unknown({other})"),
    }
}

/// Echoes raw bytes.
#[derive(Debug, Default)]
pub struct Echo;

impl Connection for Echo {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        conn.send_data(data);
    }
}

/// Echoes lines; the line "stop-server" stops the server it came through
/// (twice: `stop` is idempotent) and answers "stopped".
pub struct Control {
    pub server: Rc<RefCell<Option<em::Server>>>,
}

impl Connection for Control {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        if line == "stop-server" {
            let server = self.server.borrow();
            let server = server.as_ref().expect("server started");
            server.stop();
            server.stop(); // idempotent
            assert!(server.is_stopped());
            conn.send_data("stopped");
        } else {
            conn.send_data(line);
        }
    }
}

/// Echoes lines (at most 1 KiB each) and logs its unbind reason as
/// `unbind <reason>`.
#[derive(Debug, Default)]
pub struct LineEcho {
    pub log: Log,
}

impl Connection for LineEcho {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        conn.send_data(line);
    }

    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        self.log.push(format!("unbind {}", reason(&why)));
    }
}

// ---- Files: scratch directories, descriptor flags. ----

/// A fresh directory under the system's temporary directory, removed with
/// everything in it when dropped. Its path is short enough for Unix-domain
/// socket names (at most 107 bytes).
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new empty directory whose name contains `label`, this process's id
    /// and a counter, so that tests running at once never share one.
    pub fn new(label: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("em-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("create a scratch directory");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether `fd` is in non-blocking mode (`O_NONBLOCK` in the `flags:` line
/// of `/proc/self/fdinfo/FD`, which Linux prints in octal).
pub fn is_nonblocking(fd: &impl std::os::fd::AsRawFd) -> bool {
    const O_NONBLOCK: u32 = 0o4000;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .expect("read /proc/self/fdinfo");
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .expect("a flags: line in fdinfo");
    flags & O_NONBLOCK != 0
}

// ---- Timers (em-timers): the paused clock, timed logs, drop flags. ----

/// Like [`run_builder_with_watchdog`], on tokio's paused clock
/// (`start_paused(true)`): timers fire at exact instants and a test takes no
/// wall time waiting for them.
pub fn run_paused_with_watchdog<R: em::RunResult>(
    builder: em::Builder,
    init: impl FnOnce() -> R + 'static,
) -> em::Result<()> {
    run_builder_with_watchdog(builder.start_paused(true), init)
}

/// [`run_paused_with_watchdog`] with default options.
pub fn run_paused<R: em::RunResult>(init: impl FnOnce() -> R + 'static) -> em::Result<()> {
    run_paused_with_watchdog(em::Reactor::builder(), init)
}

/// Stands in for a callback that works for `d`, under `start_paused`: lets
/// the paused clock run with real time for `d`, then pauses it again, so
/// `Instant::now()` moves by at least `d` while the reactor is busy.
pub fn busy_for(d: Duration) {
    tokio::time::resume();
    thread::sleep(d);
    tokio::time::pause();
}

/// Events with the time since a start instant (tokio's clock, so exact
/// under `start_paused`), shared by the callbacks of one reactor.
#[derive(Debug, Clone)]
pub struct Timeline {
    start: tokio::time::Instant,
    events: Rc<RefCell<Vec<(String, Duration)>>>,
}

impl Timeline {
    /// Starts the clock now: call it on the reactor, in the run block.
    pub fn start() -> Self {
        Timeline {
            start: tokio::time::Instant::now(),
            events: Rc::default(),
        }
    }

    /// Time since the start.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records `event` at the current time.
    pub fn push(&self, event: impl Into<String>) {
        let at = self.now();
        self.events.borrow_mut().push((event.into(), at));
    }

    /// Every event with its time.
    pub fn events(&self) -> Vec<(String, Duration)> {
        self.events.borrow().clone()
    }

    /// Every event with its time in whole milliseconds (exact under
    /// `start_paused` when nothing made the clock run).
    pub fn events_ms(&self) -> Vec<(String, u128)> {
        self.events()
            .into_iter()
            .map(|(e, at)| (e, at.as_millis()))
            .collect()
    }

    /// The times of the events named `event`.
    pub fn times_of(&self, event: &str) -> Vec<Duration> {
        self.events()
            .into_iter()
            .filter(|(e, _)| e == event)
            .map(|(_, at)| at)
            .collect()
    }
}

/// Sets its flag when dropped: captured by a closure, it shows when the
/// closure was dropped.
#[derive(Debug)]
pub struct DropFlag(Rc<std::cell::Cell<bool>>);

impl DropFlag {
    /// A flag and the cell it sets.
    pub fn new() -> (DropFlag, Rc<std::cell::Cell<bool>>) {
        let cell = Rc::new(std::cell::Cell::new(false));
        (DropFlag(cell.clone()), cell)
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// `d` rounded up to whole milliseconds.
pub fn ceil_ms(d: Duration) -> Duration {
    let ms = d.as_millis() as u64 + u64::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    Duration::from_millis(ms)
}

// ---- Compile-time thread-split assertions. ----

/// The ambiguity trick of static_assertions' `assert_not_impl_any!`:
/// `AmbiguousIfSend<_>` has one impl for every type and a second one for
/// `Send` types, so `<T as AmbiguousIfSend<_>>` cannot pick an `A` (and does
/// not compile) exactly when `T: Send`.
pub trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
/// The second impl's marker for [`AmbiguousIfSend`].
pub struct InvalidSend;
impl<T: ?Sized + Send> AmbiguousIfSend<InvalidSend> for T {}

/// The same trick for `Sync`.
pub trait AmbiguousIfSync<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
/// The second impl's marker for [`AmbiguousIfSync`].
pub struct InvalidSync;
impl<T: ?Sized + Sync> AmbiguousIfSync<InvalidSync> for T {}

/// Fails to compile if `$t` is `Send`.
macro_rules! assert_not_send {
    ($t:ty) => {
        let _ = <$t as $crate::support::AmbiguousIfSend<_>>::some_item;
    };
}
pub(crate) use assert_not_send;

/// Fails to compile if `$t` is `Sync`.
macro_rules! assert_not_sync {
    ($t:ty) => {
        let _ = <$t as $crate::support::AmbiguousIfSync<_>>::some_item;
    };
}
pub(crate) use assert_not_sync;

/// A `tracing` writer into a shared buffer, for tests that read the log.
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}
