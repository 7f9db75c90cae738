//! Limits and churn: a server's `max_connections` refuses the excess
//! cleanly and counts it; 10,000 connect/close cycles leave the descriptor
//! count and `em::connection_count()` where they started; out of
//! descriptors (EMFILE, in a child process with a lowered RLIMIT_NOFILE)
//! the accept loop backs off without spinning and resumes.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::BytesMut;
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

#[test]
fn max_connections_refuses_the_excess_cleanly_and_counts_it() {
    let stash = Rc::new(RefCell::new(None));
    let s = stash.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", || Echo)?;
        server.set_max_connections(Some(2));
        assert_eq!(server.max_connections(), Some(2));
        let addr = server.local_addr().inet().expect("a TCP server");
        *s.borrow_mut() = Some(server);
        spawn_peer(em::handle()?, done_tx, move || {
            let mut a = client(addr);
            let mut b = client(addr);
            assert_eq!(echo_round(&mut a, b"a"), b"a");
            assert_eq!(echo_round(&mut b, b"b"), b"b");
            let mut refused = 0;
            let mut c = client(addr);
            assert_eq!(read_until_closed(&mut c), b"", "refused: end of stream");
            refused += 1;
            // Free a slot; a later connect is served (the server may not
            // have seen the close yet, so retry, counting refusals).
            drop(a);
            let mut served = None;
            for _ in 0..1000 {
                let mut d = client(addr);
                d.write_all(b"d").unwrap();
                let mut buf = [0; 1];
                match d.read(&mut buf) {
                    Ok(1) => {
                        served = Some(d);
                        break;
                    }
                    Ok(_) => refused += 1,
                    // Refused with the byte unread: a reset.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(served.is_some(), "a freed slot is reused");
            (refused, b, served)
        });
        Ok(())
    })
    .unwrap();
    let (refused, _b, _served) = join_peer(&done_rx);
    let server = stash.borrow_mut().take().unwrap();
    assert_eq!(server.refused_count(), refused);
    assert_eq!(server.accepted_count(), 3);
    assert_eq!(server.connection_count(), 0, "all ended with the reactor");
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Closes at once.
struct Closer;

impl Connection for Closer {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.close_connection();
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
}

/// One link of a chain of sequential connects: on its unbind it starts the
/// next one until `left` is zero.
struct Link {
    addr: std::net::SocketAddr,
    left: usize,
    completed: Rc<Cell<usize>>,
    chains_done: Rc<Cell<usize>>,
}

impl Connection for Link {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
        assert!(matches!(reason, UnbindReason::PeerClosed), "{reason}");
        self.completed.set(self.completed.get() + 1);
        if self.left > 1 {
            em::connect(
                self.addr,
                Link {
                    addr: self.addr,
                    left: self.left - 1,
                    completed: self.completed.clone(),
                    chains_done: self.chains_done.clone(),
                },
            )
            .unwrap();
        } else {
            self.chains_done.set(self.chains_done.get() + 1);
        }
    }
}

/// Waits (on the reactor, tick by tick) until no connection is left, then
/// runs `then`.
fn when_no_connections(then: impl FnOnce() + 'static) {
    if em::connection_count() == 0 {
        then();
    } else {
        em::next_tick(move || when_no_connections(then));
    }
}

/// The variable naming the test a child process runs for real.
const CHILD_ENV: &str = "EM_TEST_RELIABILITY_CHILD";

/// Whether this process is the child running `test`.
fn in_child(test: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|t| t == test)
}

/// Runs `test` of this binary in a child process (alone, so that process-wide
/// counts such as `/proc/self/fd` see no other test), after the shell
/// command `setup`; fails if it fails or does not print `ok_line`.
fn run_in_child(test: &str, setup: &str, ok_line: &str) {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{setup} exec \"$0\" {test} --exact --nocapture --test-threads=1"
        ))
        .arg(&exe)
        .env(CHILD_ENV, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains(ok_line), "{stdout}\n{stderr}");
}

/// (descriptors, connections) at the start and at the end, cycles
/// completed, connections accepted.
type ChurnResult = ((usize, usize), (usize, usize), usize, u64);

#[test]
fn ten_thousand_connect_close_cycles_leak_nothing() {
    const TEST: &str = "ten_thousand_connect_close_cycles_leak_nothing";
    if !in_child(TEST) {
        return run_in_child(TEST, "", "churn child: ok");
    }
    const CHAINS: usize = 20;
    const PER_CHAIN: usize = 500;
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", || Closer)?;
        let addr = server.local_addr().inet().expect("a TCP server");
        let start = (open_fds(), em::connection_count());
        let completed = Rc::new(Cell::new(0));
        let chains_done = Rc::new(Cell::new(0));
        for _ in 0..CHAINS {
            em::connect(
                addr,
                Link {
                    addr,
                    left: PER_CHAIN,
                    completed: completed.clone(),
                    chains_done: chains_done.clone(),
                },
            )?;
        }
        fn wait(
            chains_done: Rc<Cell<usize>>,
            completed: Rc<Cell<usize>>,
            server: em::Server,
            start: (usize, usize),
            r: Rc<RefCell<Option<ChurnResult>>>,
        ) {
            if chains_done.get() < CHAINS {
                em::next_tick(move || wait(chains_done, completed, server, start, r));
                return;
            }
            when_no_connections(move || {
                let end = (open_fds(), em::connection_count());
                *r.borrow_mut() = Some((start, end, completed.get(), server.accepted_count()));
                em::stop();
            });
        }
        wait(chains_done, completed, server, start, r);
        Ok(())
    })
    .unwrap();
    let (start, end, completed, accepted) = result.borrow_mut().take().unwrap();
    assert_eq!(completed, CHAINS * PER_CHAIN);
    assert_eq!(accepted, (CHAINS * PER_CHAIN) as u64);
    assert_eq!(start.1, 0);
    assert_eq!(
        end, start,
        "(descriptors, connections) back where they started"
    );
    println!("churn child: ok");
}

/// User + system CPU time of this process, in clock ticks, read from an
/// open `/proc/self/stat` (no descriptor needed when they have run out).
fn cpu_ticks(stat: &std::fs::File) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut buf = [0; 1024];
    let n = stat.read_at(&mut buf, 0).unwrap();
    let stat = String::from_utf8_lossy(&buf[..n]);
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // Fields 14 and 15 of stat(5), counted from the state (field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_descriptors_the_server_backs_off_and_resumes() {
    const TEST: &str = "out_of_descriptors_the_server_backs_off_and_resumes";
    if in_child(TEST) {
        return emfile_child();
    }
    run_in_child(TEST, "ulimit -n 256 &&", "emfile child: ok");
}

/// In the child, whose RLIMIT_NOFILE is 256: use up every descriptor,
/// connect two clients the server cannot accept, check that the waiting
/// server does not spin, free the descriptors and check both get served.
fn emfile_child() {
    let (done_tx, done_rx) = mpsc::channel();
    let stash = Rc::new(RefCell::new(None));
    let a = stash.clone();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = accepted.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", || Echo)?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            // The client sockets exist before the descriptors run out, so
            // that only the server's accept lacks one.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let sockets: Vec<_> = (0..2)
                .map(|_| tokio::net::TcpSocket::new_v4().unwrap())
                .collect();
            let stat = std::fs::File::open("/proc/self/stat").unwrap();
            let mut filler = Vec::new();
            loop {
                match std::fs::File::open("/dev/null") {
                    Ok(f) => filler.push(f),
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(24), "EMFILE: {e}");
                        break;
                    }
                }
            }
            let mut clients: Vec<std::net::TcpStream> = sockets
                .into_iter()
                .map(|s| {
                    let stream = rt.block_on(s.connect(addr)).unwrap().into_std().unwrap();
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    stream
                })
                .collect();
            for c in &mut clients {
                c.write_all(b"x").unwrap();
            }
            // Measure the waiting server's CPU over a window.
            let before = cpu_ticks(&stat);
            std::thread::sleep(Duration::from_millis(500));
            let spent = cpu_ticks(&stat) - before;
            let accepted_while_exhausted = accepted.load(std::sync::atomic::Ordering::SeqCst);
            drop(filler);
            let echoed: Vec<bool> = clients
                .iter_mut()
                .map(|c| {
                    let mut buf = [0; 1];
                    c.read_exact(&mut buf).is_ok() && buf == *b"x"
                })
                .collect();
            (spent, accepted_while_exhausted, echoed, clients)
        });
        // Publish the accept count for the peer thread, without spinning.
        let s = server.clone();
        em::add_periodic_timer(Duration::from_millis(20), move |_| {
            seen.store(s.accepted_count(), std::sync::atomic::Ordering::SeqCst);
        })?;
        *a.borrow_mut() = Some(server);
        Ok(())
    })
    .unwrap();
    let (spent, accepted_while_exhausted, echoed, _clients) = join_peer(&done_rx);
    assert_eq!(
        accepted_while_exhausted, 0,
        "accept failed while out of descriptors"
    );
    // 100 ticks a second: a spinning accept loop would use ~50 here.
    assert!(
        spent < 20,
        "the exhausted server spun: {spent} ticks in 0.5 s"
    );
    assert_eq!(echoed, [true, true], "served once descriptors were free");
    let server: em::Server = stash.borrow_mut().take().unwrap();
    assert_eq!(server.accepted_count(), 2);
    println!("emfile child: ok");
}
