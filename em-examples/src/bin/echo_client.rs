//! An em echo client: `echo_client --connect ADDR [MESSAGE…]` sends each
//! message as a line, prints each reply, and exits once all have come back;
//! over TLS with `--tls` (verifying the server against Mozilla's roots, or
//! `--ca FILE`; `--insecure` turns verification off).

use std::time::Duration;

use clap::Parser;
use em::prelude::*;
use tokio_util::codec::LinesCodec;

/// Sends lines to an echo server and prints the replies.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The server's address (host:port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    connect: String,
    /// Messages to send, one line each.
    #[arg(default_values_t = ["hello".to_string()])]
    messages: Vec<String>,
    /// Give up after this many seconds (fractions allowed, such as 0.5;
    /// more than 0).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = em_examples::parse_seconds)]
    timeout: Duration,
    /// Talk TLS, verifying the server's certificate and name.
    #[arg(long)]
    tls: bool,
    /// With --tls: trust the certificates in this PEM file instead of
    /// Mozilla's roots (a private CA, or `echo_server --write-cert`'s).
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<std::path::PathBuf>,
    /// With --tls: the name to verify and send as SNI (default: the host of
    /// --connect).
    #[arg(long, value_name = "NAME", requires = "tls")]
    server_name: Option<String>,
    /// With --tls: do NOT verify the server (tests against throw-away
    /// certificates only).
    #[arg(long, requires = "tls", conflicts_with = "ca")]
    insecure: bool,
}

impl Args {
    /// The TLS options asked for, `None` for plain TCP.
    fn tls_options(&self) -> Option<em::TlsOptions> {
        if !self.tls {
            return None;
        }
        let host = self
            .connect
            .rsplit_once(':')
            .map_or(self.connect.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = self.server_name.clone().unwrap_or_else(|| host.to_string());
        let mut options = em::TlsOptions::new().server_name(name);
        if let Some(ca) = &self.ca {
            options = options.root_certs_file(ca);
        }
        if self.insecure {
            options = options.danger_accept_invalid_certs();
        }
        Some(options)
    }
}

/// Sends the messages, counts the replies, closes after the last.
struct Client {
    tls: Option<em::TlsOptions>,
    messages: Vec<String>,
    replies: usize,
    failed: std::rc::Rc<std::cell::Cell<bool>>,
}

impl Connection for Client {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1 << 20)
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        if let Some(options) = &self.tls {
            if let Err(e) = conn.start_tls(options) {
                eprintln!("{e}");
                conn.close_connection();
                return;
            }
        }
        for m in &self.messages {
            conn.send_data(m.as_str());
        }
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        em_examples::out!("{line}");
        self.replies += 1;
        if self.replies == self.messages.len() {
            conn.close_connection();
        }
    }
    fn unbind(&mut self, _conn: &Conn<LinesCodec>, reason: UnbindReason) {
        // After a timeout (already reported) the stop ends the connection
        // too: one message is enough.
        if self.replies < self.messages.len() && !self.failed.get() {
            eprintln!("connection ended early: {reason}");
            self.failed.set(true);
        }
        em::stop();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let tls = args.tls_options();
    let failed = std::rc::Rc::new(std::cell::Cell::new(false));
    let f = failed.clone();
    em::Reactor::builder()
        .stop_on_panic(true)
        .run(move || -> em::Result<()> {
            em::connect(
                args.connect,
                Client {
                    tls,
                    messages: args.messages,
                    replies: 0,
                    failed: f.clone(),
                },
            )?;
            let timeout = args.timeout;
            em::spawn(async move {
                tokio::time::sleep(timeout).await;
                eprintln!("timed out after {timeout:?}");
                f.set(true);
                em::stop();
            })?;
            Ok(())
        })?;
    if failed.get() {
        std::process::exit(1);
    }
    Ok(())
}
