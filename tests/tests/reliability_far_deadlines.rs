//! `Duration::MAX` means "never", for every setter that takes a delay or a
//! timeout: no overflow inside the engine (which used to kill the
//! connection's task, unreported, or leave a zombie after `reconnect_after`),
//! nothing fires, and the reactor stops cleanly.

mod support;

use std::time::Duration;

use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::LinesCodec;

use support::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Logs lines and unbinds as `<name> …`.
struct Named {
    name: &'static str,
    log: Log,
}

impl Connection for Named {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new()
    }
    fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
        self.log.push(format!("{} data {line}", self.name));
    }
    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        self.log
            .push(format!("{} unbind {}", self.name, reason(&why)));
    }
}

/// Records every contained panic in `log` until dropped.
struct PanicsTo;

impl PanicsTo {
    fn log(log: &Log) -> PanicsTo {
        let l = log.clone();
        em::set_error_handler(move |report| l.push(format!("panic {report}")));
        PanicsTo
    }
}

impl Drop for PanicsTo {
    fn drop(&mut self) {
        em::clear_error_handler();
    }
}

#[test]
fn connection_timeouts_of_duration_max_never_fire() {
    let log = Log::default();
    let _panics = PanicsTo::log(&log);
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", {
            let l = l.clone();
            move || Named {
                name: "s",
                log: l.clone(),
            }
        })?;
        let client = em::connect(
            server.local_addr(),
            Named {
                name: "c",
                log: l.clone(),
            },
        )?;
        client.set_pending_connect_timeout(Duration::MAX);
        client.set_comm_inactivity_timeout(Duration::MAX);
        let c = client.clone();
        em::add_timer(HOUR, move || {
            assert!(!c.is_closed(), "still open after an hour");
            c.send_data("an hour later");
        })?;
        em::add_timer(HOUR + Duration::from_secs(1), em::stop)?;
        Ok(())
    })
    .unwrap();
    let mut events = log.events();
    events.sort();
    assert_eq!(
        events,
        [
            "c unbind ReactorStopped",
            "s data an hour later",
            "s unbind ReactorStopped"
        ]
    );
}

#[test]
fn reconnect_after_duration_max_waits_and_unbinds_once_at_stop() {
    let log = Log::default();
    let _panics = PanicsTo::log(&log);
    let l = log.clone();
    struct Retry {
        log: Log,
        addr: std::net::SocketAddr,
    }
    impl Connection for Retry {
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new()
        }
        fn receive_data(&mut self, _: &Conn<LinesCodec>, _: String) {}
        fn unbind(&mut self, conn: &Conn<LinesCodec>, why: UnbindReason) {
            self.log.push(format!("unbind {}", reason(&why)));
            if matches!(why, UnbindReason::ConnectFailed(_)) {
                let r = conn.reconnect_after(Duration::MAX, self.addr);
                self.log.push(format!("reconnect_after ok={}", r.is_ok()));
            }
        }
    }
    let (_guard, refusing) = refusing_addr();
    run_paused(move || -> em::Result<()> {
        let conn = em::connect(
            refusing,
            Retry {
                log: l.clone(),
                addr: refusing,
            },
        )?;
        let l2 = l.clone();
        em::add_timer(HOUR, move || {
            l2.push(format!(
                "after an hour: waiting={} connections={}",
                !conn.is_closed(),
                em::connection_count()
            ));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "unbind ConnectFailed(ConnectionRefused)",
            "reconnect_after ok=true",
            "after an hour: waiting=true connections=1",
            "unbind ReactorStopped"
        ]
    );
}

#[test]
fn timers_and_deferred_timeouts_of_duration_max_never_fire() {
    let log = Log::default();
    let _panics = PanicsTo::log(&log);
    let l = log.clone();
    run_paused(move || -> em::Result<()> {
        let l1 = l.clone();
        em::add_timer(Duration::MAX, move || l1.push("one-shot fired"))?;
        let l2 = l.clone();
        em::add_periodic_timer(Duration::MAX, move |_| l2.push("periodic fired"))?;
        let l3 = l.clone();
        let p = em::add_periodic_timer(Duration::from_secs(1), move |t| {
            l3.push("short periodic fired");
            t.set_interval(Duration::MAX);
        })?;
        let d = em::Deferred::<(), ()>::new();
        let l4 = l.clone();
        d.errback(move |()| l4.push("deferred timed out"));
        d.timeout(Duration::MAX, ())?;
        let l5 = l.clone();
        em::spawn(async move {
            em::sleep(Duration::MAX).await;
            l5.push("sleep ended");
        })?;
        let l6 = l.clone();
        em::spawn(async move {
            let r = em::timeout(Duration::MAX, std::future::pending::<()>()).await;
            l6.push(format!("timeout ended: {r:?}"));
        })?;
        em::add_timer(HOUR, move || {
            drop(p);
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["short periodic fired"]);
}
