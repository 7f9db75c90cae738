//! An SMTP sink: accepts every message and prints it, for testing code
//! that sends mail.
//!
//! `smtp_sink [--listen ADDR] [--domain NAME] [--max-size BYTES]
//! [--auth-any] [--tls-cert FILE --tls-key FILE | --tls-self-signed
//! [--write-cert FILE]]` (default 127.0.0.1:2525) runs em-protocols'
//! `SmtpServer` and prints each message to stdout, its envelope first,
//! then its headers and body as received, dot-unstuffed (line endings
//! shown as `\n`), between two marker lines:
//!
//! ```text
//! === message 1 from 127.0.0.1:40312 (EHLO client.example, TLS no, user -)
//! MAIL FROM:<a@example.org>
//! RCPT TO:<b@example.org>
//!
//! Subject: hello
//!
//! Hi.
//! === end of message 1 (27 bytes)
//! ```
//!
//! With a certificate it offers STARTTLS; with `--auth-any` it offers
//! AUTH PLAIN and LOGIN and lets anyone in. Prints `listening on ADDR`
//! once ready; stops on SIGINT/SIGTERM.

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;

use clap::Parser;
use em_protocols::{
    SmtpAnswer, SmtpHandler, SmtpMessage, SmtpServer, SmtpServerOptions, SmtpSession,
};

/// Accepts mail and prints it.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:2525")]
    listen: String,
    /// The server's domain, in its greeting and EHLO reply.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// The largest message accepted, in bytes (announced as SIZE).
    #[arg(long, value_name = "BYTES", default_value_t = em_protocols::SmtpServerOptions::DEFAULT_MAX_MESSAGE_SIZE)]
    max_size: usize,
    /// Offer AUTH PLAIN and LOGIN, and accept any user and password.
    #[arg(long)]
    auth_any: bool,
    #[command(flatten)]
    tls: em_examples::tls::ServerTlsArgs,
}

/// One client's session: prints each message, numbered across sessions.
struct Printer {
    count: Rc<Cell<u64>>,
}

impl SmtpHandler for Printer {
    fn receive_plain_auth(
        &mut self,
        _: &SmtpSession<'_>,
        user: &str,
        _password: &str,
    ) -> SmtpAnswer {
        tracing::info!(user, "AUTH accepted (--auth-any)");
        SmtpAnswer::accept()
    }

    fn receive_message(&mut self, session: &SmtpSession<'_>, message: SmtpMessage) -> SmtpAnswer {
        let n = self.count.get() + 1;
        self.count.set(n);
        let mut out = Vec::with_capacity(message.data.len() + 256);
        let peer = session
            .peer_addr()
            .map_or_else(|| "?".to_owned(), |a| a.to_string());
        let _ = writeln!(
            out,
            "=== message {n} from {peer} ({} {}, TLS {}, user {})",
            if session.is_extended() {
                "EHLO"
            } else {
                "HELO"
            },
            session.ehlo_domain().unwrap_or("?"),
            if session.is_tls() { "yes" } else { "no" },
            session.authenticated_user().unwrap_or("-"),
        );
        let _ = writeln!(out, "MAIL FROM:<{}>", message.sender);
        for rcpt in &message.recipients {
            let _ = writeln!(out, "RCPT TO:<{rcpt}>");
        }
        out.push(b'\n');
        // CRLF shown as a plain line ending; every other byte as it came.
        let mut data = &message.data[..];
        while let Some(at) = data.windows(2).position(|w| w == b"\r\n") {
            out.extend_from_slice(&data[..at]);
            out.push(b'\n');
            data = &data[at + 2..];
        }
        out.extend_from_slice(data);
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        let _ = writeln!(out, "=== end of message {n} ({} bytes)", message.data.len());
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(&out).and_then(|()| stdout.flush()) {
            Ok(()) => SmtpAnswer::accept(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot print the message");
                SmtpAnswer::reply(em_protocols::SmtpReply::new(
                    451,
                    "4.3.0 Cannot print the message",
                ))
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let mut options = SmtpServerOptions::new()
        .domain(args.domain.as_str())
        .greeting("ESMTP em smtp_sink")
        .max_message_size(args.max_size)
        .auth(args.auth_any);
    if let Some(tls) = args.tls.em_options()? {
        // A bad certificate or key stops the program, not each STARTTLS.
        tls.check_server()?;
        options = options.tls(tls);
    }
    em::run(move || {
        let count = Rc::new(Cell::new(0));
        let server = em::start_server(args.listen.as_str(), move || {
            SmtpServer::new_with_options(
                Printer {
                    count: count.clone(),
                },
                &options,
            )
        })?;
        em_examples::stop_on_signal()?;
        em_examples::out!("listening on {}", server.local_addr());
        Ok(())
    })?;
    Ok(())
}
