//! Helpers the example tests share: running an example program as a child
//! process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// A child process, ended with SIGTERM (and reaped) when dropped.
#[derive(Debug)]
pub(crate) struct Running(Child);

impl Running {
    /// Starts `bin` with `args` and waits for its `listening on ADDR`.
    #[allow(dead_code)] // Not every test starts a server.
    pub(crate) fn start(bin: &str, args: &[&str]) -> (Running, String) {
        let mut child = Command::new(bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the example");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read its first line");
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{bin}: {line:?}"))
            .trim()
            .to_owned();
        (Running(child), addr)
    }

    /// Sends SIGTERM and checks that it exits 0 within 5 s.
    #[allow(dead_code)] // Not every test stops its child with a signal.
    pub(crate) fn terminate(mut self) {
        let pid = self.0.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let mut child = std::mem::replace(
            &mut self.0,
            Command::new("true").spawn().expect("spawn true"),
        );
        std::thread::spawn(move || tx.send(child.wait().expect("wait")).ok());
        let status = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("exited within 5 s of SIGTERM");
        assert!(status.success(), "{status}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `limit` for `child` to exit; kills it and panics if it has
/// not by then.
#[allow(dead_code)] // Not every test waits for a child to exit by itself.
pub(crate) fn wait_within(mut child: Child, limit: Duration) -> ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the example did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `bin` with `args` (and `env`) to completion, its output captured;
/// panics if it takes longer than `limit`.
#[allow(dead_code)] // Not every test runs a program to completion.
pub(crate) fn output_within(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> Output {
    let child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the example");
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || tx.send(child.wait_with_output().expect("wait")).ok());
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("{bin} did not exit within {limit:?}")
    })
}
