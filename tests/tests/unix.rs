//! Unix-domain sockets (EventMachine S4): servers and clients on a path or
//! in Linux's abstract namespace, the socket file's life (a stale one is
//! replaced, the server's own goes when it stops), bind errors, and the
//! addresses each end reports.

mod support;

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{SocketAddr as StdUnixAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use em::{Addr, Conn, Connection, UnbindReason};
use tokio_util::codec::LinesCodec;

use em::testing::TestReactor;
use support::*;

/// Answers every line with the line reversed (EventMachine's S4 test:
/// "abc" comes back as "cba").
#[derive(Default)]
struct Reverse {
    log: Log,
}

impl Connection for Reverse {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        self.log.push(format!(
            "server peer {} local {}",
            shown(conn.peer_addr()),
            shown(conn.local_addr())
        ));
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        conn.send_data(line.chars().rev().collect::<String>());
    }
}

/// Sends `line` once connected, logs the answer and closes; runs `then`
/// (start the next step, or stop the reactor) from `unbind`.
struct Ask {
    log: Log,
    line: &'static str,
    then: Option<Box<dyn FnOnce()>>,
}

impl Ask {
    fn new(log: &Log, line: &'static str, then: impl FnOnce() + 'static) -> Self {
        Ask {
            log: log.clone(),
            line,
            then: Some(Box::new(then)),
        }
    }
}

impl Connection for Ask {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        conn.send_data(self.line);
    }

    fn connection_completed(&mut self, conn: &Conn<LinesCodec>) {
        self.log.push(format!(
            "client peer {} local {}",
            shown(conn.peer_addr()),
            shown(conn.local_addr())
        ));
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.log.push(format!("answer {line}"));
        conn.close_connection();
    }

    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        self.log.push(format!("client unbind {}", reason(&why)));
        (self.then.take().expect("one unbind"))();
    }
}

/// An address as a test compares it: `unnamed`, `path P`, `abstract N`,
/// or the `Display` form of other kinds.
fn shown(addr: Option<Addr>) -> String {
    match addr {
        None => "none".into(),
        Some(Addr::Unix(u)) if u.is_unnamed() => "unnamed".into(),
        Some(Addr::Unix(u)) => match (u.path(), u.abstract_name()) {
            (Some(p), _) => format!("path {}", p.display()),
            (None, Some(name)) => format!("abstract {}", String::from_utf8_lossy(name)),
            (None, None) => format!("unix {u}"),
        },
        Some(other) => format!("{other}"),
    }
}

/// A blocking Unix-domain client with read and write timeouts.
fn unix_client(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {path:?}: {e}"));
    with_timeouts(s)
}

fn with_timeouts(s: UnixStream) -> UnixStream {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends `line` and returns the answer line, without its terminator.
fn line_round(s: &UnixStream, line: &str) -> String {
    (&*s).write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let n = BufReader::new(s).read_line(&mut answer).expect("read line");
    assert!(n > 0, "the server closed instead of answering");
    answer.trim_end().to_owned()
}

/// The socket file's identity, if a socket file is at `path`.
fn socket_inode(path: &Path) -> Option<u64> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type().is_socket().then(|| meta.ino())
}

/// S4: an em client and a std client both talk to a Unix-domain server.
#[test]
fn unix_server_answers_an_em_client_and_a_std_client() {
    let dir = TempDir::new("unix-echo");
    let path = dir.join("s.sock");
    let log = Log::default();
    let (done_tx, done_rx) = mpsc::channel();
    let (l, p) = (log.clone(), path.clone());
    run_with_watchdog(move || -> em::Result<()> {
        em::start_unix_domain_server(&p, Reverse::default)?;
        // The em client first; once it is done, a std client from a thread.
        let handle = em::handle()?;
        let q = p.clone();
        let std_client = move || {
            spawn_peer(handle, done_tx, move || {
                let s = unix_client(&q);
                (line_round(&s, "hello"), line_round(&s, "em"))
            })
        };
        em::connect_unix_domain(&p, Ask::new(&l, "abc", std_client))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(join_peer(&done_rx), ("olleh".into(), "me".into()));
    assert_eq!(
        log.events(),
        [
            format!("client peer path {} local unnamed", path.display()),
            "answer cba".into(),
            "client unbind Closed".into(),
        ]
    );
}

/// S4: a socket file left at the path (by a process that died, say) is
/// removed and the server binds a new one.
#[test]
fn stale_socket_file_is_replaced() {
    let dir = TempDir::new("unix-stale");
    let path = dir.join("s.sock");
    drop(UnixListener::bind(&path).unwrap());
    let stale = socket_inode(&path).expect("the stale socket file is there");
    // A second link keeps the stale inode allocated, so that the new file
    // cannot get the same inode number.
    std::fs::hard_link(&path, dir.join("stale.sock")).unwrap();
    assert_eq!(
        UnixStream::connect(&path).map_err(|e| e.kind()).err(),
        Some(io::ErrorKind::ConnectionRefused),
        "nothing listens on the stale file"
    );
    let reactor = TestReactor::start();
    let p = path.clone();
    let fresh = reactor.block_on(move || {
        em::start_unix_domain_server(&p, Reverse::default).unwrap();
        socket_inode(&p)
    });
    let answer = line_round(&unix_client(&path), "stale");
    reactor.stop().unwrap();
    assert!(
        fresh.is_some_and(|ino| ino != stale),
        "a new socket file replaced the stale one ({stale} -> {fresh:?})"
    );
    assert_eq!(answer, "elats");
}

/// Reverses lines like [`Reverse`]; the line "stop-server" stops the
/// server it came through and answers whether the socket file is still
/// there once `stop` has returned.
struct StopsServer {
    server: Rc<RefCell<Option<em::Server>>>,
}

impl Connection for StopsServer {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        if line == "stop-server" {
            let server = self.server.borrow();
            let server = server.as_ref().expect("server started");
            server.stop();
            let path = server.local_addr().unix_path().expect("a path").to_owned();
            conn.send_data(format!("file exists: {}", path.exists()));
        } else {
            conn.send_data(line.chars().rev().collect::<String>());
        }
    }
}

/// The server removes its socket file before `Server::stop` returns;
/// connects then fail for want of a file, while the connection accepted
/// before lives on.
#[test]
fn server_stop_removes_the_socket_file() {
    let dir = TempDir::new("unix-stop");
    let path = dir.join("s.sock");
    let reactor = TestReactor::start();
    let p = path.clone();
    reactor.block_on(move || {
        let slot = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let server = em::start_unix_domain_server(&p, move || StopsServer { server: s.clone() });
        *slot.borrow_mut() = Some(server.unwrap());
    });
    let accepted = unix_client(&path);
    let before = line_round(&accepted, "before");
    let stopped = line_round(&accepted, "stop-server");
    let refused = UnixStream::connect(&path).map(drop).map_err(|e| e.kind());
    let after = line_round(&accepted, "after");
    reactor.stop().unwrap();
    assert_eq!(before, "erofeb");
    assert_eq!(stopped, "file exists: false");
    assert_eq!(refused, Err(io::ErrorKind::NotFound));
    assert_eq!(after, "retfa", "the accepted connection lives on");
    assert!(!path.exists());
}

/// Stopping the reactor stops its servers, which remove their socket files.
#[test]
fn reactor_stop_removes_the_socket_file() {
    let dir = TempDir::new("unix-reactor-stop");
    let path = dir.join("s.sock");
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    run_with_watchdog(move || -> em::Result<()> {
        em::start_unix_domain_server(&p, Reverse::default)?;
        tx.send(socket_inode(&p).is_some()).unwrap();
        em::stop();
        Ok(())
    })
    .unwrap();
    assert!(recv(&rx), "the socket file existed while the server ran");
    assert!(
        !path.exists(),
        "the socket file is gone after em::run returns"
    );
}

/// A socket file that replaced the server's own (another process bound the
/// path since) is not the server's to remove.
#[test]
fn server_stop_leaves_a_replacement_socket_file_alone() {
    let dir = TempDir::new("unix-replaced");
    let path = dir.join("s.sock");
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_unix_domain_server(&p, Reverse::default)?;
        std::fs::remove_file(&p).unwrap();
        let other = UnixListener::bind(&p).unwrap();
        server.stop();
        tx.send(other).unwrap();
        em::stop();
        Ok(())
    })
    .unwrap();
    let other = recv(&rx);
    assert!(
        socket_inode(&path).is_some(),
        "the replacement is still there"
    );
    let client = UnixStream::connect(&path).expect("the replacement still accepts");
    let (accepted, _) = other.accept().unwrap();
    drop((client, accepted));
}

/// A path that cannot be bound is an `is_bind()` error naming the path, and
/// the reactor goes on: a missing directory, a regular file in the way
/// (left untouched: only a socket file is taken for stale), a directory in
/// the way, a path too long for a socket address.
#[test]
fn unbindable_paths_are_bind_errors_naming_the_path() {
    let dir = TempDir::new("unix-bind");
    let missing_dir = dir.join("no-such-dir").join("s.sock");
    let regular = dir.join("regular");
    std::fs::write(&regular, b"keep me").unwrap();
    let directory = dir.join("a-directory");
    std::fs::create_dir(&directory).unwrap();
    let too_long = dir.join(&"x".repeat(120));
    let paths = vec![missing_dir, regular.clone(), directory.clone(), too_long];
    let fine = dir.join("fine.sock");
    let (tx, rx) = mpsc::channel();
    let ps = paths.clone();
    run_with_watchdog(move || {
        let errors: Vec<em::Error> = ps
            .iter()
            .map(|p| {
                em::start_unix_domain_server(p, Reverse::default)
                    .expect_err("the path cannot be bound")
            })
            .collect();
        // The reactor is still usable.
        let fine = em::start_unix_domain_server(&fine, Reverse::default).map(drop);
        tx.send((errors, fine)).unwrap();
        em::stop();
    })
    .unwrap();
    let (errors, fine) = recv(&rx);
    assert!(fine.is_ok(), "{fine:?}");
    for (path, err) in paths.iter().zip(&errors) {
        assert!(err.is_bind(), "{path:?}: {err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "the message names {path:?}: {err}"
        );
        assert!(err.io_error().is_some(), "the io::Error is kept: {err:?}");
    }
    assert_eq!(
        errors[0].io_error().map(io::Error::kind),
        Some(io::ErrorKind::NotFound)
    );
    assert_eq!(std::fs::read(&regular).unwrap(), b"keep me");
    assert!(directory.is_dir(), "the directory is left alone");
}

/// A name with a leading NUL byte is a socket in Linux's abstract namespace:
/// no file anywhere, `local_addr()` is the abstract name, and em clients
/// (by name or by the server's address) and std clients reach it.
#[test]
fn abstract_namespace_server_and_clients() {
    let name = format!("em-test-abstract-{}", std::process::id());
    let log = Log::default();
    let (done_tx, done_rx) = mpsc::channel();
    let (l, n) = (log.clone(), name.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let path = PathBuf::from(format!("\0{n}"));
        let server = em::start_unix_domain_server(&path, Reverse::default)?;
        let addr = server.local_addr();
        l.push(format!("local {} shown {addr}", shown(Some(addr.clone()))));
        // By name, then by the server's address, then a std client.
        let handle = em::handle()?;
        let std_client = move || {
            spawn_peer(handle, done_tx, move || {
                let addr = StdUnixAddr::from_abstract_name(n.as_bytes()).unwrap();
                let s = with_timeouts(UnixStream::connect_addr(&addr).expect("connect"));
                line_round(&s, "std")
            })
        };
        let m = l.clone();
        let by_addr = move || {
            em::connect(addr, Ask::new(&m, "by addr", std_client)).expect("connect");
        };
        em::connect_unix_domain(&path, Ask::new(&l, "by name", by_addr))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(join_peer(&done_rx), "dts");
    let peer = format!("client peer abstract {name} local unnamed");
    assert_eq!(
        log.events(),
        [
            format!("local abstract {name} shown @{name}"),
            peer.clone(),
            "answer eman yb".into(),
            "client unbind Closed".into(),
            peer,
            "answer rdda yb".into(),
            "client unbind Closed".into(),
        ]
    );
    assert!(!Path::new(&name).exists(), "no file for an abstract socket");
}

/// An abstract name already bound is a bind error that names it the way
/// `Addr` shows it (`@name`), without the NUL byte.
#[test]
fn abstract_name_in_use_is_a_bind_error_naming_it() {
    let name = format!("em-test-abstract-taken-{}", std::process::id());
    let taken = UnixListener::bind_addr(&StdUnixAddr::from_abstract_name(&name).unwrap()).unwrap();
    let (tx, rx) = mpsc::channel();
    let n = name.clone();
    run_with_watchdog(move || {
        let err = em::start_unix_domain_server(format!("\0{n}"), Reverse::default)
            .expect_err("the name is taken");
        tx.send(err).unwrap();
        em::stop();
    })
    .unwrap();
    let err = recv(&rx);
    assert!(err.is_bind(), "{err:?}");
    assert_eq!(
        err.io_error().map(io::Error::kind),
        Some(io::ErrorKind::AddrInUse)
    );
    let message = err.to_string();
    assert!(message.contains(&format!("@{name}")), "{message:?}");
    assert!(!message.contains('\0'), "no NUL byte in {message:?}");
    drop(taken);
}

/// The server's side of a Unix-domain connection sees an unnamed peer (the
/// client did not bind) and its own path; the client's side sees the path
/// as its peer and is unnamed itself. The server's `local_addr()` connects.
#[test]
fn peer_and_local_addresses_of_unix_connections() {
    let dir = TempDir::new("unix-addrs");
    let path = dir.join("s.sock");
    let log = Log::default();
    let (l, p) = (log.clone(), path.clone());
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_unix_domain_server(&p, {
            let l = l.clone();
            move || Reverse { log: l.clone() }
        })?;
        l.push(format!("server local {}", shown(Some(server.local_addr()))));
        em::connect(server.local_addr(), Ask::new(&l, "addr", em::stop))?;
        Ok(())
    })
    .unwrap();
    let p = path.display();
    let mut events = log.events();
    // The two sides' first callbacks may come in either order.
    events[1..3].sort();
    assert_eq!(
        events,
        [
            format!("server local path {p}"),
            format!("client peer path {p} local unnamed"),
            format!("server peer unnamed local path {p}"),
            "answer rdda".into(),
            "client unbind Closed".into(),
        ]
    );
}

/// A connect to a path where nothing listens ends in `unbind` with
/// `ConnectFailed`, as a refused TCP connect does.
#[test]
fn connect_to_a_missing_socket_fails_in_unbind() {
    let dir = TempDir::new("unix-missing");
    let path = dir.join("nobody.sock");
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        em::connect_unix_domain(&path, Ask::new(&l, "anyone?", em::stop))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["client unbind ConnectFailed(NotFound)"]);
}
