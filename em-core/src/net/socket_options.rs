//! Socket options on a connection (EventMachine's `set_sock_opt`,
//! `get_sock_opt`, `enable_keepalive` and `disable_keepalive`): typed calls
//! for `TCP_NODELAY` and keep-alive, broadcast and multicast membership on
//! a datagram socket, any option socket2 knows through
//! [`Conn::with_socket`], and raw options as packed bytes.
//!
//! Each call borrows the connection's transport for its system call only
//! (and for the closure of `with_socket`), never across a callback, and
//! sorts out the connections it cannot apply to before touching the
//! socket: one with no socket yet or any more (`is_closed()`), one whose
//! transport is no socket or the wrong kind (`is_unsupported()`).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::BorrowedFd;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

use crate::error::{Error, Result};
use crate::net::conn::{Close, Conn};
use crate::net::transport::SocketKind;

mod raw;

/// The sockets a call applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applies {
    /// TCP, Unix-domain and UDP sockets.
    AnySocket,
    /// TCP sockets only.
    Tcp,
    /// UDP sockets only.
    Udp,
}

impl Applies {
    fn to(self, kind: Option<SocketKind>) -> bool {
        match self {
            Applies::AnySocket => kind.is_some(),
            Applies::Tcp => kind == Some(SocketKind::Tcp),
            Applies::Udp => kind == Some(SocketKind::Udp),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Applies::AnySocket => "socket",
            Applies::Tcp => "TCP",
            Applies::Udp => "UDP",
        }
    }
}

impl<C> Conn<C> {
    /// Turns Nagle's algorithm off (`true`) or on (`false`): `TCP_NODELAY`.
    /// em turns it off on every TCP connection it accepts or connects, so
    /// small replies leave at once; turn it back on for a connection that
    /// sends many small writes and can wait to batch them. Reactor thread;
    /// takes effect at once.
    ///
    /// Errors: `is_closed()` before a client's connect completed, after the
    /// connection ended or was detached; `is_unsupported()` on a connection
    /// that is not TCP (Unix-domain, UDP, pipe, in-memory); `is_io()` if the
    /// system refuses.
    pub fn set_nodelay(&self, nodelay: bool) -> Result<()> {
        self.on_socket("set_nodelay", Applies::Tcp, |s| s.set_tcp_nodelay(nodelay))
    }

    /// Whether Nagle's algorithm is off (`TCP_NODELAY`), as the system
    /// reports it. Reactor thread. Errors as
    /// [`set_nodelay`](Conn::set_nodelay).
    pub fn nodelay(&self) -> Result<bool> {
        self.on_socket("nodelay", Applies::Tcp, |s| s.tcp_nodelay())
    }

    /// Turns TCP keep-alive on (EventMachine's `enable_keepalive`):
    /// `SO_KEEPALIVE`, with the first probe after `idle` without traffic
    /// (`TCP_KEEPIDLE`), then one every `interval` (`TCP_KEEPINTVL`), the
    /// connection being given up after `count` unanswered probes
    /// (`TCP_KEEPCNT`); it then ends with an `unbind` whose reason is an I/O
    /// error (`ETIMEDOUT`). The system counts in whole seconds: the
    /// fractions of `idle` and `interval` are dropped. Reactor thread.
    ///
    /// Errors: `is_invalid_argument()` if `idle` or `interval` is under one
    /// second or `count` is 0; `is_io()` if the system refuses a value
    /// (Linux caps `idle` and `interval` at 32,767 s and `count` at 127),
    /// and keep-alive is then left as it was; otherwise as
    /// [`set_nodelay`](Conn::set_nodelay) (TCP only).
    ///
    /// ```
    /// # use em_core as em;
    /// use std::time::Duration;
    /// use em::{Conn, Connection};
    /// use tokio_util::codec::BytesCodec;
    ///
    /// struct Client;
    /// impl Connection for Client {
    ///     type Codec = BytesCodec;
    ///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
    ///     fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
    ///         conn.enable_keepalive(Duration::from_secs(60), Duration::from_secs(10), 5)
    ///             .expect("keep-alive");
    ///         assert!(conn.keepalive().expect("SO_KEEPALIVE"));
    ///         em::stop();
    ///     }
    ///     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: bytes::BytesMut) {}
    /// }
    ///
    /// em::run(|| -> em::Result<()> {
    ///     let server = em::start_server("127.0.0.1:0", em::handler(|_, _| ()))?;
    ///     em::connect(server.local_addr(), Client)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn enable_keepalive(&self, idle: Duration, interval: Duration, count: u32) -> Result<()> {
        const CALL: &str = "enable_keepalive";
        if idle < Duration::from_secs(1) || interval < Duration::from_secs(1) {
            return Err(Error::invalid_argument(
                CALL,
                "the idle time and the probe interval must be at least one second",
            ));
        }
        if count == 0 {
            return Err(Error::invalid_argument(
                CALL,
                "the probe count must be at least one",
            ));
        }
        let params = TcpKeepalive::new()
            .with_time(idle)
            .with_interval(interval)
            .with_retries(count);
        self.on_socket(CALL, Applies::Tcp, |s| {
            let was_on = s.keepalive()?;
            // socket2 turns SO_KEEPALIVE on before it sets the timings: if
            // one is refused, put it back as it was.
            s.set_tcp_keepalive(&params).inspect_err(|_| {
                if !was_on {
                    let _ = s.set_keepalive(false);
                }
            })
        })
    }

    /// Turns TCP keep-alive off (EventMachine's `disable_keepalive`):
    /// `SO_KEEPALIVE` off; the timings stay set for a later
    /// [`enable_keepalive`](Conn::enable_keepalive). Reactor thread. Errors
    /// as [`set_nodelay`](Conn::set_nodelay) (TCP only).
    pub fn disable_keepalive(&self) -> Result<()> {
        self.on_socket("disable_keepalive", Applies::Tcp, |s| {
            s.set_keepalive(false)
        })
    }

    /// Whether TCP keep-alive is on (`SO_KEEPALIVE`), as the system reports
    /// it. Reactor thread. Errors as [`set_nodelay`](Conn::set_nodelay)
    /// (TCP only).
    pub fn keepalive(&self) -> Result<bool> {
        self.on_socket("keepalive", Applies::Tcp, |s| s.keepalive())
    }

    /// Runs `f` on the connection's socket, for any option socket2 knows
    /// (buffer sizes, `SO_LINGER`, `IP_TOS`, `TCP_USER_TIMEOUT`, `SO_MARK`,
    /// ...): socket2 is re-exported by the `em` facade as `em::socket2`.
    /// Works on TCP, Unix-domain and UDP sockets; returns what `f` returns.
    /// Runs `f` at once, on the reactor thread.
    ///
    /// `f` gets a borrowed socket: it must not close it or change its
    /// blocking mode (the reactor relies on it being non-blocking), and
    /// should not read or write on it (bytes would bypass the connection).
    /// It may call the connection's other socket-option methods, but not
    /// [`detach`](Conn::detach), which errors while `f` runs.
    ///
    /// Errors: `is_io()` with `f`'s error; `is_closed()` before a client's
    /// connect completed, after the connection ended or was detached;
    /// `is_unsupported()` on a pipe or in-memory connection.
    ///
    /// ```
    /// # use em_core as em;
    /// use em::{Conn, Connection};
    /// use tokio_util::codec::BytesCodec;
    ///
    /// struct Client;
    /// impl Connection for Client {
    ///     type Codec = BytesCodec;
    ///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
    ///     fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
    ///         conn.with_socket(|s| s.set_tcp_user_timeout(Some(std::time::Duration::from_secs(30))))
    ///             .expect("TCP_USER_TIMEOUT");
    ///         let sndbuf = conn.with_socket(|s| s.send_buffer_size()).expect("SO_SNDBUF");
    ///         assert!(sndbuf > 0);
    ///         em::stop();
    ///     }
    ///     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: bytes::BytesMut) {}
    /// }
    ///
    /// em::run(|| -> em::Result<()> {
    ///     let server = em::start_server("127.0.0.1:0", em::handler(|_, _| ()))?;
    ///     em::connect(server.local_addr(), Client)?;
    ///     Ok(())
    /// })?;
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn with_socket<R>(&self, f: impl FnOnce(&SockRef<'_>) -> io::Result<R>) -> Result<R> {
        self.on_socket("with_socket", Applies::AnySocket, f)
    }

    /// Sets socket option `name` at `level` to `value`, the option's value
    /// as packed bytes, native-endian (EventMachine's `set_sock_opt`; for
    /// an `int` option, `1i32.to_ne_bytes()`): any option the system knows,
    /// with the constants of the `libc` crate. Prefer the typed calls
    /// ([`set_nodelay`](Conn::set_nodelay),
    /// [`enable_keepalive`](Conn::enable_keepalive),
    /// [`with_socket`](Conn::with_socket)) where they cover the option.
    /// Reactor thread; takes effect at once.
    ///
    /// Errors: `is_io()` if the system refuses (an unknown option, a value
    /// of the wrong size); `is_closed()` before a client's connect
    /// completed, after the connection ended or was detached;
    /// `is_unsupported()` on a pipe or in-memory connection.
    ///
    /// ```
    /// # use em_core as em;
    /// # use em_core::{Conn, Connection};
    /// # use tokio_util::codec::BytesCodec;
    /// # struct Client;
    /// # impl Connection for Client {
    /// #     type Codec = BytesCodec;
    /// #     fn codec(&self) -> BytesCodec { BytesCodec::new() }
    /// #     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: bytes::BytesMut) {}
    /// fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
    ///     conn.set_sock_opt(libc::SOL_SOCKET, libc::SO_KEEPALIVE, &1i32.to_ne_bytes())
    ///         .expect("setsockopt");
    ///     let on = conn.get_sock_opt(libc::SOL_SOCKET, libc::SO_KEEPALIVE).expect("getsockopt");
    ///     assert_eq!(on, 1i32.to_ne_bytes());
    ///     em::stop();
    /// }
    /// # }
    /// # em_core::run(|| -> em_core::Result<()> {
    /// #     let server = em_core::start_server("127.0.0.1:0", em_core::handler(|_, _| ()))?;
    /// #     em_core::connect(server.local_addr(), Client)?;
    /// #     Ok(())
    /// # })?;
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn set_sock_opt(&self, level: i32, name: i32, value: &[u8]) -> Result<()> {
        self.on_descriptor("set_sock_opt", Applies::AnySocket, |fd| {
            raw::setsockopt(fd, level, name, value)
        })
    }

    /// The value of socket option `name` at `level`, as the packed bytes the
    /// system returns, native-endian (EventMachine's `get_sock_opt`; for an
    /// `int` option, `i32::from_ne_bytes`). At most
    /// 256 bytes: a longer value is cut there, as the system cuts it. See
    /// [`set_sock_opt`](Conn::set_sock_opt). Reactor thread.
    ///
    /// Errors as [`set_sock_opt`](Conn::set_sock_opt).
    pub fn get_sock_opt(&self, level: i32, name: i32) -> Result<Vec<u8>> {
        self.on_descriptor("get_sock_opt", Applies::AnySocket, |fd| {
            raw::getsockopt(fd, level, name)
        })
    }

    /// Turns `SO_BROADCAST` on or off on a datagram socket
    /// ([`open_datagram_socket`](crate::open_datagram_socket)), which lets
    /// it send to a broadcast address (`255.255.255.255`, a subnet's
    /// broadcast address). It is on from the start, as in EventMachine;
    /// with it off, a datagram to a broadcast address is refused by the
    /// system and dropped. Reactor thread; takes effect at once.
    ///
    /// Errors: `is_unsupported()` on a connection that is no UDP socket;
    /// `is_closed()` after the connection ended or was detached; `is_io()`
    /// if the system refuses.
    ///
    /// ```
    /// # use em_core as em;
    /// use em::{Conn, Connection};
    /// use tokio_util::codec::BytesCodec;
    ///
    /// struct Quiet;
    /// impl Connection for Quiet {
    ///     type Codec = BytesCodec;
    ///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
    ///     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: bytes::BytesMut) {}
    /// }
    ///
    /// em::run(|| -> em::Result<()> {
    ///     let socket = em::open_datagram_socket("127.0.0.1:0", Quiet)?;
    ///     assert!(socket.broadcast()?, "on, as EventMachine");
    ///     socket.set_broadcast(false)?;
    ///     assert!(!socket.broadcast()?);
    ///     em::stop();
    ///     Ok(())
    /// })?;
    /// # Ok::<(), em_core::Error>(())
    /// ```
    pub fn set_broadcast(&self, on: bool) -> Result<()> {
        self.on_socket("set_broadcast", Applies::Udp, |s| s.set_broadcast(on))
    }

    /// Whether `SO_BROADCAST` is on, as the system reports it. Reactor
    /// thread. Errors as [`set_broadcast`](Conn::set_broadcast).
    pub fn broadcast(&self) -> Result<bool> {
        self.on_socket("broadcast", Applies::Udp, |s| s.broadcast())
    }

    /// Joins the IPv4 multicast group `group` on the interface whose address
    /// is `interface` (`Ipv4Addr::UNSPECIFIED` lets the system choose), on
    /// an IPv4 datagram socket (`IP_ADD_MEMBERSHIP`): datagrams sent to the
    /// group and the socket's port arrive through `receive_data`, as any.
    /// Bind the socket to the group's port on `0.0.0.0` (or the group's
    /// address) to receive them. Options such as the TTL and loopback of the
    /// socket's own multicast sends are socket2's, through
    /// [`with_socket`](Conn::with_socket). Reactor thread.
    ///
    /// Errors: `is_unsupported()` on a connection that is no UDP socket;
    /// `is_closed()` after the connection ended or was detached; `is_io()`
    /// if the system refuses (`group` is no multicast address, the socket
    /// is IPv6, no interface has that address, the group was joined
    /// already).
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> Result<()> {
        self.on_socket("join_multicast_v4", Applies::Udp, |s| {
            s.join_multicast_v4(&group, &interface)
        })
    }

    /// Leaves an IPv4 multicast group joined with
    /// [`join_multicast_v4`](Conn::join_multicast_v4)
    /// (`IP_DROP_MEMBERSHIP`). Reactor thread. Errors as
    /// [`join_multicast_v4`](Conn::join_multicast_v4) (`is_io()` for a group
    /// not joined).
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> Result<()> {
        self.on_socket("leave_multicast_v4", Applies::Udp, |s| {
            s.leave_multicast_v4(&group, &interface)
        })
    }

    /// Joins the IPv6 multicast group `group` on the interface of index
    /// `interface` (0 lets the system choose), on an IPv6 datagram socket
    /// (`IPV6_JOIN_GROUP`). As [`join_multicast_v4`](Conn::join_multicast_v4)
    /// otherwise, errors included.
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> Result<()> {
        self.on_socket("join_multicast_v6", Applies::Udp, |s| {
            s.join_multicast_v6(&group, interface)
        })
    }

    /// Leaves an IPv6 multicast group joined with
    /// [`join_multicast_v6`](Conn::join_multicast_v6)
    /// (`IPV6_LEAVE_GROUP`). Reactor thread. Errors as
    /// [`join_multicast_v4`](Conn::join_multicast_v4).
    pub fn leave_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> Result<()> {
        self.on_socket("leave_multicast_v6", Applies::Udp, |s| {
            s.leave_multicast_v6(&group, interface)
        })
    }

    /// Runs `f` on the socket, as socket2 sees it.
    fn on_socket<R>(
        &self,
        call: &'static str,
        applies: Applies,
        f: impl FnOnce(&SockRef<'_>) -> io::Result<R>,
    ) -> Result<R> {
        self.on_descriptor(call, applies, |fd| f(&SockRef::from(&fd)))
    }

    /// Runs `f` on the socket's descriptor, once it is known that `call`
    /// applies to it, while the transport is borrowed (shared, so that `f`
    /// may come back for another option).
    fn on_descriptor<R>(
        &self,
        call: &'static str,
        applies: Applies,
        f: impl FnOnce(BorrowedFd<'_>) -> io::Result<R>,
    ) -> Result<R> {
        let state = self.state();
        if state.close.get() == Close::Detach {
            return Err(Error::not_open(call, "the connection was detached"));
        }
        if state.ended.get() {
            return Err(Error::not_open(call, "the connection has ended"));
        }
        let Ok(transport) = state.transport.try_borrow() else {
            // Only the driver borrows it mutably, while it reads or writes,
            // and no user code runs then.
            return Err(Error::unsupported(
                call,
                "the socket is busy (called from inside a read or a write)",
            ));
        };
        let Some(t) = transport.as_ref() else {
            return Err(Error::not_open(
                call,
                "the connection is not connected yet (its connect has not completed)",
            ));
        };
        let fd = t
            .descriptor()
            .filter(|_| applies.to(t.socket_kind()))
            .ok_or_else(|| {
                Error::unsupported(
                    call,
                    format!(
                        "{} connections only, and this one is {}",
                        applies.name(),
                        t.kind()
                    ),
                )
            })?;
        f(fd).map_err(|e| Error::io(call, e))
    }
}
