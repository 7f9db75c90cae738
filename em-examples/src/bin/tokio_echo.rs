//! `tokio_echo`: the raw-tokio baseline echo server for benchmarks.
//!
//! Written the obvious way, without `em`: a current-thread runtime, a
//! [`LocalSet`], an accept loop that spawns one local task per connection,
//! and a per-connection 64 KiB buffer that is read into and written back.
//! With `--unix PATH` the same loop serves a `tokio::net::UnixListener`
//! (a stale socket file at PATH is replaced first, and the file is removed
//! on exit, as em's `echo_server` does). Prints `listening on ADDR` (the
//! real bound address, so port 0 works) or `listening on PATH` once ready
//! and stops gracefully on SIGINT or SIGTERM.

use std::fmt::Display;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::LocalSet;

/// Raw-tokio echo server (benchmark baseline).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// Listen on a Unix-domain socket at PATH instead of TCP (a stale
    /// socket file there is replaced; the file is removed on exit).
    #[arg(long, value_name = "PATH", conflicts_with = "listen")]
    unix: Option<PathBuf>,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&rt, async move {
        match args.unix {
            Some(path) => {
                remove_stale_socket(&path)?;
                let listener = UnixListener::bind(&path)?;
                let served = serve(listener, path.display()).await;
                std::fs::remove_file(&path)?;
                served
            }
            None => {
                let listener = TcpListener::bind(args.listen).await?;
                let addr = listener.local_addr()?;
                serve(listener, addr).await
            }
        }
    })
}

/// A listener the accept loop serves: TCP or Unix-domain.
trait Listener {
    type Stream: Stream;
    async fn accept(&self) -> io::Result<Self::Stream>;
}

/// A connection the echo task serves.
trait Stream: AsyncRead + AsyncWrite + Unpin + 'static {
    /// Per-connection setup before echoing.
    fn prepare(&self) -> io::Result<()> {
        Ok(())
    }
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    async fn accept(&self) -> io::Result<TcpStream> {
        TcpListener::accept(self)
            .await
            .map(|(stream, _peer)| stream)
    }
}

impl Stream for TcpStream {
    fn prepare(&self) -> io::Result<()> {
        self.set_nodelay(true)
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    async fn accept(&self) -> io::Result<UnixStream> {
        UnixListener::accept(self)
            .await
            .map(|(stream, _peer)| stream)
    }
}

impl Stream for UnixStream {}

async fn serve<L: Listener>(listener: L, shown: impl Display) -> io::Result<()> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    em_examples::out!("listening on {shown}");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    tokio::task::spawn_local(echo(stream));
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

async fn echo<S: Stream>(mut stream: S) {
    if stream.prepare().is_err() {
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

/// Removes a socket file left at `path`; anything else there is left for
/// the bind to fail on.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        _ => Ok(()),
    }
}
