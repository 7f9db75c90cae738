//! Every warn or error event about a connection carries its id and its
//! peer, even when only warnings are logged (the connection's span is at
//! debug level, so the span's fields alone would not show).

mod support;

use std::sync::{Arc, Mutex};

use support::*;

#[test]
fn warnings_about_a_connection_name_its_id_and_peer() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let peer = Arc::new(Mutex::new(String::new()));
    let p = peer.clone();
    tracing::subscriber::with_default(subscriber, || {
        run_with_watchdog(move || -> em::Result<()> {
            // A line too long for the server's codec: a codec error.
            let server = em::start_server("127.0.0.1:0", LineEcho::default)?;
            struct Long;
            impl em::Connection for Long {
                type Codec = tokio_util::codec::LinesCodec;
                fn codec(&self) -> Self::Codec {
                    tokio_util::codec::LinesCodec::new()
                }
                fn post_init(&mut self, conn: &em::Conn<Self::Codec>) {
                    conn.send_data("x".repeat(2000));
                }
                fn connection_completed(&mut self, conn: &em::Conn<Self::Codec>) {
                    // The server sees this client's local address as its peer.
                    let local = conn.local_addr().unwrap().to_string();
                    *PEER.lock().unwrap() = local;
                }
                fn receive_data(&mut self, _: &em::Conn<Self::Codec>, _: String) {}
                fn unbind(&mut self, _: &em::Conn<Self::Codec>, _: em::UnbindReason) {
                    em::stop();
                }
            }
            static PEER: Mutex<String> = Mutex::new(String::new());
            em::connect(server.local_addr(), Long)?;
            em::add_shutdown_hook(move || *p.lock().unwrap() = PEER.lock().unwrap().clone())?;
            Ok(())
        })
        .unwrap();
    });
    let out = captured.text();
    let peer = peer.lock().unwrap().clone();
    let line = out
        .lines()
        .find(|l| l.contains("WARN") && l.contains("connection ended") && l.contains("codec"))
        .unwrap_or_else(|| panic!("no warning about the codec error in:\n{out}"));
    assert!(line.contains("conn=#"), "{line}");
    assert!(
        !peer.is_empty() && line.contains(&peer),
        "{line} (peer {peer})"
    );
}
