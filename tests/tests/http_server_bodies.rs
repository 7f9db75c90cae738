//! Request and response bodies under backpressure: a slow reader of a
//! large upload keeps the server from buffering it, a body left unread
//! does not wedge the connection, a streamed response waits for a client
//! that does not read, and chunked framing suits Python's `http.client`.

mod support;

use std::io::{BufReader, Write};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use em_http::http::{Request, Response};
use em_http::{Body, Limits, ResponseBody};
use support::client;
use support::http::{read_response, with_server, with_server_for, Fnv};

const MIB: usize = 1024 * 1024;

/// Field `index` (min, default, max) of `/proc/sys/net/ipv4/<name>`; 4 MiB
/// where it cannot be read.
fn tcp_mem(name: &str, index: usize) -> usize {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(index)?.parse().ok())
        .unwrap_or(4 * MIB)
}

#[test]
fn a_slowly_read_8_mib_upload_is_held_back_and_arrives_whole() {
    const UPLOAD: usize = 8 * MIB;
    const BUFFER: usize = 64 * 1024;
    // What the client has written, as the handler sees it when it starts
    // reading.
    let written = Arc::new(AtomicU64::new(0));
    let seen = written.clone();
    let response = with_server_for(
        Duration::from_secs(90),
        move || {
            em_http::builder()
                .limits(Limits::default().body_buffer(BUFFER))
                .serve("127.0.0.1:0", move |request: Request<Body>| {
                    let seen = seen.clone();
                    async move {
                        let mut body = request.into_body();
                        // A handler busy elsewhere before it reads.
                        em::sleep(Duration::from_millis(300)).await;
                        let written_then = seen.load(Ordering::SeqCst);
                        let (mut len, mut sum, mut chunks) = (0usize, Fnv::default(), 0u32);
                        while let Some(chunk) = body.chunk().await {
                            let chunk = chunk.expect("the body");
                            len += chunk.len();
                            sum.update(&chunk);
                            chunks += 1;
                            if chunks % 8 == 0 {
                                em::sleep(Duration::from_millis(1)).await;
                            }
                        }
                        format!("{len} {:016x} {written_then}", sum.0)
                    }
                })
                .unwrap()
        },
        move |addr| {
            let s = client(addr);
            // A small send buffer (no autotuning), so that what the client
            // manages to write shows what the server took in.
            em::socket2::SockRef::from(&s)
                .set_send_buffer_size(64 * 1024)
                .unwrap();
            let mut w = s.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                w.write_all(
                    format!("POST /up HTTP/1.1\r\nHost: test\r\nContent-Length: {UPLOAD}\r\n\r\n")
                        .as_bytes(),
                )
                .unwrap();
                let data = support::pattern(UPLOAD, 11);
                for piece in data.chunks(16 * 1024) {
                    w.write_all(piece).unwrap();
                    written.fetch_add(piece.len() as u64, Ordering::SeqCst);
                }
            });
            let response = read_response(&mut BufReader::new(s), false).expect("a response");
            writer.join().unwrap();
            response
        },
    );
    let mut expected = Fnv::default();
    expected.update(&support::pattern(UPLOAD, 11));
    let text = response.text();
    let fields: Vec<&str> = text.split(' ').collect();
    assert_eq!(
        fields[..2],
        [UPLOAD.to_string(), format!("{:016x}", expected.0)]
    );
    let written_then: usize = fields[2].parse().unwrap();
    // Without backpressure the server would have read all 8 MiB in the
    // 300 ms; with it, only its 64 KiB body buffer, a read, and the
    // kernel's socket buffers: the client's small send buffer and the
    // server's receive buffer, which does not grow while it is not read
    // (tcp_rmem's default; about 300 KiB in all here).
    let bound = 2 * tcp_mem("tcp_rmem", 1) + 2 * MIB;
    assert!(
        written_then < bound.min(UPLOAD / 2),
        "the client wrote {written_then} bytes before the handler read any (bound {bound})"
    );
}

#[test]
fn a_body_dropped_by_an_early_answer_does_not_wedge_the_next_request() {
    let body = support::pattern(2 * MIB, 2);
    let responses = with_server(
        || {
            em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
                // Answers without reading (the body is dropped here).
                request.uri().path().to_string()
            })
            .unwrap()
        },
        move |addr| {
            let s = client(addr);
            let mut w = s.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                w.write_all(
                    format!(
                        "POST /early HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                )
                .unwrap();
                w.write_all(&body).unwrap();
                w.write_all(b"GET /after HTTP/1.1\r\nHost: test\r\n\r\n")
                    .unwrap();
            });
            let mut r = BufReader::new(s);
            let responses = vec![
                read_response(&mut r, false).expect("the early answer"),
                read_response(&mut r, false).expect("the next request's answer"),
            ];
            writer.join().unwrap();
            responses
        },
    );
    assert_eq!(responses[0].text(), "/early");
    assert!(!responses[0].closes());
    assert_eq!(responses[1].text(), "/after");
}

#[test]
fn a_streamed_response_waits_for_a_client_that_does_not_read() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 1024; // 64 MiB
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let (blocked_tx, blocked_rx) = mpsc::channel::<()>();
    let (total, sum, produced_while_stalled) = with_server_for(
        Duration::from_secs(120),
        move || {
            em_http::serve("127.0.0.1:0", move |_request: Request<Body>| {
                let (writer, body) = ResponseBody::channel();
                let counter = counter.clone();
                let blocked = blocked_tx.clone();
                em::spawn(async move {
                    for i in 0..CHUNKS {
                        if !writer.is_ready() {
                            blocked.send(()).ok();
                        }
                        writer.ready().await;
                        let chunk = vec![(i % 251) as u8; CHUNK];
                        if writer.send(chunk).is_err() {
                            return;
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .unwrap();
                async move { Response::new(body) }
            })
            .unwrap()
        },
        move |addr| {
            let mut s = client(addr);
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            // A small receive buffer (no autotuning): the kernel holds
            // little of what the server sends while the client reads none.
            em::socket2::SockRef::from(&s)
                .set_recv_buffer_size(128 * 1024)
                .unwrap();
            s.write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            // The producer found the connection's queue full...
            blocked_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the writer never became not ready");
            // ...and, the client still reading nothing, stays stuck: it
            // would otherwise make all 64 MiB in far less than this.
            let window = Instant::now();
            while window.elapsed() < Duration::from_millis(300) {
                let _ = blocked_rx.recv_timeout(
                    Duration::from_millis(300) - window.elapsed().min(Duration::from_millis(300)),
                );
            }
            let stalled = produced.load(Ordering::SeqCst);
            let mut r = BufReader::new(s);
            let response = read_response(&mut r, false).expect("the streamed response");
            assert!(response.chunked);
            let mut sum = Fnv::default();
            sum.update(&response.body);
            (response.body.len(), sum.0, stalled)
        },
    );
    let mut expected = Fnv::default();
    for i in 0..CHUNKS {
        expected.update(&vec![(i % 251) as u8; CHUNK]);
    }
    assert_eq!(total, CHUNK * CHUNKS);
    assert_eq!(sum, expected.0, "the stream arrived damaged");
    // What may be queued: em's high watermark (1 MiB), the server's socket
    // send buffer (autotuned up to tcp_wmem's maximum) and the client's
    // small receive buffer, with a MiB to spare.
    let bound = (tcp_mem("tcp_wmem", 2) + 3 * MIB) / CHUNK;
    assert!(
        produced_while_stalled < bound.min(CHUNKS / 2),
        "{produced_while_stalled} chunks of 64 KiB made for a client reading nothing (bound {bound})"
    );
}

const CHUNKED_SCRIPT: &str = r#"
import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=20)
for path in ['/chunks', '/chunks']:
    c.request('GET', path)
    r = c.getresponse()
    print(r.status, r.getheader('Transfer-Encoding'), r.getheader('Content-Length'), r.read().decode())
"#;

#[test]
fn python_http_client_reads_a_chunked_response_twice_on_one_connection() {
    let out = with_server(
        || {
            em_http::serve("127.0.0.1:0", |_request: Request<Body>| async move {
                let (writer, body) = ResponseBody::channel();
                em::spawn(async move {
                    for i in 0..5 {
                        em::sleep(Duration::from_millis(5)).await;
                        writer.send(format!("part{i};")).unwrap();
                    }
                })
                .unwrap();
                Response::new(body)
            })
            .unwrap()
        },
        |addr| {
            Command::new("python3")
                .args(["-c", CHUNKED_SCRIPT, &addr.port().to_string()])
                .output()
                .unwrap()
        },
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = "200 chunked None part0;part1;part2;part3;part4;\n";
    assert_eq!(String::from_utf8(out.stdout).unwrap(), line.repeat(2));
}

#[test]
fn an_answer_without_reading_an_expect_continue_body_closes_the_connection() {
    // The client waits for `100 Continue` that never comes: the server
    // answers, says it closes, and closes (the body was never sent, so the
    // connection cannot carry another request).
    let responses = with_server(
        || {
            em_http::serve("127.0.0.1:0", |_request: Request<Body>| async move {
                (em_http::http::StatusCode::FORBIDDEN, "no thanks")
            })
            .unwrap()
        },
        |addr| {
            let mut s = client(addr);
            s.write_all(
                b"PUT /big HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
            )
            .unwrap();
            support::http::read_all_responses(&mut BufReader::new(s))
        },
    );
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0].status, 403, "no 100 Continue first");
    assert!(responses[0].closes());
}

/// `/early`: the whole body is written and finished before the response
/// is given; `/stream`: three chunks over time.
struct Streams;

impl em_http::RequestHandler for Streams {
    fn on_request(&mut self, request: Request<Body>, responder: em_http::Responder) {
        let (writer, body) = ResponseBody::channel();
        if request.uri().path() == "/early" {
            for part in ["written ", "before ", "the head"] {
                writer.send(part).unwrap();
            }
            writer.finish();
            responder.respond(Response::new(body));
        } else {
            responder.respond(Response::new(body));
            em::spawn(async move {
                for part in ["one ", "two ", "three"] {
                    em::sleep(Duration::from_millis(5)).await;
                    writer.send(part).unwrap();
                }
            })
            .unwrap();
        }
    }
}

#[test]
fn chunks_sent_before_the_response_is_given_go_out_after_its_head() {
    let responses = with_server(
        || em_http::serve_callbacks("127.0.0.1:0", || Streams).unwrap(),
        |addr| {
            let mut s = client(addr);
            s.write_all(
                b"GET /early HTTP/1.1\r\nHost: t\r\n\r\nGET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            support::http::read_all_responses(&mut BufReader::new(s))
        },
    );
    let seen: Vec<(bool, String)> = responses.iter().map(|r| (r.chunked, r.text())).collect();
    assert_eq!(
        seen,
        [
            (true, "written before the head".to_string()),
            (true, "one two three".to_string())
        ]
    );
}

#[test]
fn a_streamed_response_to_http10_is_delimited_by_the_close() {
    let (raw, response) = with_server(
        || em_http::serve_callbacks("127.0.0.1:0", || Streams).unwrap(),
        |addr| {
            let mut s = client(addr);
            s.write_all(b"GET /stream HTTP/1.0\r\n\r\n").unwrap();
            let raw = support::read_until_closed(&mut s);
            let response = read_response(&mut &raw[..], false).expect("a response");
            (raw, response)
        },
    );
    let raw = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(!raw.contains("transfer-encoding"), "{raw}");
    assert!(response.closes(), "{:?}", response.headers);
    assert_eq!(response.text(), "one two three");
}

#[test]
fn head_of_a_streamed_response_sends_no_body_and_closes_the_writer() {
    let (tx, rx) = mpsc::channel::<bool>();
    let responses = with_server(
        move || {
            em_http::serve("127.0.0.1:0", move |request: Request<Body>| {
                let tx = tx.clone();
                async move {
                    let (writer, body) = ResponseBody::channel();
                    let head = request.method() == em_http::http::Method::HEAD;
                    em::spawn(async move {
                        em::sleep(Duration::from_millis(5)).await;
                        let refused = writer.send("streamed").is_err();
                        if head {
                            tx.send(refused).ok();
                        }
                    })
                    .unwrap();
                    Response::new(body)
                }
            })
            .unwrap()
        },
        |addr| {
            let mut s = client(addr);
            s.write_all(b"HEAD /s HTTP/1.1\r\nHost: t\r\n\r\nGET /s HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            let mut r = BufReader::new(s);
            vec![
                read_response(&mut r, true).expect("the HEAD response"),
                read_response(&mut r, false).expect("the GET response"),
            ]
        },
    );
    assert!(
        support::recv(&rx),
        "the HEAD response's writer took a chunk"
    );
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[1].text(), "streamed");
}

#[test]
fn a_chunked_request_with_extensions_and_trailers_is_read_exactly() {
    let responses = with_server(
        || {
            em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
                let path = request.uri().path().to_string();
                let body = request.into_body().bytes().await.expect("the body");
                format!("{path} {}", String::from_utf8_lossy(&body))
            })
            .unwrap()
        },
        |addr| {
            let mut s = client(addr);
            s.write_all(
                b"POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5;name=value\r\nhello\r\n\
                  1\r\n \r\n\
                  A\r\n0123456789\r\n\
                  0\r\nX-Trailer: yes\r\nX-Other: too\r\n\r\n\
                  GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            support::http::read_all_responses(&mut BufReader::new(s))
        },
    );
    let bodies: Vec<String> = responses.iter().map(|r| r.text()).collect();
    assert_eq!(bodies, ["/chunked hello 0123456789", "/next "]);
}
