//! `em-proxy`: em-proxy's command line, a duplex proxy. `em-proxy --listen
//! ADDR --relay PROD [--mirror STAGING]…`: every client byte goes to PROD
//! and a copy to each STAGING; only PROD's replies reach the client; a
//! mirror that is slow, down or crashes never slows nor breaks a client
//! (its copies are dropped and counted; new sessions retry it after a
//! back-off). Backends are `host:port` or `unix:PATH`.
//!
//! Prints `listening on ADDR` on stdout once ready, then a line of
//! counters on stderr every `--stats-every` seconds (clients, bytes each
//! way, mirror drops). SIGINT or SIGTERM stop it gracefully: no new
//! clients, open sessions get `--grace` seconds, a second signal stops at
//! once; SIGQUIT drains without a deadline. The last counters are printed
//! on the way out.

use std::time::Duration;

use clap::Parser;
use em_proxy::{Duplex, Proxy};

/// A duplex TCP proxy: serve from production, mirror to staging.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, short = 'l', default_value = "127.0.0.1:8080")]
    listen: String,
    /// The production backend, which answers: `host:port` or `unix:PATH`.
    #[arg(long, short = 'r')]
    relay: String,
    /// A mirror (staging) that gets a copy of every byte; repeatable.
    #[arg(long, short = 'd')]
    mirror: Vec<String>,
    /// Backpressure: reading from one side holds while the other has more
    /// than this many bytes waiting.
    #[arg(long, default_value_t = 1 << 20)]
    bufsize: usize,
    /// Bytes that may wait for a mirror before copies to it are dropped.
    #[arg(long, default_value_t = 1 << 20)]
    mirror_watermark: usize,
    /// Seconds between two counter lines on stderr (0: none).
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    stats_every: u64,
    /// Seconds open sessions get after SIGINT or SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    grace: u64,
}

/// `unix:PATH` or `host:port`.
fn endpoint(s: &str) -> em::Endpoint {
    match s.strip_prefix("unix:") {
        Some(path) => em::Endpoint::unix(path),
        None => s.into(),
    }
}

#[allow(clippy::print_stderr)] // The live counters: the program's output.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let last = std::rc::Rc::new(std::cell::RefCell::new(None));
    let keep = last.clone();
    em::run(move || {
        let duplex = args.mirror.iter().fold(
            Duplex::new(endpoint(&args.relay)).options(
                Proxy::new()
                    .bufsize(args.bufsize)
                    .mirror_watermark(args.mirror_watermark),
            ),
            |d, m| d.mirror(endpoint(m)),
        );
        let proxy = duplex.start(args.listen.as_str())?;
        // Handlers first: a supervisor may send SIGTERM the moment it
        // reads the line below.
        proxy.stop_on_signals(Duration::from_secs(args.grace))?;
        if args.stats_every > 0 {
            let p = proxy.clone();
            em::add_periodic_timer(Duration::from_secs(args.stats_every), move |_| {
                eprintln!("em-proxy: {}", p.stats());
            })?;
        }
        em_examples::out!("listening on {}", proxy.local_addr());
        *keep.borrow_mut() = Some(proxy);
        Ok(())
    })?;
    if let Some(proxy) = last.borrow().as_ref() {
        eprintln!("em-proxy: stopped; {}", proxy.stats());
    }
    Ok(())
}
