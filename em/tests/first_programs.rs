//! The first programs an EventMachine user writes, run as programs: each
//! of `em/examples` (echo server and client, chat, timers, defer, a
//! procedural client) does what its EventMachine twin in
//! `bench/baselines/first_programs` does, with the same output, and the
//! clients and servers talk across the two; and no em program is more
//! than 1.3 times as long as its twin (`bench/boilerplate.sh`).
//!
//! Needs Ruby with EventMachine and em-synchrony (Debian's
//! `ruby-eventmachine` and `ruby-em-synchrony`, which `.ci/run` installs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest any one program may take.
const LIMIT: Duration = Duration::from_secs(20);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The example's binary, which `cargo test` builds beside the tests
/// (`target/<profile>/examples/NAME`).
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (`cargo test -p em-toolkit` does)",
        path.display()
    );
    Command::new(path)
}

/// The EventMachine twin, run by Ruby.
fn twin(name: &str) -> Command {
    let ok = Command::new("ruby")
        .args(["-e", "require 'eventmachine'; require 'em-synchrony'"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "Ruby with EventMachine and em-synchrony is missing: apt-get install ruby-eventmachine ruby-em-synchrony"
    );
    let mut cmd = Command::new("ruby");
    cmd.arg(workspace().join(format!("bench/baselines/first_programs/{name}.rb")));
    cmd
}

/// Runs a program that ends by itself; its standard output.
fn output(mut cmd: Command) -> String {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let id = child.id();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(LIMIT) {
        Ok(out) => {
            let out = out.unwrap();
            assert!(out.status.success(), "{cmd:?} failed: {}", out.status);
            String::from_utf8(out.stdout).unwrap()
        }
        Err(_) => {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("{cmd:?} did not end within {LIMIT:?}");
        }
    }
}

/// A server program, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts `cmd` with port 0 and waits for its `listening on HOST:PORT`.
    fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep reading, so that the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx.recv_timeout(LIMIT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("{cmd:?} never said where it listens");
        });
        let port = line
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{cmd:?} said {line:?}"));
        Server { child, port }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads until `want` bytes came (or the peer closed).
fn read_n(s: &mut TcpStream, want: usize) -> String {
    let mut got = vec![0; want];
    s.read_exact(&mut got).unwrap();
    String::from_utf8(got).unwrap()
}

#[test]
fn the_echo_servers_answer_alike_and_close_on_quit() {
    for server in [
        Server::start(example("echo_server")),
        Server::start(twin("echo_server")),
    ] {
        let mut c = server.connect();
        c.write_all(b"hello").unwrap();
        assert_eq!(read_n(&mut c, 18), ">>>you sent: hello");
        // `close_connection` closes at once: the reply to "Quit" may be
        // dropped (as EventMachine drops what is still queued), but the
        // connection ends.
        c.write_all(b"Quit").unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty() || rest == b">>>you sent: Quit",
            "closed after quit, got {rest:?}"
        );
    }
}

#[test]
fn each_echo_client_talks_to_each_echo_server() {
    for server in [
        Server::start(example("echo_server")),
        Server::start(twin("echo_server")),
    ] {
        let port = server.port.to_string();
        for mut client in [
            example("echo_client"),
            twin("echo_client"),
            example("procedural_client"),
            twin("procedural_client"),
        ] {
            client.arg(&port);
            let shown = format!("{client:?}");
            assert_eq!(output(client), "got: >>>you sent: hello\n", "{shown}");
        }
    }
}

#[test]
fn the_chat_servers_send_each_line_to_everyone() {
    for server in [Server::start(example("chat")), Server::start(twin("chat"))] {
        let mut a = server.connect();
        let mut b = server.connect();
        // Both are subscribed once each has had a line through.
        for (from, text) in [(&mut a, "a is here\n"), (&mut b, "b is here\n")] {
            from.write_all(text.as_bytes()).unwrap();
            let mut line = String::new();
            BufReader::new(from).read_line(&mut line).unwrap();
        }
        a.write_all(b"hi all\r\n").unwrap();
        for c in [&mut a, &mut b] {
            let mut r = BufReader::new(c);
            let mut line = String::new();
            loop {
                line.clear();
                assert_ne!(r.read_line(&mut line).unwrap(), 0, "closed");
                if line == "hi all\n" {
                    break;
                }
                assert!(line.ends_with(" is here\n"), "{line:?}");
            }
        }
    }
}

#[test]
fn the_timer_programs_print_alike() {
    let started = Instant::now();
    let em = output(example("timers"));
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "done after the 0.5 s timer"
    );
    assert_eq!(em, "tick 1\ntick 2\ntick 3\ndone\n");
    assert_eq!(output(twin("timers")), em);
}

#[test]
fn the_defer_programs_print_alike() {
    let em = output(example("defer"));
    assert_eq!(em, "the answer is 42\n");
    assert_eq!(output(twin("defer")), em);
}

#[test]
fn no_em_program_is_more_than_1_3_times_its_eventmachine_twin() {
    let out = Command::new(workspace().join("bench/boilerplate.sh"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        table.lines().count(),
        7,
        "a header and six programs:\n{table}"
    );
}
