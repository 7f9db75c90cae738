//! `reconnect` from `unbind`: the same handler object connects again
//! (`post_init` not re-run, `connection_completed` on success, EventMachine
//! C25), and `reconnect_after` with a `Backoff` for long-lived clients.

mod support;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Backoff, Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

/// The first connection of this server is closed at once; later ones echo.
struct FirstClosed {
    accepted: Rc<Cell<usize>>,
}

impl Connection for FirstClosed {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        self.accepted.set(self.accepted.get() + 1);
        if self.accepted.get() == 1 {
            conn.close_connection();
        }
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        conn.send_data(data);
    }
}

/// Reconnects once after its first unbind, then echoes one round and stops.
struct Again {
    addr: SocketAddr,
    log: Log,
    ids: Rc<RefCell<Vec<em::ConnectionId>>>,
}

impl Connection for Again {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, _: &Conn<BytesCodec>) {
        self.log.push("post_init");
    }
    fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
        self.log.push("connection_completed");
        self.ids.borrow_mut().push(conn.id());
        if self.log.count("connection_completed") == 2 {
            conn.send_data(Bytes::from_static(b"again"));
        }
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        self.log
            .push(format!("receive {}", String::from_utf8_lossy(&data)));
        em::stop();
    }
    fn unbind(&mut self, conn: &Conn<BytesCodec>, why: UnbindReason) {
        self.log.push(format!("unbind {}", reason(&why)));
        if matches!(why, UnbindReason::PeerClosed) {
            conn.reconnect(self.addr).unwrap();
        } else {
            assert!(conn.reconnect(self.addr).unwrap_err().is_stopping());
        }
    }
}

#[test]
fn reconnect_reuses_the_handler_without_post_init() {
    let log = Log::default();
    let ids = Rc::new(RefCell::new(Vec::new()));
    let (l, i) = (log.clone(), ids.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let accepted = Rc::new(Cell::new(0));
        let server = em::start_server("127.0.0.1:0", move || FirstClosed {
            accepted: accepted.clone(),
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        let conn = em::connect(
            addr,
            Again {
                addr,
                log: l,
                ids: i,
            },
        )?;
        assert!(
            conn.reconnect(addr).unwrap_err().is_closed(),
            "only from unbind"
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "post_init",
            "connection_completed",
            "unbind PeerClosed",
            "connection_completed",
            "receive again",
            "unbind ReactorStopped",
        ]
    );
    let ids = ids.borrow();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "the same connection handle and id");
}

/// Reconnects with backoff until connected, logging each attempt's end.
struct Persistent {
    addr: SocketAddr,
    backoff: Backoff,
    timeline: Timeline,
}

impl Connection for Persistent {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn connection_completed(&mut self, _: &Conn<BytesCodec>) {
        self.timeline.push("connected");
        self.backoff.reset();
        em::stop();
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    fn unbind(&mut self, conn: &Conn<BytesCodec>, why: UnbindReason) {
        self.timeline.push(format!("unbind {}", reason(&why)));
        if matches!(why, UnbindReason::ConnectFailed(_)) {
            conn.reconnect_after(self.backoff.next_delay(), self.addr)
                .unwrap();
        }
    }
}

#[test]
fn reconnect_with_backoff_until_the_server_is_up() {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    run_paused(move || -> em::Result<()> {
        let timeline = Timeline::start();
        *o.borrow_mut() = Some(timeline.clone());
        let (guard, addr) = refusing_addr();
        em::connect(
            addr,
            Persistent {
                addr,
                backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
                timeline: timeline.clone(),
            },
        )?;
        let guard = RefCell::new(Some(guard));
        em::add_timer(Duration::from_millis(500), move || {
            drop(guard.borrow_mut().take());
            em::start_server(addr, || Echo).unwrap();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        out.borrow_mut().take().unwrap().events_ms(),
        [
            ("unbind ConnectFailed(ConnectionRefused)".to_owned(), 0),
            ("unbind ConnectFailed(ConnectionRefused)".to_owned(), 100),
            ("unbind ConnectFailed(ConnectionRefused)".to_owned(), 300),
            ("connected".to_owned(), 700),
            ("unbind ReactorStopped".to_owned(), 700),
        ]
    );
}
