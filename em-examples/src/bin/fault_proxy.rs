//! A fault-injecting TCP proxy on `em::testing::FaultProxy`: `fault_proxy
//! --to ADDR [--listen ADDR] [--latency-ms N] [--jitter-ms N] [--bandwidth
//! BYTES_PER_S] [--slow-close-ms N] [--limit-data N] [--upstream]`. Each
//! client connection gets its own connection to `--to`; the toxics given
//! act on the bytes from the server to the client (or, with `--upstream`,
//! from the client to the server). With no toxic it forwards as the
//! `proxy` example does (`splice(2)` both ways), which
//! `bench/fault_proxy.sh` checks.
//!
//! Prints `listening on ADDR` once ready; stops gracefully on SIGINT or
//! SIGTERM. `RUST_LOG=em=debug` shows what the proxy does per connection.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use em::testing::{FaultProxy, TestReactor, Toxic};

/// Forwards every connection to another address, injecting faults.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8474")]
    listen: SocketAddr,
    /// Address to forward to.
    #[arg(long)]
    to: String,
    /// Latency added to every chunk, in milliseconds.
    #[arg(long, value_name = "N")]
    latency_ms: Option<u64>,
    /// The latency's jitter (± this many milliseconds).
    #[arg(long, value_name = "N", requires = "latency_ms")]
    jitter_ms: Option<u64>,
    /// Bandwidth limit, in bytes per second.
    #[arg(long, value_name = "BYTES_PER_S", value_parser = clap::value_parser!(u64).range(1..))]
    bandwidth: Option<u64>,
    /// Delay every close by this many milliseconds.
    #[arg(long, value_name = "N")]
    slow_close_ms: Option<u64>,
    /// Close each connection after this many bytes.
    #[arg(long, value_name = "N")]
    limit_data: Option<u64>,
    /// Apply the toxics to the client's bytes (to the server) instead of
    /// the server's.
    #[arg(long)]
    upstream: bool,
}

impl Args {
    fn toxics(&self) -> Vec<Toxic> {
        let ms = Duration::from_millis;
        let mut toxics = Vec::new();
        if let Some(latency) = self.latency_ms {
            toxics.push(Toxic::latency(ms(latency)).jitter(ms(self.jitter_ms.unwrap_or(0))));
        }
        if let Some(rate) = self.bandwidth {
            toxics.push(Toxic::bandwidth(rate));
        }
        if let Some(delay) = self.slow_close_ms {
            toxics.push(Toxic::slow_close(ms(delay)));
        }
        if let Some(bytes) = self.limit_data {
            toxics.push(Toxic::limit_data(bytes));
        }
        if self.upstream {
            toxics = toxics.into_iter().map(Toxic::upstream).collect();
        }
        toxics
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let reactor = TestReactor::start();
    // The reactor stops on a signal; its shutdown hook lets main go on.
    let (stopped_tx, stopped) = mpsc::channel::<()>();
    reactor.block_on(move || -> em::Result<()> {
        em_examples::stop_on_signal()?;
        em::add_shutdown_hook(move || drop(stopped_tx))
    })?;
    let proxy = FaultProxy::try_start_on(&reactor, args.listen, args.to.as_str())?;
    for toxic in args.toxics() {
        proxy.add_toxic(toxic);
    }
    em_examples::out!("listening on {}", proxy.local_addr());
    // Disconnected once the reactor stops.
    let _ = stopped.recv();
    drop(proxy);
    reactor.stop()?;
    Ok(())
}
