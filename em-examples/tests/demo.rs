//! The demo: it exits 0 at once when its stdout is closed (`demo | head
//! -3`), prints its `next_tick` line when the tick runs, and peer
//! addresses as addresses.

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

#[test]
fn demo_prints_the_tick_when_it_runs_and_addresses_without_option() {
    let out = support::output_within(
        env!("CARGO_BIN_EXE_demo"),
        &[],
        &[],
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in\n{stdout}"))
    };
    let queued = at("next_tick queued");
    let block_done = at("client: em::connect returned");
    let runs = at("next_tick runs");
    assert!(queued < block_done && block_done < runs, "{stdout}");
    assert!(!stdout.contains("Some("), "{stdout}");
    assert!(
        lines[at("server: accepted")].contains(" from 127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        lines[at("client: connected to")].contains(" to 127.0.0.1:"),
        "{stdout}"
    );
}
