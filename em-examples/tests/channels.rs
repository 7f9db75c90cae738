//! The `em::Channel` servers: pubsub tells a client whose line is too long
//! why it is closed; firehose refuses an interval or a batch of 0.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::Running;

#[test]
fn pubsub_answers_a_line_too_long_with_err_then_closes() {
    let (server, addr) = Running::start(
        env!("CARGO_BIN_EXE_pubsub"),
        &["--listen", "127.0.0.1:0", "--max-line", "16"],
    );
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"SUB news\n").unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "SUBSCRIBED news\n");
    // The line after the long one, in the same write, is not answered.
    s.write_all(format!("PUB news {}\nSTATS news\n", "x".repeat(100)).as_bytes())
        .unwrap();
    let mut rest = String::new();
    r.read_to_string(&mut rest).expect("the server closes");
    assert!(rest.starts_with("ERR line too long"), "{rest:?}");
    assert_eq!(rest.lines().count(), 1, "{rest:?}");
    server.terminate();
}

#[test]
fn firehose_refuses_an_interval_or_a_batch_of_0() {
    for flag in ["--interval-ms", "--batch"] {
        let out = support::output_within(
            env!("CARGO_BIN_EXE_firehose"),
            &["--listen", "127.0.0.1:0", flag, "0"],
            &[],
            Duration::from_secs(5),
        );
        assert_eq!(out.status.code(), Some(2), "{flag} 0");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(flag), "{flag} 0: {stderr}");
    }
}
