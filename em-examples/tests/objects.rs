//! `objects`: alone it answers its default requests and exits 0; as a
//! server (JSON or MessagePack) it answers clients, cuts off a client
//! whose frame does not parse without touching the others, and exits 0
//! on SIGTERM; a client that gets no answer exits 1, saying why once
//! (also on a fractional `--timeout`; `--timeout 0` is refused).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use support::Running;

const OBJECTS: &str = env!("CARGO_BIN_EXE_objects");

fn objects(args: &[&str]) -> Output {
    Command::new(OBJECTS)
        .args(args)
        .output()
        .expect("run objects")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn alone_it_answers_its_default_requests() {
    let output = objects(&[]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout_lines(&output),
        [
            "#1 sum(1, 2, 3) = 6",
            "#2 mean(2, 4, 9) = 5",
            "#3 max() error: no numbers"
        ]
    );
}

/// Sends `bytes` raw and waits for the server to close: the end of
/// stream, with nothing sent back.
fn cut_off_after(addr: &str, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("the server closes");
    assert!(back.is_empty(), "{back:?}");
}

#[test]
fn as_a_server_it_answers_clients_and_cuts_off_only_a_bad_one() {
    for format in ["json", "msgpack"] {
        let (server, addr) =
            Running::start(OBJECTS, &["--listen", "127.0.0.1:0", "--format", format]);
        let ask = |requests: &[&str]| {
            let mut args = vec!["--connect", &addr, "--format", format];
            args.extend_from_slice(requests);
            objects(&args)
        };
        let output = ask(&["min:3,-1.5", "sum:"]);
        assert!(output.status.success(), "{format}: {output:?}");
        assert_eq!(
            stdout_lines(&output),
            ["#1 min(3, -1.5) = -1.5", "#2 sum() = 0"],
            "{format}"
        );
        // A payload that is neither format, then a length over 64 KiB.
        cut_off_after(&addr, b"\0\0\0\x02\xc1\xc1");
        cut_off_after(&addr, b"\0\x01\0\x01");
        let output = ask(&["max:4,2"]);
        assert_eq!(stdout_lines(&output), ["#1 max(4, 2) = 4"], "{format}");
        server.terminate();
    }
}

#[test]
fn a_client_without_answers_exits_1() {
    // A JSON server cuts off a MessagePack client.
    let (server, addr) = Running::start(OBJECTS, &["--listen", "127.0.0.1:0"]);
    let output = objects(&["--connect", &addr, "--format", "msgpack", "sum:1"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stdout_lines(&output).is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connection ended early"), "{stderr}");
    server.terminate();
}

#[test]
fn a_client_that_times_out_says_so_once() {
    // A server that accepts (in the backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let output = support::output_within(
        OBJECTS,
        &["--connect", &addr, "--timeout", "0.3", "sum:1"],
        &[],
        Duration::from_secs(5),
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(said, ["objects: timed out after 300ms"], "{stderr}");
    let zero = objects(&["--connect", &addr, "--timeout", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{zero:?}");
}
