//! EventMachine's README echo server, in em: `cargo run --example
//! echo_server [PORT]` listens on 127.0.0.1:PORT (8081 by default; 0 picks
//! one), says where, and answers each read with `>>>you sent: ` and the
//! bytes, closing on "quit". The EventMachine original is
//! bench/baselines/first_programs/echo_server.rb.
use em::prelude::*;

struct EchoServer;

impl Handler for EchoServer {
    fn post_init(&mut self, _conn: &Conn) {
        println!("-- someone connected to the echo server!");
    }
    fn receive_data(&mut self, conn: &Conn, data: BytesMut) {
        conn.send_data(format!(">>>you sent: {}", String::from_utf8_lossy(&data)));
        if data.to_ascii_lowercase().windows(4).any(|w| w == b"quit") {
            conn.close_connection();
        }
    }
    fn unbind(&mut self, _conn: &Conn, _reason: UnbindReason) {
        println!("-- someone disconnected from the echo server!");
    }
}

fn main() -> em::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8081".into());
    em::run(move || {
        let server = em::start_server(format!("127.0.0.1:{port}"), || EchoServer)?;
        println!("listening on {}", server.local_addr());
        Ok(())
    })
}
