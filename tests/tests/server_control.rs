//! Servers beyond echoing: `Server::stop` (EventMachine S2), IPv6, bind
//! errors (and how they print from `main`), and `connection_count` (S3).

mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::{BytesCodec, LinesCodec};

use support::*;

/// S2: after `Server::stop` returns, a new connect is refused, while the
/// connection accepted before keeps echoing.
#[test]
fn server_stop_refuses_new_connects_while_accepted_connection_keeps_echoing() {
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let slot = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let server = em::start_server("127.0.0.1:0", move || Control { server: s.clone() })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        *slot.borrow_mut() = Some(server);
        spawn_peer(em::handle()?, done_tx, move || {
            let mut accepted = LineClient::connect(addr);
            assert_eq!(accepted.round("before"), "before");
            assert_eq!(accepted.round("stop-server"), "stopped");
            let refused = TcpStream::connect(addr).map(|_| ()).map_err(|e| e.kind());
            let after: Vec<String> = (0..10)
                .map(|i| accepted.round(&format!("after {i}")))
                .collect();
            (refused, after)
        });
        Ok(())
    })
    .unwrap();
    let (refused, after) = join_peer(&done_rx);
    assert_eq!(refused, Err(io::ErrorKind::ConnectionRefused));
    let expected: Vec<String> = (0..10).map(|i| format!("after {i}")).collect();
    assert_eq!(after, expected);
}

#[test]
fn ipv6_server_echoes() {
    // Skip only when this machine cannot bind the IPv6 loopback at all.
    if let Err(e) = TcpListener::bind("[::1]:0") {
        eprintln!("skipping ipv6_server_echoes: cannot bind [::1]:0 here ({e})");
        return;
    }
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("[::1]:0", || Echo)?;
        let addr = server.local_addr().inet().expect("a TCP server");
        assert!(addr.is_ipv6() && addr.ip().is_loopback(), "{addr}");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = client(addr);
            let data = pattern(64 * 1024, 6);
            (echo_round(&mut s, &data) == data, s.peer_addr().unwrap())
        });
        Ok(())
    })
    .unwrap();
    let (intact, peer) = join_peer(&done_rx);
    assert!(peer.is_ipv6());
    assert!(intact, "64 KiB echoed intact over IPv6");
}

/// An em client connects over IPv6 as well.
#[test]
fn ipv6_client_connects() {
    if let Err(e) = TcpListener::bind("[::1]:0") {
        eprintln!("skipping ipv6_client_connects: cannot bind [::1]:0 here ({e})");
        return;
    }
    struct Hello {
        log: Log,
    }
    impl Connection for Hello {
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new()
        }
        fn post_init(&mut self, conn: &Conn<LinesCodec>) {
            conn.send_data("over v6");
        }
        fn connection_completed(&mut self, conn: &Conn<LinesCodec>) {
            let peer = conn.peer_addr().expect("peer");
            self.log.push(format!(
                "connected v6={}",
                peer.inet().expect("TCP").is_ipv6()
            ));
        }
        fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
            self.log.push(line);
            conn.close_connection();
            em::stop();
        }
    }
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("[::1]:0", LineEcho::default)?;
        em::connect(server.local_addr(), Hello { log: l })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["connected v6=true", "over v6"]);
}

/// S1: binding a port in use is an error that `is_bind()` and names the
/// address; the reactor keeps running.
#[test]
fn failed_bind_is_a_bind_error_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (err_tx, err_rx) = mpsc::channel();
    run_with_watchdog(move || {
        let err = em::start_server(addr, || Echo).expect_err("the port is taken");
        err_tx.send(err).unwrap();
        // The reactor is still usable.
        let other = em::start_server("127.0.0.1:0", || Echo);
        assert!(other.is_ok(), "{other:?}");
        em::stop();
    })
    .unwrap();
    let err = recv(&err_rx);
    assert!(err.is_bind(), "{err:?}");
    assert!(
        err.to_string().contains(&addr.to_string()),
        "the message names {addr}: {err}"
    );
    let source = std::error::Error::source(&err).and_then(|s| s.downcast_ref::<io::Error>());
    assert_eq!(
        source.map(io::Error::kind),
        Some(io::ErrorKind::AddrInUse),
        "the io::Error is the source"
    );
    drop(taken);
}

/// S3 (with em's documented difference: listeners are not counted): the
/// count goes up with a connect and an accept, and back down to zero once
/// both ends have unbound.
#[test]
fn connection_count_goes_up_and_back_down() {
    struct Counted {
        counts: Rc<RefCell<Vec<(&'static str, usize)>>>,
        unbound: Rc<Cell<usize>>,
        side: &'static str,
    }
    impl Connection for Counted {
        type Codec = BytesCodec;
        fn codec(&self) -> BytesCodec {
            BytesCodec::new()
        }
        fn post_init(&mut self, conn: &Conn<BytesCodec>) {
            if self.side == "server" {
                self.counts
                    .borrow_mut()
                    .push(("server post_init", em::connection_count()));
                conn.send_data(Bytes::from_static(b"hi"));
            }
        }
        fn receive_data(&mut self, conn: &Conn<BytesCodec>, _: BytesMut) {
            self.counts
                .borrow_mut()
                .push(("client receive_data", em::connection_count()));
            conn.close_connection();
        }
        fn unbind(&mut self, _: &Conn<BytesCodec>, _: UnbindReason) {
            self.unbound.set(self.unbound.get() + 1);
            if self.unbound.get() == 2 {
                let counts = self.counts.clone();
                em::next_tick(move || {
                    counts
                        .borrow_mut()
                        .push(("after both unbinds", em::connection_count()));
                    em::stop();
                });
            }
        }
    }

    let counts = Rc::new(RefCell::new(Vec::new()));
    let c = counts.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let unbound = Rc::new(Cell::new(0));
        c.borrow_mut().push(("start", em::connection_count()));
        let (cs, us) = (c.clone(), unbound.clone());
        let server = em::start_server("127.0.0.1:0", move || Counted {
            counts: cs.clone(),
            unbound: us.clone(),
            side: "server",
        })?;
        c.borrow_mut()
            .push(("after start_server", em::connection_count()));
        em::connect(
            server.local_addr(),
            Counted {
                counts: c.clone(),
                unbound,
                side: "client",
            },
        )?;
        c.borrow_mut()
            .push(("after connect", em::connection_count()));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        *counts.borrow(),
        [
            ("start", 0),
            ("after start_server", 0),
            ("after connect", 1),
            ("server post_init", 2),
            ("client receive_data", 2),
            ("after both unbinds", 0),
        ]
    );
    assert_eq!(em::connection_count(), 0, "zero where no reactor runs");
}

/// `fn main() -> em::Result<()>` prints the error's `Debug`: it reads as
/// its `Display` does, the message chain, not the structure (`{:#?}` keeps
/// that).
#[test]
fn an_error_from_run_prints_its_message_in_debug_as_in_display() {
    let err = em::run(|| -> em::Result<()> {
        em::start_server("nonsense", || Echo)?;
        Ok(())
    })
    .unwrap_err();
    let debug = format!("{err:?}");
    assert_eq!(debug, err.to_string());
    assert!(debug.contains("\"nonsense\""), "{debug}");
    assert!(
        !debug.contains("Error {") && !debug.contains("kind:"),
        "{debug}"
    );
    assert!(format!("{err:#?}").starts_with("em::Error("), "{err:#?}");
}
