//! em-proxy's programs: the `em-proxy` command line (a duplex proxy) serves
//! from the relay, copies to the mirror, prints its counters, and exits 0
//! on SIGTERM; `route_by_line` routes by the first line; `socks4_proxy`
//! speaks SOCKS4. (`--help`: `help.rs`.)

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::Running;

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).expect("read");
    buf
}

#[test]
fn em_proxy_relays_mirrors_counts_and_exits_0_on_sigterm() {
    let (_relay, relay) = Running::start(
        env!("CARGO_BIN_EXE_echo_server"),
        &["--listen", "127.0.0.1:0"],
    );
    let (_mirror, mirror) = Running::start(
        env!("CARGO_BIN_EXE_echo_server"),
        &["--listen", "127.0.0.1:0"],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_em-proxy"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--relay",
            &relay,
            "--mirror",
            &mirror,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn em-proxy");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .expect("its address")
        .trim()
        .to_owned();
    let (lines_tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines_tx.send(line).ok();
        }
    });

    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut s = connect(&addr);
    s.write_all(&data).unwrap();
    assert!(read_n(&mut s, data.len()) == data, "the echo differs");
    drop(s);
    // The live counters show every byte mirrored.
    let want = format!("mirrored={}", data.len());
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a counters line with every byte mirrored");
        if line.starts_with("em-proxy: ") && line.contains(&want) {
            assert!(line.contains("clients=1 "), "{line}");
            assert!(line.contains(&format!("out={}", data.len())), "{line}");
            assert!(line.contains("mirror_dropped=0 "), "{line}");
            break;
        }
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait().expect("wait")).ok());
    let status = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("exited within 5 s");
    assert!(status.success(), "{status}");
}

#[test]
fn route_by_line_routes_get_a_and_get_b() {
    let (_a, a) = Running::start(
        env!("CARGO_BIN_EXE_echo_server"),
        &["--listen", "127.0.0.1:0"],
    );
    let (_b, b) = Running::start(
        env!("CARGO_BIN_EXE_echo_server"),
        &["--listen", "127.0.0.1:0"],
    );
    let (router, addr) = Running::start(
        env!("CARGO_BIN_EXE_route_by_line"),
        &["--listen", "127.0.0.1:0", "--a", &a, "--b", &b],
    );
    for request in [&b"GET /a HTTP/1.0\r\n\r\n"[..], b"GET /b HTTP/1.0\r\n\r\n"] {
        let mut s = connect(&addr);
        s.write_all(request).unwrap();
        assert_eq!(read_n(&mut s, request.len()), request);
    }
    let mut s = connect(&addr);
    s.write_all(b"GET /c HTTP/1.0\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"no route\n");
    router.terminate();
}

#[test]
fn socks4_proxy_connects_where_asked() {
    let (_echo, echo) = Running::start(
        env!("CARGO_BIN_EXE_echo_server"),
        &["--listen", "127.0.0.1:0"],
    );
    let echo: std::net::SocketAddrV4 = echo.parse().unwrap();
    let (socks, addr) = Running::start(
        env!("CARGO_BIN_EXE_socks4_proxy"),
        &["--listen", "127.0.0.1:0"],
    );
    let mut s = connect(&addr);
    let mut request = vec![4, 1];
    request.extend_from_slice(&echo.port().to_be_bytes());
    request.extend_from_slice(&echo.ip().octets());
    request.extend_from_slice(b"me\0early bytes");
    s.write_all(&request).unwrap();
    assert_eq!(read_n(&mut s, 8), b"\0\x5a\0\0\0\0\0\0");
    assert_eq!(read_n(&mut s, 11), b"early bytes");
    s.write_all(b"later").unwrap();
    assert_eq!(read_n(&mut s, 5), b"later");
    drop(s); // SIGTERM waits for open sessions (up to the grace period).
             // SOCKS5 is refused.
    let mut s = connect(&addr);
    s.write_all(&[5, 1, 0, 80, 127, 0, 0, 1, 0]).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"\0\x5b\0\0\0\0\0\0");
    socks.terminate();
}
