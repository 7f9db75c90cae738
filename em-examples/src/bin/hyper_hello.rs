//! `hyper_hello`: the hyper baseline HTTP/1.1 server for benchmarks.
//!
//! The same two responses as em-http's `http_hello`, served the obvious
//! way with hyper 1.x and without `em`: a current-thread runtime, a
//! [`LocalSet`], an accept loop that spawns one local task per connection,
//! and hyper's HTTP/1 connection driver (`http1::Builder`, with
//! `pipeline_flush(true)` so that the responses to pipelined requests go
//! out in one write) around a `service_fn`.
//!
//! * `GET /` and `GET /plaintext`: `200`, `Content-Type: text/plain`,
//!   body `Hello, World!`.
//! * `GET /json`: `200`, `Content-Type: application/json`, body
//!   `{"message":"Hello, World!"}`.
//! * anything else: `404` with an empty body.
//!
//! Every response carries `Server: hyper`; hyper adds `Date` (cached, as
//! em-http does) and `Content-Length` itself, and connections are kept
//! alive. Prints `listening on ADDR` (the real bound address, so port 0
//! works) once ready and stops on SIGINT or SIGTERM.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, SERVER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::LocalSet;

/// hyper "Hello, World!" HTTP/1.1 server (benchmark baseline).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8092")]
    listen: SocketAddr,
}

const PLAINTEXT: &[u8] = b"Hello, World!";
const JSON: &[u8] = br#"{"message":"Hello, World!"}"#;

fn main() -> io::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    LocalSet::new().block_on(&rt, async move {
        let listener = TcpListener::bind(args.listen).await?;
        serve(listener).await
    })
}

async fn serve(listener: TcpListener) -> io::Result<()> {
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    em_examples::out!("listening on {}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::task::spawn_local(connection(stream));
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

/// Serves one connection until the client closes it (or sends garbage).
async fn connection(stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let served = http1::Builder::new()
        .pipeline_flush(true)
        .serve_connection(TokioIo::new(stream), service_fn(hello))
        .await;
    // A peer that resets or sends a malformed request ends only its own
    // connection; a benchmark's abrupt closes are not worth a line each.
    drop(served);
}

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/" | "/plaintext") => (StatusCode::OK, Some("text/plain"), PLAINTEXT),
        (&Method::GET, "/json") => (StatusCode::OK, Some("application/json"), JSON),
        _ => (StatusCode::NOT_FOUND, None, &b""[..]),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static("hyper"));
    if let Some(content_type) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    Ok(response)
}
