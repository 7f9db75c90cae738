//! Attach and detach (EventMachine W1, W2's `detach`, C10's detach path):
//! connections on pipes and sockets the program already has, servers on
//! listeners it inherited, how an `OwnedFd` is identified, and `detach`
//! giving a working descriptor back.

mod support;

use std::cell::Cell;
use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use em::{Addr, Conn, Connection, UnbindReason};
use tokio_util::codec::LinesCodec;

use support::*;

/// Stops the reactor once `count` calls to [`Countdown::done`] were made.
#[derive(Clone)]
struct Countdown(Rc<Cell<usize>>);

impl Countdown {
    fn new(count: usize) -> Self {
        Countdown(Rc::new(Cell::new(count)))
    }

    fn done(&self) {
        self.0.set(self.0.get() - 1);
        if self.0.get() == 0 {
            em::stop();
        }
    }
}

/// A line handler that logs as `NAME`: its lines (`NAME line L`) and its
/// unbind (`NAME unbind R`, then the countdown). It echoes lines when
/// `echo` is set, and closes after writing when it reads "bye".
struct Lines {
    name: &'static str,
    log: Log,
    echo: bool,
    countdown: Option<Countdown>,
}

impl Lines {
    fn new(name: &'static str, log: &Log) -> Self {
        Lines {
            name,
            log: log.clone(),
            echo: false,
            countdown: None,
        }
    }

    fn echoing(mut self) -> Self {
        self.echo = true;
        self
    }

    fn counting(mut self, countdown: &Countdown) -> Self {
        self.countdown = Some(countdown.clone());
        self
    }
}

impl Connection for Lines {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn connection_completed(&mut self, _: &Conn<LinesCodec>) {
        self.log.push(format!("{} connection_completed", self.name));
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.log.push(format!("{} line {line}", self.name));
        if line == "bye" {
            conn.close_connection_after_writing();
        } else if self.echo {
            conn.send_data(line);
        }
    }

    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        self.log
            .push(format!("{} unbind {}", self.name, reason(&why)));
        if let Some(c) = &self.countdown {
            c.done();
        }
    }
}

/// The events of `log` that start with `name `.
fn of(log: &Log, name: &str) -> Vec<String> {
    let prefix = format!("{name} ");
    log.events()
        .into_iter()
        .filter(|e| e.starts_with(&prefix))
        .collect()
}

/// A blocking socket's next line, without its terminator.
fn read_line(s: impl Read) -> String {
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("read line");
    line.trim_end().to_owned()
}

/// Both ends of a std pipe.
fn pipe() -> (io::PipeReader, io::PipeWriter) {
    io::pipe().expect("pipe")
}

fn with_timeouts(s: UnixStream) -> UnixStream {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// W1: the read end of a pipe attached with a line handler receives what
/// the attached write end sends; closing the writer after writing ends the
/// reader with `PeerClosed`, after every line. Neither gets
/// `connection_completed` (there was no connect).
#[test]
fn attached_pipe_ends_carry_lines() {
    let (r, w) = pipe();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let countdown = Countdown::new(2);
        let reader = em::attach(r, Lines::new("reader", &l).counting(&countdown))?;
        let writer = em::attach(w, Lines::new("writer", &l).counting(&countdown))?;
        l.push(format!(
            "addrs {} {}",
            reader.peer_addr().expect("an address"),
            writer.peer_addr().expect("an address")
        ));
        writer.send_data("via em");
        writer.send_data("second");
        writer.close_connection_after_writing();
        Ok(())
    })
    .unwrap();
    assert_eq!(of(&log, "addrs"), ["addrs (pipe) (pipe)"]);
    assert_eq!(
        of(&log, "reader"),
        [
            "reader line via em",
            "reader line second",
            "reader unbind PeerClosed"
        ]
    );
    assert_eq!(of(&log, "writer"), ["writer unbind Closed"]);
}

/// One end of `UnixStream::pair()` attached; a std thread talks to it
/// through the other end. Its peer is an unnamed Unix-domain address.
#[test]
fn attached_socketpair_end_talks_to_the_other_end() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let log = Log::default();
    let (done_tx, done_rx) = mpsc::channel();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let conn = em::attach(ours, Lines::new("em", &l).echoing())?;
        let peer = conn.peer_addr().expect("an address");
        l.push(format!(
            "em peer unnamed={}",
            peer.unix().is_some_and(|u| u.is_unnamed())
        ));
        spawn_peer(em::handle()?, done_tx, move || {
            let theirs = with_timeouts(theirs);
            (&theirs).write_all(b"ping\nbye\n").unwrap();
            let mut all = String::new();
            (&theirs).read_to_string(&mut all).expect("read to end");
            all
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(
        join_peer(&done_rx),
        "ping\n",
        "the echo, then end of stream"
    );
    assert_eq!(
        log.events(),
        [
            "em peer unnamed=true",
            "em line ping",
            "em line bye",
            "em unbind Closed"
        ]
    );
}

/// A std `TcpStream` accepted from a std listener, attached: it echoes, and
/// its peer address is the client's.
#[test]
fn attached_tcp_stream_from_a_std_listener_echoes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = client(listener.local_addr().unwrap());
    let (accepted, from) = listener.accept().unwrap();
    assert_eq!(from, client.local_addr().unwrap());
    let log = Log::default();
    let (done_tx, done_rx) = mpsc::channel();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let conn = em::attach(accepted, Lines::new("em", &l).echoing())?;
        l.push(format!("em peer {}", conn.peer_addr().expect("an address")));
        spawn_peer(em::handle()?, done_tx, move || {
            let mut lines = LineClientOn(BufReader::new(client));
            (lines.round("one"), lines.round("two"))
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(join_peer(&done_rx), ("one".into(), "two".into()));
    assert_eq!(
        log.events()[..3],
        [
            format!("em peer {from}"),
            "em line one".into(),
            "em line two".into()
        ]
    );
}

/// A line client over any blocking stream.
struct LineClientOn<S: Read>(BufReader<S>);

impl<S: Read> LineClientOn<S>
where
    for<'a> &'a S: Write,
{
    fn round(&mut self, line: &str) -> String {
        self.0
            .get_ref()
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        self.0.read_line(&mut answer).expect("read line");
        answer.trim_end().to_owned()
    }
}

/// Echoes lines; the line "detach" detaches the connection, sends the
/// descriptor out, and logs what the connection says after that.
struct Detacher {
    log: Log,
    fd: mpsc::Sender<OwnedFd>,
}

impl Connection for Detacher {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        self.log.push(format!("line {line}"));
        if line != "detach" {
            conn.send_data(line);
            return;
        }
        let fd = conn.detach().expect("detach");
        self.log.push("detached");
        let again = conn.detach().expect_err("detached already");
        self.log
            .push(format!("detach again closed={}", again.is_closed()));
        self.log
            .push(format!("send_data after detach = {}", conn.send_data("x")));
        self.fd.send(fd).unwrap();
        self.log.push("receive_data returns");
    }

    fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
        self.log.push(format!("unbind {}", reason(&why)));
        em::stop();
    }
}

/// W2's `detach` on an accepted TCP connection: the descriptor comes back
/// open and blocking; writing to it with std after the detach reaches the
/// peer, and the peer's answer is read from it. `unbind` runs once, with
/// `Detached`, after the callback that detached returned; em reads nothing
/// more from the socket and does not close it.
#[test]
fn detach_gives_back_a_working_blocking_descriptor() {
    let log = Log::default();
    let (fd_tx, fd_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || Detacher {
            log: l.clone(),
            fd: fd_tx.clone(),
        })?;
        let addr = server.local_addr().inet().expect("TCP");
        // The reactor stops from `unbind`; the peer goes on talking to the
        // detached descriptor, which this test's thread holds by then.
        spawn_peer(em::handle()?, done_tx, move || {
            let s = client(addr);
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut next = move || {
                let mut line = String::new();
                reader.read_line(&mut line).expect("read line");
                line
            };
            (&s).write_all(b"hello\n").unwrap();
            let hello = next();
            (&s).write_all(b"detach\n").unwrap();
            let after = next();
            (&s).write_all(b"reply\n").unwrap();
            let end = next();
            (hello, after, end)
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "line hello",
            "line detach",
            "detached",
            "detach again closed=true",
            "send_data after detach = 0",
            "receive_data returns",
            "unbind Detached",
        ]
    );
    let fd: OwnedFd = recv(&fd_rx);
    assert!(
        !is_nonblocking(&fd),
        "the descriptor is back in blocking mode"
    );
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s).write_all(b"after detach\n").unwrap();
    assert_eq!(read_line(&s), "reply");
    drop(s);
    let (hello, after, end) = join_peer(&done_rx);
    assert_eq!(hello, "hello\n");
    assert_eq!(after, "after detach\n");
    assert_eq!(end, "", "end of stream once the test closed the descriptor");
}

/// `detach` of an attached pipe's write end: the descriptor comes back
/// blocking and still writes into the pipe.
#[test]
fn detached_pipe_end_still_writes() {
    let (mut r, w) = pipe();
    let log = Log::default();
    let (fd_tx, fd_rx) = mpsc::channel();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let countdown = Countdown::new(1);
        let writer = em::attach(w, Lines::new("writer", &l).counting(&countdown))?;
        fd_tx.send(writer.detach()?).unwrap();
        l.push(format!("writer is_closed={}", writer.is_closed()));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["writer is_closed=true", "writer unbind Detached"]
    );
    let fd: OwnedFd = recv(&fd_rx);
    assert!(
        !is_nonblocking(&fd),
        "the descriptor is back in blocking mode"
    );
    let mut w = io::PipeWriter::from(fd);
    w.write_all(b"after detach\n").unwrap();
    drop(w);
    let mut got = String::new();
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "after detach\n");
}

/// `detach` before a client's connect completed is refused (there is no
/// descriptor to give yet), and the connection goes on.
#[test]
fn detach_before_the_connect_completes_is_refused() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", || {
            Lines::new("server", &Log::default()).echoing()
        })?;
        let countdown = Countdown::new(1);
        let conn = em::connect(
            server.local_addr(),
            Lines::new("client", &l).counting(&countdown),
        )?;
        let err = conn.detach().expect_err("not connected yet");
        l.push(format!("client detach closed={}", err.is_closed()));
        conn.send_data("still here");
        conn.send_data("bye");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "client detach closed=true",
            "client connection_completed",
            "client line still here",
            "client unbind PeerClosed",
        ]
    );
}

/// An `OwnedFd` of a pipe end is identified by its access mode: the read
/// end receives (and cannot send), the write end sends.
#[test]
fn owned_fd_pipe_ends_are_identified_by_access_mode() {
    let (r1, mut w1) = pipe();
    let (mut r2, w2) = pipe();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let countdown = Countdown::new(2);
        let reader = em::attach(
            OwnedFd::from(r1),
            Lines::new("reader", &l).counting(&countdown),
        )?;
        let err = reader.try_send_data("x").expect_err("a read end");
        l.push(format!("reader send unsupported={}", err.is_unsupported()));
        let writer = em::attach(
            OwnedFd::from(w2),
            Lines::new("writer", &l).counting(&countdown),
        )?;
        writer.send_data("to the write end");
        writer.close_connection_after_writing();
        w1.write_all(b"to the read end\n").unwrap();
        drop(w1);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        of(&log, "reader"),
        [
            "reader send unsupported=true",
            "reader line to the read end",
            "reader unbind PeerClosed"
        ]
    );
    assert_eq!(of(&log, "writer"), ["writer unbind Closed"]);
    let mut got = String::new();
    r2.read_to_string(&mut got).unwrap();
    assert_eq!(got, "to the write end\n");
}

/// An `OwnedFd` of a stream socket is identified by its family: a
/// Unix-domain one and a TCP one both echo, with the peer address of their
/// kind.
#[test]
fn owned_fd_sockets_are_identified_by_family() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_client = client(listener.local_addr().unwrap());
    let (accepted, from) = listener.accept().unwrap();
    let log = Log::default();
    let (done_tx, done_rx) = mpsc::channel();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let unix = em::attach(OwnedFd::from(ours), Lines::new("unix", &l).echoing())?;
        let tcp = em::attach(OwnedFd::from(accepted), Lines::new("tcp", &l).echoing())?;
        let unix_peer = unix.peer_addr().expect("an address");
        l.push(format!(
            "peers {} {}",
            unix_peer.unix().is_some_and(|u| u.is_unnamed()),
            tcp.peer_addr().expect("an address")
        ));
        spawn_peer(em::handle()?, done_tx, move || {
            let mut unix = LineClientOn(BufReader::new(with_timeouts(theirs)));
            let mut tcp = LineClientOn(BufReader::new(tcp_client));
            (unix.round("over unix"), tcp.round("over tcp"))
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(join_peer(&done_rx), ("over unix".into(), "over tcp".into()));
    assert_eq!(of(&log, "peers"), [format!("peers true {from}")]);
}

/// `attach` of a descriptor em cannot make a connection of is an
/// `is_unsupported()` error: a regular file, a datagram socket, a listening
/// socket (that is `attach_server`'s).
#[test]
fn owned_fd_of_other_kinds_is_unsupported() {
    let dir = TempDir::new("attach-kinds");
    let file = dir.join("regular");
    std::fs::write(&file, b"not a socket").unwrap();
    let (tx, rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let fds: Vec<(&str, OwnedFd)> = vec![
            ("regular file", std::fs::File::open(&file).unwrap().into()),
            ("udp socket", UdpSocket::bind("127.0.0.1:0").unwrap().into()),
            (
                "tcp listener",
                TcpListener::bind("127.0.0.1:0").unwrap().into(),
            ),
            (
                "unix listener",
                UnixListener::bind(dir.join("l.sock")).unwrap().into(),
            ),
        ];
        let results: Vec<(&str, bool, String)> = fds
            .into_iter()
            .map(|(kind, fd)| {
                let err = em::attach(fd, Lines::new("x", &Log::default())).expect_err(kind);
                (kind, err.is_unsupported(), err.to_string())
            })
            .collect();
        tx.send(results).unwrap();
        em::stop();
        Ok(())
    })
    .unwrap();
    for (kind, unsupported, message) in recv(&rx) {
        assert!(unsupported, "{kind}: {message}");
        assert!(message.starts_with("attach: "), "{kind}: {message}");
    }
}

/// Serves `listener` with [`Control`] handlers from the run block, and
/// passes the server's address to `peer`, run as a [`spawn_peer`] thread.
fn serve_attached<T: Send + 'static>(
    listener: impl Into<em::AttachableListener> + 'static,
    peer: impl FnOnce(Addr) -> T + Send + 'static,
) -> T {
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let slot = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let server = em::attach_server(listener, move || Control { server: s.clone() })?;
        let addr = server.local_addr();
        *slot.borrow_mut() = Some(server);
        spawn_peer(em::handle()?, done_tx, move || peer(addr));
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx)
}

/// `attach_server` with an inherited std `TcpListener`: it accepts and
/// serves; `Server::stop` closes it, so new connects are refused.
#[test]
fn attach_server_serves_an_inherited_tcp_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bound = listener.local_addr().unwrap();
    let (addr, answers, refused) = serve_attached(listener, |addr| {
        let mut c = LineClient::connect(addr.inet().expect("TCP"));
        let answers = (c.round("over tcp"), c.round("stop-server"));
        let refused = TcpStream::connect(addr.inet().unwrap())
            .map(drop)
            .map_err(|e| e.kind());
        (addr, answers, refused)
    });
    assert_eq!(addr.inet(), Some(bound));
    assert_eq!(answers, ("over tcp".into(), "stopped".into()));
    assert_eq!(refused, Err(io::ErrorKind::ConnectionRefused));
}

/// `attach_server` with an inherited std `UnixListener`: it serves; its
/// `local_addr()` is the path; `Server::stop` closes it but leaves the
/// socket file (em did not make it).
#[test]
fn attach_server_serves_an_inherited_unix_listener() {
    let dir = TempDir::new("attach-server-unix");
    let path = dir.join("s.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (addr, answers, refused) = serve_attached(listener, |addr| {
        let path = addr.unix_path().expect("a path").to_owned();
        let s = with_timeouts(UnixStream::connect(&path).expect("connect"));
        let mut c = LineClientOn(BufReader::new(s));
        let answers = (c.round("over unix"), c.round("stop-server"));
        let refused = UnixStream::connect(&path).map(drop).map_err(|e| e.kind());
        (addr, answers, refused)
    });
    assert_eq!(addr.unix_path(), Some(path.as_path()));
    assert_eq!(answers, ("over unix".into(), "stopped".into()));
    assert_eq!(refused, Err(io::ErrorKind::ConnectionRefused));
    assert!(path.exists(), "the inherited socket file is left in place");
}

/// `attach_server` takes an `OwnedFd` of a listening socket too, and
/// refuses, as `is_unsupported()`, one that is not: a connected socket, a
/// regular file.
#[test]
fn attach_server_identifies_owned_fds() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bound = listener.local_addr().unwrap();
    let connected = UnixStream::pair().unwrap().0;
    let dir = TempDir::new("attach-server-kinds");
    let file = dir.join("regular");
    std::fs::write(&file, b"not a socket").unwrap();
    let regular = std::fs::File::open(&file).unwrap();
    let (tx, rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server =
            em::attach_server(OwnedFd::from(listener), || Lines::new("x", &Log::default()))?;
        let refused: Vec<(&str, bool, String)> = [
            ("connected socket", OwnedFd::from(connected)),
            ("regular file", OwnedFd::from(regular)),
        ]
        .into_iter()
        .map(|(kind, fd)| {
            let err = em::attach_server(fd, || Lines::new("x", &Log::default()))
                .expect_err("not a listener");
            (kind, err.is_unsupported(), err.to_string())
        })
        .collect();
        tx.send((server.local_addr(), refused)).unwrap();
        em::stop();
        Ok(())
    })
    .unwrap();
    let (addr, refused) = recv(&rx);
    assert_eq!(addr.inet(), Some(bound));
    for (kind, unsupported, message) in refused {
        assert!(unsupported, "{kind}: {message}");
    }
}

/// `detach` on an in-memory pair is `is_unsupported()` (there is no
/// descriptor), and the connection stays open and usable.
#[test]
fn detach_on_a_pair_is_unsupported_and_the_pair_stays_usable() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let countdown = Countdown::new(2);
        let (a, b) = em::connect_pair(
            Lines::new("a", &l).echoing().counting(&countdown),
            Lines::new("b", &l).counting(&countdown),
        )?;
        let err = a.detach().expect_err("no descriptor");
        l.push(format!(
            "detach unsupported={} in-memory={} a closed={}",
            err.is_unsupported(),
            err.to_string().contains("in-memory"),
            a.is_closed()
        ));
        b.send_data("still usable");
        b.send_data("bye");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        of(&log, "detach"),
        ["detach unsupported=true in-memory=true a closed=false"]
    );
    assert_eq!(
        of(&log, "a"),
        ["a line still usable", "a line bye", "a unbind Closed"]
    );
    assert_eq!(
        of(&log, "b"),
        [
            "b connection_completed",
            "b line still usable",
            "b unbind PeerClosed"
        ]
    );
}

/// `send_data` and `try_send_data` on a pipe's read end are refused as
/// `is_unsupported()`; the connection stays open and keeps reading.
#[test]
fn send_data_on_a_pipe_read_end_is_unsupported() {
    let (r, mut w) = pipe();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let countdown = Countdown::new(1);
        let reader = em::attach(r, Lines::new("reader", &l).counting(&countdown))?;
        let err = reader.try_send_data("x").expect_err("a read end");
        l.push(format!(
            "reader try_send_data unsupported={} send_data={} queued={} closed={}",
            err.is_unsupported(),
            reader.send_data("y"),
            reader.outbound_data_size(),
            reader.is_closed()
        ));
        w.write_all(b"still reading\n").unwrap();
        drop(w);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "reader try_send_data unsupported=true send_data=0 queued=0 closed=false",
            "reader line still reading",
            "reader unbind PeerClosed"
        ]
    );
}

/// W1: em owns what it attached and closes it after `unbind`: the pipe's
/// writer then gets a broken pipe, the socketpair's other end end of
/// stream.
#[test]
fn attached_descriptors_are_closed_after_unbind() {
    let (r, mut w) = pipe();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let countdown = Countdown::new(2);
        em::attach(r, Lines::new("pipe", &l).counting(&countdown))?.close_connection();
        em::attach(ours, Lines::new("socket", &l).counting(&countdown))?.close_connection();
        Ok(())
    })
    .unwrap();
    assert_eq!(of(&log, "pipe"), ["pipe unbind Closed"]);
    assert_eq!(of(&log, "socket"), ["socket unbind Closed"]);
    assert_eq!(
        w.write_all(b"anyone?\n").map_err(|e| e.kind()),
        Err(io::ErrorKind::BrokenPipe)
    );
    let mut rest = Vec::new();
    let n = with_timeouts(theirs).read_to_end(&mut rest).unwrap();
    assert_eq!(n, 0, "end of stream");
}
