//! STARTTLS the way SMTP does it: a line protocol in plain text that
//! upgrades the same connection to TLS on a `STARTTLS` line.
//!
//! `starttls_server [--listen ADDR] (--tls-cert FILE --tls-key FILE |
//! --tls-self-signed [--write-cert FILE])` (default 127.0.0.1:8089) greets
//! with `220`, answers `EHLO`/`HELO` (offering `STARTTLS` until TLS runs),
//! `STARTTLS` (`220`, then the TLS handshake), `NOOP`, `QUIT`, and echoes
//! any other line as `250 echo: LINE`. Enough of SMTP for
//! `openssl s_client -starttls smtp` to talk to it. Prints `listening on
//! ADDR` once ready; stops on SIGINT/SIGTERM.

use clap::Parser;
use em::prelude::*;

/// A line server that upgrades to TLS on STARTTLS.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: String,
    #[command(flatten)]
    tls: em_examples::tls::ServerTlsArgs,
}

/// One client's session.
struct Session {
    tls: em::TlsOptions,
}

impl Connection for Session {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(4096)
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        conn.send_data("220 em ESMTP-ish service ready");
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        let line = line.trim_end_matches('\r');
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let peer = line.split_whitespace().nth(1).unwrap_or("stranger");
                if conn.is_tls() {
                    conn.send_data(format!("250 em greets {peer}"));
                } else {
                    conn.send_data(format!("250-em greets {peer}"));
                    conn.send_data("250 STARTTLS");
                }
            }
            "STARTTLS" if conn.is_tls() => {
                conn.send_data("503 TLS already running");
            }
            "STARTTLS" => {
                // In plain text: queued before the upgrade.
                conn.send_data("220 Ready to start TLS");
                if let Err(e) = conn.start_tls(&self.tls) {
                    tracing::warn!(conn = %conn.id(), error = %e, "start_tls failed");
                    conn.close_connection();
                }
            }
            "NOOP" => {
                conn.send_data("250 OK");
            }
            "QUIT" => {
                conn.send_data("221 Bye");
                conn.close_connection_after_writing();
            }
            _ => {
                conn.send_data(format!("250 echo: {line}"));
            }
        }
    }
    fn ssl_handshake_completed(&mut self, conn: &Conn<LinesCodec>) {
        tracing::info!(
            conn = %conn.id(),
            version = ?conn.tls_protocol_version(),
            suite = conn.tls_cipher_suite().unwrap_or("?"),
            "TLS is up"
        );
    }
    fn unbind(&mut self, conn: &Conn<LinesCodec>, reason: UnbindReason) {
        tracing::debug!(conn = %conn.id(), %reason, "session ended");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let tls = args
        .tls
        .em_options()?
        .ok_or("a certificate is needed: --tls-cert FILE --tls-key FILE, or --tls-self-signed")?;
    tls.check_server()?;
    em::run(move || {
        let server = em::start_server(args.listen.as_str(), move || Session { tls: tls.clone() })?;
        em_examples::stop_on_signal()?;
        em_examples::out!("listening on {}", server.local_addr());
        Ok(())
    })?;
    Ok(())
}
