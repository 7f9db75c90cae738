//! Echo servers over real sockets.

mod support;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::BytesCodec;

use support::*;

#[test]
fn closure_echo_server_echoes_bytes() {
    let (tx, rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server(
            "127.0.0.1:0",
            em::handler(|conn, data| conn.send_data(data)),
        )?;
        let addr = server.local_addr().inet().expect("a TCP server");
        let handle = em::handle()?;
        thread::spawn(move || {
            let mut s = client(addr);
            let reply = echo_round(&mut s, b"hello em");
            tx.send(reply).unwrap();
            handle.stop();
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)).unwrap(),
        b"hello em"
    );
}

/// 1,000 clients at once, each echoing 100 messages of its own pattern
/// through one reactor; every byte is checked. The clients are tasks of a
/// current-thread tokio runtime on a thread of their own.
#[test]
fn thousand_concurrent_clients_each_echo_100_messages() {
    const CLIENTS: usize = 1000;
    const MESSAGES: usize = 100;
    const LEN: usize = 64;

    let (done_tx, done_rx) = mpsc::channel();
    let accepted = Rc::new(Cell::new(0));
    let acc = accepted.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || {
            acc.set(acc.get() + 1);
            Echo
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut clients = tokio::task::JoinSet::new();
                for i in 0..CLIENTS {
                    clients.spawn(echo_client(addr, i as u64, MESSAGES, LEN));
                }
                let mut checked = 0;
                while let Some(result) = clients.join_next().await {
                    checked += result.expect("client task");
                }
                checked
            })
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(join_peer(&done_rx), CLIENTS * MESSAGES * LEN);
    assert_eq!(accepted.get(), CLIENTS);
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
    impl Connection for Bulk {
        type Codec = BytesCodec;
        fn codec(&self) -> BytesCodec {
            BytesCodec::new()
        }
        fn post_init(&mut self, conn: &Conn<BytesCodec>) {
            conn.send_data(Bytes::from(pattern(BULK, 5)));
        }
        fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
            conn.send_data(data);
        }
    }

    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", || Bulk)?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = client(addr);
            let mut got = vec![0; BULK + 4];
            // The first byte: the server's output is flowing (and, as this
            // side has not read, backed up in its buffer).
            s.read_exact(&mut got[..1]).unwrap();
            s.write_all(b"ping").unwrap();
            s.read_exact(&mut got[1..]).map(|()| got)
        });
        Ok(())
    })
    .unwrap();
    let got = join_peer(&done_rx).expect("the bulk data and then the echo of ping");
    assert!(got[..BULK] == pattern(BULK, 5), "the bulk data is intact");
    assert_eq!(&got[BULK..], b"ping");
}
