//! ProxyMachine's content router, over real sockets: routing on the first
//! line split at every point, each route kind, retries of a refused
//! backend (given up, and a backend that comes up in time), connect and
//! inactivity timeouts with their callbacks, real signals (SIGQUIT
//! drains with sessions open, SIGTERM stops after the grace period), and a
//! TLS listener routing for Python's ssl client.

mod support;

use std::cell::RefCell;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection};
use em_proxy::{Remote, Route, Router, Stats};
use tokio_util::codec::BytesCodec;

use support::*;

/// A backend that says its name first, then echoes.
struct Named(&'static str);

impl Connection for Named {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.send_data(Bytes::from(format!("{}:", self.0)));
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        conn.send_data(data);
    }
}

fn named(name: &'static str) -> em::Result<SocketAddr> {
    let server = em::start_server("127.0.0.1:0", move || Named(name))?;
    Ok(server.local_addr().inet().unwrap())
}

/// Routes by the first line: `GET /a` to `a`, `GET /b` to `b`.
fn by_line(a: SocketAddr, b: SocketAddr) -> impl Fn(&[u8]) -> Route {
    move |data: &[u8]| {
        if !data.contains(&b'\n') {
            return Route::Noop;
        }
        if data.starts_with(b"GET /a ") {
            Route::remote(a)
        } else if data.starts_with(b"GET /b ") {
            Route::remote(b)
        } else {
            Route::CloseWith(Bytes::from_static(b"no route\n"))
        }
    }
}

/// Reads exactly `n` bytes.
fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    std::io::Read::read_exact(s, &mut buf).expect("read");
    buf
}

/// The router's stats once its reactor has returned.
type Kept = Rc<RefCell<Option<em_proxy::ProxyServer>>>;

fn stats(kept: &Kept) -> Stats {
    kept.borrow().as_ref().expect("the router started").stats()
}

#[test]
fn the_first_line_routes_whatever_way_it_is_split() {
    const REQUESTS: [(&[u8], &str); 2] = [
        (b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n", "A:"),
        (b"GET /b HTTP/1.0\r\nHost: x\r\n\r\n", "B:"),
    ];
    let kept = Kept::default();
    let k = kept.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let (seen_tx, seen_rx) = mpsc::channel::<usize>();
    run_with_watchdog(move || -> em::Result<()> {
        let route = by_line(named("A")?, named("B")?);
        let router = Router::new()
            .start("127.0.0.1:0", move |data: &[u8]| {
                seen_tx.send(data.len()).ok();
                route(data)
            })
            .expect("start the router");
        let addr = router.local_addr().inet().unwrap();
        *k.borrow_mut() = Some(router);
        spawn_peer(em::handle()?, done_tx, move || {
            let mut sessions = 0;
            for (request, tag) in REQUESTS {
                for split in 1..request.len() {
                    // The calls for the last session all came before its
                    // backend answered.
                    seen_rx.try_iter().for_each(drop);
                    let mut s = client(addr);
                    s.write_all(&request[..split]).unwrap();
                    // The router saw the first part alone.
                    assert_eq!(recv(&seen_rx), split);
                    s.write_all(&request[split..]).unwrap();
                    let want = [tag.as_bytes(), request].concat();
                    assert_eq!(read_n(&mut s, want.len()), want, "split at {split}");
                    // Joined: later bytes go straight through.
                    assert_eq!(echo_round(&mut s, b"more"), b"more");
                    sessions += 1;
                }
            }
            sessions
        });
        Ok(())
    })
    .unwrap();
    let sessions = join_peer(&done_rx);
    let s = stats(&kept);
    assert_eq!(s.routed, sessions, "{s}");
    assert_eq!(s.clients_accepted, sessions, "{s}");
}

#[test]
fn each_route_kind_does_what_it_says() {
    let kept = Kept::default();
    let k = kept.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let a = named("A")?;
        let router = Router::new()
            .start("127.0.0.1:0", move |data: &[u8]| {
                let Some(end) = data.iter().position(|&b| b == b'\n') else {
                    return Route::Noop;
                };
                match &data[..end] {
                    b"HELLO" => Route::Reply(Bytes::from_static(b"WELCOME\n")),
                    b"QUIT" => Route::Close,
                    b"BAD" => Route::CloseWith(Bytes::from_static(b"no route\n")),
                    b"REWRITE" => Remote::new(a).data(&b"rewritten\n"[..]).into(),
                    b"GREET" => Remote::new(a).reply(&b"OK\n"[..]).data(&b""[..]).into(),
                    b"PLAIN" => Route::remote(a),
                    other => panic!("no route for {:?}", String::from_utf8_lossy(other)),
                }
            })
            .expect("start the router");
        let addr = router.local_addr().inet().unwrap();
        *k.borrow_mut() = Some(router);
        spawn_peer(em::handle()?, done_tx, move || {
            // reply: answers, forgets the buffer, waits for the route.
            let mut s = client(addr);
            s.write_all(b"HELLO\n").unwrap();
            assert_eq!(read_n(&mut s, 8), b"WELCOME\n");
            s.write_all(b"PLAIN\n").unwrap();
            assert_eq!(read_n(&mut s, 8), b"A:PLAIN\n");
            // close, and close with a message.
            let mut s = client(addr);
            s.write_all(b"QUIT\n").unwrap();
            assert_eq!(read_until_closed(&mut s), b"");
            let mut s = client(addr);
            s.write_all(b"BAD\n").unwrap();
            assert_eq!(read_until_closed(&mut s), b"no route\n");
            // data: replaces what is replayed.
            let mut s = client(addr);
            s.write_all(b"REWRITE\n").unwrap();
            assert_eq!(read_n(&mut s, 12), b"A:rewritten\n");
            // reply with a remote: the client hears it before the backend.
            let mut s = client(addr);
            s.write_all(b"GREET\n").unwrap();
            assert_eq!(read_n(&mut s, 5), b"OK\nA:");
            assert_eq!(echo_round(&mut s, b"on"), b"on");
            s.shutdown(Shutdown::Write).unwrap();
            assert_eq!(read_until_closed(&mut s), b"");
            // A panicking router ends that client only.
            let mut s = client(addr);
            s.write_all(b"WHAT\n").unwrap();
            assert_eq!(read_until_closed(&mut s), b"");
            let mut s = client(addr);
            s.write_all(b"PLAIN\n").unwrap();
            assert_eq!(read_n(&mut s, 8), b"A:PLAIN\n");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    assert_eq!(stats(&kept).routed, 4);
}

#[test]
fn a_client_past_max_buffer_without_a_route_is_closed() {
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let router = Router::new()
            .max_buffer(1024)
            .start("127.0.0.1:0", |_: &[u8]| Route::Noop)
            .expect("start the router");
        assert!(Router::new()
            .max_buffer(0)
            .start("127.0.0.1:0", |_: &[u8]| Route::Noop)
            .unwrap_err()
            .is_config());
        let addr = router.local_addr().inet().unwrap();
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = client(addr);
            s.write_all(&[b'x'; 1000]).unwrap();
            s.write_all(&[b'x'; 1000]).unwrap();
            assert_eq!(read_until_closed(&mut s), b"");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
}

#[test]
fn a_refused_backend_is_retried_then_given_up_with_connect_error() {
    let (_socket, refusing) = refusing_addr();
    let kept = Kept::default();
    let k = kept.clone();
    let errors = Log::default();
    let e = errors.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let router = Router::new()
            .retries(3, Duration::from_millis(20))
            .on_connect_error(move |remote| e.push(format!("connect_error {remote}")))
            .start("127.0.0.1:0", move |_: &[u8]| Route::remote(refusing))
            .expect("start the router");
        let addr = router.local_addr().inet().unwrap();
        *k.borrow_mut() = Some(router);
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = client(addr);
            s.write_all(b"anything").unwrap();
            assert_eq!(read_until_closed(&mut s), b"");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    let s = stats(&kept);
    assert_eq!(
        (s.connect_retries, s.connect_errors, s.routed),
        (3, 1, 0),
        "{s}"
    );
    assert_eq!(errors.events(), [format!("connect_error {refusing}")]);
}

#[test]
fn a_backend_that_comes_up_during_the_retries_gets_the_client() {
    let (socket, backend) = refusing_addr();
    let socket = Rc::new(RefCell::new(Some(socket)));
    let kept = Kept::default();
    let k = kept.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let router = Router::new()
            .retries(10, Duration::from_millis(300))
            .start("127.0.0.1:0", move |_: &[u8]| Route::remote(backend))
            .expect("start the router");
        let addr = router.local_addr().inet().unwrap();
        // After the first refusal, the backend starts listening: an echo
        // server on a thread of its own.
        let r = router.clone();
        em::add_periodic_timer(Duration::from_millis(2), move |t| {
            if r.stats().connect_retries > 0 {
                t.cancel();
                let listener = socket.borrow_mut().take().unwrap().listen(16).unwrap();
                let listener = listener.into_std().unwrap();
                listener.set_nonblocking(false).unwrap();
                thread::spawn(move || {
                    let (mut s, _) = listener.accept().unwrap();
                    let mut r = s.try_clone().unwrap();
                    std::io::copy(&mut r, &mut s).ok();
                });
            }
        })?;
        *k.borrow_mut() = Some(router);
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = client(addr);
            assert_eq!(echo_round(&mut s, b"first bytes"), b"first bytes");
            assert_eq!(echo_round(&mut s, b"then more"), b"then more");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    let s = stats(&kept);
    assert_eq!(
        (s.connect_retries, s.connect_errors, s.routed),
        (1, 0, 1),
        "{s}"
    );
}

#[test]
fn connect_and_inactivity_timeouts_call_their_callbacks() {
    let (_listener, _fill, hanging) = full_backlog();
    let kept = Kept::default();
    let k = kept.clone();
    let errors = Log::default();
    let (e1, e2) = (errors.clone(), errors.clone());
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        // A backend that accepts and never says a thing.
        let silent = em::start_server("127.0.0.1:0", em::handler(|_, _| {}))?;
        let silent = silent.local_addr().inet().unwrap();
        let router = Router::new()
            .on_connect_error(move |remote| e1.push(format!("connect_error {remote}")))
            .on_inactivity_error(move |remote| e2.push(format!("inactivity_error {remote}")))
            .start("127.0.0.1:0", move |data: &[u8]| match data {
                b"hang" => Remote::new(hanging)
                    .connect_timeout(Duration::from_millis(200))
                    .into(),
                b"idle" => Remote::new(silent)
                    .inactivity_timeout(Duration::from_millis(200))
                    .into(),
                _ => Route::Noop,
            })
            .expect("start the router");
        let addr = router.local_addr().inet().unwrap();
        *k.borrow_mut() = Some(router);
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = client(addr);
            s.write_all(b"hang").unwrap();
            assert_eq!(read_until_closed(&mut s), b"");
            let mut s = client(addr);
            s.write_all(b"idle").unwrap();
            assert_eq!(read_until_closed(&mut s), b"");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    let s = stats(&kept);
    assert_eq!(
        (s.connect_errors, s.inactivity_errors, s.routed),
        (1, 1, 1),
        "{s}"
    );
    let events = errors.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[0].starts_with("connect_error 127.0.0.1:"),
        "{events:?}"
    );
    assert!(
        events[1].starts_with("inactivity_error 127.0.0.1:"),
        "{events:?}"
    );
}

/// Sends `signal` to this very process.
fn raise(signal: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::getpid(), signal).expect("kill");
}

/// Traps `signal` after the router did (so its handler runs after the
/// router's) and reports each delivery on the returned receiver.
fn handled(signal: em::Signal) -> em::Result<mpsc::Receiver<()>> {
    let (tx, rx) = mpsc::channel();
    em::trap(signal, move || {
        tx.send(()).ok();
    })?;
    Ok(rx)
}

/// Whether a connect to `addr` is refused.
fn refused(addr: SocketAddr) -> bool {
    matches!(TcpStream::connect(addr), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Both signal scenarios in one test: trapped signals reach every trap in
/// the process, so two tests trapping them at once would see each other's.
#[test]
fn sigquit_drains_with_sessions_open_and_sigterm_stops_after_the_grace_period() {
    // SIGQUIT: no new connection; the open session carries on; the
    // reactor stops once it ends.
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let a = named("A")?;
        let router = Router::new()
            .start("127.0.0.1:0", move |_: &[u8]| Route::remote(a))
            .expect("start the router");
        router
            .stop_on_signals(Duration::from_secs(60))
            .expect("trap the signals");
        let quit = handled(em::Signal::QUIT)?;
        let addr = router.local_addr().inet().unwrap();
        let handle = em::handle()?;
        thread::spawn(move || {
            let result = std::panic::catch_unwind(move || {
                let mut open = client(addr);
                open.write_all(b"x").unwrap();
                assert_eq!(read_n(&mut open, 3), b"A:x");
                raise(rustix::process::Signal::QUIT);
                recv(&quit);
                assert!(refused(addr), "still accepting after SIGQUIT");
                // Draining: the open session still works.
                assert_eq!(echo_round(&mut open, b"still here"), b"still here");
                open.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_until_closed(&mut open), b"");
            });
            if result.is_err() {
                handle.stop();
            }
            done_tx.send(result).ok();
        });
        Ok(())
    })
    .unwrap();
    // The reactor returned by itself: the drain stopped it.
    join_peer(&done_rx);

    // SIGTERM with a session that never ends: stopped after the grace.
    let (done_tx, done_rx) = mpsc::channel();
    let started = std::time::Instant::now();
    run_with_watchdog(move || -> em::Result<()> {
        let a = named("A")?;
        let router = Router::new()
            .start("127.0.0.1:0", move |_: &[u8]| Route::remote(a))
            .expect("start the router");
        router
            .stop_on_signals(Duration::from_millis(300))
            .expect("trap the signals");
        let term = handled(em::Signal::TERM)?;
        let addr = router.local_addr().inet().unwrap();
        let handle = em::handle()?;
        thread::spawn(move || {
            let result = std::panic::catch_unwind(move || {
                let mut open = client(addr);
                open.write_all(b"y").unwrap();
                assert_eq!(read_n(&mut open, 3), b"A:y");
                raise(rustix::process::Signal::TERM);
                recv(&term);
                assert!(refused(addr), "still accepting after SIGTERM");
                // The grace period ends the session.
                assert_eq!(read_until_closed(&mut open), b"");
            });
            if result.is_err() {
                handle.stop();
            }
            done_tx.send(result).ok();
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// Python's ssl module as the client: connects over TLS trusting the CA,
/// sends a first line, and prints what comes back before the close.
const PYTHON_TLS_CLIENT: &str = r#"
import socket, ssl, sys
port, ca, line = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(line.encode() + b"\n")
        want = len(line) + 3
        got = b""
        while len(got) < want:
            piece = s.recv(4096)
            if not piece:
                break
            got += piece
        sys.stdout.write(got.decode())
"#;

#[test]
fn a_tls_listener_routes_on_the_decrypted_first_line() {
    // Kept to the end: the files are removed when it drops.
    let certs = certs::Certs::new("em-router");
    let (ca, server_tls) = (certs.ca.clone(), certs.server_options());
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let a = named("a")?;
        let b = named("b")?;
        let router = Router::new()
            .tls(server_tls)
            .start("127.0.0.1:0", by_line(a, b))
            .expect("start the TLS router");
        let port = router.local_addr().inet().unwrap().port();
        spawn_peer(em::handle()?, done_tx, move || {
            ["GET /a x", "GET /b y"].map(|line| {
                let out = std::process::Command::new("python3")
                    .arg("-c")
                    .arg(PYTHON_TLS_CLIENT)
                    .arg(port.to_string())
                    .arg(&ca)
                    .arg(line)
                    .output()
                    .expect("python3 runs");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap()
            })
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(join_peer(&done_rx), ["a:GET /a x\n", "b:GET /b y\n"]);
    drop(certs);
}
