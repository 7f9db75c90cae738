//! Debian's nginx as a server em's code did not write, for the HTTP client
//! tests: started on free loopback ports with its own configuration in a
//! scratch directory, killed on drop.
//!
//! What it serves (`root` is the scratch directory's `www`):
//! - `/small.txt` (`"small file\n"`), `/kib.bin` (1 KiB of
//!   [`pattern`](super::pattern)), `/text.txt` ([`TEXT_LEN`] bytes of
//!   text: gzipped, hence chunked, when asked), `/huge.bin` (a sparse file
//!   of [`HUGE_LEN`] zero bytes);
//! - `/r/301` … `/r/308`: `return CODE /small.txt`; `/r/307-dav`,
//!   `/r/308-dav`: to `/dav/redirected.txt`;
//! - `/chain/N` (N = 1..=8): N redirects, then `/small.txt`; `/loop`
//!   redirects to itself;
//! - `/dav/`: WebDAV `PUT` and `DELETE`, so nginx stores a request body
//!   that a `GET` then returns;
//! - the same files over TLS on [`Nginx::tls_port`] when started with
//!   [`Nginx::start_tls`], which also asks for (and checks against the
//!   test CA) an optional client certificate: `/client-cert` answers its
//!   subject, or 403 with why there is none.
//!
//! The access log has one line per request: `$connection
//! $connection_requests $request_method $uri $status`, so a test counts the
//! TCP connections nginx saw.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::Certs;
use super::{pattern, TempDir, EVENT_TIMEOUT};

/// The body of `/small.txt`.
pub const SMALL: &str = "small file\n";
/// The length of `/huge.bin` (1 GiB, sparse).
pub const HUGE_LEN: u64 = 1 << 30;
/// The length of `/text.txt`.
pub const TEXT_LEN: usize = 200_000;

/// The body of `/kib.bin`.
pub fn kib() -> Vec<u8> {
    pattern(1024, 1)
}

/// The body of `/text.txt`.
pub fn text() -> String {
    (0..)
        .map(|i| format!("line {i} of a text nginx compresses\n"))
        .flat_map(|l| l.into_bytes())
        .take(TEXT_LEN)
        .map(char::from)
        .collect()
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// nginx's connection serial number.
    pub connection: u64,
    /// The request's number on its connection (from 1).
    pub nth: u64,
    pub method: String,
    pub uri: String,
    pub status: u16,
}

/// A running nginx (one process, no master), killed on drop.
pub struct Nginx {
    child: Child,
    dir: TempDir,
    /// The plain HTTP port on 127.0.0.1.
    pub port: u16,
    /// The TLS port on 127.0.0.1 (0 without TLS).
    pub tls_port: u16,
}

impl std::fmt::Debug for Nginx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nginx")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("tls_port", &self.tls_port)
            .finish()
    }
}

/// The nginx binary: on the PATH, or Debian's `/usr/sbin/nginx`. Panics
/// when there is none: CI installs it (`.ci/run`), so a missing nginx is a
/// broken setup, not a test to skip.
pub fn binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nginx"))
            .find(|p| p.is_file())
    });
    let found = on_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    });
    found.expect(
        "nginx is not installed (neither on PATH nor /usr/sbin/nginx): \
         the HTTP client interop tests need it; `apt-get install nginx-light` \
         (.ci/run does)",
    )
}

/// A loopback port free now (bound, read, released): nginx binds it next.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl Nginx {
    /// nginx serving plain HTTP.
    pub fn start(label: &str) -> Nginx {
        Nginx::launch(label, None)
    }

    /// nginx serving plain HTTP and, on [`tls_port`](Nginx::tls_port),
    /// TLS with `certs`' server certificate (for `localhost`).
    pub fn start_tls(label: &str, certs: &Certs) -> Nginx {
        Nginx::launch(label, Some(certs))
    }

    fn launch(label: &str, certs: Option<&Certs>) -> Nginx {
        let nginx = binary();
        let dir = TempDir::new(&format!("nginx-{label}"));
        let www = dir.join("www");
        fs::create_dir_all(www.join("dav")).unwrap();
        fs::create_dir_all(www.join("chain")).unwrap();
        fs::create_dir_all(dir.join("tmp")).unwrap();
        fs::write(www.join("small.txt"), SMALL).unwrap();
        fs::write(www.join("kib.bin"), kib()).unwrap();
        fs::write(www.join("text.txt"), text()).unwrap();
        fs::File::create(www.join("huge.bin"))
            .and_then(|f| f.set_len(HUGE_LEN))
            .expect("a sparse 1 GiB file");

        let d = dir.path().display();
        let port = free_port();
        let tls_port = if certs.is_some() { free_port() } else { 0 };
        let mut locations = String::new();
        for code in [301, 302, 303, 307, 308] {
            locations += &format!("location = /r/{code} {{ return {code} /small.txt; }}\n");
        }
        for code in [307, 308] {
            locations +=
                &format!("location = /r/{code}-dav {{ return {code} /dav/redirected.txt; }}\n");
        }
        for n in 1..=8 {
            let to = if n == 1 {
                "/small.txt".to_owned()
            } else {
                format!("/chain/{}", n - 1)
            };
            locations += &format!("location = /chain/{n} {{ return 302 {to}; }}\n");
        }
        let tls_server = match certs {
            Some(c) => format!(
                "server {{
                    listen 127.0.0.1:{tls_port} ssl;
                    server_name localhost;
                    ssl_certificate {};
                    ssl_certificate_key {};
                    ssl_client_certificate {};
                    ssl_verify_client optional;
                    root {d}/www;
                    location = /client-cert {{
                        if ($ssl_client_verify != SUCCESS) {{ return 403 \"$ssl_client_verify\n\"; }}
                        return 200 \"$ssl_client_s_dn\n\";
                    }}
                }}",
                c.cert.display(),
                c.key.display(),
                c.ca.display()
            ),
            None => String::new(),
        };
        let conf = format!(
            "worker_processes 1;
            master_process off;
            daemon off;
            pid {d}/nginx.pid;
            error_log {d}/error.log info;
            worker_rlimit_nofile 8192;
            events {{ worker_connections 4096; }}
            http {{
                log_format conns '$connection $connection_requests $request_method $uri $status';
                access_log {d}/access.log conns;
                client_body_temp_path {d}/tmp/body;
                proxy_temp_path {d}/tmp/proxy;
                fastcgi_temp_path {d}/tmp/fastcgi;
                uwsgi_temp_path {d}/tmp/uwsgi;
                scgi_temp_path {d}/tmp/scgi;
                types {{ text/plain txt; application/octet-stream bin; }}
                default_type application/octet-stream;
                sendfile on;
                keepalive_timeout 60s;
                keepalive_requests 100000;
                client_max_body_size 10m;
                gzip on;
                gzip_types text/plain;
                gzip_min_length 20;
                server {{
                    listen 127.0.0.1:{port};
                    server_name localhost;
                    root {d}/www;
                    {locations}
                    location = /loop {{ return 302 /loop; }}
                    location /dav/ {{
                        dav_methods PUT DELETE;
                        create_full_put_path on;
                    }}
                }}
                {tls_server}
            }}
            "
        );
        fs::write(dir.join("nginx.conf"), conf).unwrap();
        let stderr = fs::File::create(dir.join("stderr.log")).unwrap();
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", nginx.display()));
        let mut server = Nginx {
            child,
            dir,
            port,
            tls_port,
        };
        server.wait_until_listening(port);
        if tls_port != 0 {
            server.wait_until_listening(tls_port);
        }
        server
    }

    /// Tries to connect until nginx accepts (bounded by `EVENT_TIMEOUT`);
    /// fails at once, with its error log, if nginx exited.
    fn wait_until_listening(&mut self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let give_up = Instant::now() + EVENT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for nginx") {
                panic!(
                    "nginx exited ({status}) before listening on {port}:\n{}",
                    self.errors()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < give_up,
                "nginx did not listen on {port} within {EVENT_TIMEOUT:?}:\n{}",
                self.errors()
            );
            // Between two connect attempts, not to synchronise: the
            // attempt is the check.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// nginx's error log and standard error, for failure messages.
    pub fn errors(&self) -> String {
        let mut out = String::new();
        for name in ["stderr.log", "error.log"] {
            if let Ok(mut f) = fs::File::open(self.dir.join(name)) {
                let _ = f.read_to_string(&mut out);
            }
        }
        out
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `https://localhost:TLS_PORT` (the name the certificate is for).
    pub fn tls_base(&self) -> String {
        format!("https://localhost:{}", self.tls_port)
    }

    /// The file `/PATH` is served from.
    pub fn file(&self, path: &str) -> PathBuf {
        self.dir.join("www").join(path.trim_start_matches('/'))
    }

    /// The access log so far.
    pub fn access_log(&self) -> Vec<Logged> {
        let text = fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                assert_eq!(f.len(), 5, "an access log line: {line:?}");
                Logged {
                    connection: f[0].parse().unwrap(),
                    nth: f[1].parse().unwrap(),
                    method: f[2].to_owned(),
                    uri: f[3].to_owned(),
                    status: f[4].parse().unwrap(),
                }
            })
            .collect()
    }

    /// The access log once it has `n` lines (nginx writes a line when it
    /// has finished a request, which may be just after the client read the
    /// response): waits for that, bounded by `EVENT_TIMEOUT`.
    pub fn wait_for_log(&self, n: usize) -> Vec<Logged> {
        let give_up = Instant::now() + EVENT_TIMEOUT;
        loop {
            let log = self.access_log();
            if log.len() >= n {
                return log;
            }
            assert!(
                Instant::now() < give_up,
                "nginx logged {} requests of {n} within {EVENT_TIMEOUT:?}: {log:?}",
                log.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many TCP connections the requests in `log` came on.
    pub fn connections(log: &[Logged]) -> usize {
        log.iter()
            .map(|l| l.connection)
            .collect::<HashSet<_>>()
            .len()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
