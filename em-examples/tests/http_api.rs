//! `http_api` serves its JSON API to a plain HTTP/1.1 client: items are
//! added, listed and fetched (400 for bad JSON, 404 for a missing one),
//! `/slow` answers after its timer, `/hash` after its deferred work,
//! `/stream` is a complete chunked body, `/upstream` calls the server
//! itself through em's HTTP client, `/events` delivers `data:`
//! lines; large JSON is gzipped for a client that asks; it exits 0 on
//! SIGTERM.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::Running;

const HTTP_API: &str = env!("CARGO_BIN_EXE_http_api");

/// A response as it came over the wire: status, headers (names in lower
/// case) and the body's raw bytes (still chunked, if it was).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    raw_body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.raw_body.clone()).expect("UTF-8")
    }
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn send(stream: &mut TcpStream, method: &str, path: &str, headers: &[&str], body: &str) {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
}

fn read_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line.split(' ').nth(1).expect(&line).parse().expect(&line);
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').expect(l);
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    (status, headers)
}

/// One request on its own connection (`Connection: close`): the reply
/// is read to the end of the connection.
fn request(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> Reply {
    let mut stream = connect(addr);
    send(&mut stream, method, path, headers, body);
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    let mut raw_body = Vec::new();
    reader.read_to_end(&mut raw_body).expect("read the body");
    Reply {
        status,
        headers,
        raw_body,
    }
}

/// Decodes a chunked body, checking that it ends with its last chunk.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap(), 16).unwrap();
        raw = &raw[end + 2..];
        if size == 0 {
            assert_eq!(raw, b"\r\n", "the body ends after its last chunk");
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n");
        raw = &raw[size + 2..];
    }
}

#[test]
fn http_api_serves_every_route() {
    let (server, addr) = Running::start(HTTP_API, &["--listen", "127.0.0.1:0"]);
    let addr = addr.as_str();

    // Items: add, reject, list, fetch.
    let created = request(addr, "POST", "/items", &[], r#"{"name":"apple"}"#);
    assert_eq!(created.status, 201);
    assert_eq!(created.header("content-type"), Some("application/json"));
    assert_eq!(created.header("location"), Some("/items/1"));
    assert_eq!(created.text(), r#"{"id":1,"name":"apple"}"#);
    let second = request(
        addr,
        "POST",
        "/items",
        &[],
        r#"{"name":"pear","ripe":true}"#,
    );
    assert_eq!(second.status, 201);
    for bad in ["{not json", "[1,2]"] {
        let reply = request(addr, "POST", "/items", &[], bad);
        assert_eq!(reply.status, 400, "{bad}");
        assert!(reply.text().starts_with(r#"{"error":"#), "{}", reply.text());
    }
    let list = request(addr, "GET", "/items", &[], "");
    assert_eq!(list.status, 200);
    assert_eq!(
        list.text(),
        r#"[{"id":1,"name":"apple"},{"id":2,"name":"pear","ripe":true}]"#
    );
    let one = request(addr, "GET", "/items/2", &[], "");
    assert_eq!(one.status, 200);
    assert_eq!(one.text(), r#"{"id":2,"name":"pear","ripe":true}"#);
    assert_eq!(request(addr, "GET", "/items/99", &[], "").status, 404);
    assert_eq!(request(addr, "GET", "/nowhere", &[], "").status, 404);
    assert_eq!(request(addr, "DELETE", "/items", &[], "").status, 405);

    // The upstream route: em's HTTP client calls this very server, which
    // answers it meanwhile (the reactor never blocks on the call).
    let up = request(
        addr,
        "GET",
        &format!("/upstream?url=http%3A%2F%2F{addr}%2Fitems%2F2"),
        &[],
        "",
    );
    assert_eq!(up.status, 200, "{}", up.text());
    assert_eq!(
        up.text(),
        format!(
            r#"{{"bytes":34,"content_type":"application/json","status":200,"url":"http://{addr}/items/2"}}"#
        )
    );
    let refused = request(addr, "GET", "/upstream?url=http://127.0.0.1:1/", &[], "");
    assert_eq!(refused.status, 502);
    assert!(
        refused.text().contains("cannot connect"),
        "{}",
        refused.text()
    );

    // Gzip: a list over 1 KiB is compressed for a client that asks.
    for i in 0..40 {
        let body = format!(r#"{{"name":"item number {i}","note":"padding padding"}}"#);
        assert_eq!(request(addr, "POST", "/items", &[], &body).status, 201);
    }
    let plain = request(addr, "GET", "/items", &[], "");
    assert!(plain.raw_body.len() > 1024);
    assert_eq!(plain.header("content-encoding"), None);
    let gzipped = request(addr, "GET", "/items", &["Accept-Encoding: gzip"], "");
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(&gzipped.raw_body[..2], [0x1f, 0x8b], "a gzip stream");
    assert!(gzipped.raw_body.len() < plain.raw_body.len());

    // A timer: no sooner than asked.
    let start = Instant::now();
    let slow = request(addr, "GET", "/slow?ms=200", &[], "");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(slow.status, 200);
    assert_eq!(slow.text(), r#"{"slept_ms":200}"#);
    assert_eq!(request(addr, "GET", "/slow?ms=abc", &[], "").status, 400);

    // Deferred work: the same answer every time.
    let hash = request(addr, "GET", "/hash?n=1000", &[], "");
    assert_eq!(hash.status, 200);
    let text = hash.text();
    assert!(
        text.starts_with(r#"{"hash":""#) && text.ends_with(r#"","n":1000}"#),
        "{text}"
    );
    assert_eq!(request(addr, "GET", "/hash?n=1000", &[], "").text(), text);

    // A stream: chunked (even for a client that accepts gzip), complete.
    let stream = request(
        addr,
        "GET",
        "/stream?n=5000",
        &["Accept-Encoding: gzip"],
        "",
    );
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("transfer-encoding"), Some("chunked"));
    assert_eq!(stream.header("content-encoding"), None);
    let lines: String = (1..=5000).map(|i| format!("{i}\n")).collect();
    assert_eq!(String::from_utf8(dechunk(&stream.raw_body)).unwrap(), lines);

    // Server-sent events: the first three ticks, then hang up.
    let mut events = connect(addr);
    send(&mut events, "GET", "/events", &[], "");
    let mut reader = BufReader::new(events);
    let (status, headers) = read_head(&mut reader);
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(n, v)| n == "content-type" && v == "text/event-stream"));
    let mut data = Vec::new();
    let mut line = String::new();
    while data.len() < 3 {
        line.clear();
        assert_ne!(reader.read_line(&mut line).expect("an event line"), 0);
        if let Some(d) = line.trim_end().strip_prefix("data: ") {
            data.push(d.to_owned());
        }
    }
    drop(reader);
    assert_eq!(data, [r#"{"tick":1}"#, r#"{"tick":2}"#, r#"{"tick":3}"#]);

    server.terminate();
}
