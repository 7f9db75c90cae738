//! `hyper_get`: the hyper baseline HTTP/1.1 client for benchmarks.
//!
//! What `http_get --quiet --concurrency C --repeat N URL` does, written the
//! obvious way with hyper 1.x and without `em`: a current-thread runtime,
//! a [`LocalSet`], and `C` local tasks, each with its own keep-alive
//! connection (hyper's `client::conn::http1` handshake over a tokio
//! `TcpStream`, its connection driver spawned beside it) sending `GET`s one
//! after another until `N` have been made between them. Each body is read
//! frame by frame and counted (never collected whole, so that a 1 GiB
//! download fits). Plain `http://` only; no redirects, no pool.
//!
//! Prints the same summary table as `http_get` (requests, failures,
//! requests/s, MB/s, latency percentiles, CPU time per request), which
//! `bench/http_client.sh` reads. Exits 1 with the first error if any
//! request failed.

use std::cell::{Cell, RefCell};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use em_examples::summary::Summary;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, HOST, USER_AGENT};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::LocalSet;

/// hyper HTTP/1.1 client (benchmark baseline): GET one URL N times over C
/// keep-alive connections, then print a summary.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The URL to fetch (http:// only).
    url: Uri,
    /// How many connections, each with one request in flight.
    #[arg(long, short = 'c', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// How many requests in all.
    #[arg(long, short = 'n', default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
}

/// What the connections share (all on the one thread).
struct Shared {
    /// The requests not yet started.
    left: Cell<u64>,
    summary: RefCell<Summary>,
    first_error: RefCell<Option<String>>,
}

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    em_examples::log_to_stderr();
    let args = Args::parse();
    if args.url.scheme_str() != Some("http") || args.url.host().is_none() {
        eprintln!("hyper_get: {}: only http:// URLs", args.url);
        return ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hyper_get: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shared = Rc::new(Shared {
        left: Cell::new(args.repeat),
        summary: RefCell::new(Summary::with_capacity(args.repeat.min(10_000_000) as usize)),
        first_error: RefCell::default(),
    });
    let started = Instant::now();
    let connections = u64::from(args.concurrency).min(args.repeat);
    LocalSet::new().block_on(&rt, async {
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::task::spawn_local(connection(args.url.clone(), shared.clone())))
            .collect();
        for task in tasks {
            if let Err(e) = task.await {
                eprintln!("hyper_get: {e}");
            }
        }
    });
    let elapsed = started.elapsed();
    shared.summary.take().print(elapsed);
    match shared.first_error.take() {
        Some(e) => {
            eprintln!("hyper_get: {e}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

/// One connection's loop: requests one after another while any are left.
/// A failure is counted and ends this connection (the others go on).
async fn connection(url: Uri, shared: Rc<Shared>) {
    if let Err(e) = requests(&url, &shared).await {
        shared.summary.borrow_mut().failed();
        shared
            .first_error
            .borrow_mut()
            .get_or_insert_with(|| format!("GET {url}: {e}"));
    }
}

async fn requests(url: &Uri, shared: &Shared) -> Result<(), Error> {
    let host = url.host().unwrap_or_default();
    let port = url.port_u16().unwrap_or(80);
    let authority = url.authority().map_or(host, |a| a.as_str());
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let host_header = HeaderValue::from_str(authority)?;
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::task::spawn_local(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%e, "connection ended");
        }
    });
    while shared.left.get() > 0 {
        shared.left.set(shared.left.get() - 1);
        let start = Instant::now();
        let mut request = Request::get(path.as_str()).body(Empty::<Bytes>::new())?;
        let headers = request.headers_mut();
        headers.insert(HOST, host_header.clone());
        headers.insert(USER_AGENT, HeaderValue::from_static("hyper_get"));
        sender.ready().await?;
        let mut body = sender.send_request(request).await?.into_body();
        let mut length = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                length += data.len() as u64;
            }
        }
        shared.summary.borrow_mut().ok(start.elapsed(), length);
    }
    Ok(())
}
