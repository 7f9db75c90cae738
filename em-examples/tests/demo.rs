//! The demo: it exits 0 at once when its stdout is closed (`demo | head
//! -3`).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn demo_exits_0_when_its_reader_goes_away() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        assert!(out.read_line(&mut line).expect("read a line") > 0);
    }
    drop(out); // As `head -3` does.
    let status = support::wait_within(child, Duration::from_secs(2));
    assert!(status.success(), "{status}");
}
