//! A chat server: `cargo run --example chat [PORT]` listens on
//! 127.0.0.1:PORT (8081 by default; 0 picks one), says where, and sends
//! every line a client sends to every client, through a channel. The
//! EventMachine original is bench/baselines/first_programs/chat.rb.
use em::prelude::*;

struct Chat(em::Channel<String>);

impl Connection for Chat {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(4096)
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        // Ends by itself when the connection does: no unsubscribe in unbind.
        self.0.subscribe_conn(conn, |conn, line| {
            conn.send_data(line);
        });
    }
    fn receive_data(&mut self, _conn: &Conn<LinesCodec>, line: String) {
        self.0.push(line);
    }
}

fn main() -> em::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8081".into());
    em::run(move || {
        let channel = em::Channel::new();
        let server = em::start_server(format!("127.0.0.1:{port}"), move || Chat(channel.clone()))?;
        println!("listening on {}", server.local_addr());
        Ok(())
    })
}
