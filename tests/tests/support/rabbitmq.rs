//! Debian's RabbitMQ for em-amqp's tests: one broker per [`RabbitMq`], on a
//! free loopback TCP port with a scratch data directory, killed on drop;
//! [`RabbitMq::kill`] and [`RabbitMq::restart`] for the tests of a broker
//! going away.
//!
//! The broker is `/usr/lib/rabbitmq/bin/rabbitmq-server` run directly (the
//! `/usr/sbin` wrapper switches user), with every path in the environment
//! pointing into the scratch directory and no plugins. That script is a
//! shell that starts `beam.smp` as its child, so the broker runs in a
//! process group of its own and is killed as a group (SIGKILL). Erlang's
//! helpers (`erl_child_setup`, `inet_gethost`) start their own sessions
//! and exit when `beam.smp` does; the shared `epmd` stays running.
//!
//! Watchdog, for a test process that dies without running `Drop`: a
//! subshell in the broker's group blocks reading a pipe whose only writer
//! is this process; when this process exits, however it exits, the read
//! returns and the subshell kills the whole group (`kill -9 0`).
//!
//! Self-contained (std only), so that other crates' tests can include the
//! same file (`#[path]`).

use std::io::BufRead;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest the broker may take to start (it takes ~5-8 s).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest the broker may take to be gone after SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times [`RabbitMq::start`] picks new ports when one was taken.
const START_ATTEMPTS: usize = 5;

/// The broker's start script (not the `/usr/sbin` wrapper, which switches
/// user).
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// What the broker prints on stdout once it accepts connections.
const READY_LINE: &str = "Starting broker... completed";

/// Runs as the process group's leader: fd 3 keeps the pipe from this
/// process for the watchdog subshell, then the shell becomes the broker.
const LAUNCHER: &str = "exec 3<&0 </dev/null
(read line <&3; kill -9 0) >/dev/null 2>&1 &
exec 3<&-
exec \"$1\" 2>&1";

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(label);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("create a scratch directory");
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the scratch directories of test processes that are gone (a
/// broker shared through a `static` is killed by its watchdog when the
/// process exits, but no `Drop` removes its directory): the names end in
/// `-PID-N`, and `/proc/PID` no longer exists.
fn remove_stale_directories() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("em-test-") {
            continue;
        }
        let mut parts = name.rsplit('-');
        let (Some(n), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        if n.parse::<usize>().is_err() {
            continue;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// What the stdout reader reports.
enum Event {
    Ready,
    Exited,
}

/// The broker's processes while it runs.
struct Running {
    /// The launcher shell, then `rabbitmq-server`: the group's leader.
    child: Child,
    /// The watchdog's pipe: closing it kills the group.
    watchdog: ChildStdin,
}

impl Running {
    /// SIGKILLs the process group and reaps the leader; returns the group.
    fn stop(mut self) -> u32 {
        let group = self.child.id();
        // The watchdog's cue: it runs `kill -9 0` in the group.
        drop(self.watchdog);
        // The same from here, in case the watchdog is gone (procps' kill;
        // dash's builtin takes no process group).
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{group}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        group
    }
}

/// A running RabbitMQ broker, killed on drop (with its scratch directory).
pub struct RabbitMq {
    running: Option<Running>,
    node: String,
    port: u16,
    dist_port: u16,
    /// The broker's last lines of output, for failure messages.
    log: Arc<Mutex<Vec<String>>>,
    dir: TempDir,
}

impl std::fmt::Debug for RabbitMq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMq")
            .field("node", &self.node)
            .field("port", &self.port)
            .field("running", &self.running.is_some())
            .finish()
    }
}

impl RabbitMq {
    /// Starts a broker on a free 127.0.0.1 port and waits (bounded) until it
    /// accepts connections. `label` goes into the node name
    /// (`em-test-LABEL-PID-N@localhost`) and the directory's name.
    ///
    /// Panics if it does not start within a minute.
    pub fn start(label: &str) -> RabbitMq {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        remove_stale_directories();
        let name = format!("em-test-{label}-{}-{n}", std::process::id());
        let mut server = RabbitMq {
            running: None,
            node: format!("{name}@localhost"),
            port: 0,
            dist_port: 0,
            log: Arc::default(),
            dir: TempDir::new(&name),
        };
        std::fs::write(server.dir.join("plugins"), "[].\n").expect("write the plugins file");
        for attempt in 1..=START_ATTEMPTS {
            (server.port, server.dist_port) = free_ports();
            match server.launch() {
                Ok(()) => return server,
                // Someone took a port between our probe and the broker's bind.
                Err(e)
                    if attempt < START_ATTEMPTS
                        && e.to_ascii_lowercase().contains("eaddrinuse") => {}
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    /// The AMQP port, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f` (guest may log in from
    /// loopback only).
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Kills the broker (SIGKILL to its whole process group: no goodbye to
    /// its clients) and waits until its processes are gone and its port
    /// refuses connections. Does nothing if it is not running.
    pub fn kill(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        let group = running.stop();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while group_alive(group) || refused(self.port) != Some(true) {
            assert!(
                Instant::now() < deadline,
                "RabbitMQ ({}) still running {STOP_TIMEOUT:?} after SIGKILL",
                self.node
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded: panics after a minute) until `name` (a durable
    /// queue's or exchange's) is in the broker's files. RabbitMQ records
    /// declarations in Mnesia's log through a write cache flushed about
    /// every 2 s, so a durable queue declared just before a SIGKILL may be
    /// gone after the restart (confirmed persistent messages are written
    /// before their confirm; the declaration is not). Tests that kill the
    /// broker wait for this first.
    pub fn wait_until_on_disk(&self, name: &str) {
        fn holds(dir: &std::path::Path, needle: &[u8]) -> bool {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return false;
            };
            entries.flatten().any(|e| {
                let path = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                // Mnesia's own files only (its log and table dumps): the
                // message store holds routing keys too.
                let mnesia_file =
                    name == "LATEST.LOG" || name.ends_with(".DCD") || name.ends_with(".DCL");
                if path.is_dir() {
                    name != "msg_stores" && holds(&path, needle)
                } else if !mnesia_file {
                    false
                } else {
                    std::fs::read(&path)
                        .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                        .unwrap_or(false)
                }
            })
        }
        let mnesia = self.dir.join("mnesia");
        let deadline = Instant::now() + START_TIMEOUT;
        while !holds(&mnesia, name.as_bytes()) {
            assert!(
                Instant::now() < deadline,
                "{name:?} never reached the broker's files in {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker if it runs, then starts it again on the same port,
    /// node name and data directory, and waits until it accepts
    /// connections. Panics if it does not start within a minute.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.launch() {
            panic!("{e}");
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let dir = |name: &str| self.dir.join(name);
        let mut child = Command::new("sh")
            .args(["-c", LAUNCHER, "em-rabbitmq", SERVER])
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir("plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", dir("ff"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", dir("pe"))
            // Nothing from /etc/rabbitmq.
            .env("RABBITMQ_CONF_ENV_FILE", dir("rabbitmq-env.conf"))
            .env("RABBITMQ_CONFIG_FILE", dir("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir("advanced.config"))
            .env("HOME", &self.dir.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("sh to start rabbitmq-server");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::channel();
        let log = self.log.clone();
        log.lock().unwrap().clear();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains(READY_LINE) {
                    let _ = tx.send(Event::Ready);
                }
                let mut log = log.lock().unwrap();
                if log.len() == 200 {
                    log.remove(0);
                }
                log.push(line);
            }
            let _ = tx.send(Event::Exited);
        });
        self.running = Some(Running {
            child,
            watchdog: stdin,
        });
        let started = Instant::now();
        let failure = match events.recv_timeout(START_TIMEOUT) {
            Ok(Event::Ready) if self.wait_listening(started) => return Ok(()),
            Ok(Event::Ready) => "said it started but refuses connections",
            Ok(Event::Exited) | Err(mpsc::RecvTimeoutError::Disconnected) => "exited",
            Err(mpsc::RecvTimeoutError::Timeout) => "did not start in time",
        };
        let elapsed = started.elapsed();
        self.kill();
        // The reader's last lines.
        while let Ok(Event::Ready) = events.recv_timeout(STOP_TIMEOUT) {}
        Err(format!(
            "RabbitMQ ({}, port {}) {failure} after {elapsed:?} (Debian: apt-get install \
             rabbitmq-server; .ci/run installs it); its output:\n{}",
            self.node,
            self.port,
            self.log.lock().unwrap().join("\n")
        ))
    }

    /// Polls the port (bounded) once the broker says it is up.
    fn wait_listening(&self, started: Instant) -> bool {
        while started.elapsed() < START_TIMEOUT {
            if refused(self.port) == Some(false) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        // No assertion while unwinding: a panic in drop would abort.
        if std::thread::panicking() {
            if let Some(running) = self.running.take() {
                running.stop();
            }
        } else {
            self.kill();
        }
    }
}

/// Two distinct ports that were free on 127.0.0.1 a moment ago.
fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    (port(&a), port(&b))
}

/// Whether a connection to the port is refused: `Some(true)` refused,
/// `Some(false)` accepted, `None` neither (e.g. timed out).
fn refused(port: u16) -> Option<bool> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(_) => Some(false),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(true),
        Err(_) => None,
    }
}

/// Whether any live (not zombie) process is in the process group.
fn group_alive(group: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1);
        state != Some("Z") && pgrp == Some(group.to_string().as_str())
    })
}
