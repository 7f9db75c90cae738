//! em-http's server-sent events read by a plain socket client, and its
//! https: curl and Python's `http.client` over TLS, verifying em's
//! certificate (made at run time by rcgen).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use em_http::http::{Request, StatusCode};
use em_http::sse::{self, Event};
use em_http::Body;
use support::certs::Certs;
use support::run_with_watchdog;

/// Runs `serve` on a reactor; `client` runs on a thread with the server's
/// port and returns what it saw; the reactor stops when it returns.
fn with_server<T: Send + 'static>(
    serve: impl FnOnce() -> em::Result<em_http::HttpServer> + 'static,
    client: impl FnOnce(u16) -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = serve()?;
        let port = server.local_addr().inet().unwrap().port();
        let handle = em::handle()?;
        std::thread::spawn(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client(port)));
            tx.send(out).ok();
            handle.stop();
        });
        Ok(())
    })
    .unwrap();
    match rx.recv().unwrap() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Events every 20 ms (five of them, then the stream ends), a comment
/// first, and keep-alive pings every 30 ms.
async fn ticking_events(_request: Request<Body>) -> em_http::http::Response<em_http::ResponseBody> {
    let (mut events, response) = sse::stream();
    events.keep_alive(Duration::from_millis(30));
    events.comment("hello").unwrap();
    let mut n = 0;
    let mut events = Some(events);
    em::add_periodic_timer(Duration::from_millis(20), move |timer| {
        n += 1;
        let stream = events.as_ref().unwrap();
        stream
            .send(
                &Event::new(format!("tick {n}\nsecond line"))
                    .event("tick")
                    .id(n.to_string()),
            )
            .unwrap();
        if n == 5 {
            timer.cancel();
            events.take().unwrap().finish();
        }
    })
    .unwrap();
    response
}

#[test]
fn server_sent_events_reach_a_plain_socket_client_in_order_and_the_stream_ends() {
    let text = with_server(
        || em_http::serve("127.0.0.1:0", ticking_events),
        |port| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap();
            String::from_utf8(all).unwrap()
        },
    );
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("content-type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-cache\r\n"), "{head}");
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    // Undo the chunked framing.
    let mut payload = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            assert_eq!(after, "\r\n", "the body ends with the last chunk");
            break;
        }
        payload.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    assert!(payload.starts_with(": hello\n\n"), "{payload}");
    let events: Vec<&str> = payload
        .split("\n\n")
        .filter(|e| !e.is_empty() && !e.starts_with(':'))
        .collect();
    let expected: Vec<String> = (1..=5)
        .map(|n| format!("event: tick\nid: {n}\ndata: tick {n}\ndata: second line"))
        .collect();
    assert_eq!(events, expected);
}

async fn echo_method_and_body(request: Request<Body>) -> (StatusCode, String) {
    let method = request.method().clone();
    let body = request.into_body().text().await.unwrap_or_default();
    (
        StatusCode::OK,
        format!("{method} {} bytes: {body}\n", body.len()),
    )
}

#[test]
fn curl_speaks_https_to_em_http_with_the_certificate_verified_and_keep_alive() {
    let certs = Certs::new("curl");
    let options = certs.server_options();
    let ca = certs.ca.clone();
    let out = with_server(
        move || {
            em_http::builder()
                .tls(options)
                .serve("127.0.0.1:0", echo_method_and_body)
        },
        move |port| {
            let url = format!("https://localhost:{port}/");
            let out = Command::new("curl")
                .args(["-sS", "-v", "--cacert"])
                .arg(&ca)
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .args([url.as_str(), "--next", "--cacert"])
                .arg(&ca)
                .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                .args(["--data-binary", "hello over tls", url.as_str()])
                .output()
                .expect("curl runs");
            assert!(
                out.status.success(),
                "curl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            )
        },
    );
    assert_eq!(out.0, "GET 0 bytes: \nPOST 14 bytes: hello over tls\n");
    assert!(out.1.contains("SSL certificate verify ok"), "{}", out.1);
    assert!(
        out.1.contains("Re-using existing connection"),
        "one TLS connection for both: {}",
        out.1
    );
}

#[test]
fn python_http_client_speaks_https_to_em_http() {
    let certs = Certs::new("python");
    let options = certs.server_options();
    let ca = certs.ca.clone();
    let out = with_server(
        move || {
            em_http::builder()
                .tls(options)
                .serve("127.0.0.1:0", echo_method_and_body)
        },
        move |port| {
            let script = format!(
                r#"
import http.client, ssl
ctx = ssl.create_default_context(cafile={ca:?})
c = http.client.HTTPSConnection("localhost", {port}, context=ctx, timeout=15)
for method, body in (("GET", None), ("PUT", b"abc"), ("POST", b"x" * 100000)):
    c.request(method, "/", body=body)
    r = c.getresponse()
    data = r.read()
    print(r.status, len(data), data.decode().splitlines()[0][:24])
"#,
                ca = ca.to_str().unwrap()
            );
            let out = Command::new("python3")
                .args(["-c", &script])
                .output()
                .expect("python3 runs");
            assert!(
                out.status.success(),
                "python failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "200 14 GET 0 bytes: ");
    assert_eq!(lines[1], "200 17 PUT 3 bytes: abc");
    assert_eq!(lines[2], "200 100020 POST 100000 bytes: xxxxx");
}

/// A stream whose client went away: sends start failing, so the producer
/// stops (the body's `BodyClosed`).
#[test]
fn an_event_stream_notices_its_client_is_gone() {
    let (tx, rx) = std::sync::mpsc::channel::<bool>();
    let tx = std::sync::Mutex::new(Some(tx));
    with_server(
        move || {
            em_http::serve("127.0.0.1:0", move |_request: Request<Body>| {
                let tx = tx.lock().unwrap().take();
                async move {
                    let (events, response) = sse::stream();
                    em::add_periodic_timer(Duration::from_millis(10), move |timer| {
                        if events.data("tick").is_err() {
                            assert!(events.is_closed());
                            timer.cancel();
                            if let Some(tx) = &tx {
                                tx.send(true).ok();
                            }
                        }
                    })
                    .unwrap();
                    response
                }
            })
        },
        move |port| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with("HTTP/1.1 200"), "{line}");
            drop(reader);
            drop(s);
            assert!(rx
                .recv_timeout(Duration::from_secs(15))
                .expect("the producer saw the client go"));
        },
    );
}
