//! Each of em-http's limits on a real socket: the status that answers the
//! breach, then the connection closed (read to end of stream), and other
//! connections of the same server unharmed. Over-limit requests are kept
//! small (the limits are set low) so that the server reads all of each
//! before closing, and the close is a clean end of stream, not a reset.

mod support;

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use em_http::http::Request;
use em_http::{Body, Limits};
use support::client;
use support::http::{read_all_responses, read_response, with_server, Response};

/// Reads the request's body whole, answers its length; `/slow` first
/// takes 700 ms.
fn server(limits: Limits) -> impl FnOnce() -> em_http::HttpServer {
    move || {
        em_http::builder()
            .limits(limits)
            .serve("127.0.0.1:0", |request: Request<Body>| async move {
                if request.uri().path() == "/slow" {
                    em::sleep(Duration::from_millis(700)).await;
                }
                match request.into_body().bytes().await {
                    Ok(body) => format!("read {}", body.len()),
                    Err(e) => format!("body error {e}"),
                }
            })
            .unwrap()
    }
}

/// Sends `request`, reads every response until the server closes.
fn send_and_read_to_end(addr: SocketAddr, request: &[u8]) -> Vec<Response> {
    let mut s = client(addr);
    s.write_all(request).unwrap();
    read_all_responses(&mut BufReader::new(s))
}

/// The one response `request` gets under `limits`, the connection closed
/// after it.
fn refused(limits: Limits, request: impl Into<Vec<u8>>) -> Response {
    let request = request.into();
    let mut responses = with_server(server(limits), move |addr| {
        send_and_read_to_end(addr, &request)
    });
    assert_eq!(responses.len(), 1, "{responses:?}");
    let response = responses.remove(0);
    assert!(response.closes(), "no connection: close: {response:?}");
    response
}

#[test]
fn a_long_request_line_is_414() {
    let target = "a".repeat(300);
    let r = refused(
        Limits::default().max_request_line(64),
        format!("GET /{target} HTTP/1.1\r\nHost: test\r\n\r\n"),
    );
    assert_eq!(r.status, 414);
}

#[test]
fn a_large_head_is_431() {
    let big = "b".repeat(600);
    let r = refused(
        Limits::default().max_header_size(256),
        format!("GET / HTTP/1.1\r\nHost: test\r\nX-Big: {big}\r\n\r\n"),
    );
    assert_eq!(r.status, 431);
}

#[test]
fn too_many_headers_is_431() {
    let headers: String = (0..10).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let r = refused(
        Limits::default().max_headers(4),
        format!("GET / HTTP/1.1\r\nHost: test\r\n{headers}\r\n"),
    );
    assert_eq!(r.status, 431);
}

#[test]
fn a_content_length_over_the_limit_is_413_before_any_body() {
    let r = refused(
        Limits::default().max_body_size(100),
        "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\n\r\n",
    );
    assert_eq!(r.status, 413);
}

#[test]
fn a_chunked_body_growing_over_the_limit_is_413() {
    let chunk = "c".repeat(200);
    let r = refused(
        Limits::default().max_body_size(100),
        format!(
            "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len()
        ),
    );
    assert_eq!(r.status, 413);
}

#[test]
fn a_body_of_exactly_the_limit_is_accepted_in_either_framing() {
    let body = "d".repeat(100);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{body}\
         POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         40\r\n{}\r\n24\r\n{}\r\n0\r\n\r\n",
        &body[..64],
        &body[64..]
    );
    let responses = with_server(server(Limits::default().max_body_size(100)), move |addr| {
        send_and_read_to_end(addr, request.as_bytes())
    });
    let seen: Vec<(u16, String)> = responses.iter().map(|r| (r.status, r.text())).collect();
    assert_eq!(
        seen,
        [(200, "read 100".to_string()), (200, "read 100".to_string())]
    );
}

#[test]
fn garbage_is_400() {
    let r = refused(Limits::default(), "HELLO THERE\x01\x02\r\n\r\n");
    assert_eq!(r.status, 400);
}

#[test]
fn conflicting_content_lengths_are_400() {
    let r = refused(
        Limits::default(),
        "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    assert_eq!(r.status, 400);
}

#[test]
fn transfer_encoding_with_content_length_is_400() {
    let r = refused(
        Limits::default(),
        "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 400);
}

#[test]
fn an_unknown_transfer_encoding_is_501() {
    let r = refused(
        Limits::default(),
        "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n",
    );
    assert_eq!(r.status, 501);
}

const HEADER_TIMEOUT: Duration = Duration::from_millis(300);

#[test]
fn a_slowloris_head_is_408_after_the_header_timeout() {
    let (elapsed, responses) = with_server(
        server(Limits::default().header_timeout(HEADER_TIMEOUT)),
        |addr| {
            let mut s = client(addr);
            let start = Instant::now();
            s.write_all(b"GET / HTTP/1.1\r\nHost: te").unwrap();
            let responses = read_all_responses(&mut BufReader::new(s));
            (start.elapsed(), responses)
        },
    );
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0].status, 408);
    assert!(responses[0].closes());
    assert!(
        elapsed >= HEADER_TIMEOUT - Duration::from_millis(50),
        "408 after {elapsed:?}, before the timeout"
    );
    assert!(
        elapsed < Duration::from_secs(8),
        "408 only after {elapsed:?}"
    );
}

#[test]
fn a_head_trickled_a_byte_at_a_time_still_times_out() {
    // The timeout runs from the head's first byte, not its last: a client
    // sending a byte every 50 ms forever is cut off all the same.
    let (elapsed, responses) = with_server(
        server(Limits::default().header_timeout(HEADER_TIMEOUT)),
        |addr| {
            let s = client(addr);
            let start = Instant::now();
            let mut w = s.try_clone().unwrap();
            let trickle = std::thread::spawn(move || {
                let head = b"GET / HTTP/1.1\r\nX-Slow: "
                    .iter()
                    .chain([b'z'; 200].iter());
                for byte in head {
                    // Pacing the client, not waiting for the server: the
                    // writes fail once the server has closed.
                    std::thread::sleep(Duration::from_millis(50));
                    if w.write_all(&[*byte]).is_err() {
                        break;
                    }
                }
            });
            let mut r = BufReader::new(s.try_clone().unwrap());
            let responses = read_all_responses(&mut r);
            let elapsed = start.elapsed();
            s.shutdown(std::net::Shutdown::Both).ok();
            trickle.join().unwrap();
            (elapsed, responses)
        },
    );
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0].status, 408);
    assert!(
        elapsed < Duration::from_secs(5),
        "the trickling client was cut only after {elapsed:?}"
    );
}

#[test]
fn the_keep_alive_timeout_does_not_cut_a_slow_handler() {
    let responses = with_server(
        server(Limits::default().keep_alive_timeout(Duration::from_millis(200))),
        |addr| {
            send_and_read_to_end(
                addr,
                b"GET /slow HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
            )
        },
    );
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].text(), "read 0");
}

#[test]
fn a_connection_that_never_sends_is_closed_by_the_keep_alive_timeout() {
    let timeout = Duration::from_millis(300);
    let (silent, rest) = with_server(
        server(Limits::default().keep_alive_timeout(timeout)),
        |addr| {
            let s = client(addr);
            let start = Instant::now();
            let rest = read_all_responses(&mut BufReader::new(s));
            (start.elapsed(), rest)
        },
    );
    assert!(rest.is_empty(), "a silent connection got {rest:?}");
    assert!(
        silent >= timeout - Duration::from_millis(100),
        "closed after {silent:?}"
    );
    assert!(
        silent < Duration::from_secs(8),
        "closed only after {silent:?}"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_without_an_answer() {
    let timeout = Duration::from_millis(300);
    let (first, idle, rest) = with_server(
        server(Limits::default().keep_alive_timeout(timeout)),
        |addr| {
            let mut s = client(addr);
            s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            let mut r = BufReader::new(s);
            let first = read_response(&mut r, false).expect("a response");
            let idle_from = Instant::now();
            // Nothing more is sent: the server must close on its own.
            let rest = read_all_responses(&mut r);
            (first, idle_from.elapsed(), rest)
        },
    );
    assert_eq!(first.status, 200);
    assert!(!first.closes());
    assert!(rest.is_empty(), "an idle connection got {rest:?}");
    assert!(
        idle >= timeout - Duration::from_millis(100),
        "closed after {idle:?} idle, before the timeout"
    );
    assert!(idle < Duration::from_secs(8), "closed only after {idle:?}");
}

#[test]
fn refusals_leave_other_connections_unharmed() {
    let (garbage, healthy, slow) = with_server(
        server(Limits::default().header_timeout(Duration::from_millis(500))),
        |addr| {
            // A slowloris connection with a head half sent...
            let mut slow = client(addr);
            slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
            // ...one refused for garbage...
            let garbage = send_and_read_to_end(addr, b"\x16\x03\x01 not http\r\n\r\n");
            // ...and a healthy keep-alive client, twice on one connection.
            let mut ok = client(addr);
            let mut healthy = Vec::new();
            ok.write_all(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc")
                .unwrap();
            let mut r = BufReader::new(ok.try_clone().unwrap());
            healthy.push(read_response(&mut r, false).expect("a response"));
            ok.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            healthy.push(read_response(&mut r, false).expect("a response"));
            let slow = read_all_responses(&mut BufReader::new(slow));
            (garbage, healthy, slow)
        },
    );
    assert_eq!(garbage.len(), 1);
    assert_eq!(garbage[0].status, 400);
    let healthy: Vec<(u16, String, bool)> = healthy
        .iter()
        .map(|r| (r.status, r.text(), r.closes()))
        .collect();
    assert_eq!(
        healthy,
        [
            (200, "read 3".to_string(), false),
            (200, "read 0".to_string(), false)
        ]
    );
    assert_eq!(slow.len(), 1);
    assert_eq!(slow[0].status, 408);
}
