//! Watched descriptors (EventMachine W2, W3, C10's paths for a watch):
//! `notify_readable` and `notify_writable` switched at run time and
//! level-triggered, the descriptor left open after `unbind`, detach, a
//! panicking notification, the reactor's stop, pipe ends, what a watch
//! refuses, and waiting that costs no CPU.
//!
//! Turns of the reactor are counted with `tokio::task::yield_now`, which
//! wakes its task only after the I/O driver has been polled: "nothing
//! happened for five turns" is an exact statement, not a sleep.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

type Notify = Box<dyn FnMut(&Conn<BytesCodec>)>;
type OnUnbind = Box<dyn FnMut(&Conn<BytesCodec>, &UnbindReason)>;

/// A watch handler named `NAME`: counts its notifications, runs its hooks
/// for them, logs its unbind as `NAME unbind R` and, if `stops`, stops the
/// reactor there.
struct Watcher {
    name: &'static str,
    log: Log,
    readable: Rc<Cell<usize>>,
    writable: Rc<Cell<usize>>,
    on_readable: Notify,
    on_writable: Notify,
    on_unbind: OnUnbind,
    stops: bool,
}

impl Watcher {
    fn new(name: &'static str, log: &Log) -> Self {
        Watcher {
            name,
            log: log.clone(),
            readable: Rc::default(),
            writable: Rc::default(),
            on_readable: Box::new(|_| {}),
            on_writable: Box::new(|_| {}),
            on_unbind: Box::new(|_, _| {}),
            stops: false,
        }
    }

    fn on_readable(mut self, f: impl FnMut(&Conn<BytesCodec>) + 'static) -> Self {
        self.on_readable = Box::new(f);
        self
    }

    fn on_writable(mut self, f: impl FnMut(&Conn<BytesCodec>) + 'static) -> Self {
        self.on_writable = Box::new(f);
        self
    }

    fn on_unbind(mut self, f: impl FnMut(&Conn<BytesCodec>, &UnbindReason) + 'static) -> Self {
        self.on_unbind = Box::new(f);
        self
    }

    fn stopping(mut self) -> Self {
        self.stops = true;
        self
    }

    /// How many times `notify_readable` ran.
    fn readable_count(&self) -> Rc<Cell<usize>> {
        self.readable.clone()
    }

    /// How many times `notify_writable` ran.
    fn writable_count(&self) -> Rc<Cell<usize>> {
        self.writable.clone()
    }
}

impl Connection for Watcher {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.log
            .push(format!("{} receive_data {data:?} (never)", self.name));
    }

    fn notify_readable(&mut self, conn: &Conn<BytesCodec>) {
        self.readable.set(self.readable.get() + 1);
        (self.on_readable)(conn);
    }

    fn notify_writable(&mut self, conn: &Conn<BytesCodec>) {
        self.writable.set(self.writable.get() + 1);
        (self.on_writable)(conn);
    }

    fn unbind(&mut self, conn: &Conn<BytesCodec>, why: UnbindReason) {
        self.log
            .push(format!("{} unbind {}", self.name, reason(&why)));
        (self.on_unbind)(conn, &why);
        if self.stops {
            em::stop();
        }
    }
}

/// A socketpair: our end, non-blocking and shared with the handler that
/// reads it, and the peer's end, blocking with timeouts.
fn socketpair() -> (Rc<UnixStream>, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    theirs
        .set_read_timeout(Some(EVENT_TIMEOUT))
        .expect("timeout");
    (Rc::new(ours), theirs)
}

/// Reads everything a non-blocking socket has now.
fn drain(s: &UnixStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return got,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Writes to a non-blocking socket until it is full; the bytes written.
fn fill(s: &UnixStream) -> usize {
    let chunk = [0u8; 4096];
    let mut total = 0;
    loop {
        match (&*s).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// Lets the reactor turn `n` times (see the module's comment).
async fn turns(n: usize) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

/// Waits, turn by turn, until `done()` (the watchdog bounds it).
async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}

/// Checks that `ours` is still open, both ways, with std: what the peer
/// wrote and no one read is still there, and a message goes each way.
fn still_open(ours: &UnixStream, theirs: &mut UnixStream, unread: &[u8]) {
    ours.set_nonblocking(false).unwrap();
    ours.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let mut left = vec![0; unread.len()];
    (&*ours).read_exact(&mut left).expect("read what was left");
    assert_eq!(left, unread);
    (&*ours)
        .write_all(b"still open")
        .expect("write after unbind");
    let mut got = [0; 10];
    theirs.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"still open");
    theirs.write_all(b"and back").unwrap();
    let mut got = [0; 8];
    (&*ours).read_exact(&mut got).expect("read after unbind");
    assert_eq!(&got, b"and back");
}

/// W2: `notify_readable` is off at first and runs only once switched on;
/// it runs again and again while the input stays unread (level-triggered),
/// not once it was read, and not while switched off, even with input
/// waiting.
#[test]
fn notify_readable_switches_at_run_time_and_repeats_while_unread() {
    let (ours, mut theirs) = socketpair();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let consume = Rc::new(Cell::new(false));
        let got = Rc::new(RefCell::new(Vec::new()));
        let (c, g, s) = (consume.clone(), got.clone(), ours.clone());
        let watcher = Watcher::new("w", &l).stopping().on_readable(move |_| {
            if c.get() {
                g.borrow_mut().extend(drain(&s));
            }
        });
        let count = watcher.readable_count();
        let conn = em::watch(&*ours, watcher)?;
        l.push(format!(
            "watch_only={} notify_readable={} notify_writable={}",
            conn.is_watch_only(),
            conn.notify_readable(),
            conn.notify_writable()
        ));
        theirs.write_all(b"one").unwrap();
        em::spawn(async move {
            turns(5).await;
            l.push(format!("off, input waiting: {} calls", count.get()));
            conn.set_notify_readable(true).unwrap();
            l.push(format!("switched on: {}", conn.notify_readable()));
            until(|| count.get() >= 3).await;
            l.push("called again while unread");
            consume.set(true);
            until(|| !got.borrow().is_empty()).await;
            let consumed = count.get();
            turns(5).await;
            l.push(format!("once read: {} more calls", count.get() - consumed));
            conn.set_notify_readable(false).unwrap();
            theirs.write_all(b"two").unwrap();
            let off = count.get();
            turns(5).await;
            l.push(format!(
                "off again, input waiting: {} more calls",
                count.get() - off
            ));
            conn.set_notify_readable(true).unwrap();
            until(|| got.borrow().len() == 6).await;
            l.push(format!("read {}", String::from_utf8_lossy(&got.borrow())));
            conn.close_connection();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "watch_only=true notify_readable=false notify_writable=false",
            "off, input waiting: 0 calls",
            "switched on: true",
            "called again while unread",
            "once read: 0 more calls",
            "off again, input waiting: 0 more calls",
            "read onetwo",
            "w unbind Closed",
        ]
    );
}

/// `notify_writable` is off at first, runs again and again while switched
/// on and the socket has room (level-triggered), not while switched off,
/// not while the socket is full, and again once the peer made room.
#[test]
fn notify_writable_switches_at_run_time_and_follows_the_room_to_write() {
    let (ours, theirs) = socketpair();
    theirs.set_nonblocking(true).unwrap();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let filling = Rc::new(Cell::new(false));
        let filled = Rc::new(Cell::new(0));
        let (f, n, s) = (filling.clone(), filled.clone(), ours.clone());
        let watcher = Watcher::new("w", &l).stopping().on_writable(move |_| {
            if f.replace(false) {
                n.set(fill(&s));
            }
        });
        let count = watcher.writable_count();
        let readable = watcher.readable_count();
        let conn = em::watch(&*ours, watcher)?;
        em::spawn(async move {
            turns(5).await;
            l.push(format!("off: {} calls", count.get()));
            conn.set_notify_writable(true).unwrap();
            until(|| count.get() >= 3).await;
            l.push(format!(
                "on: called again while writable ({})",
                conn.notify_writable()
            ));
            conn.set_notify_writable(false).unwrap();
            let off = count.get();
            turns(5).await;
            l.push(format!("off again: {} more calls", count.get() - off));
            filling.set(true);
            conn.set_notify_writable(true).unwrap();
            until(|| filled.get() > 0).await;
            let full = count.get();
            turns(5).await;
            l.push(format!("full: {} more calls", count.get() - full));
            let drained = drain(&theirs).len();
            l.push(format!("the peer read all: {}", drained == filled.get()));
            until(|| count.get() > full).await;
            l.push("room again: called");
            l.push(format!("notify_readable never: {}", readable.get()));
            conn.close_connection();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "off: 0 calls",
            "on: called again while writable (true)",
            "off again: 0 more calls",
            "full: 0 more calls",
            "the peer read all: true",
            "room again: called",
            "notify_readable never: 0",
            "w unbind Closed",
        ]
    );
}

/// W2: `close_connection` ends the watch, `unbind(Closed)` follows once
/// (a second close is harmless), and the descriptor stays open: what the
/// peer sent and the handler left unread is still there, and std reads and
/// writes it afterwards.
#[test]
fn close_connection_ends_the_watch_and_leaves_the_descriptor_open() {
    let (ours, mut theirs) = socketpair();
    let log = Log::default();
    let l = log.clone();
    let o = ours.clone();
    theirs.write_all(b"unread").unwrap();
    run_with_watchdog(move || -> em::Result<()> {
        let l2 = l.clone();
        let watcher =
            Watcher::new("w", &l)
                .stopping()
                .on_readable(move |conn: &Conn<BytesCodec>| {
                    l2.push("notify_readable");
                    conn.close_connection();
                    conn.close_connection();
                    l2.push(format!("closed: {}", conn.is_closed()));
                });
        let conn = em::watch(&*o, watcher)?;
        conn.set_notify_readable(true)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["notify_readable", "closed: true", "w unbind Closed"]
    );
    still_open(&ours, &mut theirs, b"unread");
}

/// W3 as em has it: on a watched descriptor, what would move data is
/// refused (`send_data` returns 0, `try_send_data` and `reconnect` are
/// `is_unsupported()`) or a no-op (`pause`, `close_connection_after_writing`:
/// the watch goes on notifying). The switches exist on watched descriptors
/// only: on any other connection they are `is_unsupported()`, and the
/// readers say false.
#[test]
fn a_watch_refuses_what_would_move_data() {
    let (ours, mut theirs) = socketpair();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let (l2, l3) = (l.clone(), l.clone());
        let watcher = Watcher::new("w", &l)
            .stopping()
            .on_readable(move |conn: &Conn<BytesCodec>| {
                l2.push(format!(
                    "notified after pause and close_connection_after_writing: closed={} paused={}",
                    conn.is_closed(),
                    conn.is_paused()
                ));
                conn.close_connection();
            })
            .on_unbind(move |conn, _| {
                let err = conn.reconnect("127.0.0.1:9").expect_err("a watch");
                l3.push(format!("reconnect unsupported={}", err.is_unsupported()));
            });
        let conn = em::watch(&*ours, watcher)?;
        l.push(format!(
            "send_data = {}",
            conn.send_data(BytesMut::from("x"))
        ));
        let err = conn
            .try_send_data(BytesMut::from("x"))
            .expect_err("a watch");
        l.push(format!(
            "try_send_data unsupported={}",
            err.is_unsupported()
        ));
        let file = conn.send_file_data("/dev/null").expect_err("a watch");
        let option = conn.set_nodelay(true).expect_err("a watch");
        l.push(format!(
            "send_file_data unsupported={} set_nodelay unsupported={}",
            file.is_unsupported(),
            option.is_unsupported()
        ));
        conn.pause();
        conn.close_connection_after_writing();
        conn.set_notify_readable(true)?;
        theirs.write_all(b"x").unwrap();

        let (other, _peer) = em::connect_pair(Echo, Echo)?;
        let err = other.set_notify_readable(true).expect_err("not a watch");
        let err2 = other.set_notify_writable(true).expect_err("not a watch");
        l.push(format!(
            "other: unsupported={} {} watch_only={} readable={} writable={}",
            err.is_unsupported(),
            err2.is_unsupported(),
            other.is_watch_only(),
            other.notify_readable(),
            other.notify_writable()
        ));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "send_data = 0",
            "try_send_data unsupported=true",
            "send_file_data unsupported=true set_nodelay unsupported=true",
            "other: unsupported=true true watch_only=false readable=false writable=false",
            "notified after pause and close_connection_after_writing: closed=false paused=false",
            "w unbind Closed",
            "reconnect unsupported=true",
        ]
    );
}

/// W2's `detach` on a watch: it gives back em's duplicate of the
/// descriptor (another number, the same socket, still working), `unbind`
/// follows once with `Detached`, no notification comes after it although
/// input waits, and the program's own descriptor stays open.
#[test]
fn detach_ends_the_watch_and_gives_back_a_working_duplicate() {
    let (ours, mut theirs) = socketpair();
    let log = Log::default();
    let detached: Rc<RefCell<Option<OwnedFd>>> = Rc::default();
    let (l, d, o) = (log.clone(), detached.clone(), ours.clone());
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    theirs.write_all(b"unread").unwrap();
    run_with_watchdog(move || -> em::Result<()> {
        let l2 = l.clone();
        let watcher =
            Watcher::new("w", &l)
                .stopping()
                .on_readable(move |conn: &Conn<BytesCodec>| {
                    let fd = conn.detach().expect("detach");
                    l2.push("detached");
                    let again = conn.detach().expect_err("detached already");
                    l2.push(format!("detach again closed={}", again.is_closed()));
                    *d.borrow_mut() = Some(fd);
                    l2.push("notify_readable returns");
                });
        let readable = watcher.readable_count();
        let conn = em::watch(&*o, watcher)?;
        conn.set_notify_readable(true)?;
        em::add_shutdown_hook(move || c.set(readable.get()))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "detached",
            "detach again closed=true",
            "notify_readable returns",
            "w unbind Detached",
        ]
    );
    assert_eq!(count.get(), 1, "one notification, none after the detach");
    let duplicate = detached.borrow_mut().take().expect("the descriptor");
    assert_ne!(duplicate.as_raw_fd(), ours.as_raw_fd());
    let duplicate = UnixStream::from(duplicate);
    (&duplicate).write_all(b"via em's duplicate").unwrap();
    let mut got = [0; 18];
    theirs.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"via em's duplicate");
    drop(duplicate);
    still_open(&ours, &mut theirs, b"unread");
}

/// A panic in `notify_readable` is contained: that watch ends with
/// `unbind(Panicked)` (and is not notified again, though its input waits),
/// its descriptor stays open, and another watch goes on being notified.
#[test]
fn panic_in_notify_readable_ends_that_watch_only() {
    let (bad, mut bad_peer) = socketpair();
    let (good, good_peer) = socketpair();
    let log = Log::default();
    let (l, b) = (log.clone(), bad.clone());
    let bad_calls = Rc::new(Cell::new(0));
    let bc = bad_calls.clone();
    bad_peer.write_all(b"boom").unwrap();
    run_with_watchdog(move || -> em::Result<()> {
        let mut good_peer = Some(good_peer);
        let bad_watcher = Watcher::new("bad", &l)
            .on_readable(|_| panic!("boom"))
            .on_unbind(move |_, _| {
                // The other watch is told of this only through its socket.
                let mut peer = good_peer.take().expect("one unbind");
                peer.write_all(b"after the panic").unwrap();
            });
        let calls = bad_watcher.readable_count();
        let l2 = l.clone();
        let g = good.clone();
        let good_watcher =
            Watcher::new("good", &l)
                .stopping()
                .on_readable(move |conn: &Conn<BytesCodec>| {
                    l2.push(format!("good read {}", String::from_utf8_lossy(&drain(&g))));
                    conn.close_connection();
                });
        em::watch(&*b, bad_watcher)?.set_notify_readable(true)?;
        em::watch(&*good, good_watcher)?.set_notify_readable(true)?;
        em::add_shutdown_hook(move || bc.set(calls.get()))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "bad unbind Panicked(boom)",
            "good read after the panic",
            "good unbind Closed",
        ]
    );
    assert_eq!(bad_calls.get(), 1, "not notified after the panic");
    still_open(&bad, &mut bad_peer, b"boom");
}

/// The reactor's stop ends a watch with exactly one
/// `unbind(ReactorStopped)`, even while its notifications repeat; the
/// descriptor stays open, with the input it was notified of unread.
#[test]
fn reactor_stop_unbinds_a_watch_once() {
    let (ours, mut theirs) = socketpair();
    let log = Log::default();
    let (l, o) = (log.clone(), ours.clone());
    theirs.write_all(b"unread").unwrap();
    run_with_watchdog(move || -> em::Result<()> {
        let watcher = Watcher::new("w", &l);
        let (readable, writable) = (watcher.readable_count(), watcher.writable_count());
        let conn = em::watch(&*o, watcher)?;
        conn.set_notify_readable(true)?;
        conn.set_notify_writable(true)?;
        em::spawn(async move {
            until(|| readable.get() >= 3 && writable.get() >= 3).await;
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["w unbind ReactorStopped"]);
    still_open(&ours, &mut theirs, b"unread");
}

/// A pipe's read end is watched for readability: the handler reads what
/// was written, then (the writer gone) end of stream keeps the read end
/// readable, so `notify_readable` runs again until the handler ends the
/// watch; the read end stays open.
#[test]
fn a_pipe_read_end_is_watched_for_readability() {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let reader = Rc::new(reader);
    let log = Log::default();
    let (l, r) = (log.clone(), reader.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let (l2, r2) = (l.clone(), r.clone());
        let mut ends = 0;
        let watcher =
            Watcher::new("r", &l)
                .stopping()
                .on_readable(move |conn: &Conn<BytesCodec>| {
                    // Blocking, but readable: one read returns at once.
                    let mut buf = [0; 64];
                    match (&*r2).read(&mut buf).expect("read") {
                        0 => {
                            ends += 1;
                            l2.push(format!("end of stream {ends}"));
                            if ends == 3 {
                                conn.close_connection();
                            }
                        }
                        n => l2.push(format!("read {}", String::from_utf8_lossy(&buf[..n]))),
                    }
                });
        em::watch(&*r, watcher)?.set_notify_readable(true)?;
        writer.write_all(b"via a pipe").unwrap();
        drop(writer);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "read via a pipe",
            "end of stream 1",
            "end of stream 2",
            "end of stream 3",
            "r unbind Closed",
        ]
    );
    // Still open: a read says end of stream, not EBADF.
    assert_eq!((&*reader).read(&mut [0; 8]).expect("still open"), 0);
}

/// A pipe's write end is watched for writability: the handler writes when
/// told it may, then switches the notification off and ends the watch; the
/// write end stays open and writes again afterwards.
#[test]
fn a_pipe_write_end_is_watched_for_writability() {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let writer = Rc::new(writer);
    let log = Log::default();
    let (l, w) = (log.clone(), writer.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let (l2, w2) = (l.clone(), w.clone());
        let watcher =
            Watcher::new("w", &l)
                .stopping()
                .on_writable(move |conn: &Conn<BytesCodec>| {
                    (&*w2).write_all(b"told to write;").expect("write");
                    conn.set_notify_writable(false).unwrap();
                    l2.push(format!("wrote, notify_writable={}", conn.notify_writable()));
                    conn.close_connection();
                });
        let readable = watcher.readable_count();
        let conn = em::watch(&*w, watcher)?;
        conn.set_notify_readable(true)?;
        conn.set_notify_writable(true)?;
        em::add_shutdown_hook(move || l.push(format!("readable calls {}", readable.get())))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "wrote, notify_writable=false",
            "w unbind Closed",
            "readable calls 0",
        ]
    );
    (&*writer).write_all(b" and after").expect("still open");
    drop(writer);
    let mut got = String::new();
    reader.read_to_string(&mut got).unwrap();
    assert_eq!(got, "told to write; and after");
}

/// The CPU time this thread has used, from Linux's
/// `/proc/thread-self/schedstat` (nanoseconds on the CPU).
fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("read /proc/thread-self/schedstat");
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .expect("the time on the CPU, in nanoseconds");
    Duration::from_nanos(ns)
}

/// How long the no-spin test watches the reactor thread idle.
const WINDOW: Duration = Duration::from_millis(500);

/// How much CPU the no-spin test spends to check its probe.
const SPIN: Duration = Duration::from_millis(50);

/// Waiting costs no CPU: with input waiting and its notifications off, a
/// watch wakes nothing, from the start, and after its notifications were on
/// and switched off again while the input was still unread (tokio's
/// readiness then stays set). Over half a second the reactor thread uses
/// under a twentieth of it (about a millisecond in practice), where a watch
/// that spun would use all the CPU it gets; and the probe does see this
/// thread's CPU time grow when it spins.
#[test]
fn waiting_with_notifications_off_does_not_spin() {
    let (never_on, mut never_on_peer) = socketpair();
    let (switched_off, mut switched_off_peer) = socketpair();
    never_on_peer.write_all(b"waiting").unwrap();
    switched_off_peer.write_all(b"waiting").unwrap();
    let log = Log::default();
    let cpu = Rc::new(Cell::new((Duration::ZERO, Duration::ZERO, Duration::ZERO)));
    let (l, c, a, b) = (
        log.clone(),
        cpu.clone(),
        never_on.clone(),
        switched_off.clone(),
    );
    run_with_watchdog(move || -> em::Result<()> {
        let never = Watcher::new("never on", &l);
        let never_count = never.readable_count();
        em::watch(&*a, never)?;
        let off = Watcher::new("switched off", &l);
        let (readable, writable) = (off.readable_count(), off.writable_count());
        let conn = em::watch(&*b, off)?;
        conn.set_notify_readable(true)?;
        conn.set_notify_writable(true)?;
        em::spawn(async move {
            until(|| readable.get() >= 3 && writable.get() >= 3).await;
            conn.set_notify_readable(false).unwrap();
            conn.set_notify_writable(false).unwrap();
            let calls = readable.get() + writable.get();
            let cpu_before = thread_cpu_time();
            tokio::time::sleep(WINDOW).await;
            let idle = thread_cpu_time() - cpu_before;
            l.push(format!(
                "window: {} calls, {} never-on calls",
                readable.get() + writable.get() - calls,
                never_count.get()
            ));
            // The probe measures this thread: spinning makes it grow, by
            // about the time spent at most (it gets whatever share of a CPU
            // the machine gives it; Linux updates the figure lazily).
            let (cpu_before, spin) = (thread_cpu_time(), Instant::now());
            let mut spun = Duration::ZERO;
            while spun < SPIN && spin.elapsed() < EVENT_TIMEOUT {
                std::hint::spin_loop();
                spun = thread_cpu_time() - cpu_before;
            }
            c.set((idle, spun, spin.elapsed()));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events()[0], "window: 0 calls, 0 never-on calls");
    assert_eq!(log.count("switched off unbind ReactorStopped"), 1);
    assert_eq!(log.count("never on unbind ReactorStopped"), 1);
    assert_eq!(log.events().len(), 3);
    let (idle, spun, spinning) = cpu.get();
    assert!(
        idle < WINDOW / 20,
        "the reactor thread used {idle:?} of CPU in {WINDOW:?} while waiting"
    );
    assert!(
        spun >= SPIN && spun <= spinning * 2,
        "the probe saw {spun:?} of CPU in {spinning:?} of spinning"
    );
    still_open(&never_on, &mut never_on_peer, b"waiting");
    still_open(&switched_off, &mut switched_off_peer, b"waiting");
}

/// A descriptor the system cannot poll (a regular file, always ready) is
/// refused with `is_unsupported()`, and nothing is registered.
#[test]
fn watch_of_a_regular_file_is_unsupported() {
    let dir = TempDir::new("watch-file");
    let path = dir.join("regular");
    std::fs::write(&path, b"data").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let err = em::watch(&file, Watcher::new("f", &l)).expect_err("a regular file");
        l.push(format!(
            "unsupported={} connections={}",
            err.is_unsupported(),
            em::connection_count()
        ));
        em::stop();
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["unsupported=true connections=0"]);
}
