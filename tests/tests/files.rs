//! Files on a connection (EventMachine's `send_file_data` and
//! `stream_file_data`): a file of any size arrives intact, in bounded
//! memory, within the outbound watermarks; chunked framing decodes to the
//! file; a missing file is a typed error at once; the deferred fails when
//! the peer goes away.
//!
//! The tests of this file run one at a time (see [`serial`]), so that the
//! memory one measures nothing but its own transfer.

mod support;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The chunk em reads a file in, and so the most a streamer queues past the
/// high watermark (plus the chunked framing, 20 bytes at most).
const FILE_CHUNK: usize = 64 * KIB;

/// Makes the tests of this file run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A directory of its own in the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "em-files-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The size of the blocks a test file is made of.
const BLOCK: usize = MIB;

/// A checksum that sees order (a word moved, lost or doubled changes it): a
/// polynomial hash over 16-byte little-endian words, `h = h·P + w` modulo
/// 2^128, which also makes it cheap enough for a gigabyte in a debug
/// build. Fed whole words only (the data fed is a multiple of 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checksum(u128);

impl Checksum {
    /// An odd multiplier.
    const P: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;

    fn new() -> Self {
        Checksum(0)
    }

    fn update(&mut self, data: &[u8]) {
        assert!(data.len().is_multiple_of(16), "whole words only");
        for word in data.chunks_exact(16) {
            let w = u128::from_le_bytes(word.try_into().unwrap());
            self.0 = self.0.wrapping_mul(Self::P).wrapping_add(w);
        }
    }

    /// `P` to the power `n`, modulo 2^128.
    fn p_pow(mut n: usize) -> u128 {
        let (mut result, mut base) = (1u128, Self::P);
        while n > 0 {
            if n & 1 == 1 {
                result = result.wrapping_mul(base);
            }
            base = base.wrapping_mul(base);
            n >>= 1;
        }
        result
    }

    /// The checksum of the file [`make_file`] makes of `len` bytes (whole
    /// blocks), from its structure rather than by reading it: block `i` is
    /// block 0 but for its first word, and the hash of a concatenation
    /// `A‖B` is `h(A)·P^words(B) + h(B)`.
    fn of_made_file(len: usize) -> Self {
        assert!(len.is_multiple_of(BLOCK), "whole blocks only");
        const WORDS: usize = BLOCK / 16;
        let block = block(0);
        let mut rest = Checksum::new();
        rest.update(&block[16..]);
        let first_word_weight = Self::p_pow(WORDS - 1);
        let block_weight = Self::p_pow(WORDS);
        let mut sum = 0u128;
        for i in 0..len / BLOCK {
            let mut first = [0; 16];
            first.copy_from_slice(&block[..16]);
            first[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let block_sum = u128::from_le_bytes(first)
                .wrapping_mul(first_word_weight)
                .wrapping_add(rest.0);
            sum = sum.wrapping_mul(block_weight).wrapping_add(block_sum);
        }
        Checksum(sum)
    }
}

/// Block 0 of a test file: the test pattern, with the block's index (0) in
/// its first 8 bytes.
fn block(index: u64) -> Vec<u8> {
    let mut block = pattern(BLOCK, 11);
    block[..8].copy_from_slice(&index.to_le_bytes());
    block
}

/// Writes a file of `len` bytes at `path`, block by block (never the whole
/// file in memory): each block is the test pattern with its index in its
/// first 8 bytes, so blocks differ.
fn make_file(path: &Path, len: usize) {
    let mut block = block(0);
    let mut file = File::create(path).expect("create");
    let mut left = len;
    let mut index = 0u64;
    while left > 0 {
        block[..8].copy_from_slice(&index.to_le_bytes());
        let n = left.min(BLOCK);
        file.write_all(&block[..n]).expect("write");
        left -= n;
        index += 1;
    }
}

/// This process's resident set size, in KiB (`VmRSS` in /proc/self/status).
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// What a [`FileSender`]'s deferred said: the bytes sent, or the error's
/// `is_closed()` and message.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Sent(u64),
    Failed { closed: bool, message: String },
}

/// Shared between a [`FileSender`] and its test.
#[derive(Debug, Default)]
struct Seen {
    outcome: RefCell<Option<Outcome>>,
    unbind: RefCell<Option<String>>,
    conn: RefCell<Option<Conn<BytesCodec>>>,
    /// Connections left in the reactor when the deferred failed.
    connections_at_failure: Cell<Option<usize>>,
    /// `outbound_drained` runs.
    drained: Cell<usize>,
}

/// Work on a server connection before its file starts (socket options).
type Setup = Box<dyn FnOnce(&Conn<BytesCodec>)>;

/// Streams a file from `post_init`, then closes after writing; records what
/// the deferred says. With `stop_on_failure`, stops the reactor when the
/// deferred fails.
struct FileSender {
    path: PathBuf,
    chunked: bool,
    seen: Rc<Seen>,
    setup: Option<Setup>,
    stop_on_failure: bool,
}

impl FileSender {
    fn new(path: PathBuf, chunked: bool, seen: Rc<Seen>) -> Self {
        FileSender {
            path,
            chunked,
            seen,
            setup: None,
            stop_on_failure: false,
        }
    }
}

impl Connection for FileSender {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        if let Some(setup) = self.setup.take() {
            setup(conn);
        }
        *self.seen.conn.borrow_mut() = Some(conn.clone());
        let sent = conn
            .stream_file_data(&self.path, self.chunked)
            .expect("the file opens");
        let (seen, c) = (self.seen.clone(), conn.clone());
        sent.callback(move |&bytes| {
            *seen.outcome.borrow_mut() = Some(Outcome::Sent(bytes));
            c.close_connection_after_writing();
        });
        let (seen, stop) = (self.seen.clone(), self.stop_on_failure);
        sent.errback(move |e| {
            *seen.outcome.borrow_mut() = Some(Outcome::Failed {
                closed: e.is_closed(),
                message: e.to_string(),
            });
            seen.connections_at_failure
                .set(Some(em::connection_count()));
            if stop {
                em::stop();
            }
        });
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    fn outbound_drained(&mut self, _: &Conn<BytesCodec>) {
        self.seen.drained.set(self.seen.drained.get() + 1);
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
        *self.seen.unbind.borrow_mut() = Some(reason(&why));
    }
}

#[test]
fn a_1_gib_file_arrives_intact_in_bounded_memory() {
    const LEN: usize = 1 << 30;
    /// How much the process may grow while it streams the file.
    const MAX_GROWTH_KIB: u64 = 16 * 1024;
    let _serial = serial();
    let dir = TempDir::new();
    let path = dir.join("one-gib");
    make_file(&path, LEN);
    let file_sum = Checksum::of_made_file(LEN);
    // The structural checksum is the checksum of the bytes: checked on the
    // first blocks of the file itself.
    let mut start = vec![0; 4 * BLOCK];
    File::open(&path)
        .and_then(|mut f| f.read_exact(&mut start))
        .expect("read the start");
    let mut start_sum = Checksum::new();
    start_sum.update(&start);
    assert_eq!(start_sum, Checksum::of_made_file(4 * BLOCK));
    drop(start);

    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_builder_with_watchdog_for(
        em::Reactor::builder(),
        Duration::from_secs(300),
        move || -> em::Result<()> {
            let server = em::start_server("127.0.0.1:0", move || {
                FileSender::new(path.clone(), false, s.clone())
            })?;
            let addr = server.local_addr().inet().expect("a TCP server");
            spawn_peer(em::handle()?, done_tx, move || {
                let mut block = vec![0; BLOCK];
                let before = vm_rss_kib();
                let mut c = client(addr);
                let mut sum = Checksum::new();
                let mut peak = before;
                for i in 0..LEN / BLOCK {
                    c.read_exact(&mut block).expect("a whole block");
                    sum.update(&block);
                    if i % 4 == 0 {
                        peak = peak.max(vm_rss_kib());
                    }
                }
                assert_eq!(
                    c.read(&mut block).expect("end of stream"),
                    0,
                    "nothing more"
                );
                peak = peak.max(vm_rss_kib());
                (sum, before, peak)
            });
            Ok(())
        },
    )
    .unwrap();
    let (sum, before, peak) = join_peer(&done_rx);
    assert_eq!(sum, file_sum, "the bytes that arrived are the file's");
    assert_eq!(
        *seen.outcome.borrow(),
        Some(Outcome::Sent(LEN as u64)),
        "the deferred counted the whole file"
    );
    let growth = peak.saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_KIB,
        "the process grew by {growth} KiB while streaming 1 GiB (from {before} KiB)"
    );
}

/// Decodes an HTTP/1.1 chunked body from `r`: the data, and the chunk
/// count (the last, empty one not counted). Panics on a framing error.
fn decode_chunked(r: &mut impl BufRead) -> (Vec<u8>, usize) {
    let mut body = Vec::new();
    let mut chunks = 0;
    loop {
        let mut head = String::new();
        r.read_line(&mut head).expect("chunk head");
        let hex = head
            .strip_suffix("\r\n")
            .unwrap_or_else(|| panic!("a chunk head ends with CRLF: {head:?}"));
        let len = usize::from_str_radix(hex, 16)
            .unwrap_or_else(|e| panic!("a hex chunk length: {hex:?}: {e}"));
        if len == 0 {
            let mut trailer = [0; 2];
            r.read_exact(&mut trailer).expect("the final CRLF");
            assert_eq!(&trailer, b"\r\n", "an empty trailer");
            return (body, chunks);
        }
        let start = body.len();
        body.resize(start + len, 0);
        r.read_exact(&mut body[start..]).expect("chunk data");
        let mut crlf = [0; 2];
        r.read_exact(&mut crlf).expect("chunk end");
        assert_eq!(&crlf, b"\r\n", "a chunk ends with CRLF");
        chunks += 1;
    }
}

/// Serves one [`FileSender`] streaming `path` (chunked or not) to a std
/// client that waits for `go` (when given) before it reads to the end;
/// returns what the client read, and the sender's record. `sample` runs on
/// the reactor every millisecond with the server's connection, once it is
/// there.
fn serve_file(
    path: PathBuf,
    chunked: bool,
    builder: em::Builder,
    setup: Option<Setup>,
    go: Option<mpsc::Receiver<()>>,
    mut sample: impl FnMut(&Conn<BytesCodec>) + 'static,
) -> (Vec<u8>, Rc<Seen>) {
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let setup = RefCell::new(setup);
    run_builder_with_watchdog(builder, move || -> em::Result<()> {
        let s1 = s.clone();
        let server = em::start_server("127.0.0.1:0", move || FileSender {
            setup: setup.borrow_mut().take(),
            ..FileSender::new(path.clone(), chunked, s1.clone())
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        em::add_periodic_timer(Duration::from_millis(1), move |_| {
            if let Some(conn) = &*s.conn.borrow() {
                sample(conn);
            }
        })?;
        spawn_peer(em::handle()?, done_tx, move || {
            let mut c = client(addr);
            if let Some(go) = go {
                recv(&go);
            }
            read_to_end(&mut c)
        });
        Ok(())
    })
    .unwrap();
    (join_peer(&done_rx), seen)
}

#[test]
fn a_chunked_stream_decodes_to_the_file_and_stays_near_the_high_watermark() {
    const LEN: usize = 32 * MIB + 12_345;
    const HIGH: usize = 256 * KIB;
    const LOW: usize = 64 * KIB;
    let _serial = serial();
    let dir = TempDir::new();
    let path = dir.join("chunked");
    make_file(&path, LEN);

    // The client reads nothing until a sample saw that the queue passed the
    // high watermark (so the streamer waits for it to drain), and the
    // server's send buffer is small, so the queue fills.
    let (go_tx, go_rx) = mpsc::channel();
    let mut go_tx = Some(go_tx);
    let peak = Rc::new(Cell::new(0));
    let samples = Rc::new(Cell::new(0));
    let (p, n) = (peak.clone(), samples.clone());
    let (got, seen) = serve_file(
        path.clone(),
        true,
        em::Reactor::builder().outbound_watermarks(HIGH, LOW),
        Some(Box::new(|conn| {
            conn.with_socket(|s| s.set_send_buffer_size(64 * KIB))
                .expect("SO_SNDBUF");
        })),
        Some(go_rx),
        move |conn| {
            p.set(p.get().max(conn.outbound_data_size()));
            n.set(n.get() + 1);
            if conn.is_above_high_watermark() {
                if let Some(go) = go_tx.take() {
                    go.send(()).unwrap();
                }
            }
        },
    );

    let (body, chunks) = decode_chunked(&mut BufReader::new(&got[..]));
    assert!(
        body == std::fs::read(&path).unwrap(),
        "the decoded body is the file"
    );
    assert!(
        chunks >= LEN / FILE_CHUNK,
        "one chunk per read at least: {chunks}"
    );
    assert_eq!(*seen.outcome.borrow(), Some(Outcome::Sent(LEN as u64)));
    assert_eq!(seen.unbind.borrow().as_deref(), Some("Closed"));
    assert!(
        seen.drained.get() >= 1,
        "the queue passed the high watermark and drained"
    );
    // A sample that saw the queue above the high watermark and not yet
    // drained to the low one saw more than the low one queued.
    assert!(
        peak.get() > LOW,
        "the samples saw the queue under pressure ({} samples, peak {})",
        samples.get(),
        peak.get()
    );
    assert!(
        peak.get() <= HIGH + FILE_CHUNK + 20,
        "the queue stayed within one chunk of the high watermark: peak {}",
        peak.get()
    );
}

#[test]
fn an_empty_file_is_an_empty_chunked_body() {
    let _serial = serial();
    let dir = TempDir::new();
    let path = dir.join("empty");
    make_file(&path, 0);
    let (got, seen) = serve_file(path, true, em::Reactor::builder(), None, None, |_| {});
    assert_eq!(got, b"0\r\n\r\n");
    assert_eq!(*seen.outcome.borrow(), Some(Outcome::Sent(0)));
}

#[test]
fn send_file_data_sends_the_file_as_it_is() {
    let _serial = serial();
    let dir = TempDir::new();
    let path = dir.join("raw");
    make_file(&path, 3 * FILE_CHUNK + 7);
    let (got, seen) = serve_file(
        path.clone(),
        false,
        em::Reactor::builder(),
        None,
        None,
        |_| {},
    );
    assert!(
        got == std::fs::read(&path).unwrap(),
        "every byte, in order, unframed"
    );
    assert_eq!(
        *seen.outcome.borrow(),
        Some(Outcome::Sent((3 * FILE_CHUNK + 7) as u64))
    );
}

#[test]
fn a_missing_file_and_an_unwritable_connection_are_immediate_typed_errors() {
    let _serial = serial();
    let dir = TempDir::new();
    let missing = dir.join("no-such-file");
    let present = dir.join("present");
    make_file(&present, 10);
    let checked = Rc::new(Cell::new(false));
    let ch = checked.clone();
    let d = dir.0.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let (conn, _other) = em::connect_pair(Echo, Echo)?;

        for (call, result) in [
            ("send_file_data", conn.send_file_data(&missing)),
            ("stream_file_data", conn.stream_file_data(&missing, true)),
        ] {
            let e = result.expect_err("a missing file");
            assert!(e.is_io(), "{e:?}");
            assert_eq!(
                e.io_error().map(std::io::Error::kind),
                Some(std::io::ErrorKind::NotFound)
            );
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("{call}: "))
                    && message.contains(&missing.display().to_string()),
                "names the call and the path: {message}"
            );
        }

        let e = conn.send_file_data(&d).expect_err("a directory");
        assert!(e.is_unsupported(), "{e:?}");
        assert!(e.to_string().contains("not a regular file"), "{e}");

        conn.close_connection();
        let e = conn
            .send_file_data(&present)
            .expect_err("a closed connection");
        assert!(e.is_closed(), "{e:?}");

        let (reader, _writer) = std::io::pipe().expect("pipe");
        let read_end = em::attach(reader, Echo)?;
        let e = read_end
            .send_file_data(&present)
            .expect_err("a pipe's read end");
        assert!(e.is_unsupported(), "{e:?}");

        ch.set(true);
        em::stop();
        Ok(())
    })
    .unwrap();
    assert!(checked.get());
}

#[test]
fn the_deferred_fails_if_the_peer_goes_away_mid_file() {
    const LEN: usize = 64 * MIB;
    let _serial = serial();
    let dir = TempDir::new();
    let path = dir.join("abandoned");
    make_file(&path, LEN);

    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let (read_tx, read_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || FileSender {
            stop_on_failure: true,
            ..FileSender::new(path.clone(), false, s.clone())
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        // Not a `spawn_peer`: the reactor must stop because the deferred
        // failed, not because the peer thread ended.
        std::thread::spawn(move || {
            let mut c = client(addr);
            let mut first = vec![0; MIB];
            let read = c.read_exact(&mut first).map(|()| first.len());
            read_tx.send(read.map_err(|e| e.kind())).unwrap();
            // Dropped with data unread: the kernel resets the connection.
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(
        recv(&read_rx),
        Ok(MIB),
        "the peer got the start of the file"
    );
    match seen.outcome.borrow().clone() {
        Some(Outcome::Failed { closed, message }) => {
            assert!(closed, "is_closed(): {message}");
        }
        other => panic!("the deferred failed: {other:?}"),
    }
    let unbind = seen.unbind.borrow().clone().expect("unbind ran");
    assert_ne!(
        unbind, "ReactorStopped",
        "the connection ended on the peer's close"
    );
    assert_eq!(
        seen.connections_at_failure.get(),
        Some(0),
        "the ended connection was gone when the deferred failed"
    );
}

#[test]
fn the_deferred_fails_when_the_reactor_stops_mid_file() {
    const LEN: usize = 64 * MIB;
    let _serial = serial();
    let dir = TempDir::new();
    let path = dir.join("interrupted");
    make_file(&path, LEN);

    // Once the queue passed the high watermark (the client reads nothing
    // until then), the reactor stops; the client then reads what it gets.
    let (go_tx, go_rx) = mpsc::channel();
    let mut go_tx = Some(go_tx);
    let (got, seen) = serve_file(
        path,
        false,
        em::Reactor::builder(),
        None,
        Some(go_rx),
        move |conn| {
            if conn.is_above_high_watermark() {
                if let Some(go) = go_tx.take() {
                    em::stop();
                    go.send(()).unwrap();
                }
            }
        },
    );
    assert!(got.len() < LEN, "the file was cut short: {}", got.len());
    match seen.outcome.borrow().clone() {
        Some(Outcome::Failed { closed, message }) => assert!(closed, "is_closed(): {message}"),
        other => panic!("the deferred failed: {other:?}"),
    }
    assert_eq!(seen.unbind.borrow().as_deref(), Some("ReactorStopped"));
}
