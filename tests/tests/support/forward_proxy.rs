//! A small HTTP forward proxy (std threads, blocking sockets) for the HTTP
//! client's proxy tests: `CONNECT host:port` opens a tunnel; a request in
//! absolute form (`GET http://host:port/path HTTP/1.1`) is passed on in
//! origin form with `Connection: close`, one per connection. It keeps
//! every request head it was sent, for the test to check.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use super::http::read_request_head;

/// A running proxy on 127.0.0.1; its accepting thread ends with the
/// process (it holds no resource a test waits for).
#[derive(Debug, Clone)]
pub struct ForwardProxy {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl ForwardProxy {
    pub fn start() -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let proxy = ForwardProxy {
            addr: listener.local_addr().unwrap(),
            heads: Arc::default(),
        };
        let heads = proxy.heads.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let heads = heads.clone();
                thread::spawn(move || {
                    let _ = serve(client, &heads);
                });
            }
        });
        proxy
    }

    /// `http://127.0.0.1:PORT`, for `Proxy::http`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request head received so far, in order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn serve(mut client: TcpStream, heads: &Mutex<Vec<String>>) -> io::Result<()> {
    client.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let Some(head) = read_request_head(&mut client) else {
        return Ok(());
    };
    let head = String::from_utf8_lossy(&head).into_owned();
    heads.lock().unwrap().push(head.clone());
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        let upstream = match TcpStream::connect(target) {
            Ok(s) => s,
            Err(_) => return client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n"),
        };
        client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")?;
        return splice(client, upstream);
    }
    let Some(rest) = target.strip_prefix("http://") else {
        return client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut upstream = TcpStream::connect(authority)?;
    let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
    for line in head.lines().skip(1).filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name != "connection" && name != "proxy-authorization" {
            forwarded += &format!("{line}\r\n");
        }
    }
    forwarded += "Connection: close\r\n\r\n";
    upstream.write_all(forwarded.as_bytes())?;
    splice(client, upstream)
}

/// Copies both ways until either side ends.
fn splice(client: TcpStream, upstream: TcpStream) -> io::Result<()> {
    let (mut c_read, mut u_write) = (client.try_clone()?, upstream.try_clone()?);
    let up = thread::spawn(move || {
        let _ = io::copy(&mut c_read, &mut u_write);
        let _ = u_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (upstream, client);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match u_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = c_write.shutdown(std::net::Shutdown::Both);
    let _ = up.join();
    Ok(())
}
