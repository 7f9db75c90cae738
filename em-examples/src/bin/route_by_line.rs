//! A content router (ProxyMachine style) that routes by the first line:
//! `route_by_line --listen ADDR --a ADDR --b ADDR`. A client whose first
//! line starts `GET /a` is joined to backend A, `GET /b` to backend B
//! (its bytes replayed, then spliced both ways); any other first line is
//! answered `no route` and closed, or, with `--fallback ADDR`, joined to
//! that backend (as soon as the first bytes cannot start `GET /`: the
//! benchmarks route raw load this way). Up to the first newline the router
//! waits (a line may arrive in pieces).
//!
//! Prints `listening on ADDR` once ready. SIGQUIT drains (no new clients,
//! waits for open sessions); SIGINT or SIGTERM stop after a 10 s grace.

use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use em_proxy::{Route, Router};

/// Routes each client by its first line: GET /a to A, GET /b to B.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8086")]
    listen: String,
    /// Backend for `GET /a`.
    #[arg(long)]
    a: String,
    /// Backend for `GET /b`.
    #[arg(long)]
    b: String,
    /// Backend for everything else (default: answer `no route` and close).
    #[arg(long)]
    fallback: Option<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    em::run(move || {
        let (a, b, fallback) = (args.a, args.b, args.fallback);
        let router = Router::new()
            .on_connect_error(|remote| tracing::warn!(%remote, "backend unreachable"))
            .start(args.listen.as_str(), move |data: &[u8]| {
                let maybe_get = data.starts_with(b"GET /") || b"GET /".starts_with(data);
                let other = || match &fallback {
                    Some(to) => Route::remote(to.as_str()),
                    None => Route::CloseWith(Bytes::from_static(b"no route\n")),
                };
                if !maybe_get {
                    return other();
                }
                let Some(end) = data.iter().position(|&c| c == b'\n') else {
                    return Route::Noop;
                };
                let line = &data[..end];
                if line.starts_with(b"GET /a") {
                    Route::remote(a.as_str())
                } else if line.starts_with(b"GET /b") {
                    Route::remote(b.as_str())
                } else {
                    other()
                }
            })?;
        router.stop_on_signals(Duration::from_secs(10))?;
        em_examples::out!("listening on {}", router.local_addr());
        Ok(())
    })?;
    Ok(())
}
