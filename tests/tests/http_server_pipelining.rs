//! Pipelining and connection reuse on raw sockets: responses leave in
//! request order however the handlers finish, `Connection: close` and
//! HTTP/1.0 end the connection where they should, and `max_in_flight`
//! slows a pipelining client without refusing it.

mod support;

use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use em_http::http::Request;
use em_http::{Body, Limits, RequestHandler, Responder};
use support::client;
use support::http::{read_all_responses, read_response, with_server};

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

fn index(request: &Request<Body>) -> u64 {
    request.uri().path()[1..].parse().expect("a numeric path")
}

#[test]
fn async_handlers_finishing_in_reverse_answer_in_request_order() {
    let finished = Arc::new(Mutex::new(Vec::new()));
    let log = finished.clone();
    let responses = with_server(
        move || {
            em_http::serve("127.0.0.1:0", move |request: Request<Body>| {
                let log = log.clone();
                async move {
                    let i = index(&request);
                    // Request 0 waits longest, request 9 not at all.
                    em::sleep(Duration::from_millis((9 - i) * 30)).await;
                    log.lock().unwrap().push(i);
                    format!("response {i}")
                }
            })
            .unwrap()
        },
        |addr| {
            let mut s = client(addr);
            let all: String = (0..10).map(|i| get(&format!("/{i}"))).collect();
            s.write_all(all.as_bytes()).unwrap();
            let mut r = BufReader::new(s);
            (0..10)
                .map(|_| read_response(&mut r, false).expect("a response"))
                .collect::<Vec<_>>()
        },
    );
    for (i, response) in responses.iter().enumerate() {
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), format!("response {i}"));
        assert!(!response.closes());
    }
    // Request 9 waited not at all, request 0 270 ms: whatever a loaded
    // machine does to the timers in between, those two finished in reverse.
    let finished = finished.lock().unwrap();
    assert_eq!(finished.len(), 10);
    assert_eq!(
        (finished[0], finished[9]),
        (9, 0),
        "the handlers did not finish in reverse: {finished:?}"
    );
}

/// Keeps every responder until the fifth request, then answers them last
/// first.
#[derive(Default)]
struct Reverse {
    held: Vec<(u64, Responder)>,
}

impl RequestHandler for Reverse {
    fn on_request(&mut self, request: Request<Body>, responder: Responder) {
        self.held.push((index(&request), responder));
        if self.held.len() == 5 {
            while let Some((i, responder)) = self.held.pop() {
                responder.respond(format!("callback {i}"));
            }
        }
    }
}

#[test]
fn callback_responders_answered_in_reverse_still_reply_in_order() {
    let responses = with_server(
        || em_http::serve_callbacks("127.0.0.1:0", Reverse::default).unwrap(),
        |addr| {
            let mut s = client(addr);
            let all: String = (0..5).map(|i| get(&format!("/{i}"))).collect();
            s.write_all(all.as_bytes()).unwrap();
            let mut r = BufReader::new(s);
            (0..5)
                .map(|_| read_response(&mut r, false).expect("a response"))
                .collect::<Vec<_>>()
        },
    );
    let bodies: Vec<String> = responses.iter().map(|r| r.text()).collect();
    assert_eq!(
        bodies,
        (0..5).map(|i| format!("callback {i}")).collect::<Vec<_>>()
    );
}

fn hello_server() -> em_http::HttpServer {
    em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
        request.uri().path().to_string()
    })
    .unwrap()
}

#[test]
fn http10_without_keep_alive_is_answered_then_closed() {
    let responses = with_server(hello_server, |addr| {
        let mut s = client(addr);
        s.write_all(b"GET /old HTTP/1.0\r\nHost: test\r\n\r\n")
            .unwrap();
        // Read to the end of stream: the server must close.
        read_all_responses(&mut BufReader::new(s))
    });
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].text(), "/old");
    assert!(responses[0].closes(), "{:?}", responses[0].headers);
}

#[test]
fn http10_with_keep_alive_stays_open() {
    let responses = with_server(hello_server, |addr| {
        let mut s = client(addr);
        s.write_all(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
            .unwrap();
        read_all_responses(&mut BufReader::new(s))
    });
    let bodies: Vec<String> = responses.iter().map(|r| r.text()).collect();
    assert_eq!(bodies, ["/a", "/b"]);
    assert_eq!(responses[0].header("connection"), Some("keep-alive"));
    assert!(responses[1].closes());
}

#[test]
fn connection_close_on_the_second_of_three_pipelined_requests_ends_there() {
    let responses = with_server(hello_server, |addr| {
        let mut s = client(addr);
        let all = format!(
            "{}GET /2 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n{}",
            get("/1"),
            get("/3")
        );
        s.write_all(all.as_bytes()).unwrap();
        read_all_responses(&mut BufReader::new(s))
    });
    let bodies: Vec<String> = responses.iter().map(|r| r.text()).collect();
    assert_eq!(bodies, ["/1", "/2"], "the third request was answered");
    assert!(!responses[0].closes());
    assert!(responses[1].closes());
}

#[test]
fn max_in_flight_two_slows_ten_pipelined_requests_but_answers_all_in_order() {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (running2, most2) = (running.clone(), most.clone());
    let responses = with_server(
        move || {
            em_http::builder()
                .limits(Limits::default().max_in_flight(2))
                .serve("127.0.0.1:0", move |request: Request<Body>| {
                    let (running, most) = (running2.clone(), most2.clone());
                    async move {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        em::sleep(Duration::from_millis(20)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        format!("slow {}", index(&request))
                    }
                })
                .unwrap()
        },
        |addr| {
            let mut s = client(addr);
            let all: String = (0..10).map(|i| get(&format!("/{i}"))).collect();
            s.write_all(all.as_bytes()).unwrap();
            let mut r = BufReader::new(s);
            (0..10)
                .map(|_| read_response(&mut r, false).expect("a response"))
                .collect::<Vec<_>>()
        },
    );
    let bodies: Vec<String> = responses.iter().map(|r| r.text()).collect();
    assert_eq!(
        bodies,
        (0..10).map(|i| format!("slow {i}")).collect::<Vec<_>>()
    );
    let most = most.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&most),
        "{most} handlers ran at once with max_in_flight(2)"
    );
}

#[test]
fn head_response_has_no_body_and_the_next_request_parses() {
    let responses = with_server(hello_server, |addr| {
        let mut s = client(addr);
        let all = format!("HEAD /h HTTP/1.1\r\nHost: test\r\n\r\n{}", get("/after"));
        s.write_all(all.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        vec![
            read_response(&mut r, true).expect("the HEAD response"),
            read_response(&mut r, false).expect("the GET response"),
        ]
    });
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].header("content-length"), Some("2"));
    assert_eq!(responses[1].text(), "/after");
}

#[test]
fn a_streamed_response_queued_behind_a_slow_one_follows_it_intact() {
    let responses = with_server(
        || {
            em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
                if request.uri().path() == "/slow" {
                    em::sleep(Duration::from_millis(100)).await;
                    return em_http::http::Response::new(em_http::ResponseBody::from("slow"));
                }
                // Written whole at once, while the slow response is pending.
                let (writer, body) = em_http::ResponseBody::channel();
                em::spawn(async move {
                    for i in 0..50 {
                        writer.send(format!("{i},")).unwrap();
                    }
                })
                .unwrap();
                em_http::http::Response::new(body)
            })
            .unwrap()
        },
        |addr| {
            let mut s = client(addr);
            let all = format!("{}{}{}", get("/slow"), get("/stream"), get("/slow"));
            s.write_all(all.as_bytes()).unwrap();
            let mut r = BufReader::new(s);
            (0..3)
                .map(|_| read_response(&mut r, false).expect("a response"))
                .collect::<Vec<_>>()
        },
    );
    let streamed: String = (0..50).map(|i| format!("{i},")).collect();
    let bodies: Vec<String> = responses.iter().map(|r| r.text()).collect();
    assert_eq!(bodies, ["slow".to_string(), streamed, "slow".to_string()]);
    assert!(responses[1].chunked);
}

#[test]
fn five_hundred_pipelined_requests_in_one_burst_are_all_answered_in_order() {
    const N: usize = 500;
    let bodies = with_server(hello_server, |addr| {
        let s = client(addr);
        let mut w = s.try_clone().unwrap();
        // Written while the responses are read: neither side waits on the
        // other's buffers.
        let writer = std::thread::spawn(move || {
            let all: String = (0..N).map(|i| get(&format!("/burst{i}"))).collect();
            w.write_all(all.as_bytes()).unwrap();
        });
        let mut r = BufReader::new(s);
        let bodies: Vec<String> = (0..N)
            .map(|_| read_response(&mut r, false).expect("a response").text())
            .collect();
        writer.join().unwrap();
        bodies
    });
    assert_eq!(
        bodies,
        (0..N).map(|i| format!("/burst{i}")).collect::<Vec<_>>()
    );
}
