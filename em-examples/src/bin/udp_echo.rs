//! An em UDP echo server: `udp_echo --listen ADDR` (default
//! 127.0.0.1:8087) sends every datagram back to its sender, empty ones
//! included. Prints `listening on ADDR` (the bound address, so port 0
//! works) once ready; stops gracefully on SIGINT/SIGTERM; prints the
//! reactor's stats on SIGUSR1 or every `--stats-every` seconds.

use std::time::Duration;

use bytes::BytesMut;
use clap::Parser;
use em::prelude::*;
use tokio_util::codec::BytesCodec;

/// Echoes every datagram back to its sender.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to bind (IPv4 or IPv6; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8087")]
    listen: String,
    /// Print the reactor's stats to stderr every SECS seconds (they are
    /// also printed on SIGUSR1).
    #[arg(long, value_name = "SECS")]
    stats_every: Option<u64>,
}

/// The echo handler: each datagram, whole, back to whoever sent it.
struct Echo;

impl Connection for Echo {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, datagram: BytesMut) {
        // `send_data` on a datagram socket replies to the last sender.
        conn.send_data(datagram);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    em::run(move || {
        let socket = em::open_datagram_socket(args.listen.as_str(), Echo)?;
        // Handlers first: a supervisor may send SIGTERM the moment it reads
        // the line below.
        em_examples::stop_on_signal()?;
        em_examples::report_stats(args.stats_every.map(Duration::from_secs))?;
        let local = socket
            .local_addr()
            .ok_or("the socket has no local address")?;
        em_examples::out!("listening on {local}");
        Ok(())
    })?;
    Ok(())
}
