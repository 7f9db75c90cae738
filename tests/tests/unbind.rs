//! Exactly one `unbind` per connection, with the right `UnbindReason`, on
//! every path (EventMachine C10–C12, C19). Each test counts the unbinds after
//! `run` returned, so a second `unbind` from the teardown would show.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::sync::mpsc;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

/// Logs its callbacks; stops the reactor from `unbind`.
struct Logged {
    log: Log,
    /// Sent from `post_init`.
    greeting: Option<&'static [u8]>,
}

impl Logged {
    fn new(log: &Log) -> Self {
        Logged {
            log: log.clone(),
            greeting: None,
        }
    }
}

impl Connection for Logged {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        self.log.push("post_init");
        if let Some(greeting) = self.greeting {
            conn.send_data(Bytes::from_static(greeting));
        }
    }

    fn connection_completed(&mut self, _: &Conn<BytesCodec>) {
        self.log.push("connection_completed");
    }

    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {
        self.log.push("receive_data");
    }

    fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
        self.log.push(format!("unbind {}", reason(&why)));
        em::stop();
    }
}

/// C12: `close_connection` inside a callback only requests the close;
/// `unbind` runs after that callback returned. Closing twice is harmless.
#[test]
fn local_close_unbinds_once_with_closed_and_never_reentrantly() {
    struct Closer {
        log: Log,
    }
    impl Connection for Closer {
        type Codec = BytesCodec;
        fn codec(&self) -> BytesCodec {
            BytesCodec::new()
        }
        fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
            self.log.push("completed");
            conn.close_connection();
            self.log.push("after_close_call");
            assert!(conn.is_closed());
            conn.close_connection();
            conn.close_connection_after_writing();
            self.log.push("after_second_close_call");
        }
        fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {
            self.log.push("receive_data");
        }
        fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
            self.log.push(format!("unbind {}", reason(&why)));
            em::stop();
        }
    }

    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", || Echo)?;
        em::connect(server.local_addr(), Closer { log: l })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "completed",
            "after_close_call",
            "after_second_close_call",
            "unbind Closed"
        ]
    );
}

/// `close_connection` from outside any callback of the connection (a
/// `next_tick` holding its `Conn`) is not re-entrant either.
#[test]
fn close_from_a_tick_unbinds_after_the_tick_returns() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", || Echo)?;
        let conn = em::connect(server.local_addr(), Logged::new(&l))?;
        let l = l.clone();
        em::next_tick(move || {
            conn.close_connection();
            l.push("after_close_call");
        });
        Ok(())
    })
    .unwrap();
    let events = log.events();
    assert_eq!(events.first().map(String::as_str), Some("post_init"));
    assert_eq!(
        events.iter().rev().take(2).collect::<Vec<_>>(),
        ["unbind Closed", "after_close_call"]
    );
    assert_eq!(events.iter().filter(|e| e.starts_with("unbind")).count(), 1);
}

#[test]
fn peer_close_unbinds_once_with_peer_closed() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || Logged::new(&l))?;
        let addr = server.local_addr().inet().expect("a TCP server");
        std::thread::spawn(move || drop(client(addr)));
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["post_init", "unbind PeerClosed"]);
}

/// A peer that closes with unread data in its receive buffer makes Linux
/// send a reset instead of a FIN: the server's read fails with ECONNRESET.
#[test]
fn peer_reset_unbinds_once_with_io_connection_reset() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || Logged {
            greeting: Some(b"hello, reset me"),
            ..Logged::new(&l)
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        std::thread::spawn(move || {
            let mut s = client(addr);
            // Read one byte: the greeting has arrived, the rest stays unread.
            let mut one = [0];
            s.read_exact(&mut one).unwrap();
            drop(s);
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["post_init", "unbind Io(ConnectionReset)"]);
}

/// C6 and C19: a refused connect runs `post_init`, never
/// `connection_completed`, then `unbind(ConnectFailed)`; afterwards the dead
/// handle refuses `send_data` and ignores `close_connection`.
#[test]
fn failed_connect_unbinds_once_with_connect_failed() {
    struct Refused {
        log: Log,
        after: mpsc::Sender<(bool, usize, bool)>,
    }
    impl Connection for Refused {
        type Codec = BytesCodec;
        fn codec(&self) -> BytesCodec {
            BytesCodec::new()
        }
        fn post_init(&mut self, _: &Conn<BytesCodec>) {
            self.log.push("post_init");
        }
        fn connection_completed(&mut self, _: &Conn<BytesCodec>) {
            self.log.push("connection_completed");
        }
        fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {
            self.log.push("receive_data");
        }
        fn unbind(&mut self, conn: &Conn<BytesCodec>, why: UnbindReason) {
            self.log.push(format!("unbind {}", reason(&why)));
            // Use the handle once unbind has returned.
            let (conn, after) = (conn.clone(), self.after.clone());
            em::next_tick(move || {
                conn.close_connection();
                conn.close_connection_after_writing();
                let sent = conn.send_data(Bytes::from_static(b"too late"));
                let tried = conn
                    .try_send_data(Bytes::from_static(b"too late"))
                    .is_err_and(|e| e.is_closed());
                after.send((conn.is_closed(), sent, tried)).unwrap();
                em::stop();
            });
        }
    }

    let (_guard, addr) = refusing_addr();
    let log = Log::default();
    let l = log.clone();
    let (after_tx, after_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        em::connect(
            addr,
            Refused {
                log: l.clone(),
                after: after_tx,
            },
        )?;
        l.push("connect returned");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "post_init",
            "connect returned",
            "unbind ConnectFailed(ConnectionRefused)"
        ]
    );
    let (closed, sent, tried) = recv(&after_rx);
    assert!(closed, "a failed connection says it is closed");
    assert_eq!(sent, 0, "send_data on a dead connection queues nothing");
    assert!(tried, "try_send_data on a dead connection is_closed()");
}

/// Stopping the reactor gives both ends of an open connection their
/// `unbind(ReactorStopped)`, once.
#[test]
fn reactor_stop_unbinds_once_with_reactor_stopped() {
    struct Quiet {
        log: Log,
        side: &'static str,
    }
    impl Connection for Quiet {
        type Codec = BytesCodec;
        fn codec(&self) -> BytesCodec {
            BytesCodec::new()
        }
        fn post_init(&mut self, conn: &Conn<BytesCodec>) {
            if self.side == "server" {
                conn.send_data(Bytes::from_static(b"up"));
            }
        }
        fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {
            // The client heard the server: both ends are open.
            self.log.push(format!("{} receive_data", self.side));
            em::stop();
        }
        fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
            self.log
                .push(format!("{} unbind {}", self.side, reason(&why)));
        }
    }

    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let ls = l.clone();
        let server = em::start_server("127.0.0.1:0", move || Quiet {
            log: ls.clone(),
            side: "server",
        })?;
        em::connect(
            server.local_addr(),
            Quiet {
                log: l,
                side: "client",
            },
        )?;
        Ok(())
    })
    .unwrap();
    let mut events = log.events();
    assert_eq!(events.remove(0), "client receive_data");
    events.sort();
    assert_eq!(
        events,
        [
            "client unbind ReactorStopped",
            "server unbind ReactorStopped"
        ]
    );
}

/// A panic inside `unbind` is contained and `unbind` is not called again.
#[test]
fn panic_in_unbind_is_contained_and_not_repeated() {
    struct PanicsInUnbind {
        log: Log,
    }
    impl Connection for PanicsInUnbind {
        type Codec = BytesCodec;
        fn codec(&self) -> BytesCodec {
            BytesCodec::new()
        }
        fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
        fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
            self.log.push(format!("unbind {}", reason(&why)));
            em::next_tick(em::stop);
            panic!("unbind panics");
        }
    }

    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || PanicsInUnbind { log: l.clone() })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        std::thread::spawn(move || drop(TcpStream::connect(addr).unwrap()));
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["unbind PeerClosed"]);
}
