//! Faults a real network produces: a peer reset mid-transfer, a peer
//! half-close with output still queued, and garbage a codec rejects. Each
//! ends only the connection concerned, with the reason that says why.

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;

use bytes::BytesMut;
use em::{Conn, Connection, UnbindReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{BytesCodec, LinesCodec};

use support::*;

/// Echoes bytes and logs its unbind.
struct LoggedEcho {
    log: Log,
    errors: mpsc::Sender<String>,
}

impl Connection for LoggedEcho {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        conn.send_data(data);
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
        self.log.push(format!("unbind {}", reason(&why)));
        if why.is_error() {
            self.errors.send(reason(&why)).ok();
        }
    }
}

#[test]
fn a_peer_reset_mid_transfer_ends_that_connection_with_econnreset() {
    let log = Log::default();
    let l = log.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let (errors_tx, errors_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || LoggedEcho {
            log: l.clone(),
            errors: errors_tx.clone(),
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut other = client(addr);
            assert_eq!(echo_round(&mut other, b"before"), b"before");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.set_zero_linger().unwrap();
                let mut s = socket.connect(addr).await.unwrap();
                // Mid-transfer: 1 MiB sent, the echo read only in part.
                let data = pattern(1 << 20, 9);
                let (mut rd, mut wr) = s.split();
                let writing = wr.write_all(&data);
                let mut first = [0; 1024];
                let reading = rd.read_exact(&mut first);
                let (w, r) = tokio::join!(writing, reading);
                w.unwrap();
                r.unwrap();
                assert_eq!(first[..], data[..1024]);
                // Dropped with SO_LINGER 0: the kernel sends a reset.
                drop(s);
            });
            let error = recv(&errors_rx);
            // The other connection is unaffected.
            let after: Vec<bool> = (0..5)
                .map(|i| {
                    let data = pattern(10_000, i);
                    echo_round(&mut other, &data) == data
                })
                .collect();
            (error, after, other)
        });
        Ok(())
    })
    .unwrap();
    let (error, after, _other) = join_peer(&done_rx);
    assert_eq!(error, "Io(ConnectionReset)");
    assert_eq!(after, [true; 5]);
    let mut events = log.events();
    events.sort();
    assert_eq!(
        events,
        ["unbind Io(ConnectionReset)", "unbind ReactorStopped"]
    );
}

/// Answers each line with `REPLY` bytes and logs its unbind.
struct BigReplies {
    log: Log,
    lines: usize,
}

const REPLY: usize = 256 * 1024;

impl Connection for BigReplies {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(64)
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.lines += 1;
        let mut reply = vec![b'.'; REPLY - 1];
        reply[..line.len()].copy_from_slice(line.as_bytes());
        conn.send_data(String::from_utf8(reply).unwrap());
    }
    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        self.log
            .push(format!("{} lines, unbind {}", self.lines, reason(&why)));
    }
}

#[test]
fn a_half_close_delivers_every_byte_flushes_queued_output_then_peer_closed() {
    const LINES: usize = 8;
    let log = Log::default();
    let l = log.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || BigReplies {
            log: l.clone(),
            lines: 0,
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = client(addr);
            for i in 0..LINES {
                writeln!(s, "line {i}").unwrap();
            }
            // The last line has no newline: delivered at end of stream.
            s.write_all(b"tail").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            read_to_end(&mut s)
        });
        Ok(())
    })
    .unwrap();
    let received = join_peer(&done_rx);
    assert_eq!(received.len(), (LINES + 1) * REPLY, "every reply flushed");
    for (i, reply) in received.chunks(REPLY).enumerate() {
        let want = if i < LINES {
            format!("line {i}")
        } else {
            "tail".to_owned()
        };
        assert!(reply.starts_with(want.as_bytes()), "reply {i}");
        assert_eq!(reply[REPLY - 1], b'\n');
    }
    assert_eq!(
        log.events(),
        [format!("{} lines, unbind PeerClosed", LINES + 1)]
    );
}

#[test]
fn garbage_a_codec_rejects_closes_only_that_connection() {
    let log = Log::default();
    let l = log.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || BigReplies {
            log: l.clone(),
            lines: 0,
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut good = client(addr);
            let mut bad = client(addr);
            good.write_all(b"ok 1\n").unwrap();
            let mut reply = vec![0; REPLY];
            good.read_exact(&mut reply).unwrap();
            // 1 KiB without a newline: more than the 64-byte line limit.
            bad.write_all(&[b'g'; 1024]).unwrap();
            let from_bad = read_until_closed(&mut bad);
            good.write_all(b"ok 2\n").unwrap();
            good.read_exact(&mut reply).unwrap();
            (from_bad, reply.starts_with(b"ok 2"), good)
        });
        Ok(())
    })
    .unwrap();
    let (from_bad, served, _good) = join_peer(&done_rx);
    assert_eq!(from_bad, b"");
    assert!(served);
    let mut events = log.events();
    events.sort();
    assert_eq!(
        events,
        [
            "0 lines, unbind Codec(MaxLineLengthExceeded)",
            "2 lines, unbind ReactorStopped"
        ]
    );
}
