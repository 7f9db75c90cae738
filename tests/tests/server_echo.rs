//! Echo servers over real sockets.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::*;

#[test]
fn closure_echo_server_echoes_bytes() {
    let (tx, rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server(
            "127.0.0.1:0",
            em::handler(|conn, data| conn.send_data(data)),
        )?;
        let addr = server.local_addr();
        let handle = em::handle()?;
        thread::spawn(move || {
            let mut s = client(addr);
            let reply = echo_round(&mut s, b"hello em");
            tx.send(reply).unwrap();
            handle.stop();
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(1)).unwrap(),
        b"hello em"
    );
}
