//! Python's `http.server` as a server em's code did not write, for the
//! HTTP client tests: a small handler script run by `python3`, on a port
//! it picks and prints, killed on drop.
//!
//! It speaks HTTP/1.0 (`http.server`'s default): every response closes
//! its connection. What it serves:
//! - `GET /files/NAME`: the file NAME of the directory given (Python's
//!   `SimpleHTTPRequestHandler`, with a `Content-Length`);
//! - `GET /close-delimited?n=N`: N bytes of `pattern(N, 3)` with no
//!   `Content-Length`: the body ends when the server closes;
//! - any method on `/echo` (`HEAD` too: the head of that answer): `METHOD BODY` back (the body read by its
//!   `Content-Length` or, chunked, chunk by chunk).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

const SCRIPT: &str = r#"
import http.server, os, sys

directory = sys.argv[1]

def pattern(n, seed):
    return bytes(((i + seed * 7919) % 251) for i in range(n))

class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=directory, **kwargs)

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def echo(self):
        text = self.command.encode() + b" " + self.body()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(text)

    def do_GET(self):
        if self.path.startswith("/echo"):
            return self.echo()
        if self.path.startswith("/close-delimited?n="):
            n = int(self.path.split("=", 1)[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            data = pattern(n, 3)
            for i in range(0, n, 65536):
                self.wfile.write(data[i:i + 65536])
            return
        if self.path.startswith("/files/"):
            self.path = self.path[len("/files"):]
            return super().do_GET()
        self.send_error(404)

    def do_HEAD(self):
        if self.path.startswith("/echo"):
            return self.echo()
        return super().do_HEAD()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = echo

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A running Python `http.server`, killed on drop.
#[derive(Debug)]
pub struct PythonHttp {
    child: Child,
    _stdout: ChildStdout,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl PythonHttp {
    /// Starts it serving `directory` under `/files/`; returns once it
    /// listens (it prints its port after binding). Panics when `python3`
    /// is missing: CI installs it.
    pub fn start(directory: &Path) -> PythonHttp {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(directory)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3 (CI installs it; .ci/run)");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        // Bounded: python exits (end of stream) if it cannot bind.
        stdout.read_line(&mut line).expect("read python's port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let status = child.try_wait();
            panic!("python http.server did not print its port ({line:?}, {status:?})")
        });
        PythonHttp {
            child,
            _stdout: stdout.into_inner(),
            port,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PythonHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
