//! What `connect` accepts (`Endpoint`): socket addresses, `host:port`
//! strings and `(host, port)` pairs resolved off the reactor thread, a
//! server's `Addr` of either kind; and `bind_connect`, which binds the
//! client's local address first (EventMachine's `bind_connect`).

mod support;

use std::net::SocketAddr;

use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::LinesCodec;

use support::*;

/// Sends a line once connected, logs the echo (and its local address),
/// and closes.
struct Probe {
    name: &'static str,
    log: Log,
}

impl Connection for Probe {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new()
    }
    fn connection_completed(&mut self, conn: &Conn<LinesCodec>) {
        conn.send_data(self.name);
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        let local = conn.local_addr().and_then(|a| a.inet()).map(|a| a.port());
        self.log
            .push(format!("{} echoed {line} from port {local:?}", self.name));
        conn.close_connection();
    }
    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        if !matches!(why, UnbindReason::Closed) {
            self.log
                .push(format!("{} unbind {}", self.name, reason(&why)));
        }
    }
}

/// Stops once `n` events are logged.
fn stop_after(log: &Log, n: usize) {
    let log = log.clone();
    em::tick_loop(move || {
        if log.events().len() >= n {
            em::stop();
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
}

#[test]
fn every_form_of_endpoint_connects() {
    let log = Log::default();
    let l = log.clone();
    let path = support::transports::socket_path();
    run_with_watchdog(move || -> em::Result<()> {
        let tcp = em::start_server("127.0.0.1:0", LineEcho::default)?;
        let unix = em::start_unix_domain_server(&path, LineEcho::default)?;
        let addr = tcp.local_addr().inet().expect("a TCP server");
        let port = addr.port();
        let probe = |name| Probe {
            name,
            log: l.clone(),
        };
        em::connect(addr, probe("socket-addr"))?;
        em::connect(format!("localhost:{port}"), probe("host-string"))?;
        em::connect(("localhost", port), probe("host-pair"))?;
        em::connect(([127, 0, 0, 1], port), probe("ip-pair"))?;
        em::connect(tcp.local_addr(), probe("tcp-addr"))?;
        em::connect(unix.local_addr(), probe("unix-addr"))?;
        em::connect(em::Endpoint::unix(&path), probe("unix-endpoint"))?;
        stop_after(&l, 7);
        Ok(())
    })
    .unwrap();
    let mut events: Vec<String> = log
        .events()
        .into_iter()
        .map(|e| e.split(" from port").next().unwrap().to_owned())
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            "host-pair echoed host-pair",
            "host-string echoed host-string",
            "ip-pair echoed ip-pair",
            "socket-addr echoed socket-addr",
            "tcp-addr echoed tcp-addr",
            "unix-addr echoed unix-addr",
            "unix-endpoint echoed unix-endpoint",
        ]
    );
}

#[test]
fn bind_connect_binds_the_local_address_first() {
    // A free port to bind the client to.
    let free: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", LineEcho::default)?;
        em::bind_connect(
            free,
            server.local_addr(),
            Probe {
                name: "bound",
                log: l.clone(),
            },
        )?;
        stop_after(&l, 1);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [format!(
            "bound echoed bound from port Some({})",
            free.port()
        )]
    );
}

#[test]
fn a_local_address_that_cannot_be_bound_ends_in_connect_failed() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", LineEcho::default)?;
        // TEST-NET-1 is never a local address.
        em::bind_connect(
            "192.0.2.1:0".parse().unwrap(),
            server.local_addr(),
            Probe {
                name: "unbindable",
                log: l.clone(),
            },
        )?;
        stop_after(&l, 1);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["unbindable unbind ConnectFailed(AddrNotAvailable)"]
    );
}
