//! ProxyMachine's seven-line SOCKS4 proxy on em-proxy's router:
//! `socks4_proxy --listen ADDR`. The router reads the SOCKS4 request
//! (version 4, command 1 CONNECT, port, IPv4 address, user id ending in a
//! NUL), answers "granted" (`0x5a`), connects to the address asked for and
//! replays whatever followed the request; anything else is answered
//! "rejected" (`0x5b`) and closed.
//!
//! Prints `listening on ADDR` once ready. SIGQUIT drains; SIGINT or SIGTERM
//! stop after a 10 s grace.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use em_proxy::{Remote, Route, Router};

/// A SOCKS4 proxy in a few lines (ProxyMachine's README example).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:1080")]
    listen: String,
}

/// The router, as in ProxyMachine's README (seven lines there too).
#[rustfmt::skip]
fn socks4(data: &[u8]) -> Route {
    let [v, c, p1, p2, o1, o2, o3, o4, user @ ..] = data else { return Route::Noop };
    if (*v, *c) != (4, 1) { return Route::CloseWith(Bytes::from_static(b"\0\x5b\0\0\0\0\0\0")) }
    let Some(nul) = user.iter().position(|&b| b == 0) else { return Route::Noop };
    let to = SocketAddr::from((Ipv4Addr::new(*o1, *o2, *o3, *o4), u16::from_be_bytes([*p1, *p2])));
    Remote::new(to).reply(&b"\0\x5a\0\0\0\0\0\0"[..]).data(Bytes::copy_from_slice(&user[nul + 1..])).into()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    em::run(move || {
        let router = Router::new().start(args.listen.as_str(), socks4)?;
        router.stop_on_signals(Duration::from_secs(10))?;
        em_examples::out!("listening on {}", router.local_addr());
        Ok(())
    })?;
    Ok(())
}
