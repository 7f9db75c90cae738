//! Helpers for the em-http tests: a server on a watchdogged reactor with a
//! client on a peer thread, a blocking HTTP/1.1 response reader for raw
//! sockets, and a checksum both ends can compute.

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use super::{join_peer, run_builder_with_watchdog_for, spawn_peer, WATCHDOG};

/// Starts the server `serve` makes on a reactor (watchdog `WATCHDOG`), runs
/// `client` with its address on a peer thread, stops the reactor when the
/// client returns, and gives back the client's value (or its panic).
pub fn with_server<T: Send + 'static>(
    serve: impl FnOnce() -> em_http::HttpServer + 'static,
    client: impl FnOnce(SocketAddr) -> T + Send + 'static,
) -> T {
    with_server_for(WATCHDOG, serve, client)
}

/// [`with_server`] with a watchdog of `limit`, for tests that move a lot.
pub fn with_server_for<T: Send + 'static>(
    limit: Duration,
    serve: impl FnOnce() -> em_http::HttpServer + 'static,
    client: impl FnOnce(SocketAddr) -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    run_builder_with_watchdog_for(em::Reactor::builder(), limit, move || -> em::Result<()> {
        let server = serve();
        let addr = server.local_addr().inet().expect("an inet address");
        spawn_peer(em::handle()?, tx, move || client(addr));
        Ok(())
    })
    .expect("the reactor ran");
    join_peer(&rx)
}

/// One response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body came chunked.
    pub chunked: bool,
}

impl Response {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the response says `Connection: close`.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn line(r: &mut impl BufRead) -> Option<String> {
    let mut buf = Vec::new();
    let n = r.read_until(b'\n', &mut buf).expect("read a line");
    if n == 0 {
        return None;
    }
    assert!(buf.ends_with(b"\r\n"), "line not CRLF-terminated: {buf:?}");
    buf.truncate(buf.len() - 2);
    Some(String::from_utf8(buf).expect("an ASCII line"))
}

/// Reads one response (a `1xx` one too) from `r`; `None` at a clean end of
/// stream before its first byte. `head` says the request was `HEAD` (no
/// body follows the head whatever it says). Panics on anything malformed.
pub fn read_response(r: &mut impl BufRead, head: bool) -> Option<Response> {
    let status_line = line(r)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    assert!(
        version.starts_with("HTTP/1."),
        "bad status line {status_line:?}"
    );
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let l = line(r).expect("end of stream inside a head");
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').expect("a header line");
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        chunked: false,
    };
    if head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Some(response);
    }
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        response.chunked = true;
        loop {
            let size_line = line(r).expect("end of stream inside a chunked body");
            let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
            if size == 0 {
                while !line(r).expect("end of stream in trailers").is_empty() {}
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            r.read_exact(&mut response.body[start..])
                .expect("a whole chunk");
            assert_eq!(line(r).as_deref(), Some(""), "chunk not followed by CRLF");
        }
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().expect("a numeric content-length");
        response.body.resize(len, 0);
        r.read_exact(&mut response.body).expect("the whole body");
    } else {
        r.read_to_end(&mut response.body)
            .expect("a body to end of stream");
    }
    Some(response)
}

/// Every response until the end of stream; `head` as for [`read_response`].
pub fn read_all_responses(r: &mut impl BufRead) -> Vec<Response> {
    std::iter::from_fn(|| read_response(r, false)).collect()
}

/// FNV-1a, 64 bits: a checksum the tests and the Python scripts share.
pub fn fnv(data: &[u8]) -> u64 {
    let mut fnv = Fnv::default();
    fnv.update(data);
    fnv.0
}

/// FNV-1a over data that comes in pieces.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A hand-written HTTP server on 127.0.0.1 for the client's fault tests
/// (std threads, blocking sockets): for each connection it reads one
/// request head and hands the socket to its script, which answers however
/// it likes: garbage, half a head, a stalled body. A socket the script
/// returns is kept open (a stalled server) until the server is dropped.
pub struct ScriptedServer {
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ScriptedServer {
    /// Starts it; `script` runs for each connection, on the accepting
    /// thread, after the request head was read.
    pub fn start(
        script: impl Fn(&mut std::net::TcpStream) -> Keep + Send + 'static,
    ) -> ScriptedServer {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut kept = Vec::new();
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                if read_request_head(&mut stream).is_none() {
                    continue;
                }
                if script(&mut stream) == Keep::Open {
                    kept.push(stream);
                }
            }
        });
        ScriptedServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// What a [`ScriptedServer`] does with a socket after its script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Closes it.
    Close,
    /// Keeps it open, silent, until the server is dropped.
    Open,
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept.
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request head (through its blank line) from `s`, byte by byte
/// so that nothing after it is consumed; `None` if the peer closed first.
pub fn read_request_head(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}
