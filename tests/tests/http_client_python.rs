//! em-http's client against Python's `http.server`, an HTTP/1.0 server em's
//! code did not write: files, bodies that end when the server closes (no
//! `Content-Length`), and each method's body echoed back, fixed-length and
//! chunked.

mod support;

use bytes::Bytes;
use em_http::http::{StatusCode, Version};
use em_http::{Client, RequestBody};
use support::python::PythonHttp;
use support::{pattern, run_with_watchdog, TempDir};

#[test]
fn files_and_close_delimited_bodies_come_whole_from_an_http_1_0_server() {
    let dir = TempDir::new("python-files");
    let file = pattern(300_000, 9);
    std::fs::write(dir.join("data.bin"), &file).unwrap();
    let python = PythonHttp::start(dir.path());
    let base = python.base();
    run_with_watchdog(move || -> em::Result<()> {
        em::spawn(async move {
            let client = Client::new();
            let r = client
                .get(format!("{base}/files/data.bin"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.version(), Version::HTTP_10);
            assert_eq!(r.content_length(), Some(file.len() as u64));
            assert_eq!(r.bytes().await.unwrap(), file);
            // HTTP/1.0 without keep-alive: the connection is not pooled.
            assert_eq!(client.connections(), (0, 0));

            for n in [0, 1, 70_000, 1_000_000] {
                let mut r = client
                    .get(format!("{base}/close-delimited?n={n}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.content_length(), None);
                assert!(r.headers().get("transfer-encoding").is_none());
                let mut body = Vec::new();
                while let Some(piece) = r.chunk().await.unwrap() {
                    body.extend_from_slice(&piece);
                }
                assert_eq!(body.len(), n, "a body delimited by the close");
                assert!(body == pattern(n, 3), "the close-delimited body's bytes");
            }

            let missing = client
                .get(format!("{base}/files/none"))
                .send()
                .await
                .unwrap();
            assert_eq!(missing.status(), StatusCode::NOT_FOUND);
            missing.bytes().await.unwrap();
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn each_method_sends_its_body_to_python() {
    let dir = TempDir::new("python-echo");
    let python = PythonHttp::start(dir.path());
    let base = python.base();
    run_with_watchdog(move || -> em::Result<()> {
        em::spawn(async move {
            let client = Client::new();
            let echo = format!("{base}/echo");
            for (request, want) in [
                (client.get(&echo), "GET "),
                (client.post(&echo).body("a=1"), "POST a=1"),
                (client.put(&echo).body(vec![b'p'; 5]), "PUT ppppp"),
                (client.patch(&echo).body("patched"), "PATCH patched"),
                (client.delete(&echo).body("gone"), "DELETE gone"),
                (client.options(&echo), "OPTIONS "),
                (client.post(&echo).form(&[("k", "v w")]), "POST k=v+w"),
                (client.post(&echo).json(&[1, 2, 3]), "POST [1,2,3]"),
            ] {
                let r = request.send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK, "{want}");
                assert_eq!(r.text().await.unwrap(), want);
            }
            let head = client.head(&echo).send().await.unwrap();
            assert_eq!(
                head.content_length(),
                Some(5),
                "HEAD: the length of \"HEAD \""
            );
            assert_eq!(head.bytes().await.unwrap(), "");

            // A chunked body from a stream, and a sized one.
            let pieces = || {
                futures::stream::iter(
                    (0..20).map(|i| Ok::<_, std::io::Error>(Bytes::from(format!("{i},")))),
                )
            };
            let want: String = (0..20).map(|i| format!("{i},")).collect();
            let r = client
                .post(&echo)
                .body(RequestBody::stream(pieces()))
                .send()
                .await
                .unwrap();
            assert_eq!(r.text().await.unwrap(), format!("POST {want}"));
            let r = client
                .put(&echo)
                .body(RequestBody::sized_stream(want.len() as u64, pieces()))
                .send()
                .await
                .unwrap();
            assert_eq!(r.text().await.unwrap(), format!("PUT {want}"));
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
}
