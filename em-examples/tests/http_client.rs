//! The HTTP client examples against a small Python site (HTTP/1.1,
//! keep-alive): `http_get` prints the SHA-256 of a known body and exits 0,
//! exits non-zero with "too many redirects" on a redirect loop, and sums up
//! repeated fetches; `crawl` visits exactly the pages within its depth on
//! its own host, each once.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::Running;

const HTTP_GET: &str = env!("CARGO_BIN_EXE_http_get");
const CRAWL: &str = env!("CARGO_BIN_EXE_crawl");

/// The site: linked pages, a 100,000-byte body, a redirect to itself.
/// Prints `listening on ADDR` once bound.
const SITE: &str = r#"
import http.server, sys
BODY = bytes(i % 251 for i in range(100000))
PAGES = {
    "/": '<a href="/a">a</a> <a href=\'b\'>b</a> <a href="/a#top">a again</a>'
         ' <a href="http://elsewhere.invalid/x">off site</a>'
         ' <a href="mailto:someone@example.invalid">mail</a>',
    "/a": '<A HREF="/">home</A> <a class="x" href = "c/d">d</a> <a href=/missing>gone</a>',
    "/b": '<a href="a">a</a>',
    "/c/d": '<a href="../deep">deeper</a>',
    "/deep": '<a href="/">home</a>',
}
class Site(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/body":
            status, kind, body = 200, "application/octet-stream", BODY
        elif self.path in PAGES:
            status, kind, body = 200, "text/html; charset=utf-8", PAGES[self.path].encode()
        else:
            status, kind, body = 404, "text/plain", b"not found"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
"#;

const BODY_SHA256: &str = "cd2df694e424bc7968cc37f47751019e5ca0cd1bdf2e479ea537c3a1c32ee1aa";

fn site() -> (Running, String) {
    Running::start("python3", &["-c", SITE])
}

/// Runs an example to its end (within 20 s) and returns what it printed.
fn run(bin: &str, args: &[&str]) -> Output {
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the example");
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || tx.send(child.wait_with_output().expect("wait")));
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{bin} {args:?} did not finish within 20 s")
        })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn http_get_prints_the_sha256_of_the_body() {
    let (_site, addr) = site();
    let url = format!("http://{addr}/body");
    let out = run(HTTP_GET, &[&url]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{url}\n")), "{stdout}");
    assert!(stdout.contains("HTTP/1.1 200 OK"), "{stdout}");
    assert!(stdout.contains("content-length: 100000"), "{stdout}");
    assert!(
        stdout.contains(&format!("sha256 {BODY_SHA256}  100000 bytes")),
        "{stdout}"
    );
    // The summary: a header, then 1 request, 0 failed.
    let summary: Vec<&str> = stdout.lines().rev().take(2).collect();
    assert!(summary[1].contains("requests/s"), "{stdout}");
    let figures: Vec<&str> = summary[0].split_whitespace().collect();
    assert_eq!(figures[..2], ["1", "0"], "{stdout}");
}

#[test]
fn http_get_repeats_quietly_and_sums_up() {
    let (_site, addr) = site();
    let url = format!("http://{addr}/a");
    let out = run(HTTP_GET, &["--quiet", "-c", "4", "--repeat", "20", &url]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    // Only the table: a header and a line of figures.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let figures: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(figures[..2], ["20", "0"], "{stdout}");
}

#[test]
fn http_get_fails_on_a_redirect_loop() {
    let (_site, addr) = site();
    let out = run(HTTP_GET, &[&format!("http://{addr}/loop")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("too many redirects"), "{stderr}");
    assert!(stderr.contains("/loop"), "{stderr}");
}

#[test]
fn crawl_visits_the_pages_within_its_depth_once() {
    let (_site, addr) = site();
    let root = format!("http://{addr}/");
    let out = run(CRAWL, &[&root, "--depth", "2", "--concurrency", "3"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let visited: Vec<String> = stdout
        .lines()
        .filter(|l| !l.starts_with("crawled "))
        .map(str::to_owned)
        .collect();
    let expected: BTreeSet<String> = [
        ("200", 0, ""),
        ("200", 1, "a"),
        ("200", 1, "b"),
        ("200", 2, "c/d"),
        ("404", 2, "missing"),
    ]
    .iter()
    .map(|(status, depth, path)| format!("{status} depth={depth} {root}{path}"))
    .collect();
    assert_eq!(visited.len(), expected.len(), "each page once:\n{stdout}");
    assert_eq!(
        visited.into_iter().collect::<BTreeSet<_>>(),
        expected,
        "{stdout}"
    );
    assert!(
        stdout.contains("crawled 5 pages (0 failed) to depth 2"),
        "{stdout}"
    );
}
