//! The reactor-wide budget of queued output (`max_total_outbound`): a
//! hundred peers that never read cannot hold a hundred times `max_outbound`.
//! Past the budget, the connections with the most queued are ended with
//! `OutboundOverflow` (their queues freed at once); the process's memory
//! stays under the budget plus a fixed margin, and the peers that read lose
//! nothing.

mod support;

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::rc::Rc;
use std::sync::mpsc;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

const NON_READERS: usize = 100;
const READERS: usize = 3;
const BUDGET: usize = 64 << 20;
const CHUNK: usize = 256 << 10;
/// Rounds sent to the readers after the last non-reader is gone.
const AFTER: usize = 8;

/// The process's resident memory, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The server side: registers itself, with a small kernel send buffer so
/// that its own queue grows instead; logs its unbind.
struct Member {
    members: Rc<RefCell<Vec<Conn<BytesCodec>>>>,
    log: Log,
}

impl Connection for Member {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        conn.with_socket(|s| s.set_send_buffer_size(4096)).unwrap();
        self.members.borrow_mut().push(conn.clone());
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
        self.log.push(reason(&why));
    }
}

#[test]
fn a_hundred_peers_that_never_read_stay_within_the_budget() {
    let log = Log::default();
    let peak = Rc::new(Cell::new(0usize));
    let base = Rc::new(Cell::new(0usize));
    let (l, p, b) = (log.clone(), peak.clone(), base.clone());
    let (done_tx, done_rx) = mpsc::channel();
    let builder = em::Reactor::builder().max_total_outbound(BUDGET);
    run_builder_with_watchdog(builder, move || -> em::Result<()> {
        let members: Rc<RefCell<Vec<Conn<BytesCodec>>>> = Rc::default();
        let m = members.clone();
        let server = em::start_server("127.0.0.1:0", move || Member {
            members: m.clone(),
            log: l.clone(),
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        let (connected_tx, connected_rx) = mpsc::channel();
        spawn_peer(em::handle()?, done_tx, move || {
            let quiet: Vec<_> = (0..NON_READERS)
                .map(|_| {
                    let s = em::socket2::Socket::new(
                        em::socket2::Domain::IPV4,
                        em::socket2::Type::STREAM,
                        None,
                    )
                    .unwrap();
                    s.set_recv_buffer_size(4096).unwrap();
                    s.connect(&addr.into()).unwrap();
                    s
                })
                .collect();
            let readers: Vec<_> = (0..READERS).map(|_| client(addr)).collect();
            connected_tx.send(()).unwrap();
            let counted: Vec<_> = readers
                .into_iter()
                .map(|mut r| {
                    std::thread::spawn(move || {
                        let mut n = 0usize;
                        let mut buf = vec![0; 1 << 20];
                        loop {
                            match r.read(&mut buf) {
                                Ok(0) => return n,
                                Ok(k) => n += k,
                                Err(e) => panic!("a reader failed: {e}"),
                            }
                        }
                    })
                })
                .collect();
            let got: Vec<usize> = counted.into_iter().map(|t| t.join().unwrap()).collect();
            drop(quiet);
            got
        });
        let chunk = Bytes::from(vec![7u8; CHUNK]);
        let mut after = None;
        let mut rounds = 0;
        em::tick_loop(move || {
            if members.borrow().len() < NON_READERS + READERS {
                // Until every peer is connected (the peer thread says so).
                let _ = connected_rx.try_recv();
                return std::ops::ControlFlow::Continue(());
            }
            if b.get() == 0 {
                b.set(rss());
            }
            let members = members.borrow();
            let readers = &members[NON_READERS..];
            // Paced by the readers: a round once they took the last one.
            if readers.iter().any(|c| c.outbound_data_size() > CHUNK) {
                return std::ops::ControlFlow::Continue(());
            }
            let quiet_left = members[..NON_READERS]
                .iter()
                .filter(|c| !c.is_closed())
                .count();
            if quiet_left == 0 && after.is_none() {
                after = Some(rounds);
            }
            if after.is_some_and(|a| rounds >= a + AFTER) {
                for r in readers {
                    r.close_connection_after_writing();
                }
                return std::ops::ControlFlow::Break(());
            }
            for c in members.iter().filter(|c| !c.is_closed()) {
                c.send_data(chunk.clone());
            }
            rounds += 1;
            p.set(p.get().max(rss()));
            std::ops::ControlFlow::Continue(())
        });
        Ok(())
    })
    .unwrap();
    let got = join_peer(&done_rx);
    let events = log.events();
    assert_eq!(
        events.iter().filter(|e| *e == "OutboundOverflow").count(),
        NON_READERS,
        "{events:?}"
    );
    let first = got[0];
    assert!(first > 0 && first % CHUNK == 0, "{got:?}");
    assert!(
        got.iter().all(|&g| g == first),
        "every reader got every round: {got:?}"
    );
    let growth = peak.get().saturating_sub(base.get());
    eprintln!(
        "memory growth {} MiB for a {} MiB budget",
        growth >> 20,
        BUDGET >> 20
    );
    assert!(
        growth < BUDGET + (32 << 20),
        "memory grew by {} MiB for a {} MiB budget",
        growth >> 20,
        BUDGET >> 20
    );
}

#[test]
fn a_budget_below_max_outbound_is_a_config_error() {
    let err = em::Reactor::builder()
        .max_outbound(8 << 20)
        .max_total_outbound(1 << 20)
        .build()
        .unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("max_total_outbound"), "{err}");
}
