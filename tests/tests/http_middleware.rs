//! em-http's middleware against a real client: a server on the reactor
//! thread, curl on a peer thread. curl decodes the gzip bodies
//! (`--compressed`) and sends the CORS preflights; `from_fn` layers refuse
//! and rewrite; layers run in the order of their `with`, the last
//! outermost; `Logging` logs and `Timing` times each request.

mod support;

use std::cell::Cell;
use std::net::SocketAddr;
use std::process::Command;
use std::rc::Rc;
use std::sync::mpsc;

use em_http::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use em_http::middleware::{self, Cors, Gzip, Logging, Next, Timing};
use em_http::{Body, Handler, HandlerExt, IntoResponse, ResponseBody};
use support::{join_peer, run_with_watchdog, spawn_peer, Captured};

/// What curl got: the status, the headers (names in lower case) and the
/// body (decoded, with `--compressed`; lossy UTF-8).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    /// The value of header `name`, if there is one.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `curl -sS -i` with `args` against `url`, bounded to 10 s.
fn curl(addr: SocketAddr, path: &str, args: &[&str]) -> Reply {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10"])
        .args(args)
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl must be installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Lossy: a gzip body curl was not asked to decode is not text.
    let text = String::from_utf8_lossy(&out.stdout);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("a header line");
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Serves `handler` on 127.0.0.1:0 and runs `client` on a peer thread
/// with its address; the reactor stops when the client is done. Returns
/// the client's value.
fn with_server<H, T>(handler: H, client: impl FnOnce(SocketAddr) -> T + Send + 'static) -> T
where
    H: Handler,
    T: Send + 'static,
{
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em_http::serve("127.0.0.1:0", handler)?;
        let addr = server.local_addr().inet().expect("TCP");
        spawn_peer(em::handle()?, done_tx, move || client(addr));
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx)
}

fn text(content_type: &'static str, body: impl Into<ResponseBody>) -> Response<ResponseBody> {
    let mut response = Response::new(body.into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A page that gzip shrinks well.
fn big_text() -> String {
    (0..400).map(|i| format!("line {i}\n")).collect()
}

async fn pages(request: Request<Body>) -> Response<ResponseBody> {
    match request.uri().path() {
        "/big" => text("text/plain; charset=utf-8", big_text()),
        "/small" => text("text/plain", "small\n"),
        "/png" => text("image/png", vec![7u8; 4096]),
        "/stream" => {
            let (writer, body) = ResponseBody::channel();
            em::spawn(async move {
                for i in 0..300 {
                    writer.ready().await;
                    if writer.send(format!("line {i}\n")).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn");
            text("text/plain", body)
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

#[test]
fn gzip_bodies_decode_in_curl_and_follow_accept_encoding() {
    let replies = with_server(pages.with(Gzip::default()), |addr| {
        [
            curl(addr, "/big", &["--compressed"]),
            curl(addr, "/big", &[]),
            curl(addr, "/big", &["-H", "Accept-Encoding: gzip;q=0, br"]),
            curl(addr, "/big", &["-H", "Accept-Encoding: br, *;q=0.5"]),
            curl(addr, "/small", &["--compressed"]),
            curl(addr, "/png", &["-H", "Accept-Encoding: gzip"]),
            curl(addr, "/stream", &["--compressed"]),
        ]
    });
    let [gzipped, plain, refused, star, small, png, stream] = replies;
    let big = big_text();

    assert_eq!(gzipped.status, 200);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gzipped.header("vary"), Some("accept-encoding"));
    let wire_len: usize = gzipped.header("content-length").unwrap().parse().unwrap();
    assert!(wire_len < big.len() / 3, "{wire_len} bytes on the wire");
    assert_eq!(gzipped.body, big, "curl decoded the gzip body");

    for reply in [&plain, &refused] {
        assert_eq!(reply.header("content-encoding"), None, "{reply:?}");
        assert_eq!(reply.header("vary"), Some("accept-encoding"));
        assert_eq!(
            reply.header("content-length"),
            Some(&*big.len().to_string())
        );
        assert_eq!(reply.body, big);
    }
    // `*` stands for gzip when gzip is not named; curl without
    // --compressed does not decode, so the body is the raw gzip stream.
    assert_eq!(star.header("content-encoding"), Some("gzip"));
    let star_len: usize = star.header("content-length").unwrap().parse().unwrap();
    assert_eq!(star_len, wire_len);

    assert_eq!(small.header("content-encoding"), None);
    assert_eq!(small.body, "small\n");
    assert_eq!(png.header("content-encoding"), None);

    assert_eq!(stream.header("content-encoding"), None);
    assert_eq!(stream.header("transfer-encoding"), Some("chunked"));
    let expected: String = (0..300).map(|i| format!("line {i}\n")).collect();
    assert_eq!(
        stream.body, expected,
        "a streamed body passes through whole"
    );
}

#[test]
fn cors_answers_preflights_itself_and_marks_allowed_origins() {
    let calls = Rc::new(Cell::new(0u32));
    let counted = calls.clone();
    let api = move |request: Request<Body>| {
        counted.set(counted.get() + 1);
        async move { format!("{} {}\n", request.method(), request.uri().path()) }
    };
    let cors = Cors::new()
        .allow_origin("https://a.example")
        .allow_methods([Method::GET, Method::PUT])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600));
    let replies = with_server(api.with(cors), |addr| {
        let preflight = |origin: &str| {
            curl(
                addr,
                "/items/1",
                &[
                    "-X",
                    "OPTIONS",
                    "-H",
                    &format!("Origin: {origin}"),
                    "-H",
                    "Access-Control-Request-Method: PUT",
                    "-H",
                    "Access-Control-Request-Headers: content-type",
                ],
            )
        };
        [
            preflight("https://a.example"),
            preflight("https://evil.example"),
            curl(addr, "/items", &["-H", "Origin: https://a.example"]),
            curl(addr, "/items", &["-H", "Origin: https://evil.example"]),
            curl(addr, "/items", &[]),
            // OPTIONS without Access-Control-Request-Method is no preflight.
            curl(addr, "/items", &["-X", "OPTIONS"]),
        ]
    });
    let [ok, evil, get, evil_get, no_origin, options] = replies;

    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://a.example")
    );
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert_eq!(ok.header("vary"), Some("origin"));
    assert_eq!(ok.body, "");

    assert_eq!(evil.status, 204);
    assert_eq!(evil.header("access-control-allow-origin"), None);
    assert_eq!(evil.header("access-control-allow-methods"), None);

    assert_eq!(get.status, 200);
    assert_eq!(get.body, "GET /items\n");
    assert_eq!(
        get.header("access-control-allow-origin"),
        Some("https://a.example")
    );
    assert_eq!(get.header("vary"), Some("origin"));
    assert_eq!(evil_get.status, 200);
    assert_eq!(evil_get.header("access-control-allow-origin"), None);
    assert_eq!(no_origin.header("access-control-allow-origin"), None);
    assert_eq!(options.body, "OPTIONS /items\n");

    assert_eq!(calls.get(), 4, "preflights never reach the handler");
}

#[test]
fn cors_any_allows_every_origin_with_a_star() {
    let api = |_request: Request<Body>| async { "open\n" };
    let [preflight, get] = with_server(api.with(Cors::any()), |addr| {
        [
            curl(
                addr,
                "/",
                &[
                    "-X",
                    "OPTIONS",
                    "-H",
                    "Origin: https://b.example",
                    "-H",
                    "Access-Control-Request-Method: DELETE",
                    "-H",
                    "Access-Control-Request-Headers: x-token",
                ],
            ),
            curl(addr, "/", &["-H", "Origin: https://b.example"]),
        ]
    });
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(preflight
        .header("access-control-allow-methods")
        .unwrap()
        .contains("DELETE"));
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("x-token")
    );
    assert_eq!(get.header("access-control-allow-origin"), Some("*"));
    assert_eq!(get.header("vary"), None);
    assert_eq!(get.body, "open\n");
}

#[test]
fn from_fn_short_circuits_and_rewrites() {
    let calls = Rc::new(Cell::new(0u32));
    let counted = calls.clone();
    let api = move |_request: Request<Body>| {
        counted.set(counted.get() + 1);
        async { "secret\n" }
    };
    let auth = middleware::from_fn(|request: Request<Body>, next: Next| async move {
        if request
            .headers()
            .get("authorization")
            .is_none_or(|v| v != "Bearer t0k")
        {
            return (StatusCode::UNAUTHORIZED, "who are you?\n").into_response();
        }
        next.run(request).await
    });
    let stamp = middleware::from_fn(|request: Request<Body>, next: Next| async move {
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .insert("x-stamped", HeaderValue::from_static("yes"));
        *response.status_mut() = StatusCode::ACCEPTED;
        response
    });
    let [refused, wrong, allowed] = with_server(api.with(auth).with(stamp), |addr| {
        [
            curl(addr, "/", &[]),
            curl(addr, "/", &["-H", "Authorization: Bearer nope"]),
            curl(addr, "/", &["-H", "Authorization: Bearer t0k"]),
        ]
    });
    assert_eq!(
        refused.status, 202,
        "the outer layer rewrites even a refusal"
    );
    assert_eq!(refused.body, "who are you?\n");
    assert_eq!(refused.header("x-stamped"), Some("yes"));
    assert_eq!(wrong.body, "who are you?\n");
    assert_eq!(allowed.status, 202);
    assert_eq!(allowed.body, "secret\n");
    assert_eq!(allowed.header("x-stamped"), Some("yes"));
    assert_eq!(calls.get(), 1, "refused requests never reach the handler");
}

/// A layer that appends `name` to the request's `x-in` header on the way
/// in and to the response's `x-out` header on the way out.
fn trace(
    name: &'static str,
) -> impl Fn(Request<Body>, Next) -> futures::future::LocalBoxFuture<'static, Response<ResponseBody>>
{
    move |mut request, next| {
        Box::pin(async move {
            let seen = request
                .headers()
                .get("x-in")
                .map(|v| format!("{},{name}", v.to_str().unwrap()))
                .unwrap_or_else(|| name.to_owned());
            request
                .headers_mut()
                .insert("x-in", HeaderValue::try_from(seen).unwrap());
            let mut response = next.run(request).await;
            let out = response
                .headers()
                .get("x-out")
                .map(|v| format!("{},{name}", v.to_str().unwrap()))
                .unwrap_or_else(|| name.to_owned());
            response
                .headers_mut()
                .insert("x-out", HeaderValue::try_from(out).unwrap());
            response
        })
    }
}

#[test]
fn the_last_with_is_the_outermost_layer() {
    let api = |request: Request<Body>| async move {
        let seen = request
            .headers()
            .get("x-in")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        seen + "\n"
    };
    let handler = api
        .with(middleware::from_fn(trace("inner")))
        .with(middleware::from_fn(trace("middle")))
        .with(middleware::from_fn(trace("outer")));
    let reply = with_server(handler, |addr| curl(addr, "/", &[]));
    assert_eq!(reply.body, "outer,middle,inner\n", "requests go outside in");
    assert_eq!(
        reply.header("x-out"),
        Some("inner,middle,outer"),
        "responses come back inside out"
    );
}

#[test]
fn logging_logs_each_request_and_timing_times_it() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_target(true)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let handler = pages.with(Timing).with(Gzip::default()).with(Logging);
    let [big, missing] = tracing::subscriber::with_default(subscriber, || {
        with_server(handler, |addr| {
            [
                curl(addr, "/big?x=1", &["--compressed"]),
                curl(addr, "/nope", &["-X", "POST"]),
            ]
        })
    });
    for reply in [&big, &missing] {
        let timing = reply
            .header("server-timing")
            .expect("a Server-Timing header");
        let ms = timing.strip_prefix("app;dur=").expect(timing);
        let (whole, decimals) = ms.split_once('.').expect(ms);
        assert!(whole.bytes().all(|b| b.is_ascii_digit()), "{timing}");
        assert_eq!(decimals.len(), 3, "{timing}");
    }
    assert_eq!(big.body, big_text());

    let log = captured.text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("em_http::middleware::logging"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    for (line, (method, path, status)) in lines
        .iter()
        .zip([("GET", "/big", 200), ("POST", "/nope", 404)])
    {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains(&format!("method={method}")), "{line}");
        assert!(line.contains(&format!("path=\"{path}\"")), "{line}");
        assert!(line.contains(&format!("status={status}")), "{line}");
        assert!(line.contains("elapsed_us="), "{line}");
    }
}
