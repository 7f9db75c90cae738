//! Procedural code over the one engine: `synchrony` (em-synchrony's
//! `EM.synchrony`); plus an in-memory pair moving 1 MiB under the paused
//! clock without a single timer.

mod support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;

use bytes::{Bytes, BytesMut};
use em::{Conn, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::BytesCodec;

use support::*;

/// The chunk bulk data is sent in.
const CHUNK: usize = 64 * 1024;

/// [`em::Reactor::synchrony`] with a watchdog: if the future has not
/// finished within `WATCHDOG`, the watchdog stops the reactor and the test
/// fails.
fn synchrony_with_watchdog<F>(builder: em::Builder, future: F) -> em::Result<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (handle_tx, handle_rx) = mpsc::channel::<em::Handle>();
    let watchdog = thread::spawn(move || {
        let Ok(handle) = handle_rx.recv() else {
            return false;
        };
        match done_rx.recv_timeout(WATCHDOG) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => false,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                handle.stop();
                true
            }
        }
    });
    let result = builder.synchrony(async move {
        handle_tx.send(em::handle().expect("handle")).ok();
        future.await
    });
    drop(done_tx);
    let fired = watchdog.join().expect("watchdog thread");
    assert!(!fired, "watchdog: the future ran longer than {WATCHDOG:?}");
    result
}

// ---- synchrony. ----

#[test]
fn synchrony_returns_the_futures_value() {
    // A callback server and procedural code on one reactor: the future
    // talks to it over tokio's own TcpStream.
    let reply = synchrony_with_watchdog(em::Reactor::builder(), async {
        let server = em::start_server("127.0.0.1:0", || Echo)?;
        let addr = server.local_addr().inet().expect("a TCP server");
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(b"ping").await.expect("write");
        let mut reply = [0; 4];
        stream.read_exact(&mut reply).await.expect("read");
        Ok::<_, em::Error>(String::from_utf8(reply.to_vec()).unwrap())
    })
    .unwrap()
    .unwrap();
    assert_eq!(reply, "ping");
    assert!(!em::reactor_thread(), "the reactor is gone");
}

#[test]
fn a_panic_in_the_synchrony_future_is_an_is_panic_error() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    em::set_error_handler(move |report| r.borrow_mut().push(report.to_string()));
    let result = synchrony_with_watchdog(em::Reactor::builder(), async {
        tokio::task::yield_now().await;
        panic!("boom")
    });
    em::clear_error_handler();
    let e = result.unwrap_err();
    assert!(e.is_panic(), "{e}");
    assert!(e.to_string().contains("boom"), "{e}");
    assert_eq!(*reports.borrow(), ["panic in synchrony: boom"]);
}

#[test]
fn a_stop_before_the_future_finished_is_stopped_early() {
    // em::stop() from the reactor, while the future waits.
    let (flag, dropped) = DropFlag::new();
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let result = synchrony_with_watchdog(em::Reactor::builder(), async move {
        let _flag = flag;
        em::next_tick(em::stop);
        std::future::pending::<()>().await;
        f.set(true);
    });
    let e = result.unwrap_err();
    assert!(e.is_stopped_early(), "{e}");
    assert!(!e.is_panic());
    assert!(e.to_string().contains("stopped before"), "{e}");
    assert!(!finished.get(), "the future never finished");
    assert!(dropped.get(), "it was dropped with the reactor");

    // A Handle's stop from another thread.
    let result = synchrony_with_watchdog(em::Reactor::builder(), async {
        let handle = em::handle().expect("handle");
        thread::spawn(move || handle.stop());
        std::future::pending::<u32>().await
    });
    assert!(result.unwrap_err().is_stopped_early());
}

#[test]
fn synchrony_inside_a_running_reactor_is_refused() {
    let inner = synchrony_with_watchdog(em::Reactor::builder(), async {
        em::synchrony(async { 1 }).map_err(|e| e.is_already_running())
    })
    .unwrap();
    assert_eq!(inner, Err(true));
}

// ---- The paused clock needs no timer to move bytes. ----

/// Sends `data` once connected and stops the reactor when all of it has
/// come back, recording the tokio clock then.
struct Exchange {
    data: Bytes,
    got: Rc<RefCell<BytesMut>>,
    done_at: Rc<Cell<Option<Instant>>>,
}

impl Connection for Exchange {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
        for chunk in self.data.chunks(CHUNK) {
            conn.send_data(self.data.slice_ref(chunk));
        }
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        let mut got = self.got.borrow_mut();
        got.extend_from_slice(&data);
        if got.len() == self.data.len() {
            self.done_at.set(Some(Instant::now()));
            em::stop();
        }
    }
}

#[test]
fn an_in_memory_pair_moves_1_mib_under_the_paused_clock_without_a_timer() {
    let data = Bytes::from(pattern(1 << 20, 11));
    let got = Rc::new(RefCell::new(BytesMut::new()));
    let done_at = Rc::new(Cell::new(None));
    let started_at = Rc::new(Cell::new(None));
    let (d, g, t, s) = (
        data.clone(),
        got.clone(),
        done_at.clone(),
        started_at.clone(),
    );
    run_paused(move || -> em::Result<()> {
        s.set(Some(Instant::now()));
        em::connect_pair(
            Echo,
            Exchange {
                data: d,
                got: g,
                done_at: t,
            },
        )?;
        Ok(())
    })
    .unwrap();
    let got = got.borrow();
    assert_eq!(got.len(), data.len());
    assert!(*got == data, "the bytes came back intact");
    let (started, done) = (started_at.get().unwrap(), done_at.get().expect("done"));
    assert_eq!(
        done, started,
        "the virtual clock did not move: no timer was needed"
    );
}
