//! Debian's redis-server for em-redis's tests: started on a Unix-domain
//! socket in a scratch directory (no TCP port, so nothing to race for),
//! with no persistence, killed on drop; [`RedisServer::kill`] and
//! [`RedisServer::restart`] for the tests of a broker going away.
//!
//! Self-contained, so that the examples' tests include the same file
//! (`#[path]`) to run `pubsub --redis` against it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The longest redis-server may take to start.
const EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("em-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("create a scratch directory");
        TempDir(path)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
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

/// A running redis-server, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts redis-server and waits (bounded) until it answers.
    pub fn start(label: &str) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            dir: TempDir::new(&format!("redis-{label}")),
        };
        server.launch();
        server
    }

    /// The socket's path.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// The address for em: the Unix-domain socket.
    pub fn endpoint(&self) -> em::Endpoint {
        em::Endpoint::unix(self.socket())
    }

    fn launch(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server (Debian: apt-get install redis-server; .ci/run installs it)");
        // redis-server logs "… ready to accept connections …" on stdout once it
        // listens: wait for that line, then keep draining its log.
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line
                    .to_ascii_lowercase()
                    .contains("ready to accept connections")
                {
                    let _ = ready_tx.send(());
                }
            }
        });
        self.child = Some(child);
        ready_rx
            .recv_timeout(EVENT_TIMEOUT)
            .unwrap_or_else(|_| panic!("redis-server did not start within {EVENT_TIMEOUT:?}"));
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits for
    /// it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same socket (empty: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
