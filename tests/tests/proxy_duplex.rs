//! em-proxy's intercepting proxy and its duplex mode, over real sockets:
//! 100 clients' bytes reach production and staging, only production
//! answers; staging killed mid-run changes nothing for clients; a staging
//! that never reads keeps the proxy's memory bounded (copies dropped and
//! counted); the callbacks rewrite, route and drop, with a Unix-domain
//! backend; a TLS listener; a panicking callback ends its own session
//! only.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use em_proxy::{Data, Duplex, Finish, Proxy, ProxyServer, Stats};
use tokio_util::codec::BytesCodec;

use support::*;

/// How a test backend answers.
#[derive(Clone, Copy)]
enum Answer {
    /// Echoes every byte.
    Echo,
    /// Answers every byte with a `S` (a staging whose replies must never
    /// reach a client).
    Esses,
    /// Never reads (pauses itself at once).
    Never,
}

/// A backend connection: answers as told and, when it ends, sends what
/// it received on `streams`.
struct Backend {
    answer: Answer,
    got: Vec<u8>,
    streams: mpsc::Sender<Vec<u8>>,
    conns: Rc<RefCell<Vec<Conn<BytesCodec>>>>,
}

impl Connection for Backend {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        if let Answer::Never = self.answer {
            conn.pause();
        }
        self.conns.borrow_mut().push(conn.clone());
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        self.got.extend_from_slice(&data);
        match self.answer {
            Answer::Echo => {
                conn.send_data(data);
            }
            Answer::Esses => {
                conn.send_data(Bytes::from(vec![b'S'; data.len()]));
            }
            Answer::Never => {}
        }
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, _: UnbindReason) {
        self.streams.send(std::mem::take(&mut self.got)).ok();
    }
}

/// A backend server; what its connections received arrives on the
/// returned receiver, one stream per connection, as each ends.
struct BackendServer {
    server: em::Server,
    conns: Rc<RefCell<Vec<Conn<BytesCodec>>>>,
}

impl BackendServer {
    fn start(answer: Answer) -> em::Result<(BackendServer, mpsc::Receiver<Vec<u8>>)> {
        let (tx, rx) = mpsc::channel();
        let conns = Rc::new(RefCell::new(Vec::new()));
        let c = conns.clone();
        let server = em::start_server("127.0.0.1:0", move || Backend {
            answer,
            got: Vec::new(),
            streams: tx.clone(),
            conns: c.clone(),
        })?;
        Ok((BackendServer { server, conns }, rx))
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr().inet().unwrap()
    }

    /// Stops it and closes every connection: a crash, as its peers see it.
    fn kill(&self) {
        self.server.stop();
        for conn in self.conns.borrow_mut().drain(..) {
            conn.close_connection();
        }
    }
}

/// `n` streams from `rx`, sorted (the order connections end in is free).
fn streams(rx: &mpsc::Receiver<Vec<u8>>, n: usize) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = (0..n).map(|_| recv(rx)).collect();
    all.sort();
    all
}

/// The proxy's stats once its reactor has returned.
type Kept = Rc<RefCell<Option<ProxyServer>>>;

fn stats(kept: &Kept) -> Stats {
    kept.borrow().as_ref().expect("the proxy started").stats()
}

#[test]
fn a_hundred_clients_reach_production_and_staging_and_hear_only_production() {
    const CLIENTS: u64 = 100;
    const LEN: usize = 64 * 1024;
    let kept = Kept::default();
    let k = kept.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let (prod, prod_rx) = BackendServer::start(Answer::Echo)?;
        let (staging, staging_rx) = BackendServer::start(Answer::Esses)?;
        let proxy = Duplex::new(prod.addr())
            .mirror(staging.addr())
            .start("127.0.0.1:0")
            .expect("start the duplex proxy");
        let addr = proxy.local_addr().inet().unwrap();
        *k.borrow_mut() = Some(proxy);
        spawn_peer(em::handle()?, done_tx, move || {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|seed| {
                    thread::spawn(move || {
                        let data = pattern(LEN, seed);
                        let mut s = client(addr);
                        // In four writes, each answered before the next.
                        for part in data.chunks(LEN / 4) {
                            assert!(
                                echo_round(&mut s, part) == part,
                                "client {seed}: echo differs"
                            );
                        }
                        s.shutdown(Shutdown::Write).unwrap();
                        assert_eq!(
                            read_until_closed(&mut s),
                            b"",
                            "client {seed}: bytes after the echo"
                        );
                    })
                })
                .collect();
            for c in clients {
                c.join().expect("a client failed");
            }
            let want: Vec<Vec<u8>> = {
                let mut w: Vec<_> = (0..CLIENTS).map(|seed| pattern(LEN, seed)).collect();
                w.sort();
                w
            };
            assert!(
                streams(&prod_rx, CLIENTS as usize) == want,
                "production missed bytes"
            );
            assert!(
                streams(&staging_rx, CLIENTS as usize) == want,
                "staging missed bytes"
            );
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    let s = stats(&kept);
    assert_eq!(s.clients_accepted, CLIENTS);
    assert_eq!(s.bytes_from_clients, CLIENTS * LEN as u64);
    assert_eq!(s.bytes_to_clients, CLIENTS * LEN as u64, "{s}");
    assert_eq!(s.mirror_bytes, CLIENTS * LEN as u64, "{s}");
    assert_eq!((s.mirror_dropped_bytes, s.mirror_failures), (0, 0), "{s}");
}

#[test]
fn staging_killed_mid_run_changes_nothing_for_clients() {
    const WAVE: u64 = 50;
    const LEN: usize = 16 * 1024;
    let kept = Kept::default();
    let k = kept.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let (kill_tx, kill_rx) = mpsc::channel::<()>();
    let (killed_tx, killed_rx) = mpsc::channel::<()>();
    run_with_watchdog(move || -> em::Result<()> {
        let (prod, prod_rx) = BackendServer::start(Answer::Echo)?;
        let (staging, _staging_rx) = BackendServer::start(Answer::Echo)?;
        let proxy = Duplex::new(prod.addr())
            .mirror(staging.addr())
            .start("127.0.0.1:0")
            .expect("start the duplex proxy");
        let addr = proxy.local_addr().inet().unwrap();
        *k.borrow_mut() = Some(proxy);
        em::add_periodic_timer(Duration::from_millis(2), move |_| {
            if kill_rx.try_recv().is_ok() {
                staging.kill();
                killed_tx.send(()).ok();
            }
        })?;
        spawn_peer(em::handle()?, done_tx, move || {
            let round = |s: &mut std::net::TcpStream, seed: u64, part: usize| {
                let data = pattern(LEN, seed);
                let part = &data[part * LEN / 2..(part + 1) * LEN / 2];
                assert!(echo_round(s, part) == part, "client {seed}: echo differs");
            };
            // Wave one: half its bytes before the kill, half after.
            let mut wave: Vec<_> = (0..WAVE).map(|_| client(addr)).collect();
            for (seed, s) in wave.iter_mut().enumerate() {
                round(s, seed as u64, 0);
            }
            kill_tx.send(()).unwrap();
            recv(&killed_rx);
            for (seed, s) in wave.iter_mut().enumerate() {
                round(s, seed as u64, 1);
            }
            // Wave two: all of it with staging dead.
            for seed in WAVE..2 * WAVE {
                let mut s = client(addr);
                round(&mut s, seed, 0);
                round(&mut s, seed, 1);
                s.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_until_closed(&mut s), b"");
            }
            for mut s in wave {
                s.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_until_closed(&mut s), b"");
            }
            let mut want: Vec<_> = (0..2 * WAVE).map(|seed| pattern(LEN, seed)).collect();
            want.sort();
            assert!(
                streams(&prod_rx, 2 * WAVE as usize) == want,
                "production missed bytes"
            );
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    let s = stats(&kept);
    assert_eq!(s.clients_accepted, 2 * WAVE);
    assert_eq!(s.bytes_to_clients, 2 * WAVE * LEN as u64, "{s}");
    // Every session of wave two tried staging and failed, or skipped it
    // (it had failed within its back-off delay).
    assert!(s.mirror_failures + s.mirror_skipped >= WAVE, "{s}");
    assert!(
        s.mirror_skipped > 0,
        "the back-off never skipped the dead mirror: {s}"
    );
}

#[test]
fn a_staging_that_never_reads_keeps_the_proxys_memory_bounded() {
    const TOTAL: usize = 32 << 20;
    const WATERMARK: usize = 256 * 1024;
    const BOUND: usize = 2 << 20;
    let kept = Kept::default();
    let k = kept.clone();
    let most_queued = Rc::new(Cell::new(0usize));
    let most = most_queued.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let (prod, _prod_rx) = BackendServer::start(Answer::Echo)?;
        let (staging, _staging_rx) = BackendServer::start(Answer::Never)?;
        let proxy = Duplex::new(prod.addr())
            .mirror(staging.addr())
            .options(Proxy::new().bufsize(WATERMARK).mirror_watermark(WATERMARK))
            .start("127.0.0.1:0")
            .expect("start the duplex proxy");
        let addr = proxy.local_addr().inet().unwrap();
        *k.borrow_mut() = Some(proxy);
        em::add_periodic_timer(Duration::from_millis(1), move |_| {
            let queued = em::stats().expect("stats").outbound_queued;
            most.set(most.get().max(queued));
        })?;
        spawn_peer(em::handle()?, done_tx, move || {
            let data = pattern(TOTAL, 7);
            let mut s = client(addr);
            let mut w = s.try_clone().unwrap();
            let sent = data.clone();
            let writer = thread::spawn(move || w.write_all(&sent).expect("write"));
            let mut back = vec![0; TOTAL];
            s.read_exact(&mut back).expect("read the echo");
            writer.join().unwrap();
            assert!(back == data, "the echo differs");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    let s = stats(&kept);
    assert_eq!(s.bytes_to_clients, TOTAL as u64, "{s}");
    assert!(
        s.mirror_dropped_bytes > 0,
        "nothing dropped for a stuck mirror: {s}"
    );
    assert_eq!(s.mirror_bytes + s.mirror_dropped_bytes, TOTAL as u64, "{s}");
    assert!(
        most_queued.get() <= BOUND,
        "the reactor queued up to {} bytes (bound {BOUND})",
        most_queued.get()
    );
}

/// A line backend for the callback test: echoes, and closes after
/// writing when a chunk holds `QUIT`.
fn quitting_echo(conn: &Conn, data: BytesMut) {
    let quit = data.windows(4).any(|w| w == b"QUIT");
    conn.send_data(data);
    if quit {
        conn.close_connection_after_writing();
    }
}

/// Reads exactly `n` bytes.
fn read_n(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read");
    buf
}

/// Lines of `bytes`, sorted.
fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn callbacks_rewrite_route_and_drop_over_tcp_and_unix_backends() {
    let dir = TempDir::new("em-proxy");
    let path = dir.join("a.sock");
    let events = Log::default();
    let ev = events.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
    run_with_watchdog(move || -> em::Result<()> {
        let a = em::start_unix_domain_server(&path, em::handler(quitting_echo))?;
        let b = em::start_server("127.0.0.1:0", em::handler(quitting_echo))?;
        let (a, b) = (a.local_addr(), b.local_addr());
        let proxy = Proxy::start("127.0.0.1:0", move |session| {
            session.server("a", a.clone()).server("b", b.clone());
            let dropped = dropped_tx.clone();
            session.on_data(move |data: Bytes| {
                if let [name @ (b'a' | b'b'), b':', rest @ ..] = &data[..] {
                    let name = char::from(*name).to_string();
                    Data::To(Bytes::copy_from_slice(rest), vec![name])
                } else if data.starts_with(b"drop") {
                    dropped.send(()).ok();
                    Data::Drop
                } else {
                    Data::All(Bytes::from(data.to_ascii_uppercase()))
                }
            });
            session.on_response(|name, reply| {
                Some(Bytes::from([name.as_bytes(), b">", &reply].concat()))
            });
            let e = ev.clone();
            session.on_connect(move |name| e.push(format!("connect {name}")));
            let e = ev.clone();
            session.on_finish(move |name| {
                e.push(format!("finish {name}"));
                if name == "a" {
                    Finish::Keep
                } else {
                    Finish::Close
                }
            });
        })
        .expect("start the proxy");
        let addr = proxy.local_addr().inet().unwrap();
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = client(addr);
            s.write_all(b"hello\n").unwrap();
            assert_eq!(sorted_lines(&read_n(&mut s, 16)), ["a>HELLO", "b>HELLO"]);
            s.write_all(b"b:only b\n").unwrap();
            assert_eq!(read_n(&mut s, 9), b"b>only b\n");
            s.write_all(b"drop this\n").unwrap();
            recv(&dropped_rx);
            s.write_all(b"ping\n").unwrap();
            // Had "drop this" gone anywhere, its echo would come first.
            assert_eq!(sorted_lines(&read_n(&mut s, 14)), ["a>PING", "b>PING"]);
            // a ends (Finish::Keep): b still answers.
            s.write_all(b"a:QUIT\n").unwrap();
            assert_eq!(read_n(&mut s, 7), b"a>QUIT\n");
            s.write_all(b"b:still\n").unwrap();
            assert_eq!(read_n(&mut s, 8), b"b>still\n");
            // b ends (Finish::Close): the client is closed after the reply.
            s.write_all(b"b:QUIT\n").unwrap();
            assert_eq!(read_until_closed(&mut s), b"b>QUIT\n");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    let mut got = events.events();
    got[..2].sort();
    assert_eq!(got, ["connect a", "connect b", "finish a", "finish b"]);
}

#[test]
fn a_panicking_callback_ends_its_own_session_only() {
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let echo = em::start_server("127.0.0.1:0", em::handler(|c, d| c.send_data(d)))?;
        let backend = echo.local_addr();
        let proxy = Proxy::start("127.0.0.1:0", move |session| {
            session.server("echo", backend.clone());
            session.on_data(|data: Bytes| {
                assert!(!data.starts_with(b"boom"), "on_data refuses boom");
                Data::All(data)
            });
        })
        .expect("start the proxy");
        let addr = proxy.local_addr().inet().unwrap();
        spawn_peer(em::handle()?, done_tx, move || {
            let mut calm = client(addr);
            assert_eq!(echo_round(&mut calm, b"before"), b"before");
            let mut bomb = client(addr);
            bomb.write_all(b"boom").unwrap();
            assert_eq!(read_until_closed(&mut bomb), b"");
            assert_eq!(echo_round(&mut calm, b"after"), b"after");
            // And new sessions still start.
            assert_eq!(echo_round(&mut client(addr), b"new"), b"new");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
}

/// An em TLS client: once the handshake is done, sends `hello`, and
/// reports what comes back.
struct TlsHello {
    options: em::TlsOptions,
    got: Vec<u8>,
    result: Rc<RefCell<Vec<u8>>>,
}

impl Connection for TlsHello {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.start_tls(&self.options).expect("start TLS");
    }
    fn ssl_handshake_completed(&mut self, conn: &Conn<BytesCodec>) {
        conn.send_data(Bytes::from_static(b"hello over TLS"));
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.got.extend_from_slice(&data);
        if self.got.len() >= 14 {
            *self.result.borrow_mut() = std::mem::take(&mut self.got);
            em::stop();
        }
    }
}

#[test]
fn a_tls_listener_serves_from_production_and_mirrors_to_staging() {
    let certs = certs::Certs::new("em-proxy");
    let server_tls = certs.server_options();
    let client_tls = em::TlsOptions::new()
        .root_certs_file(&certs.ca)
        .server_name("localhost");
    let result = Rc::new(RefCell::new(Vec::new()));
    let r = result.clone();
    let (staging_tx, staging_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let (prod, _prod_rx) = BackendServer::start(Answer::Echo)?;
        let (staging, streams) = BackendServer::start(Answer::Esses)?;
        staging_tx.send(streams).ok();
        assert!(Duplex::new(prod.addr())
            .options(Proxy::new().tls(em::TlsOptions::new()))
            .start("127.0.0.1:0")
            .unwrap_err()
            .is_config());
        let proxy = Duplex::new(prod.addr())
            .mirror(staging.addr())
            .options(Proxy::new().tls(server_tls))
            .start("127.0.0.1:0")
            .expect("start the TLS proxy");
        em::connect(
            proxy.local_addr(),
            TlsHello {
                options: client_tls,
                got: Vec::new(),
                result: r,
            },
        )?;
        Ok(())
    })
    .unwrap();
    assert_eq!(&result.borrow()[..], b"hello over TLS");
    // The staging connection ended with the reactor: it had the bytes.
    let staging = recv(&staging_rx);
    assert_eq!(recv(&staging), b"hello over TLS");
}
