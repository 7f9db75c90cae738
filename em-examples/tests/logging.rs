//! The programs log to stderr, without colours when stderr is not a
//! terminal, and keep stdout for their own output.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn logs_go_to_stderr_without_colours_when_it_is_not_a_terminal() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo_server"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo_server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .expect("its address")
        .trim();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"ping").unwrap();
    let mut echo = [0; 4];
    s.read_exact(&mut echo).unwrap();
    drop(s);
    let stderr = child.stderr.take().unwrap();
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = support::wait_within(child, Duration::from_secs(5));
    assert!(status.success(), "{status}");
    let mut logs = String::new();
    BufReader::new(stderr).read_to_string(&mut logs).unwrap();
    assert!(logs.contains("signal received; stopping"), "{logs}");
    assert!(
        !logs.contains("\x1b["),
        "colours in a log that is not a terminal:\n{logs}"
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.is_empty(), "log lines on stdout: {rest}");
}
