//! em-http's client against Debian's nginx, a server em's code did not
//! write: static files and `HEAD`, WebDAV `PUT`/`DELETE` bodies, each
//! redirect code, loops and the bound, gzip (chunked), keep-alive reuse
//! and pipelining counted in nginx's access log, the pool's bound on idle
//! connections and its idle timeout, and 1,000 requests at once.

mod support;

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use em_http::http::StatusCode;
use em_http::{Client, ClientErrorKind, RequestBody};
use support::nginx::{self, Nginx};
use support::run_with_watchdog;

/// Runs `test` (given nginx's base URL) as a task on a watchdogged
/// reactor, and stops the reactor when it returns.
fn on_reactor<F>(base: String, test: impl FnOnce(String) -> F + 'static)
where
    F: std::future::Future<Output = ()> + 'static,
{
    run_with_watchdog(move || -> em::Result<()> {
        em::spawn(async move {
            test(base).await;
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn static_files_head_and_errors_come_back_as_nginx_sent_them() {
    let nginx = Nginx::start("static");
    on_reactor(nginx.base(), |base| async move {
        let client = Client::new();
        let small = client
            .get(format!("{base}/small.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(small.status(), StatusCode::OK);
        assert_eq!(
            small.headers()["server"].to_str().unwrap().get(..5),
            Some("nginx")
        );
        assert_eq!(small.content_length(), Some(nginx::SMALL.len() as u64));
        assert_eq!(small.text().await.unwrap(), nginx::SMALL);

        let kib = client.get(format!("{base}/kib.bin")).send().await.unwrap();
        assert_eq!(kib.bytes().await.unwrap(), nginx::kib());

        let head = client.head(format!("{base}/kib.bin")).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(head.content_length(), Some(1024), "HEAD keeps the length");
        assert_eq!(head.bytes().await.unwrap(), "", "and has no body");

        let missing = client.get(format!("{base}/nothing")).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(missing.text().await.unwrap().contains("404 Not Found"));

        // nginx's static handler refuses a POST; the body it answers with
        // is read, and the connection stays usable.
        let post = client
            .post(format!("{base}/small.txt"))
            .body("ignored")
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        post.bytes().await.unwrap();
        let again = client
            .get(format!("{base}/small.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(again.text().await.unwrap(), nginx::SMALL);
    });
}

#[test]
fn put_and_delete_bodies_reach_nginx_webdav() {
    let nginx = Nginx::start("dav");
    let stored = nginx.file("/dav/streamed.txt");
    let file_body = nginx.file("/kib.bin");
    on_reactor(nginx.base(), move |base| async move {
        let client = Client::new();
        let put = client
            .put(format!("{base}/dav/a.txt"))
            .body("stored by nginx")
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), StatusCode::CREATED);
        put.bytes().await.unwrap();
        let get = client
            .get(format!("{base}/dav/a.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(get.text().await.unwrap(), "stored by nginx");

        // A body read from a file, and a chunked one from a stream.
        let put = client
            .put(format!("{base}/dav/file.bin"))
            .body(RequestBody::file(file_body))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), StatusCode::CREATED);
        put.bytes().await.unwrap();
        let get = client
            .get(format!("{base}/dav/file.bin"))
            .send()
            .await
            .unwrap();
        assert_eq!(get.bytes().await.unwrap(), nginx::kib());
        let pieces: Vec<std::io::Result<Bytes>> = (0..50)
            .map(|i| Ok(Bytes::from(format!("piece {i}\n"))))
            .collect();
        let put = client
            .put(format!("{base}/dav/streamed.txt"))
            .body(RequestBody::stream(futures::stream::iter(pieces)))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), StatusCode::CREATED);
        put.bytes().await.unwrap();
        let want: String = (0..50).map(|i| format!("piece {i}\n")).collect();
        assert_eq!(std::fs::read_to_string(&stored).unwrap(), want);

        let delete = client
            .delete(format!("{base}/dav/a.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(delete.status(), StatusCode::NO_CONTENT);
        delete.bytes().await.unwrap();
        let gone = client
            .get(format!("{base}/dav/a.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        gone.bytes().await.unwrap();
    });
}

#[test]
fn each_redirect_code_is_followed_with_the_right_method_and_body() {
    let nginx = Nginx::start("redirects");
    let redirected = nginx.file("/dav/redirected.txt");
    on_reactor(nginx.base(), move |base| async move {
        let client = Client::new();
        // 301, 302 and 303 turn a POST into a GET without its body (nginx's
        // static handler would refuse a POST with 405).
        for code in [301, 302, 303] {
            let r = client
                .post(format!("{base}/r/{code}"))
                .body("dropped")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "after a {code}");
            assert_eq!(r.url().path(), "/small.txt");
            assert_eq!(r.text().await.unwrap(), nginx::SMALL);
        }
        // 307 and 308 keep the method: nginx refuses the POST on the file.
        for code in [307, 308] {
            let r = client
                .post(format!("{base}/r/{code}"))
                .body("kept")
                .send()
                .await
                .unwrap();
            assert_eq!(r.url().path(), "/small.txt");
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "after a {code}");
            r.bytes().await.unwrap();
        }
        // ... and the body: a PUT redirected to WebDAV stores it.
        for code in [307, 308] {
            let body = format!("the body of a PUT redirected by a {code}");
            let r = client
                .put(format!("{base}/r/{code}-dav"))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{code}: {}", r.status());
            assert_eq!(r.url().path(), "/dav/redirected.txt");
            r.bytes().await.unwrap();
            assert_eq!(std::fs::read_to_string(&redirected).unwrap(), body);
        }
    });
    let log = nginx.wait_for_log(14);
    let puts: Vec<_> = log
        .iter()
        .filter(|l| l.uri == "/dav/redirected.txt")
        .map(|l| l.method.as_str())
        .collect();
    assert_eq!(puts, ["PUT", "PUT"]);
}

#[test]
fn a_redirect_loop_and_chains_past_the_bound_fail() {
    let nginx = Nginx::start("redirect-bound");
    on_reactor(nginx.base(), |base| async move {
        let client = Client::new();
        let e = client.get(format!("{base}/loop")).send().await.unwrap_err();
        assert_eq!(e.kind(), ClientErrorKind::TooManyRedirects, "{e}");
        assert_eq!(
            e.to_string(),
            format!("GET {base}/loop: too many redirects (more than 5)")
        );
        // Five hops are allowed by default, six are not.
        let r = client.get(format!("{base}/chain/5")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), nginx::SMALL);
        let e = client
            .get(format!("{base}/chain/6"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ClientErrorKind::TooManyRedirects, "{e}");
        // A bound of 2, per request and per client.
        let r = client
            .get(format!("{base}/chain/2"))
            .redirects(2)
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), nginx::SMALL);
        let e = client
            .get(format!("{base}/chain/3"))
            .redirects(2)
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ClientErrorKind::TooManyRedirects, "{e}");
        let two = Client::builder().redirects(2).build();
        let e = two.get(format!("{base}/chain/3")).send().await.unwrap_err();
        assert_eq!(e.kind(), ClientErrorKind::TooManyRedirects, "{e}");
        // None followed: the 302 itself.
        let r = client
            .get(format!("{base}/chain/1"))
            .redirects(0)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        assert!(r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/small.txt"));
    });
}

#[test]
fn gzip_from_nginx_comes_chunked_and_is_decoded() {
    let nginx = Nginx::start("gzip");
    on_reactor(nginx.base(), |base| async move {
        let client = Client::new();
        let r = client.get(format!("{base}/text.txt")).send().await.unwrap();
        assert!(r.headers().get("content-encoding").is_none());
        assert_eq!(r.text().await.unwrap(), nginx::text());

        // The raw body: gzip, chunked (nginx does not know its length),
        // much smaller than the text.
        let mut raw = client
            .get(format!("{base}/text.txt"))
            .decompress(false)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.headers()["content-encoding"], "gzip");
        assert_eq!(raw.headers()["transfer-encoding"], "chunked");
        assert_eq!(raw.content_length(), None);
        let mut gz = Vec::new();
        while let Some(piece) = raw.chunk().await.unwrap() {
            gz.extend_from_slice(&piece);
        }
        assert_eq!(&gz[..2], [0x1f, 0x8b], "a gzip stream");
        assert!(gz.len() < nginx::TEXT_LEN / 10, "{} bytes", gz.len());

        // Without accept-encoding nginx sends the file as it is.
        let plain = client
            .get(format!("{base}/text.txt"))
            .decompress(false)
            .send()
            .await
            .unwrap();
        assert!(plain.headers().get("content-encoding").is_none());
        assert_eq!(plain.content_length(), Some(nginx::TEXT_LEN as u64));
        assert_eq!(plain.text().await.unwrap(), nginx::text());
    });
}

/// Waits on the reactor, checking every 10 ms, until `done` holds (at
/// most 5 s, then fails naming `what`).
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < give_up, "waited 5 s for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn the_pool_keeps_at_most_its_bound_idle_and_closes_them_after_the_idle_timeout() {
    const N: usize = 5;
    let nginx = Nginx::start("pool-bound");
    on_reactor(nginx.base(), |base| async move {
        let client = Client::builder()
            .pool_max_idle_per_host(2)
            .pool_idle_timeout(Duration::from_millis(300))
            .build();
        // Five at once: five connections, of which two stay once idle.
        let requests = (0..N).map(|_| {
            let client = client.clone();
            let url = format!("{base}/small.txt");
            async move { client.get(url).send().await.unwrap().text().await.unwrap() }
        });
        for body in futures::future::join_all(requests).await {
            assert_eq!(body, nginx::SMALL);
        }
        wait_until("two idle connections", || client.connections() == (2, 2)).await;
        // The next two requests reuse them.
        for _ in 0..2 {
            let r = client
                .get(format!("{base}/small.txt"))
                .send()
                .await
                .unwrap();
            r.bytes().await.unwrap();
        }
        assert_eq!(client.connections(), (2, 2));
        // Idle past the timeout: closed.
        let idle_since = Instant::now();
        wait_until("the idle timeout", || client.connections() == (0, 0)).await;
        assert!(idle_since.elapsed() >= Duration::from_millis(250));
    });
    let log = nginx.wait_for_log(N + 2);
    assert_eq!(Nginx::connections(&log), N, "{log:?}");
}

#[test]
fn sequential_requests_share_one_connection_unless_keep_alive_is_off() {
    const N: usize = 6;
    let nginx = Nginx::start("pool");
    on_reactor(nginx.base(), |base| async move {
        let client = Client::new();
        for _ in 0..N {
            let r = client.get(format!("{base}/kib.bin")).send().await.unwrap();
            assert_eq!(r.bytes().await.unwrap(), nginx::kib());
        }
        assert_eq!(client.connections(), (1, 1));
        let closing = Client::builder().keep_alive(false).build();
        for _ in 0..N {
            let r = closing
                .get(format!("{base}/small.txt"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.text().await.unwrap(), nginx::SMALL);
        }
        assert_eq!(closing.connections(), (0, 0));
    });
    let log = nginx.wait_for_log(2 * N);
    let (kept, closed) = log.split_at(N);
    assert!(kept.iter().all(|l| l.uri == "/kib.bin"), "{log:?}");
    assert_eq!(Nginx::connections(kept), 1, "keep-alive: {kept:?}");
    assert_eq!(
        kept.iter().map(|l| l.nth).collect::<Vec<_>>(),
        (1..=N as u64).collect::<Vec<_>>()
    );
    assert_eq!(Nginx::connections(closed), N, "keep-alive off: {closed:?}");
}

#[test]
fn a_thousand_requests_at_once_all_succeed() {
    const N: usize = 1000;
    let nginx = Nginx::start("thousand");
    on_reactor(nginx.base(), |base| async move {
        let client = Client::new();
        let requests = (0..N).map(|i| {
            let client = client.clone();
            let base = base.clone();
            async move {
                let path = if i % 2 == 0 { "kib.bin" } else { "small.txt" };
                let r = client
                    .get(format!("{base}/{path}?i={i}"))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("request {i}: {e}"));
                assert_eq!(r.status(), StatusCode::OK);
                (i, r.bytes().await.unwrap())
            }
        });
        let bodies = futures::future::join_all(requests).await;
        assert_eq!(bodies.len(), N);
        for (i, body) in bodies {
            if i % 2 == 0 {
                assert_eq!(body, nginx::kib(), "request {i}");
            } else {
                assert_eq!(body, nginx::SMALL, "request {i}");
            }
        }
    });
    assert_eq!(nginx.wait_for_log(N).len(), N);
}

#[test]
fn pipelined_gets_share_a_busy_connection_and_keep_their_order() {
    const N: usize = 8;
    let nginx = Nginx::start("pipelining");
    let seen = Rc::new(std::cell::Cell::new(0));
    let seen2 = seen.clone();
    on_reactor(nginx.base(), move |base| async move {
        let client = Client::builder().pipelining(4).build();
        // One request opens the connection; it is idle when the 8 start.
        let first = client
            .get(format!("{base}/small.txt"))
            .send()
            .await
            .unwrap();
        first.bytes().await.unwrap();
        let requests = (0..N).map(|i| {
            let client = client.clone();
            let base = base.clone();
            async move {
                let path = if i % 2 == 0 { "kib.bin" } else { "small.txt" };
                let r = client.get(format!("{base}/{path}")).send().await.unwrap();
                (i, r.bytes().await.unwrap())
            }
        });
        for (i, body) in futures::future::join_all(requests).await {
            let want: Bytes = if i % 2 == 0 {
                nginx::kib().into()
            } else {
                nginx::SMALL.into()
            };
            assert_eq!(body, want, "request {i}");
            seen2.set(seen2.get() + 1);
        }
    });
    assert_eq!(seen.get(), N);
    let log = nginx.wait_for_log(N + 1);
    // The idle connection took the first of the 8 and three more behind
    // it before any answer came; the fifth opened a second connection,
    // which the last three waited for rather than open their own.
    assert_eq!(Nginx::connections(&log), 2, "{log:?}");
    let on_first = log
        .iter()
        .filter(|l| l.connection == log[0].connection)
        .count();
    assert!(on_first >= 5, "{log:?}");
}

#[test]
fn pipelined_gets_started_together_wait_for_the_connection_being_opened() {
    const N: usize = 8;
    let nginx = Nginx::start("pipelining-cold");
    on_reactor(nginx.base(), move |base| async move {
        let client = Client::builder().pipelining(4).build();
        let requests = (0..N).map(|i| {
            let client = client.clone();
            let base = base.clone();
            async move {
                let r = client
                    .get(format!("{base}/kib.bin?i={i}"))
                    .send()
                    .await
                    .unwrap();
                r.bytes().await.unwrap()
            }
        });
        for body in futures::future::join_all(requests).await {
            assert_eq!(body, nginx::kib());
        }
        assert_eq!(client.connections(), (2, 2));
    });
    let log = nginx.wait_for_log(N);
    assert_eq!(
        Nginx::connections(&log),
        N / 4,
        "8 GETs started together, pipelined by 4: {log:?}"
    );
}
