//! Timeouts on the paused clock: the inactivity timeout closes a connection
//! at exactly last activity + timeout, `idle_time` reports the idle span, and
//! a client whose connect hangs (the listener's backlog is full, so its SYN
//! is dropped) ends with `ConnectTimeout` at the pending-connect timeout.

mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

/// Names an unbind reason, the new ones included.
fn why(reason: &UnbindReason) -> String {
    match reason {
        UnbindReason::InactivityTimeout => "InactivityTimeout".into(),
        UnbindReason::ConnectTimeout => "ConnectTimeout".into(),
        other => support::reason(other),
    }
}

/// A server side that sets an inactivity timeout in `post_init`, names
/// itself after the first byte it reads, and records its unbind.
struct Watched {
    timeout: Duration,
    name: String,
    timeline: Timeline,
    conns: Conns,
}

impl Connection for Watched {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        assert_eq!(conn.idle_time(), None, "no timeout, no tracking");
        conn.set_comm_inactivity_timeout(self.timeout);
        assert_eq!(conn.comm_inactivity_timeout(), self.timeout);
        self.conns.borrow_mut().push(conn.clone());
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        if self.name.is_empty() {
            self.name = String::from_utf8_lossy(&data[..1]).into_owned();
        }
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
        self.timeline
            .push(format!("server {} unbind {}", self.name, why(&reason)));
    }
}

/// A client that sends `name` once connected, then one byte every
/// `every` (never, when zero), and records its unbind.
struct Talker {
    name: &'static str,
    every: Duration,
    timeline: Timeline,
}

impl Connection for Talker {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
        conn.send_data(Bytes::from_static(self.name.as_bytes()));
        if !self.every.is_zero() {
            let c = conn.clone();
            em::add_periodic_timer(self.every, move |t| {
                if c.send_data(Bytes::from_static(b".")) == 0 {
                    t.cancel();
                }
            })
            .unwrap();
        }
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
        self.timeline
            .push(format!("client {} unbind {}", self.name, why(&reason)));
    }
}

/// The server-side handles, in accept order.
type Conns = Rc<RefCell<Vec<Conn<BytesCodec>>>>;

fn watched_server(timeout: Duration, timeline: &Timeline) -> em::Result<(SocketAddr, Conns)> {
    let conns = Rc::new(RefCell::new(Vec::new()));
    let (t, c) = (timeline.clone(), conns.clone());
    let server = em::start_server("127.0.0.1:0", move || Watched {
        timeout,
        name: String::new(),
        timeline: t.clone(),
        conns: c.clone(),
    })?;
    Ok((server.local_addr().inet().expect("a TCP server"), conns))
}

#[test]
fn inactivity_timeout_fires_at_last_activity_plus_timeout() {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    run_paused(move || -> em::Result<()> {
        let timeline = Timeline::start();
        *o.borrow_mut() = Some(timeline.clone());
        let (addr, conns) = watched_server(Duration::from_secs(5), &timeline)?;
        let client = em::connect(
            addr,
            Talker {
                name: "a",
                every: Duration::ZERO,
                timeline: timeline.clone(),
            },
        )?;
        // Activity at 3 s moves the deadline to 8 s.
        em::add_timer(Duration::from_secs(3), move || {
            client.send_data(Bytes::from_static(b"b"));
        })?;
        let t = timeline.clone();
        em::add_timer(Duration::from_secs(6), move || {
            let idle = conns.borrow()[0].idle_time();
            t.push(format!("idle {:?}", idle));
        })?;
        let t = timeline.clone();
        em::add_timer(Duration::from_secs(20), move || {
            t.push("stop");
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    let timeline = out.borrow_mut().take().unwrap();
    assert_eq!(
        timeline.events_ms(),
        [
            ("idle Some(3s)".to_owned(), 6000),
            ("server a unbind InactivityTimeout".to_owned(), 8000),
            ("client a unbind PeerClosed".to_owned(), 8000),
            ("stop".to_owned(), 20000),
        ]
    );
}

#[test]
fn a_slowloris_client_is_closed_and_a_chatty_one_is_not() {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    run_paused(move || -> em::Result<()> {
        let timeline = Timeline::start();
        *o.borrow_mut() = Some(timeline.clone());
        let (addr, _conns) = watched_server(Duration::from_secs(3), &timeline)?;
        for (name, every) in [("s", 5), ("n", 1)] {
            em::connect(
                addr,
                Talker {
                    name,
                    every: Duration::from_secs(every),
                    timeline: timeline.clone(),
                },
            )?;
        }
        em::add_timer(Duration::from_secs(10), em::stop)?;
        Ok(())
    })
    .unwrap();
    let mut events = out.borrow_mut().take().unwrap().events_ms();
    events.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    assert_eq!(
        events,
        [
            ("client s unbind PeerClosed".to_owned(), 3000),
            ("server s unbind InactivityTimeout".to_owned(), 3000),
            ("client n unbind ReactorStopped".to_owned(), 10000),
            ("server n unbind ReactorStopped".to_owned(), 10000),
        ]
    );
}

#[test]
fn a_zero_inactivity_timeout_turns_it_off() {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    run_paused(move || -> em::Result<()> {
        let timeline = Timeline::start();
        *o.borrow_mut() = Some(timeline.clone());
        let (addr, conns) = watched_server(Duration::from_secs(2), &timeline)?;
        em::connect(
            addr,
            Talker {
                name: "z",
                every: Duration::ZERO,
                timeline: timeline.clone(),
            },
        )?;
        em::add_timer(Duration::from_secs(1), move || {
            let c = &conns.borrow()[0];
            c.set_comm_inactivity_timeout(Duration::ZERO);
            assert_eq!(c.idle_time(), None);
        })?;
        em::add_timer(Duration::from_secs(60), em::stop)?;
        Ok(())
    })
    .unwrap();
    let mut events = out.borrow_mut().take().unwrap().events_ms();
    events.sort();
    assert_eq!(
        events,
        [
            ("client z unbind ReactorStopped".to_owned(), 60000),
            ("server z unbind ReactorStopped".to_owned(), 60000),
        ]
    );
}

#[test]
fn a_hanging_connect_ends_with_connect_timeout() {
    let (_listener, _fill, addr) = full_backlog();
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    run_paused(move || -> em::Result<()> {
        let timeline = Timeline::start();
        *o.borrow_mut() = Some(timeline.clone());
        let default = em::connect(
            addr,
            Talker {
                name: "default",
                every: Duration::ZERO,
                timeline: timeline.clone(),
            },
        )?;
        assert_eq!(default.pending_connect_timeout(), Duration::from_secs(20));
        let short = em::connect(
            addr,
            Talker {
                name: "short",
                every: Duration::ZERO,
                timeline: timeline.clone(),
            },
        )?;
        short.set_pending_connect_timeout(Duration::from_millis(2500));
        em::add_timer(Duration::from_secs(30), em::stop)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        out.borrow_mut().take().unwrap().events_ms(),
        [
            ("client short unbind ConnectTimeout".to_owned(), 2500),
            ("client default unbind ConnectTimeout".to_owned(), 20000),
        ]
    );
}
