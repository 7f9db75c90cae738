//! What the reactor counts, read with `em::stats()`: connections,
//! bytes, frames, how connections ended, ticks and pending timers.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::LinesCodec;

use support::*;

/// Sends ten lines, closes after the tenth echo, and takes the stats in
/// `unbind`.
struct Client {
    got: usize,
    stats: Rc<RefCell<Option<em::Stats>>>,
    server_log: Log,
}

impl Connection for Client {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        for i in 0..10 {
            conn.send_data(format!("line {i}"));
        }
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, _: String) {
        self.got += 1;
        if self.got == 10 {
            conn.close_connection();
        }
    }
    fn unbind(&mut self, _: &Conn<LinesCodec>, _: UnbindReason) {
        // Take the stats once the server side has ended too.
        let (stats, server_log) = (self.stats.clone(), self.server_log.clone());
        em::tick_loop(move || {
            if server_log.events().is_empty() {
                return std::ops::ControlFlow::Continue(());
            }
            *stats.borrow_mut() = Some(em::stats().unwrap());
            em::stop();
            std::ops::ControlFlow::Break(())
        });
    }
}

#[test]
fn stats_count_connections_bytes_frames_endings_ticks_and_timers() {
    let stats: Rc<RefCell<Option<em::Stats>>> = Rc::default();
    let early: Rc<RefCell<Option<em::Stats>>> = Rc::default();
    let (s, e) = (stats.clone(), early.clone());
    run_paused(move || -> em::Result<()> {
        let server_log = Log::default();
        let l = server_log.clone();
        let server = em::start_server("127.0.0.1:0", move || LineEcho { log: l.clone() })?;
        let _timer = em::add_timer(Duration::from_secs(3600), || {})?;
        let _other = em::add_timer(Duration::from_secs(3600), || {})?;
        em::next_tick(|| {});
        *e.borrow_mut() = Some(em::stats()?);
        em::connect(
            server.local_addr(),
            Client {
                got: 0,
                stats: s,
                server_log,
            },
        )?;
        Ok(())
    })
    .unwrap();
    let early = early.borrow().clone().unwrap();
    assert_eq!(early.connections_open, 0);
    assert_eq!(early.timers_pending, 2);
    let stats = stats.borrow().clone().expect("stats taken");
    assert_eq!(stats.connections_open, 0, "{stats}");
    assert_eq!(stats.connections_accepted, 1, "{stats}");
    assert_eq!(stats.connections_connected, 1, "{stats}");
    // "line N\n" is 7 bytes: 10 lines each way.
    assert_eq!(stats.bytes_written, 140, "{stats}");
    assert_eq!(stats.bytes_read, 140, "{stats}");
    assert_eq!(stats.frames_decoded, 20, "{stats}");
    assert_eq!(stats.ended.closed, 1, "{stats}");
    assert_eq!(stats.ended.peer_closed, 1, "{stats}");
    assert_eq!(stats.ended.total(), 2, "{stats}");
    assert_eq!(stats.outbound_queued, 0, "{stats}");
    assert!(stats.ticks_run >= 1, "{stats}");
    // The two hour-long timers are still pending.
    assert_eq!(stats.timers_pending, 2, "{stats}");
    let line = stats.to_string();
    for key in [
        "connections_open=0",
        "accepted=1",
        "bytes_read=140",
        "ended_closed=1",
    ] {
        assert!(line.contains(key), "{line}");
    }
}

#[test]
fn stats_outside_a_reactor_is_a_typed_error() {
    assert!(em::stats().unwrap_err().is_no_reactor());
}
