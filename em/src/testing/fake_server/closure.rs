//! The closure server: [`FakeServer::handler`], a closure on raw bytes
//! with em's connection API.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::BytesMut;
use em_core::Conn;

use super::host::{self, Host, Tracked};
use super::FakeServer;
use crate::testing::TestReactor;

impl FakeServer {
    /// Starts a server on a reactor of its own whose connections call
    /// `on_data(conn, data)` for each chunk of bytes read, as
    /// [`em::handler`](crate::handler) does: reply with
    /// [`conn.send_data`](Conn::send_data), close with
    /// [`close_connection`](Conn::close_connection), reset with
    /// [`with_socket`](Conn::with_socket) and a zero linger…
    ///
    /// The closure runs on the fake's reactor thread, so it is moved there:
    /// hence `Send`. Each connection gets a copy of it (hence `Clone`),
    /// made from the closure as it was passed, so state it owns is per
    /// connection; share state across connections, and with the test's
    /// thread, through an `Arc`. Called on the test's thread; panics if the
    /// server cannot listen. A panic in the closure closes its connection
    /// and fails the test when the server is dropped.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use em::testing::FakeServer;
    ///
    /// let upper = FakeServer::handler(|conn, data| conn.send_data(data.to_ascii_uppercase()));
    /// let mut client = std::net::TcpStream::connect(upper.local_addr())?;
    /// client.write_all(b"shout")?;
    /// let mut reply = [0; 5];
    /// client.read_exact(&mut reply)?;
    /// assert_eq!(&reply, b"SHOUT");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handler<F, R>(on_data: F) -> FakeServer
    where
        F: FnMut(&Conn, BytesMut) -> R + Send + Clone + 'static,
        R: 'static,
    {
        Self::start(None, on_data)
    }

    /// [`handler`](FakeServer::handler) on `reactor`, the test's own, next
    /// to whatever else runs there; dropping the server stops its listener
    /// and closes its connections, and leaves the reactor running. Test
    /// thread.
    pub fn handler_on<F, R>(reactor: &TestReactor, on_data: F) -> FakeServer
    where
        F: FnMut(&Conn, BytesMut) -> R + Send + Clone + 'static,
        R: 'static,
    {
        Self::start(Some(reactor), on_data)
    }

    fn start<F, R>(reactor: Option<&TestReactor>, on_data: F) -> FakeServer
    where
        F: FnMut(&Conn, BytesMut) -> R + Send + Clone + 'static,
        R: 'static,
    {
        let (host, addr) = Host::launch("FakeServer::handler", reactor, move |signal| {
            let conns = Rc::new(RefCell::new(Vec::new()));
            let c = conns.clone();
            let mut factory = em_core::handler(on_data);
            let server = em_core::start_server("127.0.0.1:0", move || Tracked {
                conns: c.clone(),
                inner: factory(),
            })?;
            let addr = server
                .local_addr()
                .inet()
                .expect("a TCP server has an inet address");
            host::hold_until_stopped(signal, server, conns)?;
            Ok(addr)
        });
        tracing::debug!(%addr, "fake server (closure) listening");
        FakeServer { host, addr }
    }
}
