//! Procedural code over the one engine: `Socket` as a `Stream` and `Sink`
//! of frames over TCP, Unix-domain sockets and in-memory pairs, how its
//! Stream ends, backpressure both ways, failed connects, and `synchrony`
//! (em-synchrony's `EM.synchrony`); plus an in-memory pair moving 1 MiB
//! under the paused clock without a single timer.

mod support;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::Poll;
use std::thread;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Addr, Conn, Connection, Socket, SocketListener, UnbindReason};
use futures::stream::FusedStream;
use futures::{Sink, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::{BytesCodec, LinesCodec};

use support::*;

/// The chunk bulk data is sent in.
const CHUNK: usize = 64 * 1024;

/// [`em::Reactor::synchrony`] with a watchdog: if the future has not
/// finished within `WATCHDOG`, the watchdog stops the reactor and the test
/// fails.
fn synchrony_with_watchdog<F>(builder: em::Builder, future: F) -> em::Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (handle_tx, handle_rx) = mpsc::channel::<em::Handle>();
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
    let result = builder.synchrony(async move {
        handle_tx.send(em::handle().expect("handle")).ok();
        future.await
    });
    drop(done_tx);
    let fired = watchdog.join().expect("watchdog thread");
    assert!(!fired, "watchdog: the future ran longer than {WATCHDOG:?}");
    result
}

/// [`synchrony_with_watchdog`] on tokio's paused clock.
fn synchrony_paused<F>(future: F) -> em::Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    synchrony_with_watchdog(em::Reactor::builder().start_paused(true), future)
}

/// Elapsed time on tokio's clock, in whole milliseconds (exact under the
/// paused clock).
fn ms_since(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

// ---- One echo body, three transports. ----

#[derive(Debug, Clone, Copy)]
enum Transport {
    Tcp,
    Unix,
    Memory,
}

/// A Unix-domain socket path of this test process, unique per call.
fn unix_path() -> std::path::PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("em-procedural-{}-{n}.sock", std::process::id()))
}

/// A connected (server side, client side) pair of line sockets over
/// `transport`, the server side from a `SocketListener` where there is one.
async fn connected(transport: Transport) -> em::Result<(Socket<LinesCodec>, Socket<LinesCodec>)> {
    let codec = || LinesCodec::new_with_max_length(1024);
    match transport {
        Transport::Tcp => {
            let listener = SocketListener::bind("127.0.0.1:0", codec)?;
            let client = Socket::connect(listener.local_addr(), codec()).await?;
            let server = listener.accept().await.expect("an accepted socket");
            assert_eq!(client.peer_addr(), Some(listener.local_addr()));
            assert!(matches!(server.peer_addr(), Some(Addr::Inet(_))));
            Ok((server, client))
        }
        Transport::Unix => {
            let path = unix_path();
            let listener = SocketListener::bind_unix(&path, codec)?;
            let client = Socket::connect_unix(&path, codec()).await?;
            let server = listener.accept().await.expect("an accepted socket");
            assert_eq!(
                client.peer_addr().as_ref().and_then(Addr::unix_path),
                Some(path.as_path())
            );
            drop(listener);
            assert!(!path.exists(), "the listener removed its socket file");
            Ok((server, client))
        }
        Transport::Memory => {
            let (server, client) = Socket::pair(codec(), codec()).await?;
            assert_eq!(client.peer_addr(), Some(Addr::Memory));
            Ok((server, client))
        }
    }
}

/// What an echo over one transport saw.
#[derive(Debug, PartialEq)]
struct EchoRun {
    replies: Vec<String>,
    /// The server side's stream after the client closed: its items past the
    /// echoed lines, and its unbind reason.
    server_end: (usize, String),
    client_reason: String,
}

/// The client sends 100 lines through the Sink (in a task of its own, after
/// `split`), reads the echoes from the Stream, and closes; the server side
/// echoes in its own task until its Stream ends.
fn echo_over(transport: Transport) -> EchoRun {
    synchrony_with_watchdog(em::Reactor::builder(), async move {
        let (mut server, client) = connected(transport).await?;
        let echo = em::spawn(async move {
            let mut errors = 0;
            while let Some(item) = server.next().await {
                match item {
                    Ok(line) => server.send(line).await.expect("echo"),
                    Err(_) => errors += 1,
                }
            }
            assert!(server.is_terminated());
            let reason = server.unbind_reason().map(reason).expect("ended");
            (errors, reason)
        })?;
        // The client writes from one task and reads from another.
        let (mut sink, mut stream) = client.split();
        let writer = em::spawn(async move {
            for i in 0..100 {
                sink.feed(format!("line {i}")).await?;
            }
            sink.flush().await?;
            Ok::<_, em::Error>(sink)
        })?;
        let mut replies = Vec::new();
        while replies.len() < 100 {
            replies.push(stream.next().await.expect("an echo").expect("a line"));
        }
        let sink = writer.await.expect("the writer task")?;
        let mut client = sink.reunite(stream).expect("halves of one socket");
        client.close().await?;
        assert!(client.next().await.is_none(), "a local close ends cleanly");
        let server_end = echo.await.expect("the echo task");
        let client_reason = client.unbind_reason().map(reason).expect("ended");
        Ok::<_, em::Error>(EchoRun {
            replies,
            server_end,
            client_reason,
        })
    })
    .unwrap()
    .unwrap()
}

fn expected_echo() -> EchoRun {
    EchoRun {
        replies: (0..100).map(|i| format!("line {i}")).collect(),
        server_end: (0, "PeerClosed".to_owned()),
        client_reason: "Closed".to_owned(),
    }
}

#[test]
fn socket_echo_over_tcp() {
    assert_eq!(echo_over(Transport::Tcp), expected_echo());
}

#[test]
fn socket_echo_over_unix_domain_socket() {
    assert_eq!(echo_over(Transport::Unix), expected_echo());
}

#[test]
fn socket_echo_over_in_memory_pair() {
    assert_eq!(echo_over(Transport::Memory), expected_echo());
}

// ---- How the Stream ends. ----

#[test]
fn an_error_end_is_the_streams_last_item_then_none() {
    let (at_ms, peer_reason) = synchrony_paused(async {
        let (mut a, mut b) = Socket::pair(LinesCodec::new(), LinesCodec::new()).await?;
        a.conn().set_comm_inactivity_timeout(Duration::from_secs(5));
        let start = Instant::now();
        b.send("hello").await?;
        assert_eq!(
            a.next().await.expect("a line").expect("not an error"),
            "hello"
        );
        assert!(a.unbind_reason().is_none(), "still open");
        let last = a.next().await.expect("the end reason");
        let at_ms = ms_since(start);
        assert!(
            matches!(last, Err(UnbindReason::InactivityTimeout)),
            "{last:?}"
        );
        assert!(a.next().await.is_none(), "None after the reason");
        assert!(a.next().await.is_none(), "and stays None");
        assert!(a.is_terminated());
        // Kept after the end.
        assert!(matches!(
            a.unbind_reason(),
            Some(UnbindReason::InactivityTimeout)
        ));
        // The other end saw a's close as a clean end.
        assert!(b.next().await.is_none());
        Ok::<_, em::Error>((at_ms, b.unbind_reason().map(reason)))
    })
    .unwrap()
    .unwrap();
    assert_eq!(at_ms, 5000, "last activity + timeout");
    assert_eq!(peer_reason.as_deref(), Some("PeerClosed"));
}

#[test]
fn a_clean_end_ends_the_stream_with_none_after_the_last_frames() {
    let (got, a_reason, b_reason) = synchrony_paused(async {
        let (mut a, mut b) = Socket::pair(LinesCodec::new(), LinesCodec::new()).await?;
        b.send("one").await?;
        b.send("two").await?;
        b.close().await?;
        let mut got = Vec::new();
        while let Some(item) = a.next().await {
            got.push(item.map_err(|e| e.to_string()));
        }
        assert!(
            b.next().await.is_none(),
            "a local close ends b's Stream cleanly"
        );
        Ok::<_, em::Error>((
            got,
            a.unbind_reason().map(reason),
            b.unbind_reason().map(reason),
        ))
    })
    .unwrap()
    .unwrap();
    assert_eq!(got, [Ok("one".to_owned()), Ok("two".to_owned())]);
    assert_eq!(a_reason.as_deref(), Some("PeerClosed"));
    assert_eq!(b_reason.as_deref(), Some("Closed"));
}

#[test]
fn a_codec_error_is_the_last_item_and_keeps_its_type() {
    let (last, kept) = synchrony_paused(async {
        let (mut a, b) =
            Socket::pair(LinesCodec::new_with_max_length(8), BytesCodec::new()).await?;
        b.conn()
            .send_data(Bytes::from_static(b"short\nfar too long for eight\n"));
        assert_eq!(a.next().await.expect("a line").expect("a line"), "short");
        let last = a.next().await.expect("the reason").expect_err("an error");
        assert!(a.next().await.is_none());
        Ok::<_, em::Error>((reason(&last), a.unbind_reason().map(|r| r.to_string())))
    })
    .unwrap()
    .unwrap();
    // The Stream gave the codec's own error (support::reason downcasts it).
    assert_eq!(last, "Codec(MaxLineLengthExceeded)");
    assert_eq!(
        kept.as_deref(),
        Some("codec error: max line length exceeded")
    );
}

// ---- Backpressure. ----

/// The Sink's `poll_ready` for `Bytes` frames, once.
fn poll_ready_once(socket: &mut Socket<BytesCodec>) -> Poll<em::Result<()>> {
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    Sink::<Bytes>::poll_ready(Pin::new(socket), &mut cx)
}

#[test]
fn sink_waits_above_the_high_watermark_until_the_peer_reads() {
    const TOTAL: usize = 4 << 20;
    let data = Bytes::from(pattern(TOTAL, 3));
    let expected = data.clone();
    let out = synchrony_paused(async move {
        let (mut a, mut b) = Socket::pair(BytesCodec::new(), BytesCodec::new()).await?;
        // b holds one frame, then pauses its connection: it does not read.
        b.set_read_ahead(1)?;
        let start = Instant::now();
        let (high, low) = a.conn().outbound_watermarks();
        let mut sent = 0;
        while !a.conn().is_above_high_watermark() {
            a.feed(data.slice(sent..sent + CHUNK)).await?;
            sent += CHUNK;
        }
        let mut max_queued = a.conn().outbound_data_size();
        // A second on the paused clock: the pair's buffer fills, b stays
        // paused, and a's queue stays above the high watermark.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(b.conn().is_paused(), "the read-ahead is full");
        assert_eq!(b.buffered_frames(), 1);
        assert!(a.conn().is_above_high_watermark());
        assert!(a.conn().outbound_data_size() > low);
        assert!(poll_ready_once(&mut a).is_pending(), "not ready above high");
        // The peer starts reading at 2 s.
        let reader = em::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut got = BytesMut::new();
            while let Some(frame) = b.next().await {
                got.extend_from_slice(&frame.expect("a frame"));
            }
            got
        })?;
        poll_fn(|cx| Sink::<Bytes>::poll_ready(Pin::new(&mut a), cx)).await?;
        let ready_ms = ms_since(start);
        assert!(
            a.conn().outbound_data_size() <= low,
            "drained to the low watermark"
        );
        while sent < TOTAL {
            a.feed(data.slice(sent..sent + CHUNK)).await?;
            sent += CHUNK;
            max_queued = max_queued.max(a.conn().outbound_data_size());
        }
        a.close().await?;
        let got = reader.await.expect("the reader");
        Ok::<_, em::Error>((ready_ms, max_queued, high, got))
    })
    .unwrap()
    .unwrap();
    let (ready_ms, max_queued, high, got) = out;
    assert_eq!(ready_ms, 2000, "ready again once the peer read");
    assert!(
        max_queued <= high + CHUNK,
        "the queue stayed bounded: {max_queued} > {high} + {CHUNK}"
    );
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "every byte, in order");
}

#[test]
fn a_slow_reader_pauses_the_connection_at_the_read_ahead() {
    const LINES: usize = 512;
    const READ_AHEAD: usize = 8;
    let line = |i: usize| format!("{i:04}{}", "x".repeat(1020));
    let out = synchrony_paused(async move {
        let (mut a, mut b) = Socket::pair(LinesCodec::new(), LinesCodec::new()).await?;
        b.set_read_ahead(READ_AHEAD)?;
        // 512 KiB of lines: more than the pair's buffer holds, less than
        // a's high watermark (so that the Sink never waits here).
        for i in 0..LINES {
            a.feed(line(i)).await?;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(b.conn().is_paused(), "paused at the read-ahead");
        assert_eq!(b.buffered_frames(), READ_AHEAD);
        assert!(
            a.conn().outbound_data_size() > 0,
            "the rest waits on the sender's side"
        );
        // Read one line every 10 ms.
        let mut got = Vec::new();
        let mut most_buffered = 0;
        while got.len() < LINES {
            tokio::time::sleep(Duration::from_millis(10)).await;
            most_buffered = most_buffered.max(b.buffered_frames());
            got.push(b.next().await.expect("a line").expect("a line"));
        }
        assert!(!b.conn().is_paused(), "resumed once read");
        Ok::<_, em::Error>((got, most_buffered))
    })
    .unwrap()
    .unwrap();
    let (got, most_buffered) = out;
    assert_eq!(most_buffered, READ_AHEAD, "never more than the read-ahead");
    assert_eq!(got.len(), LINES);
    assert!(
        got.iter().enumerate().all(|(i, l)| *l == line(i)),
        "in order"
    );
}

// ---- Connects that fail. ----

#[test]
fn a_failed_connect_is_an_error_from_connect() {
    let (_guard, refusing) = refusing_addr();
    let path = unix_path();
    let (tcp, unix) = synchrony_with_watchdog(em::Reactor::builder(), async move {
        let tcp = Socket::connect(refusing, BytesCodec::new()).await;
        let unix = Socket::connect_unix(&path, BytesCodec::new()).await;
        (tcp.map(drop), unix.map(drop))
    })
    .unwrap();
    let tcp = tcp.unwrap_err();
    assert!(tcp.is_connect(), "{tcp}");
    assert_eq!(
        tcp.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    assert!(tcp.to_string().contains(&refusing.to_string()), "{tcp}");
    let unix = unix.unwrap_err();
    assert!(unix.is_connect(), "{unix}");
    assert_eq!(
        unix.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
}

// ---- synchrony. ----

#[test]
fn synchrony_returns_the_futures_value() {
    // A callback server and procedural code on one reactor: the future
    // talks to it over tokio's own TcpStream.
    let reply = synchrony_with_watchdog(em::Reactor::builder(), async {
        let server = em::start_server("127.0.0.1:0", || Echo)?;
        let addr = server.local_addr().inet().expect("a TCP server");
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(b"ping").await.expect("write");
        let mut reply = [0; 4];
        stream.read_exact(&mut reply).await.expect("read");
        Ok::<_, em::Error>(String::from_utf8(reply.to_vec()).unwrap())
    })
    .unwrap()
    .unwrap();
    assert_eq!(reply, "ping");
    assert!(!em::reactor_thread(), "the reactor is gone");
}

#[test]
fn a_panic_in_the_synchrony_future_is_an_is_panic_error() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    em::set_error_handler(move |report| r.borrow_mut().push(report.to_string()));
    let result = synchrony_with_watchdog(em::Reactor::builder(), async {
        tokio::task::yield_now().await;
        panic!("boom")
    });
    em::clear_error_handler();
    let e = result.unwrap_err();
    assert!(e.is_panic(), "{e}");
    assert!(e.to_string().contains("boom"), "{e}");
    assert_eq!(*reports.borrow(), ["panic in synchrony: boom"]);
}

#[test]
fn a_stop_before_the_future_finished_is_stopped_early() {
    // em::stop() from the reactor, while the future waits.
    let (flag, dropped) = DropFlag::new();
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let result = synchrony_with_watchdog(em::Reactor::builder(), async move {
        let _flag = flag;
        em::next_tick(em::stop);
        std::future::pending::<()>().await;
        f.set(true);
    });
    let e = result.unwrap_err();
    assert!(e.is_stopped_early(), "{e}");
    assert!(!e.is_panic());
    assert!(e.to_string().contains("stopped before"), "{e}");
    assert!(!finished.get(), "the future never finished");
    assert!(dropped.get(), "it was dropped with the reactor");

    // A Handle's stop from another thread.
    let result = synchrony_with_watchdog(em::Reactor::builder(), async {
        let handle = em::handle().expect("handle");
        thread::spawn(move || handle.stop());
        std::future::pending::<u32>().await
    });
    assert!(result.unwrap_err().is_stopped_early());
}

#[test]
fn synchrony_inside_a_running_reactor_is_refused() {
    let inner = synchrony_with_watchdog(em::Reactor::builder(), async {
        em::synchrony(async { 1 }).map_err(|e| e.is_already_running())
    })
    .unwrap();
    assert_eq!(inner, Err(true));
}

// ---- The paused clock needs no timer to move bytes. ----

/// Sends `data` once connected and stops the reactor when all of it has
/// come back, recording the tokio clock then.
struct Exchange {
    data: Bytes,
    got: Rc<RefCell<BytesMut>>,
    done_at: Rc<Cell<Option<Instant>>>,
}

impl Connection for Exchange {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
        for chunk in self.data.chunks(CHUNK) {
            conn.send_data(self.data.slice_ref(chunk));
        }
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        let mut got = self.got.borrow_mut();
        got.extend_from_slice(&data);
        if got.len() == self.data.len() {
            self.done_at.set(Some(Instant::now()));
            em::stop();
        }
    }
}

#[test]
fn an_in_memory_pair_moves_1_mib_under_the_paused_clock_without_a_timer() {
    let data = Bytes::from(pattern(1 << 20, 11));
    let got = Rc::new(RefCell::new(BytesMut::new()));
    let done_at = Rc::new(Cell::new(None));
    let started_at = Rc::new(Cell::new(None));
    let (d, g, t, s) = (
        data.clone(),
        got.clone(),
        done_at.clone(),
        started_at.clone(),
    );
    run_paused(move || -> em::Result<()> {
        s.set(Some(Instant::now()));
        em::connect_pair(
            Echo,
            Exchange {
                data: d,
                got: g,
                done_at: t,
            },
        )?;
        Ok(())
    })
    .unwrap();
    let got = got.borrow();
    assert_eq!(got.len(), data.len());
    assert!(*got == data, "the bytes came back intact");
    let (started, done) = (started_at.get().unwrap(), done_at.get().expect("done"));
    assert_eq!(
        done, started,
        "the virtual clock did not move: no timer was needed"
    );
}
