//! The `keyboard` example echoes what arrives on its standard input and
//! exits 0 on a `quit` line, even while its standard input stays open, and
//! at end of input; from a pipe, a file and `/dev/null`. Every wait is
//! bounded.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the example may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the example with `stdin`, its stdout piped.
fn start(stdin: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keyboard"))
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the keyboard example")
}

/// Waits (bounded) for `child` to exit; its status and all it wrote on
/// stdout. Kills it if it does not exit in time, and fails.
fn finish(mut child: Child) -> (ExitStatus, String) {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).expect("read stdout");
        tx.send((child.wait().expect("wait"), out)).ok();
    });
    rx.recv_timeout(EXIT_TIMEOUT).unwrap_or_else(|_| {
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .ok();
        panic!("the keyboard example still ran {EXIT_TIMEOUT:?} later");
    })
}

#[test]
fn quit_stops_the_example_while_its_stdin_stays_open() {
    let mut child = start(Stdio::piped());
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"hello\nworld\nquit\n").unwrap();
    // `stdin` stays open until the example has exited.
    let (status, out) = finish(child);
    drop(stdin);
    assert!(status.success(), "{status}");
    assert_eq!(out, "> hello\n> world\n> ");
}

#[test]
fn end_of_input_stops_the_example() {
    let mut child = start(Stdio::piped());
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"only line\n").unwrap();
    drop(stdin);
    let (status, out) = finish(child);
    assert!(status.success(), "{status}");
    assert_eq!(out, "> only line\n> \n");
}

/// Standard input from a file and from `/dev/null` (read by em's copier
/// thread, not the reactor): the same behaviour.
#[test]
fn the_example_reads_a_file_and_dev_null() {
    let path = std::env::temp_dir().join(format!("em-keyboard-example-{}", std::process::id()));
    std::fs::write(&path, "from a file\nquit\nnever echoed\n").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let (status, out) = finish(start(Stdio::from(file)));
    std::fs::remove_file(&path).ok();
    assert!(status.success(), "{status}");
    assert_eq!(out, "> from a file\n> ");

    let (status, out) = finish(start(Stdio::null()));
    assert!(status.success(), "{status}");
    assert_eq!(out, "> \n");
}

/// A line longer than `--max-line` ends the input with an error: exit 1.
#[test]
fn a_line_too_long_makes_the_example_fail() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyboard"))
        .args(["--max-line", "8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the keyboard example");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"short\nmuch too long a line\n").unwrap();
    let (status, out) = finish(child);
    drop(stdin);
    assert_eq!(status.code(), Some(1), "{status}");
    assert_eq!(out, "> short\n> ");
}
