//! em::testing's TestReactor, Recording and pair: a reactor driven from the
//! test's thread (under `#[test]` and inside `#[tokio::test]` of either
//! flavour), panics on it surfacing in the test, the paused clock moved
//! only by `advance`, 100 reactors at once, the callback recorder's order
//! and failure output, and an in-memory pair.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use em::prelude::*;
use em::testing::{assert_sequence, pair, Recording, TestReactor};

/// The longest a test waits for one event.
const LIMIT: Duration = Duration::from_secs(15);

fn echo_server(reactor: &TestReactor) -> SocketAddr {
    reactor.block_on(|| {
        let server = em::start_server(
            "127.0.0.1:0",
            em::handler(|conn, data| conn.send_data(data)),
        )
        .unwrap();
        server.local_addr().inet().unwrap()
    })
}

fn round_trip(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(data).unwrap();
    let mut got = vec![0; data.len()];
    s.read_exact(&mut got).unwrap();
    got
}

#[test]
fn block_on_and_run_bring_results_back_to_the_test_thread() {
    let reactor = TestReactor::start();
    let test_thread = std::thread::current().id();
    let (on_reactor, running) = reactor.block_on(move || {
        (
            std::thread::current().id() != test_thread,
            em::reactor_running(),
        )
    });
    assert!(on_reactor && running);
    let addr = echo_server(&reactor);
    assert_eq!(round_trip(addr, b"ping"), b"ping");
    let reply = reactor.run(move || async move {
        let mut socket = em::Socket::connect(addr, RawCodec).await.unwrap();
        socket.write("from a future").await.unwrap();
        socket.read().await.unwrap().unwrap()
    });
    assert_eq!(&reply[..], b"from a future");
    reactor.stop().unwrap();
}

#[test]
fn a_panic_in_block_on_fails_the_test_with_its_message() {
    let reactor = TestReactor::start();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        reactor.block_on(|| panic!("wrong answer on the reactor"));
    }))
    .unwrap_err();
    assert_eq!(
        caught.downcast_ref::<&str>(),
        Some(&"wrong answer on the reactor")
    );
    // The reactor lives on: the panic was the test's, not a callback's.
    assert_eq!(reactor.block_on(|| 6 * 7), 42);
    reactor.stop().unwrap();
}

#[test]
fn a_panic_contained_on_the_reactor_comes_back_from_stop() {
    let reactor = TestReactor::start();
    let addr = reactor.block_on(|| {
        let server = em::start_server(
            "127.0.0.1:0",
            em::handler(|_conn, _data| panic!("handler bug on purpose")),
        )
        .unwrap();
        server.local_addr().inet().unwrap()
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"boom").unwrap();
    // The panic closes the connection: the client sees the end.
    let _ = s.read_to_end(&mut Vec::new());
    let err = reactor.stop().unwrap_err();
    assert_eq!(err.panics().len(), 1, "{err}");
    assert!(err.to_string().contains("handler bug on purpose"), "{err}");
}

#[test]
fn dropping_a_reactor_that_saw_a_panic_fails_the_test() {
    let reactor = TestReactor::start();
    reactor.block_on(|| {
        em::next_tick(|| panic!("tick bug on purpose"));
    });
    // The tick has run once block_on's next round trip comes back.
    reactor.block_on(|| ());
    let caught = panic::catch_unwind(AssertUnwindSafe(move || drop(reactor))).unwrap_err();
    let message = caught.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("tick bug on purpose"), "{message}");
}

#[test]
fn the_paused_clock_moves_only_when_the_test_advances_it() {
    let reactor = TestReactor::paused();
    let recording = reactor.block_on(Recording::new);
    let r = recording.clone();
    reactor.block_on(move || {
        em::add_timer(Duration::from_secs(1), move || r.note("one second")).unwrap();
    });
    // The reactor is idle, and still the timer does not fire by itself.
    reactor.block_on(|| ());
    assert!(recording.lines().is_empty(), "{recording:?}");
    reactor.advance(Duration::from_millis(999));
    assert!(recording.lines().is_empty(), "{recording:?}");
    reactor.advance(Duration::from_millis(1));
    assert_sequence!(recording, "note one second");
    assert_eq!(recording.events()[0].at, Duration::from_secs(1));
    reactor.stop().unwrap();
}

#[test]
fn advance_on_a_reactor_that_is_not_paused_is_refused() {
    let reactor = TestReactor::start();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| reactor.advance(Duration::from_secs(1))));
    assert!(caught.is_err());
    reactor.stop().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn inside_a_current_thread_tokio_test() {
    let reactor = TestReactor::start();
    let addr = echo_server(&reactor);
    // A tokio client on the test's own runtime, an em server on the reactor.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"tokio").await.unwrap();
    let mut got = [0; 5];
    tokio::time::timeout(LIMIT, s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"tokio");
    reactor.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_multi_thread_tokio_test() {
    let reactor = TestReactor::start();
    let addr = echo_server(&reactor);
    let got = tokio::task::spawn_blocking(move || round_trip(addr, b"multi"))
        .await
        .unwrap();
    assert_eq!(got, b"multi");
    reactor.stop().unwrap();
}

#[test]
fn a_hundred_reactors_run_at_once() {
    let reactors: Vec<TestReactor> = (0..100).map(|_| TestReactor::start()).collect();
    let addrs: Vec<SocketAddr> = reactors.iter().map(echo_server).collect();
    let threads: Vec<_> = addrs
        .into_iter()
        .enumerate()
        .map(|(i, addr)| {
            std::thread::spawn(move || {
                let message = format!("reactor {i}");
                assert_eq!(round_trip(addr, message.as_bytes()), message.as_bytes());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ids: std::collections::HashSet<_> =
        reactors.iter().map(|r| r.handle().thread_id()).collect();
    assert_eq!(ids.len(), 100, "each on a thread of its own");
    for r in reactors {
        r.stop().unwrap();
    }
}

/// A client that says hello, and closes once it has the reply.
struct Hello;

impl Handler for Hello {
    fn connection_completed(&mut self, conn: &Conn) {
        conn.send_data("hello");
    }
    fn receive_data(&mut self, conn: &Conn, _data: BytesMut) {
        conn.close_connection();
    }
}

#[test]
fn the_recorder_keeps_the_callbacks_in_order_and_says_where_they_differ() {
    let reactor = TestReactor::start();
    let addr = echo_server(&reactor);
    let recording = reactor.block_on(Recording::new);
    let r = recording.clone();
    reactor.block_on(move || {
        em::connect(addr, r.wrap(Hello)).unwrap();
    });
    recording.wait_for("unbind*", LIMIT);
    assert_sequence!(
        recording,
        "post_init",
        "connection_completed",
        r#"receive_data b"hello""#,
        "unbind closed locally",
    );
    let ids: std::collections::HashSet<_> = recording.events().iter().map(|e| e.conn).collect();
    assert_eq!(ids.len(), 1, "one connection");

    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        assert_sequence!(recording, "post_init", "receive_data*", "unbind*");
    }))
    .unwrap_err();
    let report = caught.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(report.contains("=>  1 receive_data*"), "{report}");
    assert!(report.contains("connection_completed"), "{report}");
    assert!(report.contains("(nothing)"), "{report}");
    reactor.stop().unwrap();
}

#[test]
fn an_in_memory_pair_carries_bytes_both_ways_without_sockets() {
    let reactor = TestReactor::start();
    let (to_b, to_a) = reactor.run(|| async {
        let (mut a, mut b) = pair().await.unwrap();
        a.write("to b").await.unwrap();
        b.write(b"to a").await.unwrap();
        let to_b = b.read().await.unwrap().unwrap();
        let to_a = a.read().await.unwrap().unwrap();
        assert!(
            a.peer_addr().is_none_or(|p| p.inet().is_none()),
            "no socket address"
        );
        (to_b.to_vec(), to_a.to_vec())
    });
    assert_eq!(
        (to_b.as_slice(), to_a.as_slice()),
        (&b"to b"[..], &b"to a"[..])
    );
    reactor.stop().unwrap();
}
