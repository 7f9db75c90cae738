//! A TCP forwarding proxy on `Conn::proxy_incoming_to`: `proxy --listen
//! ADDR --to ADDR [--bufsize N] [--copy]`. Each client connection gets its
//! own connection to `--to`; each side's input is proxied to the other,
//! with `--bufsize` as the backpressure limit (a slow side slows the
//! other instead of growing memory). Between the plain sockets the bytes
//! move kernel to kernel with `splice(2)`; `--copy` turns that off, so that
//! both ways can be compared. When either side closes, the other is closed
//! once its output has left.
//!
//! Prints `listening on ADDR` once ready; stops gracefully on SIGINT or
//! SIGTERM; prints the reactor's stats on SIGUSR1 (`bytes_proxied`,
//! `bytes_spliced`).

use std::time::Duration;

use clap::Parser;
use em::prelude::*;

/// Forwards every connection to another address.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8085")]
    listen: String,
    /// Address to forward to.
    #[arg(long)]
    to: String,
    /// Backpressure limit: reading from one side holds while the other
    /// has more than this many bytes waiting to leave (0: no limit, as in
    /// EventMachine; the connection's max_outbound still ends it).
    #[arg(long, default_value_t = 1 << 20)]
    bufsize: usize,
    /// Copy every byte through the reactor instead of splicing.
    #[arg(long)]
    copy: bool,
    /// Print the reactor's stats to stderr every SECS seconds (they are
    /// also printed on SIGUSR1).
    #[arg(long, value_name = "SECS")]
    stats_every: Option<u64>,
}

/// The client's side: connects to the backend and proxies to it.
struct Client {
    to: String,
    bufsize: usize,
    backend: Option<Conn<BytesCodec>>,
}

impl Connection for Client {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        let backend = Backend {
            client: conn.clone(),
            bufsize: self.bufsize,
        };
        match em::connect(self.to.as_str(), backend) {
            // Bytes from the client wait in the backend's queue until its
            // connect completes.
            Ok(backend) => match conn.proxy_incoming_to(&backend, self.bufsize) {
                Ok(()) => self.backend = Some(backend),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot proxy");
                    conn.close_connection();
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect to the backend");
                conn.close_connection();
            }
        }
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {
        // Only once the backend is gone, and the connection is closing.
    }
    fn proxy_target_unbound(&mut self, conn: &Conn<BytesCodec>) {
        conn.close_connection_after_writing();
    }
    fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
        tracing::debug!(%reason, "client gone");
        if let Some(backend) = &self.backend {
            backend.close_connection_after_writing();
        }
    }
}

/// The backend's side: proxies to the client.
struct Backend {
    client: Conn<BytesCodec>,
    bufsize: usize,
}

impl Connection for Backend {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        if let Err(e) = conn.proxy_incoming_to(&self.client, self.bufsize) {
            tracing::warn!(error = %e, "cannot proxy");
            conn.close_connection();
        }
    }
    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
    fn unbind(&mut self, _: &Conn<BytesCodec>, reason: UnbindReason) {
        if reason.is_error() {
            tracing::warn!(%reason, "backend connection ended");
        }
        self.client.close_connection_after_writing();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    em::Reactor::builder()
        .proxy_splice(!args.copy)
        .run(move || {
            let (to, bufsize) = (args.to, args.bufsize);
            let server = em::start_server(args.listen.as_str(), move || Client {
                to: to.clone(),
                bufsize,
                backend: None,
            })?;
            // Handlers first: a supervisor may send SIGTERM the moment it
            // reads the line below.
            em_examples::stop_on_signal()?;
            em_examples::report_stats(args.stats_every.map(Duration::from_secs))?;
            em_examples::out!("listening on {}", server.local_addr());
            Ok(())
        })?;
    Ok(())
}
