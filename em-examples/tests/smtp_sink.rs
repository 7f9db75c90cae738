//! `smtp_sink` receives a message from Python's smtplib and prints it,
//! envelope first, then its headers and body dot-unstuffed (a lone `.`
//! line and a `.dotted` one come back as sent); it exits 0 on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The sink, killed (and reaped) if the test fails before it ends it.
struct Sink(Option<Child>);

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads the sink's stdout on a thread of its own, a line at a time, so
/// that every wait is bounded.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(15))
        .expect("a line from smtp_sink within 15 s")
}

#[test]
fn smtp_sink_prints_what_python_smtplib_sends() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smtp_sink"))
        .args(["--listen", "127.0.0.1:0", "--domain", "sink.example"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn smtp_sink");
    let lines = lines_of(&mut child);
    let mut sink = Sink(Some(child));
    let first = next(&lines);
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first:?}"))
        .to_owned();
    let port = addr.rsplit_once(':').unwrap().1.to_owned();

    let script = r#"
import smtplib, sys
msg = "Subject: hello\r\nTo: b@example.org\r\n\r\nHi.\r\n.\r\n.dotted\r\nbye\r\n"
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.example", timeout=10) as s:
    print(s.sendmail("a@example.org", ["b@example.org", "c@example.org"], msg))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &port])
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "{}");

    let mut printed = Vec::new();
    loop {
        let line = next(&lines);
        let end = line.starts_with("=== end of message");
        printed.push(line);
        if end {
            break;
        }
    }
    assert!(
        printed[0].starts_with("=== message 1 from 127.0.0.1:"),
        "{printed:?}"
    );
    assert!(
        printed[0].ends_with(" (EHLO client.example, TLS no, user -)"),
        "{printed:?}"
    );
    assert_eq!(
        printed[1..],
        [
            "MAIL FROM:<a@example.org>",
            "RCPT TO:<b@example.org>",
            "RCPT TO:<c@example.org>",
            "",
            "Subject: hello",
            "To: b@example.org",
            "",
            "Hi.",
            ".",
            ".dotted",
            "bye",
            "=== end of message 1 (59 bytes)",
        ]
    );

    let mut child = sink.0.take().unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait().expect("wait")).ok());
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("exited within 5 s of SIGTERM");
    assert!(status.success(), "{status}");
}
