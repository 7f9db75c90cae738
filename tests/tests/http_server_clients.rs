//! em-http against clients nobody here wrote: curl and Python's
//! `http.client` and `urllib.request`, run as processes against a server
//! on 127.0.0.1 port 0. The server answers `/echo` with the length and
//! checksum of the body it read, anything else with its path and the id of
//! the connection it came on (so a test sees connection reuse).

mod support;

use std::process::{Command, Output};

use em_http::http::Request;
use em_http::{Body, RequestHandler, Responder};
use support::http::{fnv, with_server};
use support::{pattern, TempDir};

/// `/echo`: `"<len> <fnv> <chunked|length>"` of the body read whole;
/// otherwise `"<path> conn=<id>"`.
struct Probe;

impl RequestHandler for Probe {
    fn on_request(&mut self, request: Request<Body>, responder: Responder) {
        if request.uri().path() == "/echo" {
            let body = request.into_body();
            let framing = if body.content_length().is_none() {
                "chunked"
            } else {
                "length"
            };
            body.on_complete(move |result| match result {
                Ok(bytes) => {
                    responder.respond(format!("{} {:016x} {framing}", bytes.len(), fnv(&bytes)))
                }
                Err(e) => responder.respond(format!("error {e}")),
            });
        } else {
            let text = format!(
                "{} conn={}\n",
                request.uri().path(),
                responder.connection_id()
            );
            responder.respond(text);
        }
    }
}

fn probe_server() -> em_http::HttpServer {
    em_http::serve_callbacks("127.0.0.1:0", || Probe).expect("serve")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run the client program");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn curl() -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "20"]);
    c
}

#[test]
fn curl_reuses_one_keep_alive_connection_for_two_urls() {
    let out = with_server(probe_server, |addr| {
        run(curl().args([
            "-v",
            &format!("http://{addr}/one"),
            "-o",
            "-",
            &format!("http://{addr}/two"),
        ]))
    });
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<(&str, &str)> = stdout
        .lines()
        .map(|l| l.split_once(" conn=").expect("a probe line"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout:?}");
    assert_eq!((lines[0].0, lines[1].0), ("/one", "/two"), "{stdout:?}");
    assert_eq!(lines[0].1, lines[1].1, "two connections: {stdout:?}");
    assert!(
        stderr.contains("Re-using existing connection"),
        "curl did not reuse the connection:\n{stderr}"
    );
}

#[test]
fn curl_chunked_upload_of_one_mebibyte_arrives_whole() {
    let dir = TempDir::new("http-curl-chunked");
    let file = dir.join("upload.bin");
    let data = pattern(1024 * 1024, 3);
    std::fs::write(&file, &data).unwrap();
    let expected = format!("{} {:016x} chunked", data.len(), fnv(&data));
    let out = with_server(probe_server, move |addr| {
        run(curl().args([
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("http://{addr}/echo"),
        ]))
    });
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn curl_expect_100_continue_gets_continue_then_sends_the_body() {
    let dir = TempDir::new("http-curl-continue");
    let file = dir.join("upload.bin");
    let data = pattern(1024 * 1024, 5);
    std::fs::write(&file, &data).unwrap();
    let expected = format!("{} {:016x} length", data.len(), fnv(&data));
    let out = with_server(probe_server, move |addr| {
        run(curl().args([
            "-v",
            "-H",
            "Expect: 100-continue",
            // Wait for the 100 as long as it takes, rather than sending the
            // body after curl's default second anyway.
            "--expect100-timeout",
            "20",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("http://{addr}/echo"),
        ]))
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("> Expect: 100-continue"),
        "curl did not ask:\n{stderr}"
    );
    assert!(
        stderr.contains("< HTTP/1.1 100 Continue"),
        "no 100 Continue from the server:\n{stderr}"
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn curl_head_gets_the_get_headers_without_a_body() {
    let (get, head) = with_server(probe_server, |addr| {
        let url = format!("http://{addr}/page");
        let get = run(curl().arg(&url)).stdout;
        let head = run(curl().args(["-I", &url])).stdout;
        (get, head)
    });
    let get = String::from_utf8(get).unwrap();
    assert!(get.starts_with("/page conn="), "{get:?}");
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head:?}");
    let length = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().to_string())
        })
        .expect("a content-length in the HEAD response");
    assert_eq!(length, get.len().to_string(), "HEAD and GET disagree");
}

const HTTP_CLIENT_SCRIPT: &str = r#"
import http.client, sys
def fnv(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xffffffffffffffff
    return '%016x' % h
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=20)
c.request('GET', '/hello')
r = c.getresponse()
first_sock = c.sock
get_body = r.read()
print('GET', r.status, get_body.decode().split(' ')[0])
body = bytes(range(256)) * 40
c.request('POST', '/echo', body=body)
r = c.getresponse()
print('POST', r.status, r.read().decode() == '%d %s length' % (len(body), fnv(body)))
c.request('HEAD', '/hello')
r = c.getresponse()
print('HEAD', r.status, r.getheader('Content-Length') == str(len(get_body)), len(r.read()))
parts = [b'abc', b'defgh', b'x' * 5000]
c.request('POST', '/echo', body=iter(parts), encode_chunked=True,
          headers={'Transfer-Encoding': 'chunked'})
r = c.getresponse()
joined = b''.join(parts)
print('CHUNKED', r.status, r.read().decode() == '%d %s chunked' % (len(joined), fnv(joined)))
c.request('GET', '/last')
r = c.getresponse()
last = r.read().decode()
print('LAST', r.status, last.split(' ')[0], last.split(' ')[1] == get_body.decode().split(' ')[1])
print('SAME-SOCKET', c.sock is first_sock)
"#;

#[test]
fn python_http_client_keep_alive_get_post_head_and_chunked() {
    let out = with_server(probe_server, |addr| {
        run(Command::new("python3").args(["-c", HTTP_CLIENT_SCRIPT, &addr.port().to_string()]))
    });
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "GET 200 /hello\n\
         POST 200 True\n\
         HEAD 200 True 0\n\
         CHUNKED 200 True\n\
         LAST 200 /last True\n\
         SAME-SOCKET True\n"
    );
}

const URLLIB_SCRIPT: &str = r#"
import urllib.request, sys
base = 'http://127.0.0.1:%s' % sys.argv[1]
with urllib.request.urlopen(base + '/via-urllib', timeout=20) as r:
    print(r.status, r.read().decode().split(' ')[0])
req = urllib.request.Request(base + '/echo', data=b'hello from urllib', method='POST')
with urllib.request.urlopen(req, timeout=20) as r:
    print(r.status, r.read().decode().split(' ')[0], r.headers['Content-Type'])
"#;

#[test]
fn python_urllib_get_and_post() {
    let out = with_server(probe_server, |addr| {
        run(Command::new("python3").args(["-c", URLLIB_SCRIPT, &addr.port().to_string()]))
    });
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "200 /via-urllib\n200 17 text/plain; charset=utf-8\n"
    );
}
