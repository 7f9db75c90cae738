//! `popen [--] PROGRAM [ARG…]` feeds the command what arrives on its
//! standard input, prints each line of the command's output with its time
//! (`[+S.mmms] LINE`), then `exit status N` or `killed by signal S (NAME)`,
//! and exits 0; it exits 1 naming a command that cannot be started, and on
//! SIGTERM ends the command with SIGTERM and reports it. Every wait is
//! bounded, and none is a sleep.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// How long one line, or the example's exit, may take.
const WITHIN: Duration = Duration::from_secs(10);

/// The example, killed and reaped if the test fails before it exits.
struct Popen {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Its stdout, line by line.
    out: Receiver<String>,
    /// Its stderr, line by line.
    err: Receiver<String>,
}

impl Popen {
    /// Starts the example with `args`, its standard streams piped.
    fn start(args: &[&str]) -> Popen {
        let mut child = Command::new(env!("CARGO_BIN_EXE_popen"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the popen example");
        Popen {
            stdin: child.stdin.take(),
            out: lines(child.stdout.take().expect("piped stdout")),
            err: lines(child.stderr.take().expect("piped stderr")),
            child: Some(child),
        }
    }

    /// Writes `bytes` to the example's stdin.
    fn type_in(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(bytes)
            .expect("write to the example's stdin");
        stdin.flush().expect("flush");
    }

    /// Closes the example's stdin: the end of the input.
    fn end_input(&mut self) {
        self.stdin = None;
    }

    /// Waits for the readiness line on stderr (`popen: started … (pid N)`).
    fn started(&self) -> String {
        let line = next(&self.err, "readiness line");
        assert!(line.starts_with("popen: started "), "{line:?}");
        line
    }

    /// Waits (bounded) for the example to exit; its status, the rest of
    /// its stdout and the rest of its stderr.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let mut child = self.child.take().expect("not finished yet");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait().expect("wait")).ok());
        let status = rx
            .recv_timeout(WITHIN)
            .unwrap_or_else(|_| panic!("the popen example still ran {WITHIN:?} later"));
        // Its stdout closed with its exit, its stderr once the command
        // (which shares it) has exited too.
        let out = rest(&self.out, "stdout");
        let err = rest(&self.err, "stderr").join("\n");
        (status, out, err)
    }
}

impl Drop for Popen {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The lines a reader yields, one by one, through a channel (so that
/// waiting for one is bounded).
fn lines(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line, within [`WITHIN`].
fn next(rx: &Receiver<String>, what: &str) -> String {
    rx.recv_timeout(WITHIN)
        .unwrap_or_else(|e| panic!("no {what} within {WITHIN:?}: {e}"))
}

/// The lines left until the end of a reader, within [`WITHIN`].
fn rest(rx: &Receiver<String>, what: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(WITHIN) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected) => return lines,
            Err(RecvTimeoutError::Timeout) => panic!("{what} still open {WITHIN:?} later"),
        }
    }
}

/// Splits `[+S.mmms] LINE` into the seconds and the line.
fn timed(line: &str) -> (f64, &str) {
    let is_time = |secs: &str| match secs.split_once('.') {
        Some((whole, millis)) => {
            !whole.is_empty()
                && millis.len() == 3
                && whole
                    .bytes()
                    .chain(millis.bytes())
                    .all(|b| b.is_ascii_digit())
        }
        None => false,
    };
    let (secs, text) = line
        .strip_prefix("[+")
        .and_then(|rest| rest.split_once("s] "))
        .filter(|(secs, _)| is_time(secs))
        .unwrap_or_else(|| panic!("not `[+S.mmms] LINE`: {line:?}"));
    (secs.parse().expect("seconds"), text)
}

/// Runs the example on `args` with nothing on its stdin; its status, its
/// stdout and its stderr.
fn run(args: &[&str]) -> (ExitStatus, Vec<String>, String) {
    let mut popen = Popen::start(args);
    popen.end_input();
    popen.finish()
}

#[test]
fn each_line_typed_comes_back_from_cat_timed_then_exit_status_0() {
    let mut popen = Popen::start(&["--", "cat"]);
    popen.started();
    let mut last = 0.0;
    // One line at a time, each back before the next is typed: the
    // command's output is printed as it comes, not at its end.
    for word in ["hello", "from", "em", "  spaced  ", ""] {
        popen.type_in(format!("{word}\n").as_bytes());
        let line = next(&popen.out, "line back from cat");
        let (secs, text) = timed(&line);
        assert_eq!(text, word, "{line:?}");
        assert!(secs >= last, "time goes forward: {line:?} after {last}");
        last = secs;
    }
    // Several lines in one write, then the end of the input closes cat's
    // stdin, and cat exits.
    popen.type_in(b"one\ntwo\nunfinished");
    popen.end_input();
    let (status, out, _) = popen.finish();
    assert!(status.success(), "{status}");
    let texts: Vec<&str> = out[..out.len() - 1].iter().map(|l| timed(l).1).collect();
    assert_eq!(texts, ["one", "two", "unfinished"]);
    assert_eq!(out.last().map(String::as_str), Some("exit status 0"));
}

#[test]
fn the_commands_exit_status_is_the_last_line_and_popen_exits_0() {
    let (status, out, _) = run(&["--", "sh", "-c", "printf 'no newline'; exit 3"]);
    assert!(status.success(), "popen itself exits 0: {status}");
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(timed(&out[0]).1, "no newline");
    assert_eq!(out[1], "exit status 3");
}

#[test]
fn a_command_killed_by_a_signal_is_reported_with_its_number_and_name() {
    let (status, out, _) = run(&["--", "sh", "-c", "kill -9 $$"]);
    assert!(status.success(), "{status}");
    assert_eq!(out, ["killed by signal 9 (SIGKILL)"]);
}

#[test]
fn a_command_that_cannot_start_is_named_on_stderr_and_popen_exits_1() {
    let (status, out, err) = run(&["--", "/nonexistent"]);
    assert_eq!(status.code(), Some(1), "{status}");
    assert!(out.is_empty(), "{out:?}");
    assert!(err.contains("/nonexistent"), "names the command: {err:?}");
    assert!(err.contains("cannot start"), "{err:?}");
}

#[test]
fn stderr_is_the_commands_own_unless_merged() {
    let script = "echo out; echo err >&2";
    let (status, out, err) = run(&["--", "sh", "-c", script]);
    assert!(status.success(), "{status}");
    assert_eq!(timed(&out[0]).1, "out");
    assert_eq!(&out[1..], ["exit status 0"]);
    assert!(err.lines().any(|l| l == "err"), "inherited: {err:?}");

    let (status, out, err) = run(&["--merge-stderr", "--", "sh", "-c", script]);
    assert!(status.success(), "{status}");
    let texts: Vec<&str> = out[..out.len() - 1].iter().map(|l| timed(l).1).collect();
    assert_eq!(texts, ["out", "err"]);
    assert_eq!(out.last().map(String::as_str), Some("exit status 0"));
    assert!(!err.lines().any(|l| l == "err"), "merged: {err:?}");
}

/// SIGTERM to the example, sent once it says the command runs, ends the
/// command with SIGTERM; the example reports it and exits 0.
#[test]
fn sigterm_ends_the_command_with_sigterm_and_popen_reports_it() {
    let popen = Popen::start(&["--", "sleep", "60"]);
    let ready = popen.started();
    assert!(ready.ends_with(')'), "{ready:?}");
    let pid = popen.child.as_ref().unwrap().id();
    terminate(pid);
    let (status, out, _) = popen.finish();
    assert!(status.success(), "{status}");
    assert_eq!(out, ["killed by signal 15 (SIGTERM)"]);
}

/// Sends SIGTERM to process `pid`, a child of ours not yet reaped.
#[allow(unsafe_code)]
fn terminate(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // `pid` is our own child, not yet reaped, so it names that process.
    let r = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
}
