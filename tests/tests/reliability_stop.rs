//! A clean stop: with `shutdown_grace`, connections flush queued output
//! before their final `unbind(ReactorStopped)`, up to the grace; without it
//! (EventMachine's behaviour) queued output is dropped.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

const TOTAL: usize = 32 << 20;

/// Queues `TOTAL` bytes for its peer at once, stops the reactor, and logs
/// its unbind with the time.
struct SendAndStop {
    data: Bytes,
    timeline: Rc<RefCell<Option<Timeline>>>,
}

impl Connection for SendAndStop {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.send_data(self.data.clone());
        assert_eq!(conn.outbound_data_size(), TOTAL);
        let timeline = Timeline::start();
        timeline.push("stop");
        *self.timeline.borrow_mut() = Some(timeline);
        em::stop();
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {
        panic!("no receive_data during the grace");
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
        if let Some(t) = &*self.timeline.borrow() {
            t.push(format!("unbind {}", reason(&why)));
        }
    }
}

fn builder() -> em::Builder {
    em::Reactor::builder().max_outbound(2 * TOTAL)
}

/// Runs a server whose first connection queues `TOTAL` bytes and stops the
/// reactor; a peer connects and reads to the end. What the
/// peer read, and the server's timeline.
fn stop_with_queued_output(builder: em::Builder) -> (Vec<u8>, Vec<(String, u128)>) {
    let data = Bytes::from(pattern(TOTAL, 5));
    let timeline = Rc::new(RefCell::new(None));
    let t = timeline.clone();
    let (done_tx, done_rx) = mpsc::channel();
    run_builder_with_watchdog(builder, move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || SendAndStop {
            data: data.clone(),
            timeline: t.clone(),
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            // Sends nothing: input left unread at the close would make the
            // kernel reset the connection, cutting the peer's reading short.
            read_until_closed(&mut client(addr))
        });
        Ok(())
    })
    .unwrap();
    let received = join_peer(&done_rx);
    let events = timeline.borrow_mut().take().unwrap().events_ms();
    (received, events)
}

#[test]
fn with_a_grace_queued_output_is_flushed_before_the_final_unbind() {
    let (received, events) =
        stop_with_queued_output(builder().shutdown_grace(Duration::from_secs(20)));
    assert_eq!(received.len(), TOTAL, "every queued byte left");
    assert!(received == pattern(TOTAL, 5), "in order");
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, ["stop", "unbind ReactorStopped"]);
}

#[test]
fn without_a_grace_queued_output_is_dropped_at_the_stop() {
    let (received, events) = stop_with_queued_output(builder());
    assert!(
        received.len() < TOTAL,
        "dropped: {} of {TOTAL} bytes arrived",
        received.len()
    );
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, ["stop", "unbind ReactorStopped"]);
}

#[test]
fn the_grace_ends_at_its_deadline_for_a_peer_that_does_not_read() {
    let data = Bytes::from(vec![b'z'; TOTAL]);
    let timeline = Rc::new(RefCell::new(None));
    let t = timeline.clone();
    let (done_tx, done_rx) = mpsc::channel();
    let (connected_tx, connected_rx) = mpsc::channel::<()>();
    run_paused_with_watchdog(
        builder().shutdown_grace(Duration::from_secs(5)),
        move || -> em::Result<()> {
            let server = em::start_server("127.0.0.1:0", move || SendAndStop {
                data: data.clone(),
                timeline: t.clone(),
            })?;
            let addr = server.local_addr().inet().expect("a TCP server");
            // Holds its socket, unread, until the reactor has returned.
            spawn_peer(em::handle()?, done_tx, move || {
                let s = client(addr);
                connected_rx.recv().ok();
                s
            });
            Ok(())
        },
    )
    .unwrap();
    drop(connected_tx);
    let _socket = join_peer(&done_rx);
    let events = timeline.borrow_mut().take().unwrap().events_ms();
    assert_eq!(
        events,
        [
            ("stop".to_owned(), 0),
            ("unbind ReactorStopped".to_owned(), 5000)
        ]
    );
}
