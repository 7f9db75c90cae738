//! `tokio_echo_reuseport`: the raw-tokio baseline echo server with one
//! listener per thread, for `bench/reactors.sh`.
//!
//! The shape em's several reactors take, written without `em`: `--threads N`
//! threads (default 2; 0 = one per core, as
//! `std::thread::available_parallelism` counts them), each running its own
//! current-thread runtime and [`LocalSet`] with `tokio_echo`'s accept loop
//! and echo task, on its own `TcpListener` bound with `SO_REUSEPORT` to the
//! same address, so that the kernel spreads incoming connections over the
//! threads and a connection stays on the thread that accepted it. With port
//! 0 the first listener picks the port and the others bind that one.
//!
//! Every listener is bound, and the signal handlers are in place, before it
//! prints `listening on ADDR` (the real bound address); SIGINT or SIGTERM
//! stops every thread's accept loop, and the process exits once all have
//! returned.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::thread;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Runtime;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::LocalSet;

/// Raw-tokio echo server, one SO_REUSEPORT listener per thread (benchmark
/// baseline).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8095")]
    listen: SocketAddr,
    /// Threads, each with its own runtime and listener (0 = one per core).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// listen(2) backlog of each listener (`echo_server`'s default).
const BACKLOG: u32 = 1024;

fn main() -> io::Result<()> {
    let args = Args::parse();
    let threads = match args.threads {
        0 => thread::available_parallelism().map_or(1, NonZeroUsize::get),
        n => n,
    };
    // The main thread only waits for the signals and tells the others.
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut sigint, mut sigterm) = {
        let _guard = signals.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut addr = args.listen;
    let mut workers = Vec::with_capacity(threads);
    for index in 0..threads {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // The listener registers with the runtime that will serve it.
        let listener = {
            let _guard = rt.enter();
            bind_reuseport(addr)?
        };
        addr = listener.local_addr()?;
        let stop = stop_rx.clone();
        workers.push(
            thread::Builder::new()
                .name(format!("echo-{index}"))
                .spawn(move || serve(rt, listener, stop))?,
        );
    }
    em_examples::out!("listening on {addr}");
    signals.block_on(async {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
    });
    stop_tx.send_replace(true);
    for worker in workers {
        worker
            .join()
            .map_err(|_| io::Error::other("an echo thread panicked"))??;
    }
    Ok(())
}

/// A listener on `addr` with `SO_REUSEPORT` set, so that every thread can
/// bind the same address.
fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// One thread's accept loop, on its own runtime, until `stop` turns true.
fn serve(rt: Runtime, listener: TcpListener, mut stop: watch::Receiver<bool>) -> io::Result<()> {
    LocalSet::new().block_on(&rt, async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        tokio::task::spawn_local(echo(stream));
                    }
                    // Transient errors (e.g. EMFILE) must not kill the
                    // server; back off briefly so they do not turn into a
                    // busy loop.
                    Err(e) => {
                        eprintln!("accept error: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = stop.wait_for(|stop| *stop) => break,
            }
        }
        Ok(())
    })
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
