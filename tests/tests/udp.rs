//! UDP sockets as connections (`em::open_datagram_socket`): one
//! `receive_data` per datagram, empty ones included (EventMachine's U1);
//! replies to the last sender and `send_datagram` to anyone (U2); the peer
//! is the last sender and the inactivity timeout applies (U3); bad
//! destinations are typed errors that leave the socket open; broadcast and
//! multicast; watermarks over queued datagrams; exactly one `unbind`.
//!
//! Real sockets on loopback, port 0. Peers are std `UdpSocket`s on a peer
//! thread (with read timeouts), or em datagram sockets in the same reactor;
//! checks made on the reactor thread run under `stop_on_panic(true)` or in
//! the run block, so that a failed assertion fails the test at once.

mod support;

use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em::{Addr, Conn, Connection, UnbindReason};
use tokio_util::codec::{BytesCodec, LinesCodec};

use support::*;

type OnFrame = Box<dyn FnMut(&Conn<BytesCodec>, BytesMut)>;
type OnConn = Box<dyn FnOnce(&Conn<BytesCodec>)>;
/// Datagrams as they arrived, with their senders.
type Arrivals = Rc<RefCell<Vec<(Vec<u8>, SocketAddr)>>>;

/// A datagram handler of raw bytes made of closures; logs
/// `"{name} unbind {reason}"`.
struct Udp {
    name: &'static str,
    log: Log,
    on_init: Option<OnConn>,
    on_frame: OnFrame,
    on_unbind: Option<OnConn>,
}

impl Udp {
    fn new(
        name: &'static str,
        log: &Log,
        on_frame: impl FnMut(&Conn<BytesCodec>, BytesMut) + 'static,
    ) -> Self {
        Udp {
            name,
            log: log.clone(),
            on_init: None,
            on_frame: Box::new(on_frame),
            on_unbind: None,
        }
    }

    /// Receives and ignores.
    fn quiet(name: &'static str, log: &Log) -> Self {
        Udp::new(name, log, |_, _| {})
    }

    fn on_init(mut self, f: impl FnOnce(&Conn<BytesCodec>) + 'static) -> Self {
        self.on_init = Some(Box::new(f));
        self
    }

    fn on_unbind(mut self, f: impl FnOnce(&Conn<BytesCodec>) + 'static) -> Self {
        self.on_unbind = Some(Box::new(f));
        self
    }
}

impl Connection for Udp {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        if let Some(f) = self.on_init.take() {
            f(conn);
        }
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, datagram: BytesMut) {
        (self.on_frame)(conn, datagram);
    }
    fn unbind(&mut self, conn: &Conn<BytesCodec>, why: UnbindReason) {
        self.log
            .push(format!("{} unbind {}", self.name, reason(&why)));
        if let Some(f) = self.on_unbind.take() {
            f(conn);
        }
    }
}

/// The IP address of a datagram socket.
fn local(conn: &Conn<BytesCodec>) -> SocketAddr {
    conn.local_addr()
        .and_then(|a| a.inet())
        .expect("a bound UDP socket")
}

/// A blocking std socket on loopback with a read timeout, for peer threads.
fn std_socket(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).expect("bind a client socket");
    s.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    s
}

/// Receives one datagram (bounded by the read timeout): its bytes and sender.
fn recv_from(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0; 65_536];
    let (n, from) = s
        .recv_from(&mut buf)
        .expect("a datagram within the timeout");
    buf.truncate(n);
    (buf, from)
}

fn stop_on_panic() -> em::Builder {
    em::Reactor::builder().stop_on_panic(true)
}

#[test]
fn a_thousand_datagrams_from_ten_sockets_each_reply_reaches_its_sender() {
    let senders: Rc<RefCell<Vec<(String, SocketAddr)>>> = Rc::default();
    let (done_tx, done_rx) = mpsc::channel();
    let s = senders.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let log = Log::default();
        let server = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("server", &log, move |conn, datagram| {
                let from = conn.peer_addr().and_then(|a| a.inet()).expect("a sender");
                s.borrow_mut()
                    .push((String::from_utf8_lossy(&datagram).into_owned(), from));
                assert_eq!(conn.send_data(datagram.clone()), datagram.len());
            }),
        )?;
        assert_eq!(server.peer_addr(), None, "no datagram yet, no peer");
        let to = local(&server);
        spawn_peer(em::handle()?, done_tx, move || {
            let clients: Vec<UdpSocket> = (0..10).map(|_| std_socket("127.0.0.1:0")).collect();
            for round in 0..100 {
                for (i, c) in clients.iter().enumerate() {
                    c.send_to(format!("{i}:{round}").as_bytes(), to).unwrap();
                }
                for (i, c) in clients.iter().enumerate() {
                    let (reply, from) = recv_from(c);
                    assert_eq!(from, to);
                    assert_eq!(String::from_utf8(reply).unwrap(), format!("{i}:{round}"));
                }
            }
            clients
                .iter()
                .map(|c| c.local_addr().unwrap())
                .collect::<Vec<_>>()
        });
        Ok(())
    })
    .unwrap();
    let clients = join_peer(&done_rx);
    let senders = senders.borrow();
    assert_eq!(senders.len(), 1000, "one receive_data per datagram");
    for (datagram, from) in senders.iter() {
        let i: usize = datagram.split(':').next().unwrap().parse().unwrap();
        assert_eq!(*from, clients[i], "peer_addr is the sender of {datagram}");
    }
}

#[test]
fn an_empty_datagram_arrives_as_one_empty_frame_and_echoes_as_one() {
    let sizes: Rc<RefCell<Vec<usize>>> = Rc::default();
    let (done_tx, done_rx) = mpsc::channel();
    let s = sizes.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let log = Log::default();
        let server = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("server", &log, move |conn, datagram| {
                s.borrow_mut().push(datagram.len());
                conn.try_send_data(datagram).expect("echo");
            }),
        )?;
        let to = local(&server);
        spawn_peer(em::handle()?, done_tx, move || {
            let c = std_socket("127.0.0.1:0");
            c.send_to(b"", to).unwrap();
            let (empty, from) = recv_from(&c);
            assert_eq!((empty.len(), from), (0, to), "an empty echo");
            c.send_to(b"after", to).unwrap();
            assert_eq!(recv_from(&c).0, b"after");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    assert_eq!(*sizes.borrow(), [0, 5]);
}

#[test]
fn each_datagram_is_decoded_on_its_own_and_a_bad_one_is_dropped_not_the_socket() {
    /// Logs every line; answers "end" with "end".
    struct Lines(Log);
    impl Connection for Lines {
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new_with_max_length(8)
        }
        fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
            if line == "end" {
                conn.send_data("end");
            }
            self.0.push(line);
        }
        fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
            self.0.push(format!("unbind {}", reason(&why)));
        }
    }
    let log = Log::default();
    let (done_tx, done_rx) = mpsc::channel();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::open_datagram_socket("127.0.0.1:0", Lines(l))?;
        let to = server.local_addr().and_then(|a| a.inet()).unwrap();
        spawn_peer(em::handle()?, done_tx, move || {
            let c = std_socket("127.0.0.1:0");
            for datagram in [
                &b"one"[..],        // the end of the datagram ends the line
                b"two\n",           // so does a newline
                b"a\nb\n",          // two frames: dropped
                b"",                // an empty line
                b"much too long\n", // past the codec's limit: dropped
                b"three",           // the codec was rebuilt: nothing carried over
                b"end",
            ] {
                c.send_to(datagram, to).unwrap();
            }
            assert_eq!(recv_from(&c).0, b"end\n");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    assert_eq!(
        log.events(),
        ["one", "two", "", "three", "end", "unbind ReactorStopped"]
    );
}

#[test]
fn bad_destinations_are_typed_errors_and_the_socket_keeps_working() {
    let log = Log::default();
    let (done_tx, done_rx) = mpsc::channel();
    let l = log.clone();
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let server = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("server", &l, |conn, _| {
                let x = || Bytes::from_static(b"x");
                let invalid = |to: Addr| {
                    let e = conn.send_datagram(x(), to.clone()).unwrap_err();
                    assert!(e.is_invalid_argument(), "{to}: {e}");
                };
                invalid("[2001:db8::1]:9".parse::<SocketAddr>().unwrap().into());
                invalid("127.0.0.1:0".parse::<SocketAddr>().unwrap().into());
                invalid("0.0.0.0:9".parse::<SocketAddr>().unwrap().into());
                invalid(Addr::Memory);
                let too_big = conn
                    .try_send_data(Bytes::from(vec![0u8; 65_508]))
                    .unwrap_err();
                assert!(too_big.is_invalid_argument(), "{too_big}");
                assert_eq!(conn.outbound_data_size(), 0, "nothing was queued");
                assert!(!conn.is_closed());
                // The largest datagram UDP carries over IPv4 goes.
                assert_eq!(
                    conn.try_send_data(Bytes::from(vec![7u8; 65_507])).unwrap(),
                    65_507
                );
                // The system refuses a broadcast with broadcast off, after
                // this callback: that datagram is dropped, the socket stays.
                conn.set_broadcast(false).unwrap();
                let to = SocketAddr::from((Ipv4Addr::BROADCAST, 9));
                assert_eq!(conn.send_datagram(x(), to).unwrap(), 1);
                conn.send_data(Bytes::from_static(b"still open"));
            })
            .on_init(|conn| {
                let e = conn
                    .try_send_data(Bytes::from_static(b"to no one"))
                    .unwrap_err();
                assert!(e.is_no_peer(), "{e}");
                assert_eq!(conn.send_data(Bytes::from_static(b"to no one")), 0);
            }),
        )?;
        let to = local(&server);
        spawn_peer(em::handle()?, done_tx, move || {
            let c = std_socket("127.0.0.1:0");
            c.send_to(b"probe", to).unwrap();
            let (largest, from) = recv_from(&c);
            assert_eq!((largest.len(), from), (65_507, to));
            assert!(largest.iter().all(|&b| b == 7));
            assert_eq!(recv_from(&c).0, b"still open");
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
    assert_eq!(log.events(), ["server unbind ReactorStopped"]);
}

#[test]
fn ipv6_datagrams_and_replies() {
    let (done_tx, done_rx) = mpsc::channel();
    let peers: Rc<RefCell<Vec<SocketAddr>>> = Rc::default();
    let p = peers.clone();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let log = Log::default();
        let server = match em::open_datagram_socket(
            "[::1]:0",
            Udp::new("server", &log, move |conn, datagram| {
                p.borrow_mut()
                    .extend(conn.peer_addr().and_then(|a| a.inet()));
                conn.send_data(datagram);
            }),
        ) {
            Ok(server) => server,
            Err(e) if e.is_bind() => {
                eprintln!("skipping: this machine has no IPv6 loopback ({e})");
                em::stop();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        r.set(true);
        let to = local(&server);
        assert!(to.is_ipv6());
        spawn_peer(em::handle()?, done_tx, move || {
            let c = std_socket("[::1]:0");
            c.send_to(b"over v6", to).unwrap();
            assert_eq!(recv_from(&c), (b"over v6".to_vec(), to));
            c.local_addr().unwrap()
        });
        Ok(())
    })
    .unwrap();
    if ran.get() {
        let client = join_peer(&done_rx);
        assert_eq!(*peers.borrow(), [client]);
    }
}

#[test]
fn broadcast_toggles_and_reads_back_and_other_kinds_refuse_it() {
    run_with_watchdog(|| -> em::Result<()> {
        let log = Log::default();
        let socket = em::open_datagram_socket("127.0.0.1:0", Udp::quiet("udp", &log))?;
        let so_broadcast = || {
            let raw = socket
                .get_sock_opt(libc::SOL_SOCKET, libc::SO_BROADCAST)
                .unwrap();
            i32::from_ne_bytes(raw[..4].try_into().unwrap())
        };
        assert!(socket.broadcast()?, "on from the start, as EventMachine");
        assert_eq!(so_broadcast(), 1);
        socket.set_broadcast(false)?;
        assert!(!socket.broadcast()?);
        assert_eq!(so_broadcast(), 0);
        socket.set_broadcast(true)?;
        assert!(socket.broadcast()?);
        // A datagram socket is a socket: SO_TYPE says which kind.
        let kind = socket.get_sock_opt(libc::SOL_SOCKET, libc::SO_TYPE)?;
        assert_eq!(
            i32::from_ne_bytes(kind[..4].try_into().unwrap()),
            libc::SOCK_DGRAM
        );
        assert!(socket.with_socket(|s| s.recv_buffer_size())? > 0);
        // Stream options are not a datagram socket's.
        assert!(socket.set_nodelay(true).unwrap_err().is_unsupported());
        let keepalive =
            socket.enable_keepalive(Duration::from_secs(60), Duration::from_secs(10), 3);
        assert!(keepalive.unwrap_err().is_unsupported());
        // And the datagram calls are not a stream's.
        let (a, _b) = em::connect_pair(Udp::quiet("a", &log), Udp::quiet("b", &log))?;
        assert!(a.set_broadcast(true).unwrap_err().is_unsupported());
        assert!(a.broadcast().unwrap_err().is_unsupported());
        let group = Ipv4Addr::new(239, 255, 0, 1);
        let join = a.join_multicast_v4(group, Ipv4Addr::UNSPECIFIED);
        assert!(join.unwrap_err().is_unsupported());
        let to = local(&socket);
        let e = a.send_datagram(Bytes::from_static(b"x"), to).unwrap_err();
        assert!(e.is_unsupported(), "{e}");
        em::stop();
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_tcp_connection_refuses_the_datagram_calls() {
    let checked = Rc::new(Cell::new(false));
    let c = checked.clone();
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let log = Log::default();
        let server = em::start_server("127.0.0.1:0", move || {
            let c = c.clone();
            Udp::quiet("accepted", &log).on_init(move |conn| {
                let to = SocketAddr::from(([127, 0, 0, 1], 9));
                let e = conn
                    .send_datagram(Bytes::from_static(b"x"), to)
                    .unwrap_err();
                assert!(e.is_unsupported(), "{e}");
                assert!(conn.set_broadcast(true).unwrap_err().is_unsupported());
                let group = Ipv6Addr::new(0xff12, 0, 0, 0, 0, 0, 0, 1);
                let e = conn.join_multicast_v6(group, 0).unwrap_err();
                assert!(e.is_unsupported(), "{e}");
                c.set(true);
                em::stop();
            })
        })?;
        em::connect(server.local_addr(), Echo)?;
        Ok(())
    })
    .unwrap();
    assert!(checked.get());
}

/// This process's multicast groups on the loopback interface, as
/// `/proc/net/igmp` (IPv4) or `/proc/net/igmp6` (IPv6) lists them, in
/// their hexadecimal form; `None` where the file cannot be read.
fn loopback_groups(file: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut on_lo = false;
    let mut groups = String::new();
    for line in text.lines() {
        if file.ends_with('6') {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) == Some(&"lo") {
                groups += fields[2];
                groups.push(' ');
            }
        } else if !line.starts_with('\t') {
            on_lo = line.split_whitespace().nth(1) == Some("lo");
        } else if on_lo {
            groups += line.split_whitespace().next().unwrap_or("");
            groups.push(' ');
        }
    }
    Some(groups)
}

/// How `/proc/net/igmp` shows an IPv4 group: its address as a
/// native-endian (little-endian here) 32-bit number.
fn igmp_hex(group: Ipv4Addr) -> String {
    format!("{:08X}", u32::from_ne_bytes(group.octets()))
}

#[test]
fn multicast_v4_join_receive_and_leave_on_loopback() {
    let pid = std::process::id();
    let group = Ipv4Addr::new(239, 255, (pid >> 8) as u8, pid as u8);
    let skipped = Rc::new(Cell::new(false));
    let got: Arrivals = Rc::default();
    let (g, sk) = (got.clone(), skipped.clone());
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let l = Log::default();
        let receiver = em::open_datagram_socket(
            "0.0.0.0:0",
            Udp::new("receiver", &l, move |conn, datagram| {
                let from = conn.peer_addr().and_then(|a| a.inet()).unwrap();
                g.borrow_mut().push((datagram.to_vec(), from));
                conn.leave_multicast_v4(group, Ipv4Addr::LOCALHOST)
                    .expect("leave");
                if let Some(groups) = loopback_groups("/proc/net/igmp") {
                    assert!(!groups.contains(&igmp_hex(group)), "left: {groups}");
                }
                let again = conn.leave_multicast_v4(group, Ipv4Addr::LOCALHOST);
                assert!(again.unwrap_err().is_io(), "a group not joined");
                em::stop();
            }),
        )?;
        if let Err(e) = receiver.join_multicast_v4(group, Ipv4Addr::LOCALHOST) {
            eprintln!("skipping: cannot join a multicast group on loopback ({e})");
            sk.set(true);
            em::stop();
            return Ok(());
        }
        if let Some(groups) = loopback_groups("/proc/net/igmp") {
            assert!(groups.contains(&igmp_hex(group)), "joined: {groups}");
        }
        let sender = em::open_datagram_socket("127.0.0.1:0", Udp::quiet("sender", &l))?;
        sender.with_socket(|s| {
            s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST)?;
            s.set_multicast_loop_v4(true)
        })?;
        let port = local(&receiver).port();
        sender.send_datagram(
            Bytes::from_static(b"to the group"),
            SocketAddr::from((group, port)),
        )?;
        Ok(())
    })
    .unwrap();
    if skipped.get() {
        return;
    }
    let got = got.borrow();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, b"to the group");
    assert_eq!(got[0].1.ip(), Ipv4Addr::LOCALHOST);
}

#[test]
fn multicast_v6_join_and_leave() {
    let group: Ipv6Addr = format!("ff12::e:{:x}", std::process::id() & 0xffff)
        .parse()
        .unwrap();
    let Some(lo) = std::fs::read_to_string("/sys/class/net/lo/ifindex")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        eprintln!("skipping: no loopback interface index");
        return;
    };
    let hex: String = group.octets().iter().map(|b| format!("{b:02x}")).collect();
    run_with_watchdog(move || -> em::Result<()> {
        let log = Log::default();
        let socket = match em::open_datagram_socket("[::]:0", Udp::quiet("v6", &log)) {
            Ok(socket) => socket,
            Err(e) => {
                eprintln!("skipping: no IPv6 ({e})");
                em::stop();
                return Ok(());
            }
        };
        if let Err(e) = socket.join_multicast_v6(group, lo) {
            eprintln!("skipping: cannot join an IPv6 multicast group on loopback ({e})");
            em::stop();
            return Ok(());
        }
        if let Some(groups) = loopback_groups("/proc/net/igmp6") {
            assert!(groups.contains(&hex), "joined {hex}: {groups}");
        }
        socket.leave_multicast_v6(group, lo)?;
        if let Some(groups) = loopback_groups("/proc/net/igmp6") {
            assert!(!groups.contains(&hex), "left {hex}: {groups}");
        }
        assert!(socket.leave_multicast_v6(group, lo).unwrap_err().is_io());
        em::stop();
        Ok(())
    })
    .unwrap();
}

/// An `on_unbind` that records `"{name} unbind"` on `timeline`.
fn unbind(name: &'static str, timeline: &Timeline) -> impl FnOnce(&Conn<BytesCodec>) + 'static {
    let t = timeline.clone();
    move |_| t.push(format!("{name} unbind"))
}

#[test]
fn the_inactivity_timeout_counts_datagrams_both_ways() {
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    run_paused(move || -> em::Result<()> {
        let timeline = Timeline::start();
        *o.borrow_mut() = Some(timeline.clone());
        let log = Log::default();
        let idle = Duration::from_secs(5);
        let t = timeline.clone();
        let receiver = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("receiver", &log, move |_, d| {
                t.push(format!("receiver got {}", String::from_utf8_lossy(&d)))
            })
            .on_init(move |c| c.set_comm_inactivity_timeout(idle))
            .on_unbind(unbind("receiver", &timeline)),
        )?;
        let sender = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::quiet("sender", &log)
                .on_init(move |c| c.set_comm_inactivity_timeout(idle))
                .on_unbind(unbind("sender", &timeline)),
        )?;
        let to = local(&receiver);
        sender.send_datagram(Bytes::from_static(b"a"), to)?;
        // Activity at 2 s (received) moves the receiver's deadline to 7 s;
        // at 3 s (sent) the sender's to 8 s.
        let s = sender.clone();
        em::add_timer(Duration::from_secs(2), move || {
            s.send_datagram(Bytes::from_static(b"b"), to).unwrap();
        })?;
        let s = sender.clone();
        let elsewhere = em::open_datagram_socket("127.0.0.1:0", Udp::quiet("sink", &log))?;
        let sink = local(&elsewhere);
        em::add_timer(Duration::from_secs(3), move || {
            s.send_datagram(Bytes::from_static(b"c"), sink).unwrap();
        })?;
        let t = timeline.clone();
        em::add_timer(Duration::from_secs(6), move || {
            t.push(format!("receiver idle {:?}", receiver.idle_time()));
        })?;
        let t = timeline.clone();
        em::add_timer(Duration::from_secs(20), move || {
            t.push("stop");
            em::stop();
        })?;
        Ok(())
    })
    .unwrap();
    let timeline = out.borrow_mut().take().unwrap();
    assert_eq!(
        timeline.events_ms(),
        [
            ("receiver got a".to_owned(), 0),
            ("receiver got b".to_owned(), 2000),
            ("receiver idle Some(4s)".to_owned(), 6000),
            ("receiver unbind".to_owned(), 7000),
            ("sender unbind".to_owned(), 8000),
            ("stop".to_owned(), 20000),
        ]
    );
}

#[test]
fn close_connection_ends_with_exactly_one_unbind() {
    let log = Log::default();
    let l = log.clone();
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let closing = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("closing", &l, |conn, _| {
                conn.close_connection();
                conn.close_connection(); // a no-op
                assert!(conn.is_closed());
                assert!(conn
                    .try_send_data(Bytes::from_static(b"x"))
                    .unwrap_err()
                    .is_closed());
            })
            .on_unbind(|conn| {
                assert!(conn.local_addr().is_none(), "the socket is gone");
                em::stop();
            }),
        )?;
        let other = em::open_datagram_socket("127.0.0.1:0", Udp::quiet("other", &l))?;
        other.send_datagram(Bytes::from_static(b"close"), local(&closing))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        ["closing unbind Closed", "other unbind ReactorStopped"]
    );
}

#[test]
fn the_reactor_stop_ends_a_datagram_socket_with_exactly_one_unbind() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let socket = em::open_datagram_socket("127.0.0.1:0", Udp::quiet("socket", &l))?;
        let c = socket.clone();
        em::add_timer(Duration::from_millis(1), move || {
            em::stop();
            c.close_connection(); // after the stop: still one unbind
        })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["socket unbind ReactorStopped"]);
}

#[test]
fn close_after_writing_sends_what_is_queued_then_ends() {
    let log = Log::default();
    let got = Rc::new(RefCell::new(Vec::new()));
    let (l, g) = (log.clone(), got.clone());
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let closing = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("closing", &l, |conn, _| {
                conn.send_data(Bytes::from_static(b"reply 1"));
                conn.send_data(Bytes::from_static(b"reply 2"));
                conn.close_connection_after_writing();
                let late = conn.try_send_data(Bytes::from_static(b"late"));
                assert!(late.unwrap_err().is_closed());
                let to = SocketAddr::from(([127, 0, 0, 1], 9));
                let late = conn.send_datagram(Bytes::from_static(b"late"), to);
                assert!(late.unwrap_err().is_closed());
            }),
        )?;
        let l2 = l.clone();
        let asker = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("asker", &l, move |_, d| {
                g.borrow_mut().push(d.to_vec());
                if g.borrow().len() == 2 {
                    l2.push("asker got both");
                    em::stop();
                }
            }),
        )?;
        asker.send_datagram(Bytes::from_static(b"bye"), local(&closing))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(*got.borrow(), [b"reply 1".to_vec(), b"reply 2".to_vec()]);
    let events = log.events();
    assert_eq!(log.count("closing unbind Closed"), 1, "{events:?}");
    assert_eq!(log.count("asker got both"), 1, "{events:?}");
    assert_eq!(events.len(), 3, "{events:?}");
}

#[test]
fn detach_gives_the_udp_socket_back_and_unbinds_once() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let socket = em::open_datagram_socket("127.0.0.1:0", Udp::quiet("socket", &l))?;
        let addr = local(&socket);
        let fd = socket.detach()?;
        let std = UdpSocket::from(fd);
        assert_eq!(std.local_addr().unwrap(), addr);
        assert!(!is_nonblocking(&std), "back in blocking mode");
        assert!(socket.detach().unwrap_err().is_closed());
        em::add_timer(Duration::from_millis(1), em::stop)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events(), ["socket unbind Detached"]);
}

#[test]
fn reconnect_and_files_are_not_a_datagram_socket_s() {
    let path = std::env::temp_dir().join(format!("em-udp-file-{}", std::process::id()));
    std::fs::write(&path, b"a file").unwrap();
    let log = Log::default();
    let checked = Rc::new(Cell::new(0));
    let (l, c, p) = (log.clone(), checked.clone(), path.clone());
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let c2 = c.clone();
        let socket = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::quiet("socket", &l).on_unbind(move |conn| {
                let e = conn.reconnect("127.0.0.1:9").unwrap_err();
                assert!(e.is_unsupported(), "{e}");
                c2.set(c2.get() + 1);
                em::stop();
            }),
        )?;
        let e = socket.send_file_data(&p).unwrap_err();
        assert!(e.is_unsupported(), "{e}");
        let e = socket.stream_file_data(&p, true).unwrap_err();
        assert!(e.is_unsupported(), "{e}");
        c.set(c.get() + 1);
        socket.close_connection();
        Ok(())
    })
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(checked.get(), 2);
    assert_eq!(log.events(), ["socket unbind Closed"]);
}

#[test]
fn watermarks_count_queued_datagram_bytes_and_boundaries_survive() {
    let log = Log::default();
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let (l, g) = (log.clone(), got.clone());
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let producer: Rc<RefCell<Option<Conn<BytesCodec>>>> = Rc::default();
        let (g2, p, l2) = (g.clone(), producer.clone(), l.clone());
        let receiver = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("receiver", &l, move |_, d| {
                g2.borrow_mut().push(d.to_vec());
                if g2.borrow().len() == 11 {
                    let p = p.borrow();
                    let p = p.as_ref().unwrap();
                    assert_eq!(p.outbound_data_size(), 0, "all sent");
                    assert!(!p.is_above_high_watermark(), "drained");
                    l2.push("all arrived");
                    em::stop();
                }
            }),
        )?;
        let to = local(&receiver);
        let l3 = l.clone();
        let conn = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::quiet("producer", &l).on_init(move |conn| {
                conn.set_outbound_watermarks(1000, 100).unwrap();
                for i in 0..10u8 {
                    let n = conn.send_datagram(Bytes::from(vec![i; 200]), to).unwrap();
                    assert_eq!(n, 200);
                    assert_eq!(conn.outbound_data_size(), 200 * (usize::from(i) + 1));
                    assert_eq!(conn.is_above_high_watermark(), i >= 5, "after {i}");
                }
                assert_eq!(conn.send_datagram(Bytes::new(), to).unwrap(), 0);
                assert_eq!(
                    conn.outbound_data_size(),
                    2000,
                    "an empty datagram adds no byte"
                );
                l3.push("queued");
            }),
        )?;
        *producer.borrow_mut() = Some(conn);
        Ok(())
    })
    .unwrap();
    let got = got.borrow();
    assert_eq!(got.len(), 11);
    for (i, d) in got[..10].iter().enumerate() {
        assert_eq!(*d, vec![i as u8; 200], "datagram {i} whole and in order");
    }
    assert!(got[10].is_empty(), "the empty datagram, last");
    assert_eq!(log.count("queued"), 1);
    assert_eq!(log.count("all arrived"), 1);
}

#[test]
fn outbound_drained_runs_once_queued_datagrams_have_left() {
    /// Queues 10 datagrams of 200 bytes past a 1,000-byte high watermark,
    /// and logs `outbound_drained` with the bytes still queued.
    struct Producer {
        to: SocketAddr,
        log: Log,
    }
    impl Connection for Producer {
        type Codec = BytesCodec;
        fn codec(&self) -> BytesCodec {
            BytesCodec::new()
        }
        fn post_init(&mut self, conn: &Conn<BytesCodec>) {
            conn.set_outbound_watermarks(1000, 100).unwrap();
            for i in 0..10u8 {
                conn.send_datagram(Bytes::from(vec![i; 200]), self.to)
                    .unwrap();
            }
            assert!(conn.is_above_high_watermark());
        }
        fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
        fn outbound_drained(&mut self, conn: &Conn<BytesCodec>) {
            self.log
                .push(format!("drained {}", conn.outbound_data_size()));
            em::stop();
        }
    }
    let log = Log::default();
    let l = log.clone();
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let sink = em::open_datagram_socket("127.0.0.1:0", Udp::quiet("sink", &l))?;
        let to = local(&sink);
        em::open_datagram_socket("127.0.0.1:0", Producer { to, log: l.clone() })?;
        Ok(())
    })
    .unwrap();
    assert_eq!(log.events()[0], "drained 0");
}

#[test]
fn max_outbound_counts_datagram_bytes() {
    let log = Log::default();
    let l = log.clone();
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let sink = em::open_datagram_socket("127.0.0.1:0", Udp::quiet("sink", &l))?;
        let to = local(&sink);
        em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::quiet("flood", &l)
                .on_init(move |conn| {
                    conn.set_outbound_watermarks(500, 100).unwrap();
                    conn.set_max_outbound(1000).unwrap();
                    for _ in 0..5 {
                        conn.send_datagram(Bytes::from(vec![0u8; 200]), to).unwrap();
                    }
                    let e = conn
                        .send_datagram(Bytes::from(vec![0u8; 200]), to)
                        .unwrap_err();
                    assert!(e.is_outbound_overflow(), "{e}");
                })
                .on_unbind(|_| em::stop()),
        )?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "flood unbind OutboundOverflow",
            "sink unbind ReactorStopped"
        ]
    );
}

#[test]
fn pause_leaves_datagrams_in_the_kernel_until_resume() {
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let g = got.clone();
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let log = Log::default();
        let g2 = g.clone();
        let paused = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("paused", &log, move |_, d| {
                g2.borrow_mut().push(d.to_vec());
                if g2.borrow().len() == 3 {
                    em::stop();
                }
            })
            .on_init(|conn| conn.pause()),
        )?;
        let p = paused.clone();
        let g3 = g.clone();
        // Told to resume by a datagram sent after the three: they are in
        // the paused socket's kernel buffer by then (loopback delivers
        // during the send).
        let control = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("control", &log, move |_, _| {
                assert!(g3.borrow().is_empty(), "nothing delivered while paused");
                assert!(p.is_paused());
                p.resume();
            }),
        )?;
        let sender = em::open_datagram_socket("127.0.0.1:0", Udp::quiet("sender", &log))?;
        for d in [&b"1"[..], b"2", b"3"] {
            sender.send_datagram(Bytes::from_static(d), local(&paused))?;
        }
        sender.send_datagram(Bytes::from_static(b"resume"), local(&control))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(*got.borrow(), [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
}

#[test]
fn a_pause_inside_receive_data_holds_the_rest_of_a_batch_until_resume() {
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let g = got.clone();
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let log = Log::default();
        let g2 = g.clone();
        let paused = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("paused", &log, move |conn, d| {
                g2.borrow_mut().push(d.to_vec());
                match g2.borrow().len() {
                    1 => conn.pause(),
                    5 => em::stop(),
                    _ => {}
                }
            }),
        )?;
        let p = paused.clone();
        let g3 = g.clone();
        // Five datagrams sent in one pass arrive together: the first is
        // delivered, the pause holds the four others (received with it)
        // until the resume; then they come, in order.
        let control = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("control", &log, move |_, _| {
                assert_eq!(g3.borrow().len(), 1, "one delivered before the pause");
                assert!(p.is_paused());
                p.resume();
            }),
        )?;
        let sender = em::open_datagram_socket("127.0.0.1:0", Udp::quiet("sender", &log))?;
        for d in [&b"1"[..], b"2", b"3", b"4", b"5"] {
            sender.send_datagram(Bytes::from_static(d), local(&paused))?;
        }
        sender.send_datagram(Bytes::from_static(b"resume"), local(&control))?;
        Ok(())
    })
    .unwrap();
    let expected: Vec<Vec<u8>> = ["1", "2", "3", "4", "5"]
        .map(|d| d.as_bytes().to_vec())
        .into();
    assert_eq!(*got.borrow(), expected);
}

#[test]
fn output_past_the_high_watermark_holds_the_rest_of_a_batch_in_order() {
    let got: Rc<RefCell<Vec<u8>>> = Rc::default();
    let replies: Rc<RefCell<Vec<usize>>> = Rc::default();
    let (g, r) = (got.clone(), replies.clone());
    run_builder_with_watchdog(stop_on_panic(), move || -> em::Result<()> {
        let log = Log::default();
        let r2 = r.clone();
        let client = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("client", &log, move |_, d| {
                r2.borrow_mut().push(d.len());
                if r2.borrow().len() == 8 {
                    em::stop();
                }
            }),
        )?;
        let g2 = g.clone();
        let server = em::open_datagram_socket(
            "127.0.0.1:0",
            Udp::new("server", &log, move |conn, d| {
                // Nothing is delivered while the output is past the mark.
                assert!(!conn.is_above_high_watermark());
                g2.borrow_mut().push(d[0]);
                conn.send_data(Bytes::from(vec![d[0]; 3000]));
                assert!(conn.is_above_high_watermark());
            })
            .on_init(|conn| conn.set_outbound_watermarks(1000, 0).unwrap()),
        )?;
        let to = local(&server);
        for i in 0..8u8 {
            client.send_datagram(Bytes::from(vec![i; 10]), to)?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(*got.borrow(), (0..8).collect::<Vec<u8>>());
    assert_eq!(*replies.borrow(), [3000; 8]);
}
