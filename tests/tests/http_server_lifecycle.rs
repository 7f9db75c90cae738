//! A server's life: graceful shutdown (idle connections closed at once,
//! requests in flight answered, endless streams cut at the grace, new
//! connections refused), handlers that panic or forget to answer, and a
//! thousand keep-alive clients at once.

mod support;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use em_http::http::Request;
use em_http::{Body, RequestHandler, Responder, ResponseBody};
use support::http::{read_all_responses, read_response, with_server, with_server_for, Response};
use support::{client, join_peer, run_with_watchdog, spawn_peer};

const GRACE: Duration = Duration::from_millis(1000);

/// What the client of the graceful-stop test saw.
struct Seen {
    idle_closed_with: Vec<u8>,
    slow: Vec<Response>,
    stream_head: Response,
    stream_rest: Vec<u8>,
    stream_cut_after: Duration,
    shutdown_started: Instant,
    shutdown_resolved: Instant,
    new_connect_refused: bool,
}

#[test]
fn graceful_shutdown_closes_idle_answers_in_flight_cuts_streams_and_refuses_new() {
    let (resolved_tx, resolved_rx) = mpsc::channel::<Instant>();
    let (started_tx, started_rx) = mpsc::channel::<Instant>();
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let slot: Rc<RefCell<Option<em_http::HttpServer>>> = Rc::default();
        let for_handler = slot.clone();
        let server = em_http::serve("127.0.0.1:0", move |request: Request<Body>| {
            let slot = for_handler.clone();
            let (resolved, started) = (resolved_tx.clone(), started_tx.clone());
            async move {
                match request.uri().path() {
                    "/stream" => {
                        let (writer, body) = ResponseBody::channel();
                        em::spawn(async move {
                            // Never ends on its own.
                            while writer.send("tick\n").is_ok() {
                                em::sleep(Duration::from_millis(20)).await;
                            }
                        })
                        .unwrap();
                        em_http::http::Response::new(body)
                    }
                    "/slow" => {
                        // This request starts the graceful stop, then takes
                        // 200 ms to answer.
                        let shutdown = slot.borrow().as_ref().unwrap().shutdown(GRACE);
                        started.send(Instant::now()).unwrap();
                        em::spawn(async move {
                            shutdown.await;
                            resolved.send(Instant::now()).ok();
                        })
                        .unwrap();
                        em::sleep(Duration::from_millis(200)).await;
                        em_http::http::Response::new(ResponseBody::from("slow answer"))
                    }
                    path => em_http::http::Response::new(ResponseBody::from(path.to_string())),
                }
            }
        })?;
        let addr = server.local_addr().inet().unwrap();
        *slot.borrow_mut() = Some(server);
        spawn_peer(em::handle()?, done_tx, move || {
            // An idle keep-alive connection, answered once.
            let mut idle = client(addr);
            idle.write_all(b"GET /idle HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            let mut idle = BufReader::new(idle);
            assert_eq!(read_response(&mut idle, false).unwrap().text(), "/idle");
            // A stream, its first chunk read.
            let mut stream = client(addr);
            stream
                .write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            let mut stream = BufReader::new(stream);
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_until(b'\n', &mut head).unwrap();
            }
            let stream_head = support::http::read_response(&mut &head[..], true).expect("a head");
            let mut first = Vec::new();
            stream.read_until(b'\n', &mut first).unwrap(); // chunk size
                                                           // The request in flight that starts the stop.
            let mut slow = client(addr);
            slow.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            let shutdown_started = recv_instant(&started_rx);
            let idle_closed_with = support::read_until_closed(&mut idle);
            let slow = read_all_responses(&mut BufReader::new(slow));
            let new_connect_refused = TcpStream::connect(addr).is_err();
            let stream_rest = support::read_until_closed(&mut stream);
            let stream_cut_after = shutdown_started.elapsed();
            let shutdown_resolved = recv_instant(&resolved_rx);
            Seen {
                idle_closed_with,
                slow,
                stream_head,
                stream_rest,
                stream_cut_after,
                shutdown_started,
                shutdown_resolved,
                new_connect_refused,
            }
        });
        Ok(())
    })
    .unwrap();
    let seen: Seen = join_peer(&done_rx);
    assert!(
        seen.idle_closed_with.is_empty(),
        "the idle connection got {:?}",
        String::from_utf8_lossy(&seen.idle_closed_with)
    );
    assert_eq!(seen.slow.len(), 1, "{:?}", seen.slow);
    assert_eq!(seen.slow[0].text(), "slow answer");
    assert!(seen.slow[0].closes(), "{:?}", seen.slow[0].headers);
    assert_eq!(
        seen.stream_head.header("transfer-encoding"),
        Some("chunked")
    );
    assert!(
        !seen.stream_rest.ends_with(b"0\r\n\r\n"),
        "the endless stream ended cleanly instead of being cut"
    );
    assert!(
        seen.stream_cut_after >= GRACE - Duration::from_millis(100),
        "the stream was cut after {:?}, before the grace",
        seen.stream_cut_after
    );
    assert!(seen.new_connect_refused, "a new connection was accepted");
    // The shutdown future resolved, once the last connection (the stream)
    // was closed at the grace.
    assert!(
        seen.shutdown_resolved - seen.shutdown_started >= GRACE - Duration::from_millis(100),
        "the shutdown future resolved before the stream was cut"
    );
}

fn recv_instant(rx: &mpsc::Receiver<Instant>) -> Instant {
    support::recv(rx)
}

/// Panics before its first await on `/panic-now`, after it on
/// `/panic-later`; answers its path otherwise.
fn panicky_server() -> em_http::HttpServer {
    em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
        let path = request.uri().path().to_string();
        if path == "/panic-now" {
            panic!("handler panics before awaiting");
        }
        em::sleep(Duration::from_millis(5)).await;
        if path == "/panic-later" {
            panic!("handler panics after awaiting");
        }
        path
    })
    .unwrap()
}

#[test]
fn a_panicking_handler_gets_500_and_the_connection_and_server_go_on() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = panics.clone();
    let (one, other) = with_server(
        move || {
            em::set_error_handler(move |_report| {
                counter.fetch_add(1, Ordering::SeqCst);
            });
            panicky_server()
        },
        |addr| {
            let mut s = client(addr);
            s.write_all(
                b"GET /panic-now HTTP/1.1\r\nHost: t\r\n\r\n\
                  GET /panic-later HTTP/1.1\r\nHost: t\r\n\r\n\
                  GET /fine HTTP/1.1\r\nHost: t\r\n\r\n",
            )
            .unwrap();
            let mut r = BufReader::new(s);
            let one: Vec<_> = (0..3)
                .map(|_| read_response(&mut r, false).expect("a response"))
                .collect();
            let mut other = client(addr);
            other
                .write_all(b"GET /other HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            (one, read_all_responses(&mut BufReader::new(other)))
        },
    );
    let statuses: Vec<u16> = one.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(one[2].text(), "/fine");
    assert!(one.iter().all(|r| !r.closes()));
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].text(), "/other");
    assert_eq!(panics.load(Ordering::SeqCst), 2, "panics reported");
}

/// Drops the responder of `/drop` unanswered.
struct Forgetful;

impl RequestHandler for Forgetful {
    fn on_request(&mut self, request: Request<Body>, responder: Responder) {
        if request.uri().path() != "/drop" {
            responder.respond(request.uri().path().to_string());
        }
    }
}

#[test]
fn a_dropped_responder_answers_500_and_the_connection_goes_on() {
    let responses = with_server(
        || em_http::serve_callbacks("127.0.0.1:0", || Forgetful).unwrap(),
        |addr| {
            let mut s = client(addr);
            s.write_all(
                b"GET /drop HTTP/1.1\r\nHost: t\r\n\r\n\
                  GET /kept HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            read_all_responses(&mut BufReader::new(s))
        },
    );
    let seen: Vec<(u16, String)> = responses.iter().map(|r| (r.status, r.text())).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, 500);
    assert_eq!(seen[1], (200, "/kept".to_string()));
}

#[test]
fn a_thousand_concurrent_keep_alive_clients_each_get_their_own_answers() {
    const CLIENTS: usize = 1000;
    const REQUESTS: usize = 5;
    raise_fd_limit(2 * CLIENTS + 200);
    let answered = with_server_for(
        Duration::from_secs(120),
        || {
            em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
                request.uri().path().to_string()
            })
            .unwrap()
        },
        |addr| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
                let tasks: Vec<_> = (0..CLIENTS)
                    .map(|c| {
                        let barrier = barrier.clone();
                        tokio::spawn(async move { one_client(addr, c, barrier).await })
                    })
                    .collect();
                let mut answered = 0;
                for task in tasks {
                    answered += tokio::time::timeout(Duration::from_secs(90), task)
                        .await
                        .expect("a client timed out")
                        .expect("a client failed");
                }
                answered
            })
        },
    );
    assert_eq!(answered, CLIENTS * REQUESTS);

    async fn one_client(
        addr: std::net::SocketAddr,
        c: usize,
        barrier: Arc<tokio::sync::Barrier>,
    ) -> usize {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (r, mut w) = s.into_split();
        let mut r = tokio::io::BufReader::new(r);
        let mut answered = 0;
        for n in 0..REQUESTS {
            if n == 1 {
                // Every client holds its connection open at once.
                barrier.wait().await;
            }
            let path = format!("/client{c}/request{n}");
            w.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            assert!(line.starts_with("HTTP/1.1 200 "), "{line:?}");
            let mut length = None;
            loop {
                line.clear();
                r.read_line(&mut line).await.unwrap();
                if line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').expect("a header");
                assert!(!value.trim().eq_ignore_ascii_case("close"), "{line:?}");
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>().unwrap());
                }
            }
            let mut body = vec![0; length.expect("a content-length")];
            r.read_exact(&mut body).await.unwrap();
            assert_eq!(String::from_utf8(body).unwrap(), path);
            answered += 1;
        }
        answered
    }
}

/// Raises this process's open-file limit to `want` (a fresh machine's soft
/// limit is often 1,024; a thousand clients and their server connections
/// need twice that), and fails if the hard limit does not allow it.
fn raise_fd_limit(want: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let want = want as u64;
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|cur| cur >= want) || limit.current.is_none() {
        return;
    }
    let maximum = limit.maximum;
    assert!(
        maximum.is_none_or(|max| max >= want),
        "the open-file hard limit {maximum:?} is below the {want} this test needs"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum,
        },
    )
    .expect("raise the open-file limit");
}

#[test]
fn stop_closes_every_connection_at_once_and_refuses_new_ones() {
    let (tx, rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (count_tx, count_rx) = mpsc::channel::<(usize, usize)>();
    run_with_watchdog(move || -> em::Result<()> {
        let slot: Rc<RefCell<Option<em_http::HttpServer>>> = Rc::default();
        let for_handler = slot.clone();
        let server = em_http::serve("127.0.0.1:0", move |request: Request<Body>| {
            let slot = for_handler.clone();
            let (started, count) = (started_tx.clone(), count_tx.clone());
            async move {
                if request.uri().path() == "/stop" {
                    let before = {
                        let server = slot.borrow();
                        let server = server.as_ref().unwrap();
                        let before = server.connection_count();
                        server.stop();
                        before
                    };
                    started.send(()).unwrap();
                    // Closed connections leave the count as their unbind
                    // runs, on a later turn of the reactor: wait for it
                    // (the client's wait for this message is bounded).
                    let count_now = || slot.borrow().as_ref().unwrap().connection_count();
                    while count_now() > 0 {
                        em::sleep(Duration::from_millis(5)).await;
                    }
                    let after = count_now();
                    count.send((before, after)).ok();
                    return "never sent".to_string();
                }
                em::sleep(Duration::from_secs(20)).await;
                "too late".to_string()
            }
        })?;
        let addr = server.local_addr().inet().unwrap();
        *slot.borrow_mut() = Some(server);
        spawn_peer(em::handle()?, tx, move || {
            let mut waiting = client(addr);
            waiting
                .write_all(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            let mut stopper = client(addr);
            stopper
                .write_all(b"GET /stop HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            support::recv(&started_rx);
            let waiting = support::read_until_closed(&mut waiting);
            let stopper = support::read_until_closed(&mut stopper);
            let refused = TcpStream::connect(addr).is_err();
            let counts = support::recv(&count_rx);
            (waiting, stopper, refused, counts)
        });
        Ok(())
    })
    .unwrap();
    let (waiting, stopper, refused, (before, after)) = join_peer(&rx);
    assert!(
        waiting.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&waiting)
    );
    assert!(
        stopper.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&stopper)
    );
    assert!(refused, "a new connection was accepted after stop");
    assert_eq!((before, after), (2, 0));
}

#[test]
fn shutdown_with_no_connections_resolves_at_once() {
    let (tx, rx) = mpsc::channel::<Duration>();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em_http::serve("127.0.0.1:0", |_request: Request<Body>| async { "hi" })?;
        let start = Instant::now();
        let shutdown = server.shutdown(Duration::from_secs(20));
        em::spawn(async move {
            shutdown.await;
            tx.send(start.elapsed()).ok();
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    let took = rx.try_recv().expect("the shutdown future never resolved");
    assert!(
        took < Duration::from_secs(5),
        "resolved only after {took:?}"
    );
}

#[test]
fn an_answer_for_a_client_that_left_is_dropped_and_the_server_goes_on() {
    let (closed_tx, closed_rx) = mpsc::channel::<bool>();
    let responses = with_server(
        move || {
            em_http::serve_callbacks("127.0.0.1:0", move || Leaving(closed_tx.clone())).unwrap()
        },
        move |addr| {
            let mut gone = client(addr);
            gone.write_all(b"GET /leave HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            drop(gone);
            // The handler answered after the client left, and saw it gone.
            assert!(
                support::recv(&closed_rx),
                "the responder did not see the client gone"
            );
            let mut s = client(addr);
            s.write_all(b"GET /stay HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            read_all_responses(&mut BufReader::new(s))
        },
    );
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].text(), "/stay");
}

/// `/leave`: answered once the client has gone (polled on a timer, the
/// client's wait is bounded); anything else at once.
struct Leaving(mpsc::Sender<bool>);

impl RequestHandler for Leaving {
    fn on_request(&mut self, request: Request<Body>, responder: Responder) {
        if request.uri().path() != "/leave" {
            responder.respond(request.uri().path().to_string());
            return;
        }
        let tx = self.0.clone();
        em::spawn(async move {
            while !responder.is_closed() {
                em::sleep(Duration::from_millis(5)).await;
            }
            tx.send(true).ok();
            responder.respond("nobody hears this");
        })
        .unwrap();
    }
}
