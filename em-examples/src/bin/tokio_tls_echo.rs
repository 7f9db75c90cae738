//! `tokio_tls_echo`: the raw tokio-rustls baseline TLS echo server for
//! benchmarks.
//!
//! `tokio_echo` with TLS, written the obvious way, without `em`: a
//! current-thread runtime, a [`LocalSet`], an accept loop that spawns one
//! local task per connection; the task runs the server side of the TLS
//! handshake (`tokio_rustls::TlsAcceptor`), then reads into a
//! per-connection 64 KiB buffer and writes it back. A failed handshake
//! ends that connection only (logged at debug level). When the client
//! closes with `close_notify`, the server answers with its own.
//!
//! The certificate comes from PEM files (`--tls-cert FILE --tls-key FILE`)
//! or is made at start for `localhost` and `127.0.0.1`
//! (`--tls-self-signed`; `--write-cert FILE` writes it, in PEM, where a
//! client can trust it: `loadgen … --tls --ca FILE`). Prints
//! `listening on ADDR` (the real bound address, so port 0 works) once
//! ready, after the certificate file is written, and stops gracefully on
//! SIGINT or SIGTERM.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::LocalSet;
use tokio_rustls::TlsAcceptor;

use em_examples::tls;

/// Raw tokio-rustls TLS echo server (benchmark baseline).
#[derive(Debug, Parser)]
#[command(version)]
#[command(group(clap::ArgGroup::new("certificate")
    .required(true)
    .args(["tls_cert", "tls_self_signed"])))]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// PEM file with the certificate chain to present, leaf first.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Present a self-signed certificate for `localhost` and 127.0.0.1,
    /// made at start, instead of --tls-cert/--tls-key.
    #[arg(long)]
    tls_self_signed: bool,
    /// With --tls-self-signed: write that certificate, in PEM, to FILE
    /// before listening, for clients to trust.
    #[arg(long, value_name = "FILE", requires = "tls_self_signed")]
    write_cert: Option<PathBuf>,
}

fn main() -> io::Result<()> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let acceptor = TlsAcceptor::from(server_config(&args)?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&rt, async move {
        let listener = TcpListener::bind(args.listen).await?;
        serve(listener, acceptor).await
    })
}

/// The server configuration from the files given, or a fresh self-signed
/// certificate (written to `--write-cert` if asked).
fn server_config(args: &Args) -> io::Result<std::sync::Arc<rustls::ServerConfig>> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => tls::server_config(tls::load_certs(cert)?, tls::load_key(key)?),
        _ => {
            let made = tls::SelfSigned::localhost()?;
            if let Some(path) = &args.write_cert {
                std::fs::write(path, made.cert_pem()).map_err(|e| {
                    io::Error::new(e.kind(), format!("--write-cert {}: {e}", path.display()))
                })?;
            }
            made.server_config()
        }
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<()> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    em_examples::out!("listening on {}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::task::spawn_local(echo(acceptor.clone(), stream));
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

async fn echo(acceptor: TlsAcceptor, stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut stream = match acceptor.accept(stream).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
    };
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match stream.read(&mut buf).await {
            // The client's close_notify: answer with ours.
            Ok(0) => {
                let _ = stream.shutdown().await;
                return;
            }
            Err(_) => return,
            Ok(n) => n,
        };
        // `write_all` hands the bytes to rustls, which may keep some of
        // its records when the socket is full; `flush` sends them all.
        if stream.write_all(&buf[..n]).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}
