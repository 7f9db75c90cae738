//! An echo client: `cargo run --example echo_client [PORT]` says hello to
//! the server on 127.0.0.1:PORT (8081 by default), prints the first reply
//! and stops. The EventMachine original is
//! bench/baselines/first_programs/echo_client.rb.
use em::prelude::*;

struct EchoClient;

impl Handler for EchoClient {
    fn post_init(&mut self, conn: &Conn) {
        conn.send_data("hello\n");
    }
    fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
        print!("got: {}", String::from_utf8_lossy(&data));
        conn.close_connection();
    }
    fn unbind(&mut self, _conn: &Conn, _reason: UnbindReason) {
        em::stop();
    }
}

fn main() -> em::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8081".into());
    em::run(move || em::connect(format!("127.0.0.1:{port}"), EchoClient))
}
