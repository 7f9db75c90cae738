//! `tokio_proxy`: the raw-tokio baseline forwarding proxy for benchmarks.
//!
//! Written the obvious way, without `em`: a current-thread runtime, a
//! [`LocalSet`], an accept loop that spawns one local task per connection,
//! which connects to `--to` and runs `tokio::io::copy_bidirectional`
//! between the two sockets. Prints `listening on ADDR` (the real bound
//! address, so port 0 works) once ready and stops on SIGINT or SIGTERM.

use std::io;
use std::net::SocketAddr;

use clap::Parser;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::LocalSet;

/// Raw-tokio forwarding proxy (benchmark baseline).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8086")]
    listen: SocketAddr,
    /// Address to forward to.
    #[arg(long)]
    to: SocketAddr,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&rt, serve(args))
}

async fn serve(args: Args) -> io::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    em_examples::out!("listening on {}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    tokio::task::spawn_local(forward(client, args.to));
                }
                // Transient errors (e.g. EMFILE) must not kill the server;
                // back off briefly so they do not turn into a busy loop.
                Err(e) => {
                    eprintln!("accept error: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    Ok(())
}

async fn forward(mut client: TcpStream, to: SocketAddr) {
    let Ok(mut backend) = TcpStream::connect(to).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
}
