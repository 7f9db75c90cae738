//! `tokio_echo_mt`: the raw-tokio baseline echo server on a multi-thread
//! runtime, for `bench/reactors.sh`.
//!
//! Written the obvious way, without `em`: one runtime with `--threads N`
//! worker threads (default 2; 0 = one per core, as
//! `std::thread::available_parallelism` counts them), one listener, an
//! accept loop that `tokio::spawn`s a task per connection (the scheduler
//! moves tasks between workers and lets idle workers steal), and a
//! per-connection 64 KiB buffer that is read into and written back, as in
//! `tokio_echo`. Prints `listening on ADDR` (the real bound address, so
//! port 0 works) once ready and stops gracefully on SIGINT or SIGTERM.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

/// Raw-tokio multi-thread echo server (benchmark baseline).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8094")]
    listen: SocketAddr,
    /// Worker threads of the runtime (0 = one per core).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        n => n,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(serve(args.listen))
}

async fn serve(listen: SocketAddr) -> io::Result<()> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let listener = TcpListener::bind(listen).await?;
    em_examples::out!("listening on {}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(echo(stream));
                }
                // Transient errors (e.g. EMFILE) must not kill the server;
                // back off briefly so they do not turn into a busy loop.
                Err(e) => {
                    eprintln!("accept error: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    Ok(())
}

async fn echo(mut stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
