//! `tail FILE` prints each line appended to FILE (and nothing that was
//! there before it started) within a bounded time, starts over after a
//! truncation, keeps following the file after a rename, and exits 0 on
//! SIGTERM, or once its stdout is closed.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// How long one line may take to come out.
const WITHIN: Duration = Duration::from_secs(5);

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!("em-tail-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create a scratch directory");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
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

fn append(path: &Path, line: &str) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open to append")
        .write_all(format!("{line}\n").as_bytes())
        .expect("append");
}

/// The child, killed and reaped if the test fails before it exits.
struct Tail(Option<Child>);

impl Drop for Tail {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn tail_prints_appended_lines_survives_truncation_and_rename_and_exits_0_on_sigterm() {
    let scratch = Scratch::new("follow");
    let file = scratch.0.join("app.log");
    fs::write(&file, "there before\nalso before\n").expect("write the file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tail"))
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    let pid = child.id();
    let mut tail = Tail(Some(child));

    let ready = next(&err, "readiness line");
    assert_eq!(
        ready,
        format!("tail: following {} from byte 25", file.display())
    );
    // Each line, in order, within the bound; nothing from before.
    for i in 0..20 {
        let line = format!("line {i}");
        append(&file, &line);
        assert_eq!(next(&out, "appended line"), line);
    }
    // Truncated: said on stderr, then the new content from its start.
    OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    assert_eq!(
        next(&err, "truncation notice"),
        format!("tail: {}: file truncated", file.display())
    );
    append(&file, "after the truncation");
    assert_eq!(
        next(&out, "line after the truncation"),
        "after the truncation"
    );
    // Rotated away by a rename: tail follows the file, not the name.
    let rotated = scratch.0.join("app.log.1");
    fs::rename(&file, &rotated).expect("rename");
    append(&rotated, "written to the rotated file");
    assert_eq!(
        next(&out, "line of the rotated file"),
        "written to the rotated file"
    );

    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let mut child = tail.0.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait().expect("wait")).ok());
    let status = rx.recv_timeout(WITHIN).expect("exited after SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn tail_of_a_missing_file_fails_with_a_message() {
    let scratch = Scratch::new("missing");
    let missing = scratch.0.join("missing.log");
    let output = Command::new(env!("CARGO_BIN_EXE_tail"))
        .arg(&missing)
        .output()
        .expect("run tail");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&*missing.to_string_lossy()),
        "names the file: {stderr}"
    );
}

#[test]
fn tail_exits_0_once_its_reader_goes_away() {
    let scratch = Scratch::new("reader-gone");
    let file = scratch.0.join("app.log");
    fs::write(&file, "").expect("write the file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tail"))
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    let mut tail = Tail(Some(child));
    next(&err, "readiness line");
    append(&file, "read");
    assert_eq!(next(&out, "appended line"), "read");
    drop(out); // The reader thread ends with the next line, closing the pipe.
    append(&file, "not read");
    let mut child = tail.0.take().unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait().expect("wait")).ok());
    let deadline = std::time::Instant::now() + WITHIN;
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(status) => break status,
            // More to write, until tail finds the pipe closed.
            Err(_) if std::time::Instant::now() < deadline => append(&file, "more"),
            Err(e) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("tail did not exit: {e}");
            }
        }
    };
    assert!(status.success(), "{status}");
    let said: Vec<String> = err.try_iter().collect();
    assert!(said.is_empty(), "{said:?}");
}
