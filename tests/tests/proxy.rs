//! Proxies (`Conn::proxy_incoming_to`, `em::enable_proxy`): EventMachine's
//! rules P1–P5 and the memory bound of P2, on real sockets. Every rule that
//! depends on how bytes move runs twice from one body (`per_path!`): on the
//! splice path (`splice(2)` through a pipe, the default between plain
//! sockets on Linux) and on the copy path (`Builder::proxy_splice(false)`),
//! and checks from the reactor's stats that the path it names was the one
//! taken.
//!
//! The peers are blocking std sockets on threads; the proxy is the em
//! reactor on the test's thread, except in the memory test, where it is a
//! child process (this test binary again, running `proxy_process`) so that
//! its resident memory is its own.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::BytesMut;
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::{BytesCodec, LinesCodec};

use support::*;

/// How the proxy moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// `splice(2)`, kernel to kernel (the default).
    Splice,
    /// Through the reactor's buffers.
    Copy,
}

impl Path {
    fn builder(self) -> em::Builder {
        em::Reactor::builder().proxy_splice(self == Path::Splice)
    }

    /// Checks that the bytes the proxies moved, `proxied` in all, went the
    /// way this path says: some (most, for bulk data) spliced, or none.
    fn check(self, stats: &em::Stats, proxied: u64) {
        assert_eq!(stats.bytes_proxied, proxied, "{stats}");
        match self {
            Path::Splice => assert!(
                stats.bytes_spliced > 0,
                "the splice path spliced nothing: {stats}"
            ),
            Path::Copy => assert_eq!(stats.bytes_spliced, 0, "{stats}"),
        }
    }
}

/// `per_path!(rule);` makes a module `rule` with the tests `rule::splice`
/// and `rule::copy`, each calling `rule(Path::…)`.
macro_rules! per_path {
    ($($rule:ident),* $(,)?) => {$(
        mod $rule {
            use super::Path;
            #[test]
            fn splice() {
                super::$rule(Path::Splice)
            }
            #[test]
            fn copy() {
                super::$rule(Path::Copy)
            }
        }
    )*};
}

// ---- Handlers. ----

/// What the two sides of the test's proxies share: their log, and the
/// reactor's stats taken when the last of `stop_after` proxy connections
/// ended, which also stops the reactor (0: never).
#[derive(Clone, Default)]
struct Shared {
    log: Log,
    ended: Rc<Cell<usize>>,
    stop_after: usize,
    stats: Rc<RefCell<Option<em::Stats>>>,
    /// The proxies' backend connections, as the `Front`s make them.
    backs: Rc<RefCell<Vec<Conn<BytesCodec>>>>,
}

impl Shared {
    fn stopping_after(ends: usize) -> Self {
        Shared {
            stop_after: ends,
            ..Shared::default()
        }
    }

    /// One more proxy connection ended.
    fn ended(&self) {
        self.ended.set(self.ended.get() + 1);
        if self.ended.get() == self.stop_after {
            *self.stats.borrow_mut() = Some(em::stats().expect("stats"));
            em::stop();
        }
    }

    /// The stats taken at the end.
    fn stats(&self) -> em::Stats {
        self.stats.borrow().clone().expect("the proxies ended")
    }
}

/// The proxy's client side: connects to `backend` and proxies both ways,
/// with `bufsize`; closes the backend after writing when it ends.
struct Front {
    backend: SocketAddr,
    bufsize: usize,
    peer: Rc<RefCell<Option<Conn<BytesCodec>>>>,
    shared: Shared,
}

impl Connection for Front {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        let back = em::connect(
            self.backend,
            Back {
                front: conn.clone(),
                bufsize: self.bufsize,
                shared: self.shared.clone(),
            },
        )
        .expect("connect to the backend");
        conn.proxy_incoming_to(&back, self.bufsize)
            .expect("proxy to the backend");
        self.shared.backs.borrow_mut().push(back.clone());
        *self.peer.borrow_mut() = Some(back);
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.shared
            .log
            .push(format!("front got {} bytes", data.len()));
    }
    fn proxy_target_unbound(&mut self, conn: &Conn<BytesCodec>) {
        self.shared.log.push("front: proxy_target_unbound");
        conn.close_connection_after_writing();
    }
    fn unbind(&mut self, conn: &Conn<BytesCodec>, _: UnbindReason) {
        self.shared
            .log
            .push(format!("front unbind, proxied {}", conn.proxied_bytes()));
        if let Some(back) = &*self.peer.borrow() {
            back.close_connection_after_writing();
        }
        self.shared.ended();
    }
}

/// The proxy's backend side: proxies its input to the client side.
struct Back {
    front: Conn<BytesCodec>,
    bufsize: usize,
    shared: Shared,
}

impl Connection for Back {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.proxy_incoming_to(&self.front, self.bufsize)
            .expect("proxy to the client");
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.shared
            .log
            .push(format!("back got {} bytes", data.len()));
    }
    fn unbind(&mut self, conn: &Conn<BytesCodec>, _: UnbindReason) {
        self.shared
            .log
            .push(format!("back unbind, proxied {}", conn.proxied_bytes()));
        self.front.close_connection_after_writing();
        self.shared.ended();
    }
}

/// Starts a two-way proxy server to `backend`, its handlers sharing
/// `shared`.
fn start_proxy(backend: SocketAddr, bufsize: usize, shared: &Shared) -> em::Result<em::Server> {
    let shared = shared.clone();
    em::start_server("127.0.0.1:0", move || Front {
        backend,
        bufsize,
        peer: Rc::default(),
        shared: shared.clone(),
    })
}

// ---- Data: a stream whose every 8-byte word is its own index. ----

/// Bytes per block of the stream.
const BLOCK: usize = 1 << 20;

/// Block `n` of the stream `seed`: word `k` of the stream is `k ^ seed`,
/// so that a byte lost, repeated or moved anywhere shows.
fn block(seed: u64, n: usize, out: &mut [u8]) {
    let first = (n * BLOCK / 8) as u64;
    for (i, word) in out.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&((first + i as u64) ^ seed).to_le_bytes());
    }
}

/// Writes `blocks` blocks of stream `seed`.
fn send_stream(mut to: impl Write, seed: u64, blocks: usize) {
    let mut buf = vec![0; BLOCK];
    for n in 0..blocks {
        block(seed, n, &mut buf);
        to.write_all(&buf).expect("write a block");
    }
}

/// Reads `len` bytes and checks they are the start of stream `seed`.
fn check_prefix(mut from: impl Read, seed: u64, len: usize) {
    let (mut got, mut want) = (vec![0; BLOCK], vec![0; BLOCK]);
    for n in 0..len.div_ceil(BLOCK) {
        let part = (len - n * BLOCK).min(BLOCK);
        from.read_exact(&mut got[..part])
            .unwrap_or_else(|e| panic!("read block {n}: {e}"));
        block(seed, n, &mut want);
        assert!(
            got[..part] == want[..part],
            "block {n} of stream {seed:#x} differs"
        );
    }
}

/// Reads `blocks` blocks and checks they are stream `seed`, byte for byte.
fn check_stream(mut from: impl Read, seed: u64, blocks: usize) {
    let (mut got, mut want) = (vec![0; BLOCK], vec![0; BLOCK]);
    for n in 0..blocks {
        from.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("read block {n} of {blocks}: {e}"));
        block(seed, n, &mut want);
        assert!(got == want, "block {n} of stream {seed:#x} differs");
    }
}

/// Sends `blocks` of stream `send` on `s` while reading and checking
/// `blocks` of stream `recv` from it; closes it once both are done.
fn exchange(s: TcpStream, send: u64, recv: u64, blocks: usize) {
    let writer = s.try_clone().expect("clone the socket");
    let sending = thread::spawn(move || send_stream(writer, send, blocks));
    check_stream(&s, recv, blocks);
    sending.join().expect("the sender");
}

/// A blocking socket with generous timeouts, for bulk transfers.
fn bulk(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(EVENT_TIMEOUT)).unwrap();
    s
}

// ---- 100 MiB each way. ----

/// The client and the server exchange 100 MiB each way through the
/// proxy at once; each checks every byte it gets. The proxy's counts are
/// exact, and the path taken is the one asked for.
fn hundred_mib_each_way(path: Path) {
    const BLOCKS: usize = 100;
    let (upstream, downstream) = (0x5eed_0001_u64, 0x5eed_0002_u64);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the server");
    let backend = listener.local_addr().unwrap();
    let shared = Shared::stopping_after(2);
    let sh = shared.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_builder_with_watchdog(path.builder(), move || -> em::Result<()> {
        let proxy = start_proxy(backend, 1 << 20, &sh)?;
        let addr = proxy.local_addr().inet().expect("TCP");
        // One peer thread for both ends, so that the reactor is stopped
        // (by the peer's guard) only once both have every byte.
        spawn_peer(em::handle()?, done_tx, move || {
            let server = thread::spawn(move || {
                let (s, _) = listener.accept().expect("accept");
                exchange(bulk(s), downstream, upstream, BLOCKS);
            });
            exchange(bulk(client(addr)), upstream, downstream, BLOCKS);
            server.join().expect("the server end");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    let total = (BLOCKS * BLOCK) as u64;
    let events = shared.log.events();
    assert!(
        events.contains(&format!("front unbind, proxied {total}")),
        "{events:?}"
    );
    assert!(
        events.contains(&format!("back unbind, proxied {total}")),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e.contains("got")), "{events:?}");
    let stats = shared.stats();
    path.check(&stats, 2 * total);
    if path == Path::Splice {
        assert!(
            stats.bytes_spliced > total,
            "most bytes should be spliced: {stats}"
        );
    }
}

per_path!(hundred_mib_each_way);

// ---- P1: past receive_data and both codecs. ----

/// A line server that proxies its input, from the line `proxy` on, to a
/// backend with raw bytes: the rest of the read that held `proxy` (an
/// unfinished line) goes first, past the line codec, and `receive_data`
/// runs no more.
struct LineFront {
    backend: SocketAddr,
    target: Rc<RefCell<Option<Conn<BytesCodec>>>>,
    shared: Shared,
}

impl Connection for LineFront {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(64)
    }
    fn post_init(&mut self, _: &Conn<LinesCodec>) {
        let back = em::connect(self.backend, Sink::new(self.shared.clone())).expect("connect");
        *self.target.borrow_mut() = Some(back);
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.shared.log.push(format!("line {line}"));
        if line == "proxy" {
            let target = self.target.borrow();
            conn.proxy_incoming_to(target.as_ref().unwrap(), 0)
                .expect("proxy");
            assert!(conn.is_proxying());
        }
    }
    fn unbind(&mut self, conn: &Conn<LinesCodec>, _: UnbindReason) {
        self.shared
            .log
            .push(format!("front unbind, proxied {}", conn.proxied_bytes()));
        if let Some(target) = &*self.target.borrow() {
            target.close_connection_after_writing();
        }
    }
}

/// A handler that logs whatever it receives, and runs `start` once
/// connected; its end counts as a proxy connection's.
struct Sink(Shared, Option<Start>);

/// What a [`Sink`] runs once connected.
type Start = Box<dyn FnOnce(&Conn<BytesCodec>)>;

impl Sink {
    fn new(shared: Shared) -> Self {
        Sink(shared, None)
    }

    /// A sink that, once connected, proxies `front`'s input to itself
    /// with `proxy` and resumes `front`: the way to have the first bytes
    /// spliced, as a client's connect has not completed when its handle
    /// exists (a proxy to it copies until then).
    fn proxied_from<C: 'static>(
        shared: Shared,
        front: &Conn<C>,
        proxy: impl FnOnce(&Conn<C>, &Conn<BytesCodec>) + 'static,
    ) -> Self {
        let front = front.clone();
        Sink(
            shared,
            Some(Box::new(move |back| {
                proxy(&front, back);
                front.resume();
            })),
        )
    }
}

impl Connection for Sink {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
        if let Some(start) = self.1.take() {
            start(conn);
        }
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.0
            .log
            .push(format!("sink got {:?}", String::from_utf8_lossy(&data)));
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, _: UnbindReason) {
        self.0.log.push("sink unbind");
        self.0.ended();
    }
}

/// P1: once proxied, input goes to the target as it is, past the source's
/// line codec (an unfinished line, an over-long line) and the target's,
/// and `receive_data` no longer runs; the target may have another codec.
fn p1_input_bypasses_receive_data_and_both_codecs(path: Path) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let backend = listener.local_addr().unwrap();
    let shared = Shared::stopping_after(1);
    let sh = shared.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let long = "x".repeat(200); // longer than the line codec allows
    let expected = format!("half a line\n{long}\nmore\n");
    let e = expected.clone();
    run_builder_with_watchdog(path.builder(), move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || LineFront {
            backend,
            target: Rc::default(),
            shared: sh.clone(),
        })?;
        let addr = server.local_addr().inet().expect("TCP");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut c = client(addr);
            // The line, and half of the next one, in one write.
            c.write_all(b"hello\nproxy\nhalf a").unwrap();
            let (mut s, _) = listener.accept().expect("accept");
            s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
            let mut got = vec![0; b"half a".len()];
            s.read_exact(&mut got).expect("the unfinished line first");
            assert_eq!(got, b"half a");
            c.write_all(format!(" line\n{long}\nmore\n").as_bytes())
                .unwrap();
            drop(c);
            got.extend(read_to_end(&mut s));
            got
        });
        Ok(())
    })
    .unwrap();
    let got = join_peer(&done_rx);
    assert_eq!(String::from_utf8_lossy(&got), e);
    path.check(&shared.stats(), expected.len() as u64);
    let events = shared.log.events();
    assert_eq!(
        events[..2],
        ["line hello".to_owned(), "line proxy".to_owned()],
        "{events:?}"
    );
    assert!(
        events.contains(&format!("front unbind, proxied {}", expected.len())),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.starts_with("sink got")),
        "the target's receive_data ran: {events:?}"
    );
}

per_path!(p1_input_bypasses_receive_data_and_both_codecs);

// ---- P2: a slow target slows the source. ----

/// How far past `bufsize` a target's backlog may go: one read, or one
/// splice (a pipe's worth, 256 KiB).
const ONE_READ: usize = 256 * 1024;

/// Writes stream `seed` in 1 MiB writes until the peer stops taking it (a
/// write makes no progress for a second) or `limit` bytes are out; the
/// bytes written.
fn send_until_blocked(s: &mut TcpStream, seed: u64, limit: usize) -> usize {
    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = vec![0; BLOCK];
    let mut sent = 0;
    while sent < limit {
        block(seed, sent / BLOCK, &mut buf);
        let mut at = sent % BLOCK;
        while at < BLOCK {
            match s.write(&buf[at..]) {
                Ok(n) => {
                    at += n;
                    sent += n;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return sent
                }
                Err(e) => panic!("write: {e}"),
            }
        }
    }
    sent
}

/// P2: with `bufsize`, a target that does not read holds the source: the
/// target's backlog stays within `bufsize` plus one read, and the client's
/// writes stop being taken. Once the target reads, everything arrives, in
/// order.
fn p2_a_target_that_does_not_read_holds_the_source(path: Path) {
    const BUFSIZE: usize = 64 * 1024;
    let seed = 0x9e37_79b9_u64;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let backend = listener.local_addr().unwrap();
    let shared = Shared::stopping_after(2);
    let sh = shared.clone();
    let max_backlog = Rc::new(Cell::new(0));
    let mb = max_backlog.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_builder_with_watchdog(path.builder(), move || -> em::Result<()> {
        let proxy = start_proxy(backend, BUFSIZE, &sh)?;
        let addr = proxy.local_addr().inet().expect("TCP");
        let backs = sh.backs.clone();
        em::add_periodic_timer(Duration::from_millis(1), move |_| {
            for back in backs.borrow().iter() {
                mb.set(mb.get().max(back.outbound_data_size()));
            }
        })?;
        spawn_peer(em::handle()?, done_tx, move || {
            let mut c = client(addr);
            let (s, _) = listener.accept().expect("accept");
            let sent = send_until_blocked(&mut c, seed, 256 << 20);
            assert!(sent < 256 << 20, "the proxy never stopped taking input");
            // Now read: the proxy resumes, and every byte arrives.
            let reader = thread::spawn(move || check_prefix(bulk(s), seed, sent));
            reader.join().expect("the target's reader");
            sent
        });
        Ok(())
    })
    .unwrap();
    let sent = join_peer(&done_rx);
    assert!(
        max_backlog.get() <= BUFSIZE + ONE_READ,
        "the target's backlog reached {} (bufsize {BUFSIZE})",
        max_backlog.get()
    );
    assert!(max_backlog.get() > 0, "the backlog was never sampled");
    let stats = shared.stats();
    assert!(stats.bytes_proxied >= sent as u64, "{stats}");
    if path == Path::Copy {
        assert_eq!(stats.bytes_spliced, 0, "{stats}");
    } else {
        assert!(stats.bytes_spliced > 0, "{stats}");
    }
}

per_path!(p2_a_target_that_does_not_read_holds_the_source);

// ---- P3: a proxy with a length. ----

/// Proxies `length` bytes of its input to a backend with `em::enable_proxy`,
/// then keeps the rest (given to `receive_data`).
struct LengthFront {
    backend: SocketAddr,
    length: u64,
    target: Option<Conn<BytesCodec>>,
    rest: Rc<RefCell<Vec<u8>>>,
    expect_rest: usize,
    shared: Shared,
}

impl Connection for LengthFront {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.pause();
        let length = self.length;
        let sink = Sink::proxied_from(self.shared.clone(), conn, move |front, back| {
            em::enable_proxy(front, back, 0, length).expect("enable_proxy");
        });
        self.target = Some(em::connect(self.backend, sink).expect("connect"));
    }
    fn proxy_completed(&mut self, conn: &Conn<BytesCodec>) {
        assert!(!conn.is_proxying());
        self.shared
            .log
            .push(format!("completed, proxied {}", conn.proxied_bytes()));
        // The backend has all it gets: let it see the end.
        self.target
            .as_ref()
            .unwrap()
            .close_connection_after_writing();
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        self.shared.log.push("data");
        self.rest.borrow_mut().extend_from_slice(&data);
        if self.rest.borrow().len() >= self.expect_rest {
            conn.close_connection();
        }
    }
    fn unbind(&mut self, conn: &Conn<BytesCodec>, _: UnbindReason) {
        self.shared
            .log
            .push(format!("front unbind, proxied {}", conn.proxied_bytes()));
        self.shared.ended();
    }
}

/// Sends `input` through a `LengthFront` proxying `length` bytes of it;
/// the backend's bytes, the front's `receive_data` bytes, the log and the
/// stats.
fn proxy_a_length(path: Path, input: Vec<u8>, length: usize) -> (Vec<u8>, Vec<u8>, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let backend = listener.local_addr().unwrap();
    let shared = Shared::stopping_after(2);
    let sh = shared.clone();
    let rest = Rc::new(RefCell::new(Vec::new()));
    let r = rest.clone();
    let expect_rest = input.len() - length;
    let (done_tx, done_rx) = mpsc::channel();
    run_builder_with_watchdog(path.builder(), move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || LengthFront {
            backend,
            length: length as u64,
            target: None,
            rest: r.clone(),
            expect_rest,
            shared: sh.clone(),
        })?;
        let addr = server.local_addr().inet().expect("TCP");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut c = client(addr);
            let (mut s, _) = listener.accept().expect("accept");
            s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
            let writer = thread::spawn(move || {
                c.write_all(&input).expect("write");
                read_until_closed(&mut c)
            });
            let got = read_to_end(&mut s);
            writer.join().expect("the client");
            got
        });
        Ok(())
    })
    .unwrap();
    let got = join_peer(&done_rx);
    let rest = rest.borrow().clone();
    (got, rest, shared)
}

/// Checks the log of a proxy of `length` bytes: `proxy_completed` once,
/// with the count exact, before the first `receive_data`.
fn check_completed_once_and_first(shared: &Shared, length: usize) {
    let events = shared.log.events();
    let completed = format!("completed, proxied {length}");
    assert_eq!(shared.log.count(&completed), 1, "{events:?}");
    let at = events.iter().position(|e| *e == completed).unwrap();
    let first_data = events.iter().position(|e| e == "data").expect("data");
    assert!(
        at < first_data,
        "proxy_completed after receive_data: {events:?}"
    );
    assert!(
        events.contains(&format!("front unbind, proxied {length}")),
        "{events:?}"
    );
}

/// P3 (EventMachine's test_partial_proxy_connection): one write of "I
/// know!" with a length of 1: the backend gets "I", `proxy_completed` runs,
/// then `receive_data` gets " know!".
fn p3_the_rest_of_a_read_goes_to_receive_data(path: Path) {
    let (got, rest, shared) = proxy_a_length(path, b"I know!".to_vec(), 1);
    assert_eq!(got, b"I");
    assert_eq!(rest, b" know!");
    check_completed_once_and_first(&shared, 1);
    path.check(&shared.stats(), 1);
}

/// P3 over many reads: exactly `length` bytes of a 4 MiB stream reach the
/// backend, the rest reaches `receive_data`, in order.
fn p3_a_length_across_many_reads(path: Path) {
    const LENGTH: usize = 3 * BLOCK + 123;
    let mut input = vec![0; 4 * BLOCK];
    for (n, b) in input.chunks_mut(BLOCK).enumerate() {
        block(7, n, b);
    }
    let (got, rest, shared) = proxy_a_length(path, input.clone(), LENGTH);
    assert!(got == input[..LENGTH], "the backend's bytes differ");
    assert!(rest == input[LENGTH..], "receive_data's bytes differ");
    check_completed_once_and_first(&shared, LENGTH);
    path.check(&shared.stats(), LENGTH as u64);
}

per_path!(
    p3_the_rest_of_a_read_goes_to_receive_data,
    p3_a_length_across_many_reads
);

// ---- P4: the target goes away. ----

/// Proxies to a backend; once told the backend went away, says so to its
/// client and logs what `receive_data` gets.
struct UnboundFront {
    backend: SocketAddr,
    shared: Shared,
}

impl Connection for UnboundFront {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.pause();
        let sink = Sink::proxied_from(self.shared.clone(), conn, |front, back| {
            front.proxy_incoming_to(back, 0).expect("proxy");
        });
        em::connect(self.backend, sink).expect("connect");
    }
    fn proxy_target_unbound(&mut self, conn: &Conn<BytesCodec>) {
        assert!(!conn.is_proxying());
        self.shared.log.push(format!(
            "proxy_target_unbound, proxied {}",
            conn.proxied_bytes()
        ));
        conn.send_data(bytes::Bytes::from_static(b"unbound\n"));
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        self.shared
            .log
            .push(format!("got {}", String::from_utf8_lossy(&data)));
        conn.close_connection_after_writing();
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, _: UnbindReason) {
        self.shared.log.push("front unbind");
        self.shared.ended();
    }
}

/// P4 (EventMachine's test_early_close): the backend closes; the source's
/// `proxy_target_unbound` runs once, after the target's `unbind`, and the
/// input after it goes to `receive_data`.
fn p4_the_target_going_away_stops_the_proxy(path: Path) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let backend = listener.local_addr().unwrap();
    let shared = Shared::stopping_after(2);
    let sh = shared.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_builder_with_watchdog(path.builder(), move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || UnboundFront {
            backend,
            shared: sh.clone(),
        })?;
        let addr = server.local_addr().inet().expect("TCP");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut c = client(addr);
            let (mut s, _) = listener.accept().expect("accept");
            s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
            c.write_all(b"a").unwrap();
            let mut a = [0; 1];
            s.read_exact(&mut a).expect("the proxied byte");
            drop(s); // the target goes away
            let mut note = [0; 8];
            c.read_exact(&mut note).expect("the proxy's note");
            assert_eq!(&note, b"unbound\n");
            c.write_all(b"b").unwrap();
            read_until_closed(&mut c);
            a
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(join_peer(&done_rx), *b"a");
    let events = shared.log.events();
    assert_eq!(
        events,
        [
            "sink unbind",
            "proxy_target_unbound, proxied 1",
            "got b",
            "front unbind"
        ],
        "{events:?}"
    );
    path.check(&shared.stats(), 1);
}

per_path!(p4_the_target_going_away_stops_the_proxy);

// ---- P5: the count, and the busy target. ----

/// Proxies to a backend; each "ok" line from the backend checks the count
/// against what the backend says it got, then starts the proxy again and
/// lets the client send more.
struct CountFront {
    backend: SocketAddr,
    shared: Shared,
}

impl Connection for CountFront {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        let back = em::connect(
            self.backend,
            CountBack {
                front: conn.clone(),
                shared: self.shared.clone(),
            },
        )
        .expect("connect");
        assert_eq!(conn.proxied_bytes(), 0);
        conn.proxy_incoming_to(&back, 0).expect("proxy");
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {
        self.shared.log.push("front receive_data");
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, _: UnbindReason) {
        self.shared.ended();
    }
}

/// The backend side of `CountFront`: the backend says how many bytes it
/// got, as a line.
struct CountBack {
    front: Conn<BytesCodec>,
    shared: Shared,
}

impl Connection for CountBack {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(64)
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        let got: u64 = line.parse().expect("a count");
        self.shared.log.push(format!(
            "backend got {got}, proxied_bytes {}",
            self.front.proxied_bytes()
        ));
        if got == 7 {
            conn.close_connection();
            self.front.close_connection();
            return;
        }
        // Again, to the same target: the count starts over.
        em::disable_proxy(&self.front);
        assert!(!self.front.is_proxying());
        assert_eq!(self.front.proxied_bytes(), got, "kept once stopped");
        self.front.proxy_incoming_to(conn, 0).expect("proxy again");
        self.shared.log.push(format!(
            "restarted, proxied_bytes {}",
            self.front.proxied_bytes()
        ));
        self.front.send_data(bytes::Bytes::from_static(b"go\n"));
    }
    fn unbind(&mut self, _: &Conn<LinesCodec>, _: UnbindReason) {
        self.shared.ended();
    }
}

/// P5 (EventMachine's test_proxied_bytes): `proxied_bytes` counts exactly
/// what reached the target, over writes of every size, and starts over at
/// zero with the next proxy.
fn p5_proxied_bytes_is_exact_and_starts_over(path: Path) {
    const SIZES: [usize; 7] = [1, 7, 1000, 4096, 65_536, 300_000, 1 << 20];
    let total: usize = SIZES.iter().sum();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let backend = listener.local_addr().unwrap();
    let shared = Shared::stopping_after(2);
    let sh = shared.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_builder_with_watchdog(path.builder(), move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || CountFront {
            backend,
            shared: sh.clone(),
        })?;
        let addr = server.local_addr().inet().expect("TCP");
        spawn_peer(em::handle()?, done_tx, move || {
            let c = client(addr);
            let (mut s, _) = listener.accept().expect("accept");
            let s2 = s.try_clone().unwrap();
            let writer = thread::spawn(move || {
                let mut c = c;
                for size in SIZES {
                    c.write_all(&pattern(size, size as u64)).unwrap();
                }
                c
            });
            check_received(&s2, total);
            let mut c = writer.join().expect("the client");
            s.write_all(format!("{total}\n").as_bytes()).unwrap();
            let mut go = [0; 3];
            c.read_exact(&mut go).expect("go");
            c.write_all(b"I know!").unwrap();
            check_received(&s2, 7);
            s.write_all(b"7\n").unwrap();
            read_until_closed(&mut c);
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    let events = shared.log.events();
    assert_eq!(
        events,
        [
            format!("backend got {total}, proxied_bytes {total}"),
            "restarted, proxied_bytes 0".to_owned(),
            "backend got 7, proxied_bytes 7".to_owned(),
        ],
        "{events:?}"
    );
    path.check(&shared.stats(), total as u64 + 7);
}

/// Reads exactly `len` bytes (with a timeout).
fn check_received(mut s: &TcpStream, len: usize) {
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let mut buf = vec![0; len];
    s.read_exact(&mut buf).expect("the proxied bytes");
}

per_path!(p5_proxied_bytes_is_exact_and_starts_over);

/// P5: a connection takes one proxy at a time: a second source is an
/// error that `is_busy_target()`, until the first stops; a source may
/// start again to the same target; a closed target is refused.
#[test]
fn a_busy_target_is_an_error() {
    run_with_watchdog(|| -> em::Result<()> {
        let sink = || Sink::new(Shared::default());
        let (a, target) = em::connect_pair(sink(), sink())?;
        let (b, spare) = em::connect_pair(sink(), sink())?;
        a.proxy_incoming_to(&target, 0)?;
        let busy = b.proxy_incoming_to(&target, 0).unwrap_err();
        assert!(busy.is_busy_target(), "{busy}");
        let message = busy.to_string();
        assert!(message.contains(&target.id().to_string()), "{message}");
        assert!(message.contains(&a.id().to_string()), "{message}");
        assert!(!b.is_proxying());
        let busy = em::enable_proxy(&b, &target, 0, 10).unwrap_err();
        assert!(busy.is_busy_target(), "{busy}");
        // The same source may start again, to the same target or another.
        a.proxy_incoming_to(&target, 1024)?;
        a.proxy_incoming_to(&spare, 0)?;
        // `target` is free again.
        b.proxy_incoming_to(&target, 0)?;
        em::disable_proxy(&b);
        a.stop_proxying();
        a.stop_proxying(); // a no-op
        assert!(!a.is_proxying());
        // A closed or closing target is refused.
        spare.close_connection_after_writing();
        assert!(a.proxy_incoming_to(&spare, 0).unwrap_err().is_closed());
        target.close_connection();
        assert!(b.proxy_incoming_to(&target, 0).unwrap_err().is_closed());
        em::stop();
        Ok(())
    })
    .unwrap();
}

// ---- P2's memory bound, in a proxy process of its own. ----

/// The environment variable that makes `proxy_process` run: the backend's
/// address, the path and the bufsize, as `ADDR PATH BUFSIZE`.
const CHILD_ENV: &str = "EM_TEST_PROXY_PROCESS";

/// The proxy of `memory_stays_bounded_with_a_target_that_never_reads`,
/// run by it as a child process (this test binary again): a two-way proxy
/// server that prints `listening on ADDR` and runs until killed (or its
/// watchdog fires).
#[test]
#[ignore = "the proxy process of memory_stays_bounded_with_a_target_that_never_reads"]
fn proxy_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut words = spec.split_whitespace();
    let backend: SocketAddr = words.next().unwrap().parse().unwrap();
    let path = match words.next().unwrap() {
        "splice" => Path::Splice,
        _ => Path::Copy,
    };
    let bufsize: usize = words.next().unwrap().parse().unwrap();
    let builder = path.builder();
    let limit = Duration::from_secs(60);
    let _ = run_builder_with_watchdog_for(builder, limit, move || -> em::Result<()> {
        let proxy = start_proxy(backend, bufsize, &Shared::default())?;
        println!("listening on {}", proxy.local_addr());
        std::io::stdout().flush().ok();
        Ok(())
    });
}

/// A child process, killed when dropped.
struct ChildProcess(std::process::Child);

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// P2's point: with `bufsize`, a target that never reads costs the proxy
/// process at most 2 × `bufsize` + 4 MiB of resident memory, however much
/// the client tries to send, and the client's writes stop being taken.
fn memory_stays_bounded_with_a_target_that_never_reads(path: Path) {
    const BUFSIZE: usize = 1 << 20;
    let seed = 0xfeed_u64;
    let target = TcpListener::bind("127.0.0.1:0").expect("bind the target");
    let spec = format!(
        "{} {} {BUFSIZE}",
        target.local_addr().unwrap(),
        if path == Path::Splice {
            "splice"
        } else {
            "copy"
        }
    );
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["proxy_process", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, spec)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the proxy process");
    let mut child = ChildProcess(child);
    let pid = child.0.id();
    let (addr_tx, addr_rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                addr_tx.send(addr.parse::<SocketAddr>().unwrap()).ok();
            }
        }
    });
    let addr = recv(&addr_rx);
    let mut c = client(addr);
    let (accepted_tx, accepted_rx) = mpsc::channel();
    thread::spawn(move || accepted_tx.send(target.accept().expect("accept").0));
    let mut s = recv(&accepted_rx);
    // A first block through, so that the proxy's buffers exist.
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    send_stream(&mut c, seed, 1);
    check_stream(&mut s, seed, 1);
    let before = rss(pid);
    // The target reads no more: the client sends until it is held.
    let sent = send_until_blocked(&mut c, seed ^ 1, 512 << 20);
    assert!(
        sent < 512 << 20,
        "the proxy took 512 MiB from a client whose target never reads"
    );
    let after = rss(pid);
    let limit = 2 * BUFSIZE + (4 << 20);
    assert!(
        after.saturating_sub(before) < limit,
        "the proxy's RSS grew by {} bytes (from {before} to {after}), the limit is {limit}; \
         the client got {sent} bytes out",
        after - before
    );
    drop(child);
    drop(s);
}

per_path!(memory_stays_bounded_with_a_target_that_never_reads);

// ---- Unix-domain sockets. ----

/// The proxy's client side over Unix-domain sockets: connects to the
/// backend's socket file, then proxies both ways.
struct UnixFront {
    backend: std::path::PathBuf,
    shared: Shared,
}

impl Connection for UnixFront {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.pause();
        let back = Back {
            front: conn.clone(),
            bufsize: 1 << 20,
            shared: self.shared.clone(),
        };
        let back = em::connect_unix_domain(&self.backend, back).expect("connect");
        conn.proxy_incoming_to(&back, 1 << 20).expect("proxy");
        conn.resume();
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {
        self.shared.log.push("front receive_data");
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, _: UnbindReason) {
        self.shared.ended();
    }
}

/// A proxy between Unix-domain sockets carries 16 MiB to an em echo
/// server and back, byte for byte, spliced on the splice path.
fn unix_domain_sockets_proxy_both_ways(path: Path) {
    const BLOCKS: usize = 16;
    let dir = TempDir::new("proxy");
    let (echo_path, proxy_path) = (dir.join("echo.sock"), dir.join("proxy.sock"));
    let shared = Shared::stopping_after(0);
    let sh = shared.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let p = proxy_path.clone();
    run_builder_with_watchdog(path.builder(), move || -> em::Result<()> {
        em::start_unix_domain_server(&echo_path, || Echo)?;
        em::start_unix_domain_server(&p, move || UnixFront {
            backend: echo_path.clone(),
            shared: sh.clone(),
        })?;
        let handle = em::handle()?;
        let h = handle.clone();
        spawn_peer(handle, done_tx, move || {
            let s = std::os::unix::net::UnixStream::connect(&p).expect("connect");
            s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
            let writer = s.try_clone().unwrap();
            let sending = thread::spawn(move || send_stream(writer, 3, BLOCKS));
            check_stream(&s, 3, BLOCKS);
            sending.join().expect("the sender");
            // The reactor's stats, from the reactor thread, before it stops.
            let (tx, rx) = mpsc::channel();
            h.schedule(move || {
                tx.send(em::stats().expect("stats")).ok();
            })
            .expect("schedule");
            rx.recv_timeout(EVENT_TIMEOUT).ok()
        });
        Ok(())
    })
    .unwrap();
    let stats = join_peer(&done_rx).expect("the stats");
    let total = (BLOCKS * BLOCK) as u64;
    assert_eq!(stats.bytes_proxied, 2 * total, "{stats}");
    match path {
        Path::Splice => assert!(stats.bytes_spliced > total, "{stats}"),
        Path::Copy => assert_eq!(stats.bytes_spliced, 0, "{stats}"),
    }
    assert!(!shared
        .log
        .events()
        .iter()
        .any(|e| e.contains("receive_data")));
}

per_path!(unix_domain_sockets_proxy_both_ways);
