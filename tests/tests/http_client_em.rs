//! em-http's client against em-http's own server, on one reactor: each
//! method, both styles, keep-alive reuse, redirects, streaming and gzip,
//! parallel requests, and the errors' phases.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use em_http::http::{Request, Response, StatusCode};
use em_http::{Body, Client, ClientErrorKind, HandlerExt, Multi};
use futures::StreamExt;
use support::run_with_watchdog;

/// A test server: `/echo` answers the method and body back, `/redirect/N`
/// redirects N times then lands on `/echo`, `/loop` redirects to itself,
/// `/big?n=N` streams N bytes in 16 KiB chunks.
fn test_server() -> em_http::HttpServer {
    em_http::serve("127.0.0.1:0", |request: Request<Body>| async move {
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or("").to_owned();
        let method = request.method().clone();
        if path == "/echo" {
            let body = request.into_body().bytes().await.unwrap_or_default();
            let mut text = format!("{method} ").into_bytes();
            text.extend_from_slice(&body);
            return Response::new(em_http::ResponseBody::from(text));
        }
        if let Some(n) = path.strip_prefix("/redirect/") {
            let n: u32 = n.parse().unwrap_or(0);
            let to = if n <= 1 {
                "/echo".to_owned()
            } else {
                format!("/redirect/{}", n - 1)
            };
            return Response::builder()
                .status(StatusCode::FOUND)
                .header("location", to)
                .body(em_http::ResponseBody::from("moved"))
                .unwrap();
        }
        if path == "/loop" {
            return Response::builder()
                .status(StatusCode::MOVED_PERMANENTLY)
                .header("location", "/loop")
                .body(em_http::ResponseBody::empty())
                .unwrap();
        }
        if path == "/temporary" {
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", "/echo")
                .body(em_http::ResponseBody::empty())
                .unwrap();
        }
        if path == "/login" {
            return Response::builder()
                .header("set-cookie", "session=abc123; Path=/")
                .header("set-cookie", "theme=dark; Path=/prefs")
                .body(em_http::ResponseBody::from("welcome"))
                .unwrap();
        }
        if path == "/me" || path == "/prefs/me" {
            let cookie = request
                .headers()
                .get("cookie")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            return Response::new(em_http::ResponseBody::from(cookie));
        }
        if path == "/count" {
            // The length and a checksum of the body, read a piece at a time.
            let mut body = request.into_body();
            let (mut n, mut sum) = (0u64, 0u64);
            while let Some(piece) = body.chunk().await {
                let piece = piece.unwrap();
                n += piece.len() as u64;
                sum = piece
                    .iter()
                    .fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(u64::from(*b)));
            }
            return Response::new(em_http::ResponseBody::from(format!("{n} {sum}")));
        }
        if path == "/slow" {
            em::sleep(Duration::from_millis(300)).await;
            return Response::new(em_http::ResponseBody::from(format!("slow {query}")));
        }
        if path == "/big" {
            let n: usize = query.trim_start_matches("n=").parse().unwrap_or(0);
            let (writer, body) = em_http::ResponseBody::channel();
            em::spawn(async move {
                let mut left = n;
                while left > 0 {
                    let piece = left.min(16 * 1024);
                    if writer
                        .send_ready(Bytes::from(vec![b'x'; piece]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    left -= piece;
                }
                writer.finish();
            })
            .unwrap();
            return Response::new(body);
        }
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(em_http::ResponseBody::from("no such page"))
            .unwrap()
    })
    .expect("the server starts")
}

#[test]
fn each_method_reaches_the_server_with_its_body() {
    run_with_watchdog(|| -> em::Result<()> {
        let server = test_server();
        let base = format!("http://{}", server.local_addr());
        em::spawn(async move {
            let client = Client::new();
            let get = client.get(format!("{base}/echo")).send().await.unwrap();
            assert_eq!(get.status(), StatusCode::OK);
            assert_eq!(get.text().await.unwrap(), "GET ");
            for (request, want) in [
                (client.post(format!("{base}/echo")).body("a=1"), "POST a=1"),
                (
                    client.put(format!("{base}/echo")).body(vec![b'b'; 3]),
                    "PUT bbb",
                ),
                (client.patch(format!("{base}/echo")).body("p"), "PATCH p"),
                (client.delete(format!("{base}/echo")), "DELETE "),
                (client.options(format!("{base}/echo")), "OPTIONS "),
            ] {
                assert_eq!(request.send().await.unwrap().text().await.unwrap(), want);
            }
            // Any method, and a whole `http::Request`.
            let any = client.method(
                em_http::http::Method::from_bytes(b"PROPFIND").unwrap(),
                format!("{base}/echo"),
            );
            assert_eq!(any.send().await.unwrap().text().await.unwrap(), "PROPFIND ");
            let request = Request::builder()
                .method("PUT")
                .uri(format!("{base}/echo"))
                .header("x-a", "1")
                .body("from http::Request")
                .unwrap();
            let r = client.request(request).send().await.unwrap();
            assert_eq!(r.text().await.unwrap(), "PUT from http::Request");
            let head = client.head(format!("{base}/echo")).send().await.unwrap();
            assert_eq!(head.status(), StatusCode::OK);
            assert_eq!(head.bytes().await.unwrap(), "");
            let missing = client.get(format!("{base}/nothing")).send().await.unwrap();
            assert_eq!(missing.status(), StatusCode::NOT_FOUND);
            // One connection carried all of them.
            assert_eq!(client.connections(), (1, 1));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn redirects_are_followed_within_the_bound() {
    run_with_watchdog(|| -> em::Result<()> {
        let server = test_server();
        let base = format!("http://{}", server.local_addr());
        em::spawn(async move {
            let client = Client::new();
            let r = client
                .post(format!("{base}/redirect/3"))
                .body("x")
                .send()
                .await
                .unwrap();
            assert_eq!(r.url().path(), "/echo");
            assert_eq!(
                r.text().await.unwrap(),
                "GET ",
                "302 turns a POST into a GET without its body"
            );
            let r = client
                .post(format!("{base}/temporary"))
                .body("kept")
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.text().await.unwrap(),
                "POST kept",
                "307 keeps the method and body"
            );
            let e = client.get(format!("{base}/loop")).send().await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::TooManyRedirects);
            assert_eq!(
                e.to_string(),
                format!("GET {base}/loop: too many redirects (more than 5)")
            );
            let r = client
                .get(format!("{base}/loop"))
                .redirects(0)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn the_callback_style_streams_then_calls_back() {
    run_with_watchdog(|| -> em::Result<()> {
        let server = test_server();
        let base = format!("http://{}", server.local_addr());
        let client = Client::new();
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let streamed = Rc::new(Cell::new(0usize));
        let request = client.get(format!("{base}/big?n=100000")).start();
        let (l1, l2, l3, s) = (log.clone(), log.clone(), log.clone(), streamed.clone());
        request
            .headers(move |r| {
                l1.borrow_mut()
                    .push(format!("headers {}", r.status().as_u16()))
            })
            .stream(move |piece| s.set(s.get() + piece.len()))
            .callback(move |r| {
                l2.borrow_mut()
                    .push(format!("callback {}", r.body().map_or(0, |b| b.len())));
                let errors = Client::new().get("http://127.0.0.1:1/").start();
                let l4 = l2.clone();
                errors.errback(move |e| {
                    l4.borrow_mut().push(format!("errback {:?}", e.kind()));
                    em::stop();
                });
            })
            .errback(move |e| l3.borrow_mut().push(format!("unexpected {e}")));
        em::add_shutdown_hook(move || {
            assert_eq!(streamed.get(), 100_000);
            assert_eq!(
                *log.borrow(),
                ["headers 200", "callback 0", "errback Connect"],
            );
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_slow_reader_holds_the_body_back_and_gets_all_of_it() {
    run_with_watchdog(|| -> em::Result<()> {
        let server = test_server();
        let base = format!("http://{}", server.local_addr());
        em::spawn(async move {
            let client = Client::new();
            let response = client
                .get(format!("{base}/big?n=20000000"))
                .send()
                .await
                .unwrap();
            let mut stream = response.into_stream();
            let mut total = 0;
            while let Some(piece) = stream.next().await {
                total += piece.unwrap().len();
            }
            assert_eq!(total, 20_000_000);
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn gzip_bodies_are_decoded() {
    run_with_watchdog(|| -> em::Result<()> {
        let text = "compress me ".repeat(1000);
        let t2 = text.clone();
        let server = em_http::serve(
            "127.0.0.1:0",
            (move |_r: Request<Body>| {
                let t = t2.clone();
                async move {
                    Response::builder()
                        .header("content-type", "text/plain")
                        .body(em_http::ResponseBody::from(t))
                        .unwrap()
                }
            })
            .with(em_http::middleware::Gzip::default()),
        )?;
        let url = format!("http://{}/", server.local_addr());
        em::spawn(async move {
            let client = Client::new();
            let r = client.get(&url).send().await.unwrap();
            assert!(r.headers().get("content-encoding").is_none());
            assert_eq!(r.text().await.unwrap(), text);
            let raw = client
                .get(&url)
                .decompress(false)
                .header("accept-encoding", "gzip")
                .send()
                .await
                .unwrap();
            assert_eq!(raw.headers()["content-encoding"], "gzip");
            assert!(raw.bytes().await.unwrap().len() < text.len() / 10);
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn multi_runs_requests_together_and_keeps_their_order() {
    run_with_watchdog(|| -> em::Result<()> {
        let server = test_server();
        let base = format!("http://{}", server.local_addr());
        em::spawn(async move {
            let client = Client::new();
            let mut multi = Multi::new().concurrency(3);
            for i in 0..10 {
                multi.push(client.post(format!("{base}/echo")).body(format!("{i}")));
            }
            multi.push(client.get("http://127.0.0.1:1/"));
            let results = multi.perform().await;
            assert_eq!(results.len(), 11);
            for (i, r) in results.iter().take(10).enumerate() {
                assert_eq!(r.as_ref().unwrap().body().unwrap(), &format!("POST {i}"));
            }
            assert!(results[10].as_ref().unwrap_err().is_connect());
            let (open, _) = client.connections();
            assert!(open <= 3, "{open} connections for a bound of 3");
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_bad_url_is_an_invalid_request() {
    run_with_watchdog(|| -> em::Result<()> {
        em::spawn(async move {
            let client = Client::new();
            let e = client.get("ftp://example.com/").send().await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::InvalidRequest);
            let e = client.get("not a url").send().await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::InvalidRequest);
            let e = client
                .get("http://no-such-host.invalid/")
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Dns, "{e}");
            let _ = Duration::ZERO;
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

/// The checksum `/count` computes.
fn checksum(data: &[u8]) -> u64 {
    data.iter()
        .fold(0u64, |s, b| s.wrapping_mul(31).wrapping_add(u64::from(*b)))
}

#[test]
fn the_cookie_jar_keeps_what_the_server_sets() {
    run_with_watchdog(|| -> em::Result<()> {
        let server = test_server();
        let base = format!("http://{}", server.local_addr());
        em::spawn(async move {
            let jar = Client::builder().cookie_store(true).build();
            jar.get(format!("{base}/login")).send().await.unwrap();
            let me = jar.get(format!("{base}/me")).send().await.unwrap();
            assert_eq!(me.text().await.unwrap(), "session=abc123");
            let prefs = jar.get(format!("{base}/prefs/me")).send().await.unwrap();
            let text = prefs.text().await.unwrap();
            assert!(
                text.contains("session=abc123") && text.contains("theme=dark"),
                "{text}"
            );
            // Without the jar, nothing is kept.
            let plain = Client::new();
            plain.get(format!("{base}/login")).send().await.unwrap();
            let me = plain.get(format!("{base}/me")).send().await.unwrap();
            assert_eq!(me.text().await.unwrap(), "");
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn files_and_streams_are_uploaded_at_the_connections_pace() {
    let dir = support::TempDir::new("client-upload");
    let path = dir.join("upload.bin");
    let data = support::pattern(3 * 1024 * 1024 + 17, 7);
    std::fs::write(&path, &data).unwrap();
    let want = format!("{} {}", data.len(), checksum(&data));
    run_with_watchdog(move || -> em::Result<()> {
        let server = test_server();
        let url = format!("http://{}/count", server.local_addr());
        em::spawn(async move {
            let client = Client::new();
            let file = client
                .post(&url)
                .body(em_http::RequestBody::file(&path))
                .send()
                .await
                .unwrap();
            assert_eq!(file.text().await.unwrap(), want);
            // A chunked stream of 1,000 pieces.
            let pieces: Vec<Bytes> = data
                .chunks(data.len() / 1000 + 1)
                .map(Bytes::copy_from_slice)
                .collect();
            let stream =
                futures::stream::iter(pieces.clone().into_iter().map(Ok::<_, std::io::Error>));
            let chunked = client
                .put(&url)
                .body(em_http::RequestBody::stream(stream))
                .send()
                .await
                .unwrap();
            assert_eq!(chunked.text().await.unwrap(), want);
            // A stream that says its length.
            let stream = futures::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
            let sized = em_http::RequestBody::sized_stream(data.len() as u64, stream);
            assert_eq!(
                client
                    .post(&url)
                    .body(sized)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
                want
            );
            // A stream that gives fewer bytes than it promised fails the
            // request with a request-body error.
            let short =
                futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"abc"))]);
            let e = client
                .post(&url)
                .body(em_http::RequestBody::sized_stream(10, short))
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::RequestBody, "{e}");
            // A stream that fails.
            let failing = futures::stream::iter([
                Ok(Bytes::from_static(b"abc")),
                Err(std::io::Error::other("the disk is on fire")),
            ]);
            let e = client
                .post(&url)
                .body(em_http::RequestBody::stream(failing))
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::RequestBody);
            assert!(e.to_string().contains("the disk is on fire"), "{e}");
            // A missing file.
            let e = client
                .post(&url)
                .body(em_http::RequestBody::file("/nonexistent/em-upload"))
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::RequestBody);
            // And the client goes on.
            let ok = client.post(&url).body("xyz").send().await.unwrap();
            assert_eq!(ok.text().await.unwrap(), format!("3 {}", checksum(b"xyz")));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn the_deadline_covers_the_whole_request() {
    run_with_watchdog(|| -> em::Result<()> {
        let server = test_server();
        let base = format!("http://{}", server.local_addr());
        em::spawn(async move {
            let client = Client::new();
            let e = client
                .get(format!("{base}/slow"))
                .deadline(Duration::from_millis(50))
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Deadline);
            assert!(e.is_timeout());
            assert!(
                e.to_string()
                    .starts_with(&format!("GET {base}/slow: deadline exceeded")),
                "{e}"
            );
            // Within the deadline, fine.
            let r = client
                .get(format!("{base}/slow?x"))
                .deadline(Duration::from_secs(10))
                .send()
                .await
                .unwrap();
            assert_eq!(r.text().await.unwrap(), "slow x");
            // A deadline that passes while the body streams ends the body.
            let r = client
                .get(format!("{base}/big?n=50000000"))
                .deadline(Duration::from_millis(200))
                .send()
                .await
                .unwrap();
            let mut stream = r.into_stream();
            let mut error = None;
            while let Some(piece) = stream.next().await {
                if let Err(e) = piece {
                    error = Some(e);
                    break;
                }
                // A slow reader.
                em::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(
                error.expect("the deadline ends the body").kind(),
                ClientErrorKind::Deadline
            );
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_response_dropped_unread_closes_its_connection_and_nothing_else() {
    run_with_watchdog(|| -> em::Result<()> {
        let server = test_server();
        let base = format!("http://{}", server.local_addr());
        em::spawn(async move {
            let client = Client::new();
            let r = client
                .get(format!("{base}/big?n=10000000"))
                .send()
                .await
                .unwrap();
            assert_eq!(client.connections(), (1, 0));
            drop(r);
            // The connection is closed rather than read to its end.
            let wait = async {
                while client.connections().0 != 0 {
                    em::sleep(Duration::from_millis(1)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(10), wait)
                .await
                .expect("the connection closes");
            let again = client.get(format!("{base}/echo")).send().await.unwrap();
            assert_eq!(again.text().await.unwrap(), "GET ");
            assert_eq!(client.connections(), (1, 1));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn pipelining_puts_several_requests_on_one_connection_in_order() {
    run_with_watchdog(|| -> em::Result<()> {
        let server = test_server();
        let base = format!("http://{}", server.local_addr());
        em::spawn(async move {
            let client = Client::builder().pipelining(8).build();
            // A first request opens the connection.
            client
                .get(format!("{base}/echo"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let mut multi = Multi::new();
            for i in 0..8 {
                multi.push(client.get(format!("{base}/slow?{i}")));
            }
            let results = multi.perform().await;
            for (i, r) in results.iter().enumerate() {
                assert_eq!(r.as_ref().unwrap().body().unwrap(), &format!("slow {i}"));
            }
            assert_eq!(
                client.connections().0,
                1,
                "every request rode one connection"
            );
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn an_idle_connection_the_server_closed_is_not_reused() {
    run_with_watchdog(|| -> em::Result<()> {
        let server = em_http::builder()
            .limits(em_http::Limits::default().keep_alive_timeout(Duration::from_millis(50)))
            .serve("127.0.0.1:0", |_r: Request<Body>| async { "hi" })?;
        let url = format!("http://{}/", server.local_addr());
        em::spawn(async move {
            let client = Client::new();
            for _ in 0..3 {
                assert_eq!(
                    client.get(&url).send().await.unwrap().text().await.unwrap(),
                    "hi"
                );
                // The server closes the idle connection; the pool forgets it.
                let wait = async {
                    while client.connections().0 != 0 {
                        em::sleep(Duration::from_millis(5)).await;
                    }
                };
                tokio::time::timeout(Duration::from_secs(10), wait)
                    .await
                    .expect("the server closes it");
            }
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

/// A SOCKS5 proxy (RFC 1928, with RFC 1929's user/password when `auth` is
/// given) on std threads: connects to the requested host and relays. Its
/// address, and the count of tunnels it opened.
fn socks5_proxy(
    auth: Option<(&'static str, &'static str)>,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn session(
        mut c: TcpStream,
        auth: Option<(&str, &str)>,
        tunnels: &AtomicUsize,
    ) -> std::io::Result<()> {
        let mut b = [0u8; 2];
        c.read_exact(&mut b)?;
        let mut methods = vec![0u8; b[1] as usize];
        c.read_exact(&mut methods)?;
        match auth {
            None => c.write_all(&[5, 0])?,
            Some((user, password)) => {
                c.write_all(&[5, 2])?;
                let mut v = [0u8; 2];
                c.read_exact(&mut v)?;
                let mut u = vec![0u8; v[1] as usize];
                c.read_exact(&mut u)?;
                let mut l = [0u8; 1];
                c.read_exact(&mut l)?;
                let mut p = vec![0u8; l[0] as usize];
                c.read_exact(&mut p)?;
                let ok = u == user.as_bytes() && p == password.as_bytes();
                c.write_all(&[1, if ok { 0 } else { 1 }])?;
                if !ok {
                    return Ok(());
                }
            }
        }
        let mut req = [0u8; 4];
        c.read_exact(&mut req)?;
        let host = match req[3] {
            1 => {
                let mut ip = [0u8; 4];
                c.read_exact(&mut ip)?;
                std::net::Ipv4Addr::from(ip).to_string()
            }
            3 => {
                let mut n = [0u8; 1];
                c.read_exact(&mut n)?;
                let mut name = vec![0u8; n[0] as usize];
                c.read_exact(&mut name)?;
                String::from_utf8(name).unwrap()
            }
            _ => return Ok(()),
        };
        let mut port = [0u8; 2];
        c.read_exact(&mut port)?;
        let upstream = TcpStream::connect((host.as_str(), u16::from_be_bytes(port)))?;
        tunnels.fetch_add(1, Ordering::SeqCst);
        c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])?;
        let (mut c2, mut u2) = (c.try_clone()?, upstream.try_clone()?);
        let (mut c, mut upstream) = (c, upstream);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut u2);
            let _ = u2.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut upstream, &mut c);
        let _ = c.shutdown(std::net::Shutdown::Write);
        Ok(())
    }

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let t = tunnels.clone();
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            let t = t.clone();
            std::thread::spawn(move || {
                let _ = session(c, auth, &t);
            });
        }
    });
    (addr, tunnels)
}

#[test]
fn requests_go_through_a_socks5_proxy() {
    let (open, open_tunnels) = socks5_proxy(None);
    let (guarded, guarded_tunnels) = socks5_proxy(Some(("em", "s3cret")));
    run_with_watchdog(move || -> em::Result<()> {
        let server = test_server();
        // By name: the proxy resolves it.
        let base = format!(
            "http://localhost:{}",
            server.local_addr().inet().unwrap().port()
        );
        em::spawn(async move {
            let proxy = em_http::Proxy::socks5(&format!("socks5://{open}")).unwrap();
            let client = Client::builder().proxy(proxy).build();
            for _ in 0..3 {
                let r = client
                    .post(format!("{base}/echo"))
                    .body("via socks")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.text().await.unwrap(), "POST via socks");
            }
            assert_eq!(
                open_tunnels.load(std::sync::atomic::Ordering::SeqCst),
                1,
                "one tunnel, kept alive"
            );
            let good = em_http::Proxy::socks5(&format!("socks5://em:s3cret@{guarded}")).unwrap();
            let r = Client::builder()
                .proxy(good)
                .build()
                .get(format!("{base}/echo"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.text().await.unwrap(), "GET ");
            let bad = em_http::Proxy::socks5(&format!("socks5://em:wrong@{guarded}")).unwrap();
            let e = Client::builder()
                .proxy(bad)
                .build()
                .get(format!("{base}/echo"))
                .send()
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Connect, "{e}");
            assert!(e.to_string().contains("SOCKS5"), "{e}");
            assert_eq!(guarded_tunnels.load(std::sync::atomic::Ordering::SeqCst), 1);
            assert!(em_http::Proxy::socks5("http://x:1").is_err());
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

/// A raw server whose first connection answers one request and then closes
/// on the next without answering (a keep-alive race lost); later
/// connections answer everything. Its address and its accept count.
fn drops_second_request_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let first = count.fetch_add(1, Ordering::SeqCst) == 0;
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                for n in 0.. {
                    // Read one request head (these requests have no body).
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if first && n == 1 {
                        return; // closes without an answer
                    }
                    let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                }
            });
        }
    });
    (addr, accepted)
}

#[test]
fn a_reused_connection_closed_before_answering_is_retried_once_for_idempotent_requests() {
    let (addr, accepted) = drops_second_request_server();
    let (addr2, accepted2) = drops_second_request_server();
    run_with_watchdog(move || -> em::Result<()> {
        em::spawn(async move {
            let client = Client::new();
            let url = format!("http://{addr}/");
            for _ in 0..3 {
                assert_eq!(
                    client.get(&url).send().await.unwrap().text().await.unwrap(),
                    "ok"
                );
            }
            assert_eq!(
                accepted.load(std::sync::atomic::Ordering::SeqCst),
                2,
                "one retry on a new connection"
            );
            // A POST is not retried: the server may have acted on it.
            let url2 = format!("http://{addr2}/");
            assert_eq!(
                client
                    .post(&url2)
                    .body("")
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
                "ok"
            );
            let e = client.post(&url2).body("").send().await.unwrap_err();
            assert_eq!(e.kind(), ClientErrorKind::Closed, "{e}");
            assert_eq!(accepted2.load(std::sync::atomic::Ordering::SeqCst), 1);
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}
