//! An em echo server: `echo_server --listen ADDR` (default 127.0.0.1:8081),
//! or `echo_server --unix PATH` on a Unix-domain socket; over TLS with
//! `--tls-cert FILE --tls-key FILE` or `--tls-self-signed`; on several
//! reactors with `--reactors N` (0 = one per core), which share the port.
//! Prints `listening on ADDR` (or `listening on PATH`) once ready; stops
//! gracefully on SIGINT/SIGTERM.

use std::path::PathBuf;

use bytes::BytesMut;
use std::time::Duration;

use clap::Parser;
use em::prelude::*;
use tokio_util::codec::BytesCodec;

/// Echoes every byte back to its sender.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (IPv4 or IPv6; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
    /// Listen on a Unix-domain socket at PATH instead of TCP (a stale
    /// socket file there is replaced; the file is removed on exit).
    #[arg(long, value_name = "PATH", conflicts_with = "listen")]
    unix: Option<PathBuf>,
    /// listen(2) backlog.
    #[arg(long, default_value_t = 1024)]
    backlog: u32,
    /// Reactors to run, each on a thread (and core) of its own, sharing the
    /// listening port; 0 means one per core. TCP only.
    #[arg(long, default_value_t = 1, conflicts_with = "unix")]
    reactors: usize,
    /// With --reactors: pin each reactor to a core of its own.
    #[arg(long)]
    pin: bool,
    /// Print the reactor's stats to stderr every SECS seconds (they are
    /// also printed on SIGUSR1).
    #[arg(long, value_name = "SECS")]
    stats_every: Option<u64>,
    #[command(flatten)]
    tls: em_examples::tls::ServerTlsArgs,
}

/// The echo handler: raw bytes in, the same bytes out; over TLS when it
/// has options.
struct Echo(Option<em::TlsOptions>);

impl Connection for Echo {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }
    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        if let Some(options) = &self.0 {
            // Checked at start (`check_server`), so this fails only on a
            // connection already closed.
            let _ = conn.start_tls(options);
        }
    }
    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        conn.send_data(data);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let tls = args.tls.em_options()?;
    if let Some(options) = &tls {
        // A bad certificate or key stops the program, not each connection.
        options.check_server()?;
    }
    let builder = em::Reactor::builder().listen_backlog(args.backlog);
    if args.reactors != 1 {
        // Several reactors: each runs this block, binds its own listener on
        // the port (SO_REUSEPORT), and serves the connections it accepts.
        let listen = args.listen.clone();
        let bound = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        builder
            .reactors(args.reactors)
            .pin_to_cores(args.pin)
            .run_each(move |_index| {
                let tls = tls.clone();
                let server = em::start_server(listen.as_str(), move || Echo(tls.clone()))?;
                em_examples::stop_on_signal()?;
                // Ready once every reactor listens: the last one says so.
                let reactors = em::handles()?.len();
                if bound.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == reactors {
                    tracing::info!(reactors, "every reactor listens");
                    em_examples::out!("listening on {}", server.local_addr());
                }
                Ok(())
            })?;
        return Ok(());
    }
    builder.run(move || {
        let echo = move || Echo(tls.clone());
        let server = match &args.unix {
            Some(path) => em::start_unix_domain_server(path, echo)?,
            None => em::start_server(args.listen.as_str(), echo)?,
        };
        // Handlers first: a supervisor may send SIGTERM the moment it reads
        // the line below.
        em_examples::stop_on_signal()?;
        em_examples::report_stats(args.stats_every.map(Duration::from_secs))?;
        em_examples::out!("listening on {}", server.local_addr());
        Ok(())
    })?;
    Ok(())
}
