//! `em::testing::FaultProxy`: every toxic measured from both ends, on real
//! sockets on 127.0.0.1; time-exact ones on one paused `TestReactor`
//! carrying client, proxy and server, the rest on the real clock with
//! bounded waits.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use em::testing::{Direction, FaultProxy, TestReactor, Toxic};
use em::{Conn, Handler, UnbindReason};

/// The longest a test waits for one event.
const WAIT: Duration = Duration::from_secs(15);

/// An em echo server on its own reactor.
fn em_echo() -> (TestReactor, SocketAddr) {
    let reactor = TestReactor::start();
    let addr = reactor.block_on(|| {
        let echo = em::start_server(
            "127.0.0.1:0",
            em::handler(|conn, data| conn.send_data(data)),
        )
        .expect("echo server");
        echo.local_addr().inet().expect("an inet address")
    });
    (reactor, addr)
}

/// A std echo server, a thread per connection: TCP's own backpressure,
/// however slowly the client reads.
fn std_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                let mut reader = stream.try_clone().expect("clone");
                let _ = io::copy(&mut reader, &mut stream);
            });
        }
    });
    addr
}

/// A server that sends `bytes` of the counter pattern on every connection,
/// then closes after writing.
struct Sender {
    bytes: usize,
}

impl Handler for Sender {
    fn post_init(&mut self, conn: &Conn) {
        conn.send_data(pattern(0, self.bytes));
        conn.close_connection_after_writing();
    }
    fn receive_data(&mut self, _: &Conn, _: BytesMut) {}
}

fn sending_server(bytes: usize) -> (TestReactor, SocketAddr) {
    let reactor = TestReactor::start();
    let addr = reactor.block_on(move || {
        let server = em::start_server("127.0.0.1:0", move || Sender { bytes }).expect("server");
        server.local_addr().inet().expect("an inet address")
    });
    (reactor, addr)
}

/// The counter pattern: byte `i` of the stream is `i % 251` (a prime, so
/// that a shifted or repeated piece shows).
fn pattern(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

fn check_pattern(from: usize, data: &[u8]) {
    for (k, b) in data.iter().enumerate() {
        assert_eq!(
            *b,
            ((from + k) % 251) as u8,
            "byte {} out of order",
            from + k
        );
    }
}

fn client(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the proxy");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Reads to the end of the stream (bounded by the read timeout).
fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read to the end");
    all
}

/// Waits until `cond` holds, polling it, for at most `WAIT`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}");
        thread::yield_now();
    }
}

/// An em client for the paused tests: sends `hello` once connected, and
/// reports every read (its length and the paused clock's reading) and its
/// end.
struct Probe {
    hello: &'static [u8],
    events: mpsc::Sender<Seen>,
    origin: tokio::time::Instant,
}

#[derive(Debug)]
enum Seen {
    Data(Vec<u8>, Duration),
    End,
}

impl Handler for Probe {
    fn connection_completed(&mut self, conn: &Conn) {
        if !self.hello.is_empty() {
            conn.send_data(self.hello);
        }
    }
    fn receive_data(&mut self, _: &Conn, data: BytesMut) {
        let _ = self
            .events
            .send(Seen::Data(data.to_vec(), self.origin.elapsed()));
    }
    fn unbind(&mut self, _: &Conn, _: UnbindReason) {
        let _ = self.events.send(Seen::End);
    }
}

fn probe(reactor: &TestReactor, addr: SocketAddr, hello: &'static [u8]) -> mpsc::Receiver<Seen> {
    let (tx, rx) = mpsc::channel();
    reactor.block_on(move || {
        let origin = tokio::time::Instant::now();
        em::connect(
            addr,
            Probe {
                hello,
                events: tx,
                origin,
            },
        )
        .expect("connect");
    });
    rx
}

#[test]
fn latency_is_exact_on_the_paused_clock() {
    // Client, proxy and echo server on one paused reactor: no time passes
    // but what the test advances.
    let reactor = TestReactor::paused();
    let echo = reactor.block_on(|| {
        let echo = em::start_server(
            "127.0.0.1:0",
            em::handler(|conn, data| conn.send_data(data)),
        )
        .expect("echo");
        echo.local_addr().inet().unwrap()
    });
    let proxy = FaultProxy::start_on(&reactor, echo);
    proxy.add_toxic(Toxic::latency(Duration::from_millis(100)));
    let seen = probe(&reactor, proxy.local_addr(), b"ping");
    // The echo is in the proxy, held by the latency, at time 0.
    wait_until("the proxy to hold the echo", || proxy.held_bytes() == 4);
    reactor.advance(Duration::from_millis(99));
    assert_eq!(proxy.held_bytes(), 4, "released before its 100 ms");
    reactor.advance(Duration::from_millis(1));
    assert_eq!(proxy.held_bytes(), 0, "still held at 100 ms");
    match seen.recv_timeout(WAIT).expect("the echo") {
        Seen::Data(data, at) => {
            assert_eq!(data, b"ping");
            assert_eq!(at, Duration::from_millis(100));
        }
        other => panic!("expected the echo, got {other:?}"),
    }
    proxy.stop();
    reactor.stop().unwrap();
}

#[test]
fn latency_both_ways_on_the_real_clock() {
    let (_server, echo) = em_echo();
    let proxy = FaultProxy::start(echo);
    let mut c = client(proxy.local_addr());
    // A round trip with no toxic first: the baseline.
    let t = Instant::now();
    c.write_all(b"ping").unwrap();
    let mut reply = [0; 4];
    c.read_exact(&mut reply).unwrap();
    let baseline = t.elapsed();
    assert!(
        baseline < Duration::from_millis(100),
        "baseline round trip {baseline:?}"
    );

    proxy.add_toxic(Toxic::latency(Duration::from_millis(150)).upstream());
    proxy.add_toxic(Toxic::latency(Duration::from_millis(100)));
    let t = Instant::now();
    c.write_all(b"pong").unwrap();
    c.read_exact(&mut reply).unwrap();
    let rtt = t.elapsed();
    assert_eq!(&reply, b"pong");
    assert!(
        rtt >= Duration::from_millis(250) && rtt < Duration::from_millis(1500),
        "round trip {rtt:?}, expected 250 ms and some"
    );
}

#[test]
fn jitter_stays_within_its_bounds_and_keeps_order() {
    let (_server, echo) = em_echo();
    let proxy = FaultProxy::start(echo);
    proxy.add_toxic(Toxic::latency(Duration::from_millis(100)).jitter(Duration::from_millis(50)));
    let mut c = client(proxy.local_addr());
    let mut reply = [0; 4];
    for i in 0..5u32 {
        let t = Instant::now();
        c.write_all(&i.to_be_bytes()).unwrap();
        c.read_exact(&mut reply).unwrap();
        let rtt = t.elapsed();
        assert_eq!(u32::from_be_bytes(reply), i);
        assert!(
            rtt >= Duration::from_millis(50) && rtt < Duration::from_millis(1000),
            "round trip {rtt:?} outside 100 ms ± 50 ms (and some)"
        );
    }
}

#[test]
fn bandwidth_within_ten_percent() {
    const RATE: u64 = 256 * 1024;
    const BYTES: usize = 512 * 1024;
    let (_server, addr) = sending_server(BYTES);
    let proxy = FaultProxy::start(addr);
    proxy.add_toxic(Toxic::bandwidth(RATE));
    let t = Instant::now();
    let mut c = client(proxy.local_addr());
    let got = read_all(&mut c);
    let elapsed = t.elapsed().as_secs_f64();
    assert_eq!(got.len(), BYTES);
    check_pattern(0, &got);
    let rate = BYTES as f64 / elapsed;
    assert!(
        (RATE as f64 * 0.9..=RATE as f64 * 1.1).contains(&rate),
        "{rate:.0} B/s over {elapsed:.3} s, expected {RATE} B/s ± 10%"
    );
}

#[test]
fn upstream_bandwidth_measured_at_the_server() {
    const RATE: u64 = 256 * 1024;
    const BYTES: usize = 512 * 1024;
    // The server counts what arrives, and when.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let counted = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let t = Instant::now();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        (all, t.elapsed())
    });
    let proxy = FaultProxy::start(server);
    proxy.add_toxic(Toxic::bandwidth(RATE).upstream());
    let mut c = client(proxy.local_addr());
    c.write_all(&pattern(0, BYTES)).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (all, elapsed) = counted.join().unwrap();
    assert_eq!(all.len(), BYTES);
    check_pattern(0, &all);
    let rate = BYTES as f64 / elapsed.as_secs_f64();
    assert!(
        (RATE as f64 * 0.9..=RATE as f64 * 1.1).contains(&rate),
        "{rate:.0} B/s over {elapsed:?}, expected {RATE} B/s ± 10%"
    );
}

#[test]
fn slicer_cuts_the_stream_into_small_reads() {
    const BYTES: usize = 3000;
    let reactor = TestReactor::paused();
    let server = reactor.block_on(|| {
        let s = em::start_server("127.0.0.1:0", || Sender { bytes: BYTES }).expect("server");
        s.local_addr().inet().unwrap()
    });
    let proxy = FaultProxy::start_on(&reactor, server);
    proxy.add_toxic(Toxic::slicer(100, 40, Duration::from_millis(10)));
    let seen = probe(&reactor, proxy.local_addr(), b"");
    let mut got = Vec::new();
    let mut reads = 0;
    // Slices until the end (`Seen::End`).
    while let Seen::Data(data, _) = seen.recv_timeout(WAIT).expect("a slice or the end") {
        reads += 1;
        assert!(data.len() <= 140, "a read of {} bytes", data.len());
        if got.len() + data.len() < BYTES {
            assert!(data.len() >= 60, "a read of {} bytes", data.len());
        }
        got.extend_from_slice(&data);
        // The next slice leaves 10 ms later: once this one is read.
        reactor.advance(Duration::from_millis(10));
    }
    assert_eq!(got.len(), BYTES);
    check_pattern(0, &got);
    assert!(reads >= BYTES / 140, "only {reads} reads");
    proxy.stop();
    reactor.stop().unwrap();
}

#[test]
fn limit_data_lets_exactly_n_bytes_through() {
    let (_server, addr) = sending_server(100_000);
    let proxy = FaultProxy::start(addr);
    proxy.add_toxic(Toxic::limit_data(4321));
    let mut c = client(proxy.local_addr());
    let got = read_all(&mut c);
    assert_eq!(got.len(), 4321);
    check_pattern(0, &got);
}

#[test]
fn limit_data_upstream_counts_the_clients_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let counted = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        all
    });
    let proxy = FaultProxy::start(server);
    proxy.add_toxic(Toxic::limit_data(1000).upstream());
    let mut c = client(proxy.local_addr());
    for i in 0..10 {
        // The proxy may close the client's side before all is written.
        if c.write_all(&pattern(i * 300, 300)).is_err() {
            break;
        }
    }
    let all = counted.join().unwrap();
    assert_eq!(all.len(), 1000);
    check_pattern(0, &all);
}

#[test]
fn reset_peer_is_econnreset_for_a_std_client() {
    let (_server, echo) = em_echo();
    let proxy = FaultProxy::start(echo);
    proxy.add_toxic(Toxic::reset_peer_after(Duration::from_millis(300)));
    let t = Instant::now();
    let mut c = client(proxy.local_addr());
    // Bytes pass until the reset.
    c.write_all(b"ping").unwrap();
    let mut reply = [0; 4];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ping");
    let err = c.read(&mut reply).expect_err("a reset, not data or an end");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "reset after {:?}",
        t.elapsed()
    );
}

#[test]
fn reset_peer_upstream_resets_the_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let seen = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0; 16];
        s.read(&mut buf).map(|_| ()).map_err(|e| e.kind())
    });
    let proxy = FaultProxy::start(server);
    proxy.add_toxic(Toxic::reset_peer_after(Duration::from_millis(100)).upstream());
    let mut c = client(proxy.local_addr());
    assert_eq!(seen.join().unwrap(), Err(io::ErrorKind::ConnectionReset));
    // The client's side is closed plainly.
    let mut buf = [0; 4];
    assert_eq!(c.read(&mut buf).unwrap(), 0);
}

#[test]
fn timeout_holds_everything_then_closes() {
    let (_server, echo) = em_echo();
    let proxy = FaultProxy::start(echo);
    proxy.add_toxic(Toxic::timeout(Duration::from_millis(400)));
    let t = Instant::now();
    let mut c = client(proxy.local_addr());
    c.write_all(b"ping").unwrap();
    let mut buf = [0; 4];
    assert_eq!(
        c.read(&mut buf).unwrap(),
        0,
        "nothing arrives, then the end"
    );
    let closed = t.elapsed();
    assert!(
        closed >= Duration::from_millis(400),
        "closed after {closed:?}"
    );
}

#[test]
fn timeout_zero_holds_until_removed() {
    let (_server, echo) = em_echo();
    let proxy = FaultProxy::start(echo);
    let hole = proxy.add_toxic(Toxic::timeout(Duration::ZERO));
    let mut c = client(proxy.local_addr());
    c.write_all(b"ping").unwrap();
    wait_until("the proxy to hold the echo", || proxy.held_bytes() == 4);
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0; 4];
    let err = c.read(&mut buf).expect_err("nothing may arrive");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert!(proxy.remove_toxic(hole));
    assert!(!proxy.remove_toxic(hole), "removed twice");
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}

#[test]
fn slow_close_delays_the_end() {
    let (_server, addr) = sending_server(3);
    let proxy = FaultProxy::start(addr);
    proxy.add_toxic(Toxic::slow_close(Duration::from_millis(400)));
    let t = Instant::now();
    let mut c = client(proxy.local_addr());
    let mut buf = [0; 3];
    c.read_exact(&mut buf).unwrap();
    let data_at = t.elapsed();
    assert_eq!(c.read(&mut buf).unwrap(), 0);
    let end_at = t.elapsed();
    assert!(
        data_at < Duration::from_millis(300),
        "the data came after {data_at:?}"
    );
    assert!(
        end_at >= Duration::from_millis(400),
        "the end came after {end_at:?}"
    );
}

#[test]
fn down_refuses_then_up_again_on_the_same_port() {
    let (_server, echo) = em_echo();
    let proxy = FaultProxy::start(echo);
    let addr = proxy.local_addr();
    let mut open = client(addr);
    let mut buf = [0; 4];
    open.write_all(b"ping").unwrap();
    open.read_exact(&mut buf).unwrap();

    proxy.set_down(true);
    // The open connection is closed, new ones refused.
    match open.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the end, got {other:?}"),
    }
    let refused = TcpStream::connect(addr).expect_err("down: refused");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

    proxy.set_down(false);
    assert_eq!(proxy.local_addr(), addr);
    let mut again = client(addr);
    again.write_all(b"pong").unwrap();
    again.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"pong");
}

#[test]
fn directions_are_independent() {
    // A server that greets, then echoes.
    let reactor = TestReactor::start();
    let (heard_tx, heard) = mpsc::channel::<Vec<u8>>();
    struct Greeter(mpsc::Sender<Vec<u8>>);
    impl Handler for Greeter {
        fn post_init(&mut self, conn: &Conn) {
            conn.send_data("hi");
        }
        fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
            let _ = self.0.send(data.to_vec());
            conn.send_data(data);
        }
    }
    let server = reactor.block_on(move || {
        let s = em::start_server("127.0.0.1:0", move || Greeter(heard_tx.clone())).unwrap();
        s.local_addr().inet().unwrap()
    });
    let proxy = FaultProxy::start(server);

    // A black hole upstream: the greeting comes, the ping never reaches
    // the server.
    let hole = proxy.add_toxic(Toxic::timeout(Duration::ZERO).upstream());
    assert_eq!(
        Toxic::timeout(Duration::ZERO).upstream().direction(),
        Direction::Upstream
    );
    let mut c = client(proxy.local_addr());
    let mut buf = [0; 2];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
    c.write_all(b"p1").unwrap();
    wait_until("the proxy to hold the ping", || proxy.held_bytes() == 2);
    assert!(
        heard.try_recv().is_err(),
        "the server heard through a black hole"
    );
    proxy.remove_toxic(hole);
    assert_eq!(heard.recv_timeout(WAIT).unwrap(), b"p1");
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"p1");

    // A black hole downstream: the server hears the ping, the echo is
    // held.
    let hole = proxy.add_toxic(Toxic::timeout(Duration::ZERO).downstream());
    c.write_all(b"p2").unwrap();
    assert_eq!(heard.recv_timeout(WAIT).unwrap(), b"p2");
    wait_until("the proxy to hold the echo", || proxy.held_bytes() == 2);
    proxy.remove_toxic(hole);
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"p2");
}

/// Reads `stream` until `until(total, elapsed)` says stop, checking the
/// pattern from `*offset`; returns the bytes read.
fn read_while(
    stream: &mut TcpStream,
    offset: &mut usize,
    mut until: impl FnMut(usize, Duration) -> bool,
) -> usize {
    let start = Instant::now();
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    while !until(total, start.elapsed()) {
        let n = stream.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "the stream ended early, at {offset}",
            offset = *offset
        );
        check_pattern(*offset, &buf[..n]);
        *offset += n;
        total += n;
    }
    total
}

#[test]
fn toxics_added_and_removed_under_load_lose_and_reorder_nothing() {
    const RATE: u64 = 512 * 1024;
    let echo = std_echo();
    let proxy = FaultProxy::start(echo);
    let mut c = client(proxy.local_addr());
    // A writer streams TOTAL bytes of the pattern, more than the phases
    // below read (TCP holds it back while they are slow).
    const TOTAL: usize = 32 << 20;
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        for from in (0..TOTAL).step_by(16 * 1024) {
            w.write_all(&pattern(from, 16 * 1024)).expect("write");
        }
    });
    let mut offset = 0;

    // Spliced: fast.
    let t = Instant::now();
    read_while(&mut c, &mut offset, |n, _| n >= 4 << 20);
    let fast = (4 << 20) as f64 / t.elapsed().as_secs_f64();

    // Slowed while the toxics are on (the first half second drains what
    // was in flight).
    let bandwidth = proxy.add_toxic(Toxic::bandwidth(RATE));
    let latency = proxy.add_toxic(Toxic::latency(Duration::from_millis(5)).upstream());
    read_while(&mut c, &mut offset, |_, e| e >= Duration::from_millis(500));
    let slow_bytes = read_while(&mut c, &mut offset, |_, e| e >= Duration::from_secs(1));
    assert!(
        (RATE as f64 * 0.7..RATE as f64 * 1.3).contains(&(slow_bytes as f64)),
        "{slow_bytes} bytes in a second through {RATE} B/s"
    );
    assert!(fast > RATE as f64 * 4.0, "spliced only {fast:.0} B/s");

    // Fast again once removed.
    proxy.remove_toxic(bandwidth);
    proxy.remove_toxic(latency);
    let t = Instant::now();
    read_while(&mut c, &mut offset, |n, _| n >= 4 << 20);
    let again = (4 << 20) as f64 / t.elapsed().as_secs_f64();
    assert!(
        again > RATE as f64 * 4.0,
        "after removal only {again:.0} B/s"
    );

    // Many switches, both ways, with bytes in flight.
    for i in 0..20 {
        let toxic = match i % 3 {
            0 => Toxic::slicer(1000, 500, Duration::ZERO),
            1 => Toxic::latency(Duration::from_millis(1)).upstream(),
            _ => Toxic::bandwidth(8 << 20),
        };
        let id = proxy.add_toxic(toxic);
        read_while(&mut c, &mut offset, |n, _| n >= 256 * 1024);
        proxy.remove_toxic(id);
        read_while(&mut c, &mut offset, |n, _| n >= 256 * 1024);
    }

    // Every byte came back, in order.
    let before = offset;
    read_while(&mut c, &mut offset, |n, _| before + n >= TOTAL);
    assert_eq!(offset, TOTAL);
    writer.join().unwrap();
}

#[test]
fn an_upstream_that_refuses_ends_the_client_and_stop_stops_listening() {
    // A port nothing listens on.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = FaultProxy::start(dead);
    let addr = proxy.local_addr();
    let mut c = client(addr);
    let mut buf = [0; 4];
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the end, got {other:?}"),
    }
    proxy.stop();
    let refused = TcpStream::connect(addr).expect_err("stopped: refused");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn fault_proxy_is_send() {
    fn is_send<T: Send>() {}
    is_send::<FaultProxy>();
    is_send::<Toxic>();
}
