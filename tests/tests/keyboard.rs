//! The keyboard (`em::open_keyboard`): standard input as a connection,
//! read through the reactor where it is a pipe, by em's copier thread where
//! it is a file, `/dev/null` or a terminal, the same connection either way.
//!
//! A process has one standard input, so each test re-runs this test binary
//! as a child (`--exact NAME --nocapture`, with `EM_KEYBOARD_CHILD` saying
//! what the child does) whose standard input is the one under test; the
//! child opens the keyboard and prints what it sees as `KB …` lines, which
//! the parent reads one by one (waiting at most `EVENT_TIMEOUT` for each),
//! then checks its exit status. The terminal tests use a pseudo-terminal,
//! and say so and pass where the system has none.

mod support;

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::LinesCodec;

use support::*;

/// The environment variable that makes a test run its child's part.
const CHILD: &str = "EM_KEYBOARD_CHILD";

// ---- The child: opens the keyboard and reports. ----

/// Prints one line for the parent.
fn report(line: impl std::fmt::Display) {
    println!("KB {line}");
}

/// If this process is a child, runs its part (`mode`) and returns true.
fn run_child() -> bool {
    let Ok(mode) = std::env::var(CHILD) else {
        return false;
    };
    let mode: &'static str = Box::leak(mode.into_boxed_str());
    let builder = match mode {
        "paused" => em::Reactor::builder().start_paused(true),
        _ => em::Reactor::builder(),
    };
    run_builder_with_watchdog(builder, move || -> em::Result<()> {
        em::open_keyboard(Keyboard { mode })?;
        let second = em::open_keyboard(Keyboard { mode: "echo" });
        match second {
            Err(e) if e.is_already_started() => report("second refused"),
            other => report(format!("second {other:?}")),
        }
        if mode == "paused" {
            let start = tokio::time::Instant::now();
            let wall = std::time::Instant::now();
            em::add_timer(Duration::from_secs(3600), move || {
                report(format!("timer after {}s", start.elapsed().as_secs()));
                assert!(wall.elapsed() < EVENT_TIMEOUT, "the clock did not jump");
            })?;
        }
        Ok(())
    })
    .expect("the child's reactor");
    report(format!(
        "closed nonblocking={}",
        is_nonblocking(&io::stdin())
    ));
    true
}

/// The child's keyboard handler: reports everything; what else it does
/// depends on `mode`: `echo` only reports, `quit` stops on a `quit` line,
/// `limit` has a 16-byte line limit, `close` closes the keyboard on a
/// `close` line and opens a new one from `unbind`, `paused` stops on its
/// first line.
struct Keyboard {
    mode: &'static str,
}

impl Connection for Keyboard {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        match self.mode {
            "limit" => LinesCodec::new_with_max_length(16),
            _ => LinesCodec::new_with_max_length(1024),
        }
    }

    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        assert_eq!(conn.peer_addr(), Some(em::Addr::Pipe));
        let refused = conn.try_send_data("nowhere").unwrap_err();
        assert!(refused.is_unsupported(), "{refused}");
        assert_eq!(conn.send_data("nowhere"), 0);
        report(format!("open nonblocking={}", is_nonblocking(&io::stdin())));
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        assert!(em::reactor_thread());
        report(format!("line {line}"));
        match (self.mode, line.as_str()) {
            ("quit", "quit") | ("paused", _) => em::stop(),
            ("close", "close") => conn.close_connection(),
            _ => {}
        }
    }

    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        report(format!("unbind {}", reason(&why)));
        if self.mode == "close" {
            match em::open_keyboard(Keyboard { mode: "echo" }) {
                Ok(_) => report("reopened"),
                Err(e) => report(format!("reopen failed: {e}")),
            }
        } else {
            em::stop();
        }
    }
}

// ---- The parent: runs the child and reads its report. ----

/// A child running one test's child part.
struct Child {
    pid: u32,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    exit: mpsc::Receiver<ExitStatus>,
    stderr: Option<JoinHandle<String>>,
}

impl Child {
    /// Runs test `test` of this binary as a child doing `mode`, with
    /// `stdin` as its standard input.
    fn spawn(test: &str, mode: &str, stdin: Stdio) -> Child {
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args(["--exact", test, "--nocapture"])
            .env(CHILD, mode)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the child");
        let (line_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness may print on the same line before it.
                if let Some((_, report)) = line.split_once("KB ") {
                    if line_tx.send(report.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let mut child_stderr = child.stderr.take().expect("piped stderr");
        let stderr = Some(std::thread::spawn(move || {
            let mut text = String::new();
            let _ = child_stderr.read_to_string(&mut text);
            text
        }));
        let pid = child.id();
        let stdin = child.stdin.take();
        let (exit_tx, exit) = mpsc::channel();
        std::thread::spawn(move || exit_tx.send(child.wait().expect("wait")).ok());
        Child {
            pid,
            stdin,
            lines,
            exit,
            stderr,
        }
    }

    /// Ends the child and fails the test with `why` and its stderr.
    fn fail(&mut self, why: &str) -> ! {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        let _ = self.exit.recv_timeout(EVENT_TIMEOUT);
        let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default());
        panic!(
            "{why}\n--- the child's stderr ---\n{}",
            stderr.unwrap_or_default()
        );
    }

    /// The child's next report.
    fn next(&mut self) -> String {
        match self.lines.recv_timeout(EVENT_TIMEOUT) {
            Ok(report) => report,
            Err(_) => self.fail(&format!(
                "no report from the child within {EVENT_TIMEOUT:?}"
            )),
        }
    }

    /// Checks the child's next reports.
    fn expect(&mut self, reports: &[&str]) {
        for want in reports {
            let got = self.next();
            if got != *want {
                self.fail(&format!("expected {want:?}, the child reported {got:?}"));
            }
        }
    }

    /// Writes `bytes` to the child's standard input.
    fn write(&mut self, bytes: &[u8]) {
        self.stdin
            .as_mut()
            .expect("a piped stdin")
            .write_all(bytes)
            .expect("write to the child");
    }

    /// Closes the child's standard input.
    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for the child to exit, successfully, and checks its last
    /// reports.
    fn finish(mut self, last: &[&str]) {
        let status = match self.exit.recv_timeout(EVENT_TIMEOUT) {
            Ok(status) => status,
            Err(_) => self.fail("the child did not exit"),
        };
        if !status.success() {
            self.fail(&format!("the child exited with {status}"));
        }
        let rest: Vec<String> = self.lines.iter().collect();
        assert_eq!(rest, last, "the child's last reports");
    }
}

/// A pseudo-terminal: its master, and its slave opened as a file for a
/// child's standard input. `None` where the system has none.
fn terminal() -> Option<(File, File)> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).ok()?;
    grantpt(&master).ok()?;
    unlockpt(&master).ok()?;
    let name = ptsname(&master, Vec::new()).ok()?;
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(OsStr::from_bytes(name.as_bytes()))
        .ok()?;
    Some((File::from(master), slave))
}

// ---- The tests. ----

/// From a pipe (read through the reactor, non-blocking only while the
/// keyboard is open): each line as it is written, `send_data` refused, a
/// second keyboard refused, end of input as `unbind(PeerClosed)`.
#[test]
fn keyboard_reads_lines_from_a_pipe() {
    if run_child() {
        return;
    }
    let mut child = Child::spawn("keyboard_reads_lines_from_a_pipe", "echo", Stdio::piped());
    child.expect(&["open nonblocking=true", "second refused"]);
    for line in ["one", "two", "", "three"] {
        child.write(format!("{line}\n").as_bytes());
        child.expect(&[&format!("line {line}")]);
    }
    child.write(b"no newline at the end");
    child.close_stdin();
    child.expect(&["line no newline at the end", "unbind PeerClosed"]);
    child.finish(&["closed nonblocking=false"]);
}

/// From a file redirected into standard input (read by the copier thread,
/// standard input left in blocking mode): every line in order, more than a
/// pipe holds, then `unbind(PeerClosed)`.
#[test]
fn keyboard_reads_a_file_redirected_into_stdin() {
    if run_child() {
        return;
    }
    let dir = TempDir::new("keyboard");
    let path = dir.join("input");
    let lines: Vec<String> = (0..10_000)
        .map(|i| format!("line {i} of the file"))
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let mut child = Child::spawn(
        "keyboard_reads_a_file_redirected_into_stdin",
        "echo",
        Stdio::from(File::open(&path).unwrap()),
    );
    child.expect(&["open nonblocking=false", "second refused"]);
    for line in &lines {
        child.expect(&[&format!("line {line}")]);
    }
    child.expect(&["unbind PeerClosed"]);
    child.finish(&["closed nonblocking=false"]);
}

/// From `/dev/null`: end of input at once.
#[test]
fn keyboard_from_dev_null_ends_at_once() {
    if run_child() {
        return;
    }
    let mut child = Child::spawn("keyboard_from_dev_null_ends_at_once", "echo", Stdio::null());
    child.expect(&[
        "open nonblocking=false",
        "second refused",
        "unbind PeerClosed",
    ]);
    child.finish(&["closed nonblocking=false"]);
}

/// From a terminal (read by the copier thread, the terminal never made
/// non-blocking): lines as typed; a `quit` line stops the program while the
/// terminal stays open, the copier thread still waiting in its read.
#[test]
fn keyboard_reads_a_terminal_and_quits_while_it_stays_open() {
    if run_child() {
        return;
    }
    let Some((mut master, slave)) = terminal() else {
        eprintln!("no pseudo-terminal on this system: the terminal test did not run");
        return;
    };
    let mut child = Child::spawn(
        "keyboard_reads_a_terminal_and_quits_while_it_stays_open",
        "quit",
        Stdio::from(slave),
    );
    child.expect(&["open nonblocking=false", "second refused"]);
    for line in ["typed", "on a terminal"] {
        master.write_all(format!("{line}\n").as_bytes()).unwrap();
        child.expect(&[&format!("line {line}")]);
    }
    master.write_all(b"quit\n").unwrap();
    child.expect(&["line quit", "unbind ReactorStopped"]);
    child.finish(&["closed nonblocking=false"]);
    drop(master); // only now: the terminal stayed open all along
}

/// A line longer than the codec's limit ends the keyboard with a codec
/// error in `unbind`, while standard input stays open.
#[test]
fn a_line_longer_than_the_codec_limit_ends_the_keyboard() {
    if run_child() {
        return;
    }
    let mut child = Child::spawn(
        "a_line_longer_than_the_codec_limit_ends_the_keyboard",
        "limit",
        Stdio::piped(),
    );
    child.expect(&["open nonblocking=true", "second refused"]);
    child.write(b"fits\n");
    child.expect(&["line fits"]);
    child.write(format!("{}\n", "x".repeat(100)).as_bytes());
    child.expect(&["unbind Codec(MaxLineLengthExceeded)"]);
    child.finish(&["closed nonblocking=false"]);
}

/// `close_connection` ends the keyboard (`unbind(Closed)`), after which a
/// new keyboard may be opened, at once, from that `unbind`; it reads on.
#[test]
fn close_connection_ends_the_keyboard_and_a_new_one_can_open() {
    if run_child() {
        return;
    }
    let mut child = Child::spawn(
        "close_connection_ends_the_keyboard_and_a_new_one_can_open",
        "close",
        Stdio::piped(),
    );
    child.expect(&["open nonblocking=true", "second refused"]);
    child.write(b"before\nclose\n");
    child.expect(&[
        "line before",
        "line close",
        "unbind Closed",
        "open nonblocking=true",
        "reopened",
    ]);
    child.write(b"after\n");
    child.expect(&["line after"]);
    child.close_stdin();
    child.expect(&["unbind PeerClosed"]);
    child.finish(&["closed nonblocking=false"]);
}

/// Under tokio's paused clock, the clock still jumps to the next timer
/// while the keyboard waits for input, whether em reads standard input
/// through the reactor (a pipe) or through its copier thread (a terminal,
/// where the thread is blocked in a read): neither uses tokio's blocking
/// pool, which would hold the clock. The child's one-hour timer fires at
/// once; only then does the parent type the line that stops it.
#[test]
fn the_paused_clock_advances_while_the_keyboard_waits() {
    if run_child() {
        return;
    }
    const TEST: &str = "the_paused_clock_advances_while_the_keyboard_waits";
    let mut child = Child::spawn(TEST, "paused", Stdio::piped());
    child.expect(&[
        "open nonblocking=true",
        "second refused",
        "timer after 3600s",
    ]);
    child.write(b"now\n");
    child.expect(&["line now", "unbind ReactorStopped"]);
    child.finish(&["closed nonblocking=false"]);

    let Some((mut master, slave)) = terminal() else {
        eprintln!("no pseudo-terminal on this system: the terminal half did not run");
        return;
    };
    let mut child = Child::spawn(TEST, "paused", Stdio::from(slave));
    child.expect(&[
        "open nonblocking=false",
        "second refused",
        "timer after 3600s",
    ]);
    master.write_all(b"now\n").unwrap();
    child.expect(&["line now", "unbind ReactorStopped"]);
    child.finish(&["closed nonblocking=false"]);
}
