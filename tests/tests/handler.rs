//! The short forms: `Handler` (a `Connection` on raw bytes, no codec to
//! name), `RawCodec` (`send_data` of text and byte slices), `em::handler`
//! with per-connection state, run blocks that need no annotation,
//! `?` into `em::Error`, `Socket::read`/`write`, and `connect` with a
//! borrowed address.

mod support;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;

use em::prelude::*;
use em::testing::TestReactor;

use support::*;

/// Logs every callback a `Handler` gets, and sends one frame of each
/// byte-like type once connected.
struct Logged(Rc<RefCell<Vec<String>>>);

impl Handler for Logged {
    fn post_init(&mut self, _conn: &Conn) {
        self.0.borrow_mut().push("post_init".into());
    }
    fn connection_completed(&mut self, conn: &Conn) {
        self.0.borrow_mut().push("connection_completed".into());
        conn.send_data("str,");
        conn.send_data(String::from("String,"));
        conn.send_data(&b"slice,"[..]);
        conn.send_data(b"array,");
        conn.send_data(vec![b'v', b'e', b'c', b'\n']);
    }
    fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
        self.0
            .borrow_mut()
            .push(format!("receive_data {}", String::from_utf8_lossy(&data)));
        conn.close_connection();
    }
    fn unbind(&mut self, _conn: &Conn, reason: UnbindReason) {
        self.0.borrow_mut().push(format!("unbind {reason}"));
        em::stop();
    }
}

#[test]
fn a_handler_gets_the_connection_callbacks_in_order_and_sends_text_and_bytes() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let (peer, done) = std::sync::mpsc::channel();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        let mut buf = [0; 64];
        while !got.ends_with(b"\n") {
            let n = s.read(&mut buf).unwrap();
            assert_ne!(n, 0, "closed before the whole line: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"thanks").unwrap();
        peer.send(got).unwrap();
        read_until_closed(&mut s)
    });
    run_with_watchdog(move || connect_to(&addr, Logged(l))).unwrap();
    assert_eq!(
        String::from_utf8(recv(&done)).unwrap(),
        "str,String,slice,array,vec\n"
    );
    assert_eq!(server.join().unwrap(), b"", "nothing after the line");
    assert_eq!(
        *log.borrow(),
        [
            "post_init",
            "connection_completed",
            "receive_data thanks",
            "unbind closed locally",
        ]
    );
}

/// `connect` takes a borrowed `SocketAddr` (as `start_server` does), such
/// as one kept in a configuration.
fn connect_to(addr: &SocketAddr, handler: Logged) -> em::Result<Conn> {
    em::connect(addr, handler)
}

#[test]
fn em_handler_gives_each_connection_its_own_copy_of_the_closure() {
    let (reactor, addr) = serve(|| {
        let mut count = 0;
        em::start_server(
            "127.0.0.1:0",
            em::handler(move |conn, _data| {
                count += 1;
                conn.send_data(count.to_string());
            }),
        )
    });
    let mut a = client(addr);
    let mut b = client(addr);
    assert_eq!(echo_round(&mut a, b"x"), b"1");
    assert_eq!(echo_round(&mut a, b"x"), b"2");
    assert_eq!(echo_round(&mut b, b"x"), b"1", "b counts on its own");
    assert_eq!(echo_round(&mut a, b"x"), b"3");
    reactor.stop().unwrap();
}

/// An em server on a `TestReactor`, for clients on the test's thread.
fn serve(start: impl FnOnce() -> em::Result<Server> + Send + 'static) -> (TestReactor, SocketAddr) {
    let reactor = TestReactor::start();
    let addr = reactor.block_on(|| start().unwrap().local_addr().inet().unwrap());
    (reactor, addr)
}

#[test]
fn a_run_block_returns_any_em_result_and_question_marks_other_errors_into_it() {
    // The value of an `Ok` is dropped: here the server, which keeps serving.
    let (tx, rx) = std::sync::mpsc::channel();
    let echo = std::thread::spawn(move || {
        run_with_watchdog(move || {
            tx.send(em::handle()?).unwrap();
            em::start_server(
                "127.0.0.1:0",
                em::handler(|conn, data| conn.send_data(data)),
            )
        })
    });
    let handle = recv(&rx);
    handle.stop();
    echo.join().unwrap().unwrap();

    // `?` on an io::Error, with no annotation on the block.
    let err = run_with_watchdog(|| {
        std::fs::read("/nonexistent/em/config")?;
        Ok(())
    })
    .unwrap_err();
    assert!(err.is_init(), "{err}");
    let inner = std::error::Error::source(&err)
        .and_then(|e| e.downcast_ref::<em::Error>())
        .expect("the run block's em::Error");
    assert!(inner.is_other(), "{inner:#?}");
    assert_eq!(
        inner.io_error().map(|e| e.kind()),
        Some(std::io::ErrorKind::NotFound)
    );
    assert!(err.to_string().contains("No such file"), "{err}");

    // A message, and a block of `()`.
    let err = run_with_watchdog(|| Err::<(), _>("no luck".into())).unwrap_err();
    assert_eq!(err.to_string(), "the run block failed: no luck");
    run_with_watchdog(em::stop).unwrap();
}

#[test]
fn socket_write_and_read_talk_procedurally_and_read_says_when_it_ended() {
    let (reactor, addr) = serve(|| {
        em::start_server(
            "127.0.0.1:0",
            em::handler(|conn, data| {
                conn.send_data(data);
                conn.close_connection_after_writing();
            }),
        )
    });
    let replies = em::synchrony(async move {
        let mut socket = em::Socket::connect(&addr, RawCodec).await?;
        socket.write("hello").await?;
        let mut replies = Vec::new();
        while let Some(reply) = socket.read().await? {
            replies.push(reply);
        }
        Ok::<_, em::Error>(replies)
    })
    .unwrap()
    .unwrap();
    assert_eq!(replies.concat(), b"hello");
    reactor.stop().unwrap();
}

#[test]
fn an_em_error_boxed_and_brought_back_keeps_its_kind() {
    let e = em::connect("127.0.0.1:1", em::handler(|_, _| ())()).unwrap_err();
    assert!(e.is_no_reactor(), "{e}");
    let boxed: em::BoxError = Box::new(e);
    let back = em::Error::from(boxed);
    assert!(back.is_no_reactor(), "{back:#?}");
    let other = em::Error::from(em::BoxError::from("not em's"));
    assert!(other.is_other() && !other.is_no_reactor(), "{other:#?}");
}
