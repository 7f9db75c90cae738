//! echo_client: one message when it times out, and `--timeout` takes
//! fractional seconds but not 0 or less.

mod support;

use std::net::TcpListener;
use std::time::Duration;

#[test]
fn a_timeout_is_reported_once() {
    // A server that accepts (in the backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = support::output_within(
        env!("CARGO_BIN_EXE_echo_client"),
        &["--connect", &addr, "--timeout", "0.3", "hello"],
        &[],
        Duration::from_secs(5),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.status);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let said: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains("timed out after 300ms"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn timeout_must_be_more_than_0_seconds() {
    for bad in ["0", "-1", "0.0", "soon", "NaN"] {
        let out = support::output_within(
            env!("CARGO_BIN_EXE_echo_client"),
            &["--connect", "127.0.0.1:9", &format!("--timeout={bad}")],
            &[],
            Duration::from_secs(5),
        );
        assert_eq!(out.status.code(), Some(2), "--timeout {bad}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("--timeout"), "--timeout {bad}: {stderr}");
    }
}
