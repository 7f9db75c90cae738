//! Helpers shared by the integration tests: a watchdog for every reactor run
//! and blocking std-socket peers.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The longest any test's reactor may run before the watchdog fails it.
pub const WATCHDOG: Duration = Duration::from_secs(30);

/// Runs `em::run(init)` on this thread with a watchdog: if the reactor has
/// not returned within `WATCHDOG`, the watchdog stops it and the test fails.
pub fn run_with_watchdog<R: em::RunResult>(init: impl FnOnce() -> R + 'static) -> em::Result<()> {
    run_builder_with_watchdog(em::Reactor::builder(), init)
}

/// Like [`run_with_watchdog`], with options.
pub fn run_builder_with_watchdog<R: em::RunResult>(
    builder: em::Builder,
    init: impl FnOnce() -> R + 'static,
) -> em::Result<()> {
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
    let result = builder.run(move || {
        handle_tx.send(em::handle().expect("handle")).ok();
        init()
    });
    drop(done_tx);
    let fired = watchdog.join().expect("watchdog thread");
    assert!(!fired, "watchdog: the reactor ran longer than {WATCHDOG:?}");
    result
}

/// A blocking client socket with read and write timeouts.
pub fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Writes `data`, then reads exactly `data.len()` bytes back.
pub fn echo_round(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).unwrap();
    let mut buf = vec![0; data.len()];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Reads until end of stream (bounded by the socket's read timeout).
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to end");
    out
}
