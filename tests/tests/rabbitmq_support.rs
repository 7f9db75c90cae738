//! The RabbitMQ test support (support/rabbitmq.rs) with plain std sockets:
//! the broker answers the AMQP protocol header, is gone after `kill`, and
//! answers again on the same port after `restart`.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::rabbitmq::RabbitMq;

/// Sends the AMQP 0-9-1 protocol header and returns the first bytes back.
fn handshake(addr: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect to the broker");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let mut buf = [0; 7];
    stream.read_exact(&mut buf).expect("read a frame header");
    buf.to_vec()
}

/// A frame header: type 1 (method) on channel 0, as Connection.Start is.
fn assert_connection_start(header: &[u8]) {
    assert_eq!(header[0], 1, "a method frame: {header:?}");
    assert_eq!(&header[1..3], &[0, 0], "on channel 0: {header:?}");
}

#[test]
fn start_answers_the_protocol_header() {
    let t = Instant::now();
    let broker = RabbitMq::start("support-start");
    eprintln!("RabbitMQ started in {:?}", t.elapsed());
    assert_eq!(broker.addr(), format!("127.0.0.1:{}", broker.port()));
    assert_eq!(
        broker.url(),
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", broker.port())
    );
    assert_connection_start(&handshake(&broker.addr()));
}

#[test]
fn kill_refuses_and_restart_answers_on_the_same_port() {
    let mut broker = RabbitMq::start("support-restart");
    let port = broker.port();
    assert_connection_start(&handshake(&broker.addr()));

    broker.kill();
    let err = TcpStream::connect(broker.addr()).expect_err("the broker is gone");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);

    let t = Instant::now();
    broker.restart();
    eprintln!("RabbitMQ restarted in {:?}", t.elapsed());
    assert_eq!(broker.port(), port);
    assert_connection_start(&handshake(&broker.addr()));
}
