//! em_http::testing's fake HTTP server: routes, the default 404, the
//! request log and delayed routes, against em-http's client and curl.

use std::future::Future;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use em::testing::TestReactor;
use em_http::http::{Method, StatusCode};
use em_http::testing::{CannedResponse, FakeHttpServer};

const LIMIT: Duration = Duration::from_secs(10);

/// Runs the future `f` makes on `reactor` (em-http's client is `!Send`, so
/// it lives there) and brings its output back, within a bound.
fn on_reactor<T, F, Fut>(reactor: &TestReactor, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let (tx, rx) = mpsc::channel();
    reactor.block_on(move || {
        em::spawn(async move {
            let _ = tx.send(f().await);
        })
        .expect("spawn on the test reactor");
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the client on the test reactor did not answer")
}

/// A response as plain, `Send` values: status, `x-fake` header, body.
type Answer = (StatusCode, Option<String>, String);

/// Sends `method url` with `body` through em-http's client on `reactor`.
fn request(reactor: &TestReactor, method: Method, url: String, body: &'static str) -> Answer {
    on_reactor(reactor, move || async move {
        let client = em_http::Client::new();
        let response = client
            .method(method, url.as_str())
            .header("x-test", "yes")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = response.status();
        let fake = response
            .headers()
            .get("x-fake")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        (status, fake, text)
    })
}

fn routes() -> FakeHttpServer {
    FakeHttpServer::builder()
        .get(
            "/hello",
            CannedResponse::ok("hi\n").header("x-fake", "hello"),
        )
        .route(
            Method::POST,
            "/items",
            CannedResponse::new(StatusCode::CREATED)
                .header("x-fake", "created")
                .header("location", "/items/1")
                .body("{\"id\":1}"),
        )
        .start()
}

#[test]
fn routes_answer_with_their_canned_responses_and_log_the_requests() {
    let server = routes();
    let client = TestReactor::start();
    let hello = request(&client, Method::GET, server.url("/hello?lang=en"), "");
    assert_eq!(hello, (StatusCode::OK, Some("hello".into()), "hi\n".into()));
    let created = request(&client, Method::POST, server.url("/items"), "name=one");
    assert_eq!(
        created,
        (
            StatusCode::CREATED,
            Some("created".into()),
            "{\"id\":1}".into()
        )
    );

    let log = server.wait_for_requests(2, LIMIT);
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, Method::GET);
    assert_eq!(log[0].path, "/hello");
    assert_eq!(log[0].uri.query(), Some("lang=en"));
    assert_eq!(log[0].header("x-test"), Some("yes"));
    assert!(log[0].body.is_empty());
    assert_eq!(log[1].method, Method::POST);
    assert_eq!(log[1].path, "/items");
    assert_eq!(&log[1].body[..], b"name=one");
    assert_eq!(log[1].header("content-length"), Some("8"));
    assert!(log[0].at <= log[1].at);
    client.stop().unwrap();
}

#[test]
fn anything_else_gets_a_404_or_the_fallback() {
    let server = routes();
    let client = TestReactor::start();
    let (status, _, body) = request(&client, Method::GET, server.url("/nope"), "");
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "not found\n")
    );
    // The route is for GET only.
    let (status, _, _) = request(&client, Method::DELETE, server.url("/hello"), "");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.requests().len(),
        2,
        "unrouted requests are logged too"
    );

    let teapot = FakeHttpServer::builder()
        .fallback(CannedResponse::new(StatusCode::IM_A_TEAPOT).body("short and stout"))
        .start();
    let (status, _, body) = request(&client, Method::GET, teapot.url("/"), "");
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::IM_A_TEAPOT, "short and stout")
    );
    client.stop().unwrap();
}

#[test]
fn a_delayed_route_answers_no_sooner_than_its_delay() {
    let delay = Duration::from_millis(300);
    let server = FakeHttpServer::builder()
        .get("/slow", CannedResponse::ok("late").delay(delay))
        .get("/fast", CannedResponse::ok("now"))
        .start();
    let client = TestReactor::start();
    let (slow, fast) = (server.url("/slow"), server.url("/fast"));
    let (slow_took, fast_took, bodies) = on_reactor(&client, move || async move {
        let client = em_http::Client::new();
        let started = Instant::now();
        // Both at once, on two connections: the slow one holds up nothing.
        let slow = async {
            let text = client.get(slow.as_str()).send().await.unwrap().text().await;
            (text.unwrap(), started.elapsed())
        };
        let fast = async {
            let text = client.get(fast.as_str()).send().await.unwrap().text().await;
            (text.unwrap(), started.elapsed())
        };
        let ((slow, slow_took), (fast, fast_took)) = futures::join!(slow, fast);
        (slow_took, fast_took, (slow, fast))
    });
    assert_eq!(bodies, ("late".to_owned(), "now".to_owned()));
    assert!(
        slow_took >= delay,
        "the delayed answer came after {slow_took:?}"
    );
    assert!(slow_took < LIMIT, "the delayed answer took {slow_took:?}");
    assert!(
        fast_took < slow_took,
        "the fast route ({fast_took:?}) waited for the slow one ({slow_took:?})"
    );
    client.stop().unwrap();
}

#[test]
fn a_fake_on_the_tests_reactor_serves_a_client_on_the_same_reactor() {
    let reactor = TestReactor::start();
    let server = FakeHttpServer::builder()
        .get("/", CannedResponse::ok("same thread"))
        .start_on(&reactor);
    let answer = request(&reactor, Method::GET, server.url("/"), "");
    assert_eq!(answer.2, "same thread");
    let addr = server.local_addr();
    drop(server);
    // Stopped, while the reactor runs on.
    let refused = std::net::TcpStream::connect(addr).expect_err("the fake still listens");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    reactor.stop().unwrap();
}

/// Runs curl with `args`; its standard output.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn curl_gets_routes_404s_and_delays_and_its_requests_are_logged() {
    let delay = Duration::from_millis(300);
    let server = FakeHttpServer::builder()
        .get(
            "/hello",
            CannedResponse::ok("hi\n").header("x-fake", "hello"),
        )
        .route(
            Method::PUT,
            "/thing",
            CannedResponse::new(StatusCode::NO_CONTENT),
        )
        .get("/slow", CannedResponse::ok("late").delay(delay))
        .start();

    let hello = curl(&["--include", &server.url("/hello")]);
    assert!(hello.starts_with("HTTP/1.1 200 OK\r\n"), "{hello}");
    assert!(
        hello.to_lowercase().contains("x-fake: hello\r\n"),
        "{hello}"
    );
    assert!(hello.ends_with("\r\n\r\nhi\n"), "{hello}");

    let put = curl(&[
        "--write-out",
        "%{http_code}",
        "--request",
        "PUT",
        "--header",
        "content-type: text/plain",
        "--data-binary",
        "payload",
        &server.url("/thing"),
    ]);
    assert_eq!(put, "204");

    let missing = curl(&["--write-out", " %{http_code}", &server.url("/missing")]);
    assert_eq!(missing, "not found\n 404");

    let started = Instant::now();
    let slow = curl(&[&server.url("/slow")]);
    let took = started.elapsed();
    assert_eq!(slow, "late");
    assert!(took >= delay, "curl got the delayed answer after {took:?}");

    let log = server.wait_for_requests(4, LIMIT);
    let seen: Vec<(Method, &str)> = log
        .iter()
        .map(|r| (r.method.clone(), r.path.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Method::GET, "/hello"),
            (Method::PUT, "/thing"),
            (Method::GET, "/missing"),
            (Method::GET, "/slow"),
        ]
    );
    assert!(log[0].header("user-agent").unwrap().starts_with("curl/"));
    assert_eq!(log[1].header("content-type"), Some("text/plain"));
    assert_eq!(&log[1].body[..], b"payload");
}
