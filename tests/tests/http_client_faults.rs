//! em-http's client when the network or the server misbehaves: a listener
//! whose backlog is full (connect timeout), a server that stalls before
//! or in the middle of a body (inactivity timeout), the deadline, and
//! servers that send garbage or close mid-head or mid-body. Each fault
//! ends its own request with its own error and nothing else: a request to
//! a good server (nginx) at the same time succeeds, and the reactor runs
//! on.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use em_http::http::StatusCode;
use em_http::{Client, ClientErrorKind};
use support::http::{Keep, ScriptedServer};
use support::nginx::{self, Nginx};
use support::run_with_watchdog;

/// A listener with a backlog of 1 that never accepts, filled with
/// connections until a connect gets no answer (Linux then drops SYNs), so
/// that the next connect hangs. Returns the listener (keep it) and what
/// filled it.
fn full_listener() -> (tokio::net::TcpListener, Vec<TcpStream>, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut filler = Vec::new();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => filler.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(
            filler.len() < 64,
            "a backlog of 1 took 64 connections without dropping a SYN"
        );
    }
    (listener, filler, addr)
}

#[test]
fn a_listener_with_a_full_backlog_is_a_connect_timeout() {
    run_with_watchdog(|| -> em::Result<()> {
        let (listener, filler, addr) = full_listener();
        em::spawn(async move {
            let client = Client::builder()
                .connect_timeout(Duration::from_millis(300))
                .build();
            let started = Instant::now();
            let e = client
                .get(format!("http://{addr}/"))
                .send()
                .await
                .unwrap_err();
            let took = started.elapsed();
            assert_eq!(e.kind(), ClientErrorKind::ConnectTimeout, "{e}");
            assert!(e.is_timeout() && e.is_connect(), "{e}");
            assert!(took >= Duration::from_millis(250), "{took:?}");
            assert!(took < Duration::from_secs(3), "{took:?}");
            assert_eq!(client.connections(), (0, 0));
            // A request's own timeout wins over the client's.
            let started = Instant::now();
            let e = Client::new()
                .get(format!("http://{addr}/"))
                .connect_timeout(Duration::from_millis(100))
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::ConnectTimeout, "{e}");
            assert!(started.elapsed() < Duration::from_secs(2));
            drop((listener, filler));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_server_that_stalls_mid_body_is_an_inactivity_timeout() {
    let server = ScriptedServer::start(|s| {
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
            .unwrap();
        Keep::Open
    });
    let base = server.base();
    run_with_watchdog(move || -> em::Result<()> {
        em::spawn(async move {
            let client = Client::builder()
                .inactivity_timeout(Duration::from_millis(300))
                .build();
            let mut r = client.get(format!("{base}/")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let started = Instant::now();
            let mut got = Vec::new();
            let e = loop {
                match r.chunk().await {
                    Ok(Some(piece)) => got.extend_from_slice(&piece),
                    Ok(None) => panic!("the body ended after {} bytes", got.len()),
                    Err(e) => break e,
                }
            };
            assert_eq!(got, b"0123456789");
            assert_eq!(e.kind(), ClientErrorKind::InactivityTimeout, "{e}");
            assert!(e.is_timeout());
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(250), "{took:?}");
            assert!(took < Duration::from_secs(3), "{took:?}");
            assert_eq!(client.connections(), (0, 0), "the connection is gone");
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    drop(server);
}

#[test]
fn a_server_that_never_answers_is_an_inactivity_timeout_or_a_deadline() {
    let server = ScriptedServer::start(|_| Keep::Open);
    let base = server.base();
    run_with_watchdog(move || -> em::Result<()> {
        em::spawn(async move {
            let client = Client::new();
            let e = client
                .get(format!("{base}/"))
                .inactivity_timeout(Duration::from_millis(200))
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::InactivityTimeout, "{e}");
            let started = Instant::now();
            let e = client
                .get(format!("{base}/"))
                .deadline(Duration::from_millis(200))
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Deadline, "{e}");
            assert!(started.elapsed() < Duration::from_secs(3));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn garbage_or_a_close_mid_head_fails_only_its_own_request() {
    let garbage = ScriptedServer::start(|s| {
        s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\r\n")
            .unwrap();
        Keep::Open
    });
    let half_head = ScriptedServer::start(|s| {
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap();
        Keep::Close
    });
    let half_body = ScriptedServer::start(|s| {
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..")
            .unwrap();
        Keep::Close
    });
    let bad_chunk = ScriptedServer::start(|s| {
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            .unwrap();
        Keep::Open
    });
    let nginx = Nginx::start("faults");
    let urls = [
        garbage.base(),
        half_head.base(),
        half_body.base(),
        bad_chunk.base(),
        nginx.base(),
    ];
    run_with_watchdog(move || -> em::Result<()> {
        em::spawn(async move {
            let client = Client::new();
            let [garbage, half_head, half_body, bad_chunk, good_url] = urls;
            let body_of = |url: String| {
                let client = client.clone();
                async move {
                    let r = client.get(url).send().await?;
                    r.bytes().await
                }
            };
            let (garbage, half_head, half_body, bad_chunk, good) = futures::join!(
                body_of(format!("{garbage}/")),
                body_of(format!("{half_head}/")),
                body_of(format!("{half_body}/")),
                body_of(format!("{bad_chunk}/")),
                body_of(format!("{good_url}/kib.bin")),
            );
            assert_eq!(good.unwrap(), nginx::kib());
            // The messages are the client's, not the server codec's
            // ("bad request", "request body truncated").
            let e = garbage.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Protocol, "{e}");
            assert!(!e.to_string().contains("request"), "{e}");
            let e = half_head.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Closed, "{e}");
            assert!(e.to_string().contains("inside a response head"), "{e}");
            let e = half_body.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Closed, "{e}");
            assert!(!e.to_string().contains("request"), "{e}");
            let e = bad_chunk.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Protocol, "{e}");
            assert!(!e.to_string().contains("request"), "{e}");
            // Nothing else failed: the good connection is idle in the pool
            // and carries the next request; the broken ones are gone.
            assert_eq!(client.connections(), (1, 1));
            let again = client
                .get(format!("{good_url}/small.txt"))
                .send()
                .await
                .unwrap();
            assert_eq!(again.text().await.unwrap(), nginx::SMALL);
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}
