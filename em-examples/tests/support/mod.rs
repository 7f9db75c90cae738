//! Helpers the example tests share: running an example program as a child
//! process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process, ended with SIGTERM (and reaped) when dropped.
#[derive(Debug)]
pub(crate) struct Running(Child);

impl Running {
    /// Starts `bin` with `args` and waits for its `listening on ADDR`.
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
