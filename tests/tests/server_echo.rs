//! Echo servers over real sockets: each on a `TestReactor`, its clients
//! (std, or tokio tasks) on the test's thread.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use em::prelude::*;
use em::testing::TestReactor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::*;

#[test]
fn closure_echo_server_echoes_bytes() {
    let reactor = TestReactor::start();
    let addr = reactor.block_on(|| {
        let server = em::start_server(
            "127.0.0.1:0",
            em::handler(|conn, data| conn.send_data(data)),
        );
        server.unwrap().local_addr().inet().expect("a TCP server")
    });
    assert_eq!(echo_round(&mut client(addr), b"hello em"), b"hello em");
    reactor.stop().unwrap();
}

/// 1,000 clients at once, each echoing 100 messages of its own pattern
/// through one reactor; every byte is checked. The clients are tasks of a
/// tokio runtime on the test's thread.
#[tokio::test(flavor = "current_thread")]
async fn thousand_concurrent_clients_each_echo_100_messages() {
    const CLIENTS: usize = 1000;
    const MESSAGES: usize = 100;
    const LEN: usize = 64;

    let reactor = TestReactor::start();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    let addr = reactor.block_on(move || {
        let server = em::start_server("127.0.0.1:0", move || {
            acc.fetch_add(1, Ordering::SeqCst);
            em::handler(|conn, data| conn.send_data(data))()
        });
        server.unwrap().local_addr().inet().expect("a TCP server")
    });
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        clients.spawn(echo_client(addr, i as u64, MESSAGES, LEN));
    }
    let mut checked = 0;
    while let Some(result) = tokio::time::timeout(WATCHDOG, clients.join_next())
        .await
        .unwrap()
    {
        checked += result.expect("client task");
    }
    assert_eq!(checked, CLIENTS * MESSAGES * LEN);
    assert_eq!(accepted.load(Ordering::SeqCst), CLIENTS);
    reactor.stop().unwrap();
}

/// One client: `messages` rounds of `len` bytes; returns the bytes checked.
async fn echo_client(addr: SocketAddr, id: u64, messages: usize, len: usize) -> usize {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).unwrap();
    let mut reply = vec![0; len];
    for m in 0..messages {
        let message = pattern(len, id * 1000 + m as u64);
        s.write_all(&message).await.unwrap();
        s.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, message, "client {id}, message {m}");
    }
    messages * len
}

/// A peer that writes while the server's output to it is backed up (it has
/// not read yet) is still heard once it reads: its bytes are echoed after
/// the bulk data, nothing lost, nothing reordered.
#[test]
fn input_arriving_while_output_is_backed_up_is_still_served() {
    const BULK: usize = 8 << 20;
    /// Sends `BULK` bytes from `post_init`, then echoes.
    struct Bulk;
    impl Handler for Bulk {
        fn post_init(&mut self, conn: &Conn) {
            conn.send_data(pattern(BULK, 5));
        }
        fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
            conn.send_data(data);
        }
    }

    let reactor = TestReactor::start();
    let addr = reactor.block_on(|| {
        let server = em::start_server("127.0.0.1:0", || Bulk).unwrap();
        server.local_addr().inet().expect("a TCP server")
    });
    let mut s = client(addr);
    let mut got = vec![0; BULK + 4];
    // The first byte: the server's output is flowing (and, as this side has
    // not read, backed up in its buffer).
    s.read_exact(&mut got[..1]).unwrap();
    s.write_all(b"ping").unwrap();
    s.read_exact(&mut got[1..]).unwrap();
    assert!(got[..BULK] == pattern(BULK, 5), "the bulk data is intact");
    assert_eq!(&got[BULK..], b"ping");
    reactor.stop().unwrap();
}
