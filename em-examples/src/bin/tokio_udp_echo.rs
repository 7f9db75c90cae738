//! `tokio_udp_echo`: the raw-tokio baseline UDP echo server for benchmarks.
//!
//! Written the obvious way, without `em`: a current-thread runtime, one
//! `tokio::net::UdpSocket`, and a `recv_from`/`send_to` loop over one 64 KiB
//! buffer, in its own task so that nothing else is polled per datagram.
//! Prints `listening on ADDR` (the real bound address, so port 0 works) once
//! ready and stops on SIGINT or SIGTERM.

use std::io;
use std::net::SocketAddr;

use clap::Parser;
use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::LocalSet;

/// Raw-tokio UDP echo server (benchmark baseline).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to bind (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8088")]
    listen: SocketAddr,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&rt, async move {
        let socket = UdpSocket::bind(args.listen).await?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        em_examples::out!("listening on {}", socket.local_addr()?);
        let echo = tokio::task::spawn_local(echo(socket));
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        echo.abort();
        Ok(())
    })
}

async fn echo(socket: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                eprintln!("recv_from: {e}");
                continue;
            }
        };
        if let Err(e) = socket.send_to(&buf[..n], peer).await {
            eprintln!("send_to {peer}: {e}");
        }
    }
}
