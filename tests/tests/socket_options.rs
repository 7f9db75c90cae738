//! Socket options on a connection (EventMachine's `set_sock_opt`,
//! `get_sock_opt`, `enable_keepalive`, `disable_keepalive`): what is set
//! reads back through getsockopt, and each connection that cannot take an
//! option says why with a typed error.
//!
//! The checks run inside callbacks on a reactor built with
//! `stop_on_panic(true)`, so a failed assertion stops it and fails the test
//! with its message.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use support::*;

type Check = Box<dyn FnOnce(&Conn<BytesCodec>)>;

/// Runs its check when connected (`connection_completed` for a client,
/// `post_init` for anything else), then stops the reactor unless told not
/// to; runs `on_unbind` in `unbind`.
#[derive(Default)]
struct Checker {
    on_connect: Option<Check>,
    on_unbind: Option<Check>,
    client: bool,
    keep_running: bool,
}

impl Checker {
    fn client(check: impl FnOnce(&Conn<BytesCodec>) + 'static) -> Self {
        Checker {
            on_connect: Some(Box::new(check)),
            client: true,
            ..Checker::default()
        }
    }

    fn accepted(check: impl FnOnce(&Conn<BytesCodec>) + 'static) -> Self {
        Checker {
            on_connect: Some(Box::new(check)),
            ..Checker::default()
        }
    }

    fn check(&mut self, conn: &Conn<BytesCodec>) {
        if let Some(check) = self.on_connect.take() {
            check(conn);
            if !self.keep_running {
                em::stop();
            }
        }
    }
}

impl Connection for Checker {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        if !self.client {
            self.check(conn);
        }
    }
    fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
        self.check(conn);
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    fn unbind(&mut self, conn: &Conn<BytesCodec>, _: UnbindReason) {
        if let Some(check) = self.on_unbind.take() {
            check(conn);
            em::stop();
        }
    }
}

/// Runs `init` on a reactor that stops at the first panic in a callback
/// (an assertion that failed) and returns it, failing the test with it.
fn run_checked(init: impl FnOnce() -> em::Result<()> + 'static) {
    run_builder_with_watchdog(em::Reactor::builder().stop_on_panic(true), init)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Runs `check` on a TCP client connection once it is connected.
fn on_tcp_client(check: impl FnOnce(&Conn<BytesCodec>) + 'static) {
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    run_checked(move || {
        let server = em::start_server("127.0.0.1:0", em::handler(|_, _| ()))?;
        em::connect(
            server.local_addr(),
            Checker::client(move |conn| {
                check(conn);
                *r.borrow_mut() = true;
            }),
        )?;
        Ok(())
    });
    assert!(*ran.borrow(), "the check ran");
}

/// An `int` option's value, from the packed bytes `get_sock_opt` returns.
fn int(bytes: Vec<u8>) -> i32 {
    i32::from_ne_bytes(bytes.try_into().expect("an int option is 4 bytes"))
}

fn int_opt(conn: &Conn<BytesCodec>, level: i32, name: i32) -> i32 {
    int(conn.get_sock_opt(level, name).expect("get_sock_opt"))
}

/// Asserts `result` is an unsupported error whose message names `call` and
/// `kind`.
#[track_caller]
fn assert_unsupported<T: std::fmt::Debug>(result: em::Result<T>, call: &str, kind: &str) {
    let e = result.expect_err("unsupported");
    assert!(e.is_unsupported(), "{call}: {e:?}");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("{call}: ")) && message.contains(kind),
        "{call}: the message names the call and {kind:?}: {message}"
    );
}

/// Asserts `result` is a closed error whose message names `call` and says
/// `why`.
#[track_caller]
fn assert_closed<T: std::fmt::Debug>(result: em::Result<T>, call: &str, why: &str) {
    let e = result.expect_err("closed");
    assert!(e.is_closed(), "{call}: {e:?}");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("{call}: ")) && message.contains(why),
        "{call}: the message names the call and says {why:?}: {message}"
    );
}

/// Every call of this area on `conn`, as results without their values.
fn every_call(conn: &Conn<BytesCodec>) -> Vec<(&'static str, em::Result<()>)> {
    let secs = Duration::from_secs;
    vec![
        ("set_nodelay", conn.set_nodelay(true)),
        ("nodelay", conn.nodelay().map(drop)),
        (
            "enable_keepalive",
            conn.enable_keepalive(secs(60), secs(10), 3),
        ),
        ("disable_keepalive", conn.disable_keepalive()),
        ("keepalive", conn.keepalive().map(drop)),
        ("with_socket", conn.with_socket(|s| s.r#type()).map(drop)),
        (
            "set_sock_opt",
            conn.set_sock_opt(libc::SOL_SOCKET, libc::SO_KEEPALIVE, &1i32.to_ne_bytes()),
        ),
        (
            "get_sock_opt",
            conn.get_sock_opt(libc::SOL_SOCKET, libc::SO_KEEPALIVE)
                .map(drop),
        ),
    ]
}

const TCP_ONLY: [&str; 5] = [
    "set_nodelay",
    "nodelay",
    "enable_keepalive",
    "disable_keepalive",
    "keepalive",
];

#[test]
fn keepalive_settings_read_back_through_getsockopt_and_socket2() {
    on_tcp_client(|conn| {
        assert!(!conn.keepalive().unwrap(), "off until enabled");
        assert_eq!(
            int_opt(conn, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
            0,
            "SO_KEEPALIVE starts off"
        );

        // The fractions of a second are dropped: the system counts seconds.
        conn.enable_keepalive(Duration::from_millis(7_900), Duration::from_secs(3), 4)
            .unwrap();
        assert!(conn.keepalive().unwrap());
        assert_eq!(int_opt(conn, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
        assert_eq!(int_opt(conn, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 7);
        assert_eq!(int_opt(conn, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL), 3);
        assert_eq!(int_opt(conn, libc::IPPROTO_TCP, libc::TCP_KEEPCNT), 4);
        let seen = conn
            .with_socket(|s| {
                Ok((
                    s.keepalive()?,
                    s.tcp_keepalive_time()?,
                    s.tcp_keepalive_interval()?,
                    s.tcp_keepalive_retries()?,
                ))
            })
            .unwrap();
        assert_eq!(
            seen,
            (true, Duration::from_secs(7), Duration::from_secs(3), 4)
        );

        conn.disable_keepalive().unwrap();
        assert!(!conn.keepalive().unwrap());
        assert_eq!(int_opt(conn, libc::SOL_SOCKET, libc::SO_KEEPALIVE), 0);
        assert!(!conn.with_socket(|s| s.keepalive()).unwrap());
        // The timings stay for the next enable.
        assert_eq!(int_opt(conn, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 7);
    });
}

#[test]
fn nodelay_is_on_by_default_and_round_trips() {
    on_tcp_client(|conn| {
        assert!(conn.nodelay().unwrap(), "em turns Nagle off on connect");
        conn.set_nodelay(false).unwrap();
        assert!(!conn.nodelay().unwrap());
        assert_eq!(int_opt(conn, libc::IPPROTO_TCP, libc::TCP_NODELAY), 0);
        assert!(!conn.with_socket(|s| s.tcp_nodelay()).unwrap());
        conn.set_nodelay(true).unwrap();
        assert!(conn.nodelay().unwrap());
        assert_ne!(int_opt(conn, libc::IPPROTO_TCP, libc::TCP_NODELAY), 0);
    });
}

#[test]
fn nodelay_is_on_for_accepted_connections_too() {
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    run_checked(move || {
        let r = r.clone();
        let mut once = Some(move |conn: &Conn<BytesCodec>| {
            assert!(conn.nodelay().unwrap());
            *r.borrow_mut() = true;
        });
        let server = em::start_server("127.0.0.1:0", move || {
            Checker::accepted(once.take().expect("one connection"))
        })?;
        em::connect(
            server.local_addr(),
            Checker {
                keep_running: true,
                ..Checker::default()
            },
        )?;
        Ok(())
    });
    assert!(*ran.borrow());
}

#[test]
fn raw_set_and_get_sock_opt_round_trip_a_buffer_size() {
    on_tcp_client(|conn| {
        const ASKED: i32 = 96 * 1024;
        conn.set_sock_opt(libc::SOL_SOCKET, libc::SO_RCVBUF, &ASKED.to_ne_bytes())
            .unwrap();
        let got = int_opt(conn, libc::SOL_SOCKET, libc::SO_RCVBUF);
        // Linux doubles the value for its bookkeeping (socket(7)).
        assert_eq!(got, 2 * ASKED);
        assert_eq!(
            conn.with_socket(|s| s.recv_buffer_size()).unwrap(),
            got as usize,
            "socket2 reads the same option"
        );

        // And the other way: set through socket2, read raw.
        conn.with_socket(|s| s.set_send_buffer_size(64 * 1024))
            .unwrap();
        assert_eq!(
            int_opt(conn, libc::SOL_SOCKET, libc::SO_SNDBUF),
            2 * 64 * 1024
        );
        // A struct-valued option comes back whole: SO_LINGER is two ints.
        let linger = conn
            .get_sock_opt(libc::SOL_SOCKET, libc::SO_LINGER)
            .unwrap();
        assert_eq!(linger.len(), std::mem::size_of::<libc::linger>());
    });
}

#[test]
fn a_refused_system_call_is_an_io_error_naming_the_call() {
    on_tcp_client(|conn| {
        const NO_SUCH_OPTION: i32 = 0x7fff;
        let e = conn
            .set_sock_opt(libc::SOL_SOCKET, NO_SUCH_OPTION, &1i32.to_ne_bytes())
            .unwrap_err();
        assert!(e.is_io(), "{e:?}");
        assert_eq!(
            e.io_error().and_then(std::io::Error::raw_os_error),
            Some(libc::ENOPROTOOPT)
        );
        assert!(e.to_string().starts_with("set_sock_opt: "), "{e}");

        let e = conn
            .get_sock_opt(libc::SOL_SOCKET, NO_SUCH_OPTION)
            .unwrap_err();
        assert!(
            e.is_io() && e.to_string().starts_with("get_sock_opt: "),
            "{e}"
        );

        // An int option given one byte.
        let e = conn
            .set_sock_opt(libc::SOL_SOCKET, libc::SO_RCVBUF, &[1])
            .unwrap_err();
        assert_eq!(
            e.io_error().and_then(std::io::Error::raw_os_error),
            Some(libc::EINVAL),
            "{e}"
        );

        let e = conn
            .with_socket(|_| -> std::io::Result<()> { Err(std::io::Error::other("mine")) })
            .unwrap_err();
        assert!(e.is_io(), "{e:?}");
        assert_eq!(e.to_string(), "with_socket: mine");

        // Past Linux's cap of 32,767 s: refused, and keep-alive stays off.
        let e = conn
            .enable_keepalive(Duration::from_secs(40_000), Duration::from_secs(1), 1)
            .unwrap_err();
        assert!(e.is_io(), "{e:?}");
        assert!(e.to_string().starts_with("enable_keepalive: "), "{e}");
        assert!(!conn.keepalive().unwrap(), "left as it was");

        for (idle, interval, count) in [(0, 1, 1), (1, 0, 1), (1, 1, 0)] {
            let e = conn
                .enable_keepalive(
                    Duration::from_secs(idle),
                    Duration::from_secs(interval),
                    count,
                )
                .unwrap_err();
            assert!(e.is_invalid_argument(), "{e:?}");
        }
        assert!(!conn.keepalive().unwrap());
    });
}

#[test]
fn an_in_memory_connection_has_no_socket() {
    let checked = Rc::new(RefCell::new(0));
    let c = checked.clone();
    run_checked(move || {
        let check = move |conn: &Conn<BytesCodec>| {
            for (call, result) in every_call(conn) {
                assert_unsupported(result, call, "in-memory");
                *c.borrow_mut() += 1;
            }
            if *c.borrow() == 16 {
                em::stop();
            }
        };
        let both = Rc::new(check);
        let (a, b) = (both.clone(), both);
        // Each end once it is open: `a` at once, `b` once "connected".
        em::connect_pair(
            Checker {
                keep_running: true,
                ..Checker::accepted(move |conn| a(conn))
            },
            Checker {
                keep_running: true,
                ..Checker::client(move |conn| b(conn))
            },
        )?;
        Ok(())
    });
    assert_eq!(*checked.borrow(), 16);
}

/// A socket path in the temp dir, unique to this process and call.
fn socket_path() -> std::path::PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "em-sockopt-{}-{}.sock",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

#[test]
fn tcp_options_on_a_unix_socket_are_unsupported_but_socket_options_work() {
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    run_checked(move || {
        let server = em::start_unix_domain_server(socket_path(), em::handler(|_, _| ()))?;
        let path = server.local_addr().unix_path().expect("a path").to_owned();
        em::connect_unix_domain(
            path,
            Checker::client(move |conn| {
                for (call, result) in every_call(conn) {
                    if TCP_ONLY.contains(&call) {
                        assert_unsupported(result, call, "Unix");
                    } else {
                        result.unwrap_or_else(|e| panic!("{call} on a Unix socket: {e}"));
                    }
                }
                assert_eq!(
                    conn.with_socket(|s| s.domain()).unwrap(),
                    em::socket2::Domain::UNIX
                );
                assert_eq!(
                    int_opt(conn, libc::SOL_SOCKET, libc::SO_TYPE),
                    libc::SOCK_STREAM
                );
                *r.borrow_mut() = true;
            }),
        )?;
        Ok(())
    });
    assert!(*ran.borrow());
}

#[test]
fn a_pipe_end_is_not_a_socket() {
    let checked = Rc::new(RefCell::new(0));
    let c = checked.clone();
    run_checked(move || {
        let (reader, writer) = std::io::pipe().expect("pipe");
        for conn in [
            em::attach(reader, Checker::default())?,
            em::attach(writer, Checker::default())?,
        ] {
            for (call, result) in every_call(&conn) {
                assert_unsupported(result, call, "pipe");
                *c.borrow_mut() += 1;
            }
        }
        em::stop();
        Ok(())
    });
    assert_eq!(*checked.borrow(), 16);
}

#[test]
fn options_need_a_socket_not_connected_yet_or_ended() {
    let seen = Log::default();
    let s = seen.clone();
    run_checked(move || {
        let server = em::start_server("127.0.0.1:0", em::handler(|_, _| ()))?;
        let s1 = s.clone();
        let s2 = s.clone();
        let conn = em::connect(
            server.local_addr(),
            Checker {
                keep_running: true,
                on_unbind: Some(Box::new(move |conn| {
                    for (call, result) in every_call(conn) {
                        assert_closed(result, call, "has ended");
                    }
                    s2.push("checked ended");
                })),
                ..Checker::client(move |conn| {
                    conn.set_nodelay(true).expect("connected now");
                    s1.push("connected");
                    conn.close_connection();
                })
            },
        )?;
        // The connect has not completed yet: no socket.
        for (call, result) in every_call(&conn) {
            assert_closed(result, call, "not connected yet");
        }
        s.push("checked connecting");
        Ok(())
    });
    assert_eq!(
        seen.events(),
        ["checked connecting", "connected", "checked ended"]
    );
}

#[test]
fn options_on_a_detached_connection_are_closed_errors() {
    on_tcp_client(|conn| {
        let fd = conn.detach().expect("detach");
        for (call, result) in every_call(conn) {
            assert_closed(result, call, "detached");
        }
        // The socket is the program's now, and still has its options.
        assert!(em::socket2::SockRef::from(&fd).tcp_nodelay().unwrap());
    });
}

#[test]
fn with_socket_may_ask_for_other_options_but_not_detach() {
    on_tcp_client(|conn| {
        let (nodelay, detach_refused) = conn
            .with_socket(|s| {
                s.set_tcp_nodelay(false)?;
                // Another option call from inside the closure works...
                let nodelay = conn.nodelay().expect("nested nodelay");
                // ...and detach is refused rather than panicking.
                let detach = conn.detach();
                Ok((nodelay, detach.is_err_and(|e| e.is_unsupported())))
            })
            .unwrap();
        assert!(!nodelay);
        assert!(detach_refused);
        assert!(!conn.is_closed(), "the connection stays open");
        assert!(conn.detach().is_ok(), "detach works outside the closure");
    });
}
