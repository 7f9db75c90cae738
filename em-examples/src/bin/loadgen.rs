//! `loadgen`: a load generator for any TCP, Unix-domain or UDP echo server.
//!
//! It runs on a single-threaded tokio runtime so that it can be pinned to one
//! core (e.g. `taskset -c 1 loadgen ...`). Every mode stops by itself: connects
//! are retried a bounded number of times with a timeout, and the measured
//! phases end after a fixed time. Each run prints one summary line of
//! machine-greppable `key=value` pairs starting with `LOADGEN mode=...`.
//! Throughput uses MB = 10^6 bytes of echoed data received (one direction).
//!
//! Modes:
//!
//! * `echo`: N connections, each keeping `--pipeline` messages of `--size`
//!   bytes in flight; reports msgs/s, MB/s and p50/p99 round-trip latency.
//! * `c10k`: opens N connections, echoes once on each, keeps them idle and
//!   reports the server's resident memory per connection. With `--http`
//!   the server is an HTTP/1.1 server instead: each connection makes one
//!   keep-alive `GET /` (and reads its `200` response whole) before idling.
//! * `stream`: each connection writes continuously (at most 4 MiB ahead of
//!   the echo) and reports bulk MB/s.
//! * `handshake`: N workers, each looping: connect, TLS handshake, one echo
//!   of `--size` bytes, close (`close_notify`, then FIN); reports
//!   handshakes/s, the server's CPU per handshake and p50/p99 of the whole
//!   round. Every handshake is a full one: the client resumes no session.
//! * `udp`: N UDP sockets, each sending one datagram of `--size` bytes and
//!   waiting for its echo before the next; a datagram whose echo does not
//!   come within `--timeout-ms` counts as lost (`lost=`) and the socket
//!   sends the next. Reports msgs/s, MB/s and p50/p99 round-trip latency.
//!
//! The stream modes connect to `--addr ADDR` over TCP, or with `--unix PATH`
//! to a Unix-domain socket instead; the summary line is the same either
//! way. `udp` sends to `--addr ADDR`.
//!
//! With `--tls` (`echo`, `stream`, `c10k`; required by `handshake`) every
//! connection speaks TLS over that transport (tokio-rustls, ring). With
//! `--ca FILE` the client trusts the PEM certificates in FILE and verifies
//! the name given by `--server-name` (default `localhost`); with
//! `--insecure` it accepts any certificate, but still checks the server's
//! handshake signatures. One of the two is required.
//!
//! With `--pid`, the server's CPU time is read from `/proc/PID/stat` at the
//! start and end of the measured window. Those counters tick in 10 ms steps,
//! so a window of at least 5 s is advised for meaningful CPU numbers.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use futures::stream::FuturesUnordered;
use futures::{stream, StreamExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{tcp, unix, TcpStream, UdpSocket, UnixStream};
use tokio::sync::Notify;
use tokio::task::LocalSet;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use em_examples::tls;

/// Load generator for TCP, Unix-domain, TLS and UDP echo servers.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Request/response load: N connections with P messages in flight each.
    Echo {
        #[command(flatten)]
        load: LoadArgs,
        /// Messages kept in flight per connection.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        pipeline: u64,
    },
    /// Idle-connection memory: server RSS growth per open connection.
    C10k {
        #[command(flatten)]
        target: TargetArgs,
        /// Number of connections to open and keep idle.
        #[arg(long)]
        conns: usize,
        /// Server process id (VmRSS is read from /proc/PID/status).
        #[arg(long)]
        pid: u32,
        /// Bytes echoed once on every connection.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Make one HTTP/1.1 keep-alive `GET /` on every connection (and
        /// read the response) instead of echoing --size bytes.
        #[arg(long, conflicts_with = "size")]
        http: bool,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Bulk throughput: continuous writes, at most 4 MiB ahead of the echo.
    Stream {
        #[command(flatten)]
        load: LoadArgs,
    },
    /// TLS handshake rate: N workers, each looping connect, handshake, one
    /// echo, close.
    Handshake {
        #[command(flatten)]
        load: HandshakeArgs,
    },
    /// UDP request/response: N sockets with one datagram in flight each.
    Udp {
        #[command(flatten)]
        load: UdpArgs,
    },
}

#[derive(Debug, Args)]
struct UdpArgs {
    /// Echo server address (UDP).
    #[arg(long)]
    addr: SocketAddr,
    /// Number of client sockets.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Datagram size in bytes (at most 65,507, the largest UDP payload over
    /// IPv4).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65_507))]
    size: u64,
    /// Measured window in seconds (>= 5 advised when using --pid).
    #[arg(long)]
    duration: f64,
    /// Warm-up before the measured window, in seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Server process id, to report its CPU use from /proc/PID/stat.
    #[arg(long)]
    pid: Option<u32>,
    /// How long a socket waits for an echo before it counts the datagram
    /// as lost and sends the next, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

/// Where the echo server listens: exactly one of `--addr` and `--unix`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// Echo server address (TCP).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Echo server Unix-domain socket path, instead of --addr.
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
}

/// Whether to speak TLS, and how to trust the server.
#[derive(Debug, Args)]
struct TlsArgs {
    /// Speak TLS to the server (needs --ca or --insecure).
    #[arg(long, requires = "trust")]
    tls: bool,
    #[command(flatten)]
    trust: TrustArgs,
    /// Server name sent in the handshake (SNI) and, with --ca, verified
    /// against the certificate: a DNS name or an IP address.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    server_name: String,
}

/// How the client trusts the server's certificate: exactly one of these.
#[derive(Debug, Args)]
#[group(id = "trust", multiple = false)]
struct TrustArgs {
    /// With --tls: trust the PEM certificate(s) in FILE (a CA, or the
    /// server's self-signed certificate) and verify --server-name.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca: Option<PathBuf>,
    /// With --tls: accept any server certificate (handshake signatures are
    /// still checked), so that verification costs the client nothing.
    #[arg(long, requires = "tls")]
    insecure: bool,
}

#[derive(Debug, Args)]
// This mode measures TLS handshakes: `--tls` is required.
#[command(mut_arg("tls", |tls| tls.required(true)))]
struct HandshakeArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// Number of workers, each with one connection at a time.
    #[arg(long, default_value_t = 1,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    conns: usize,
    /// Bytes echoed once on every connection.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=(1 << 24)))]
    size: u64,
    /// Measured window in seconds (>= 5 advised when using --pid).
    #[arg(long)]
    duration: f64,
    /// Warm-up before the measured window, in seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Server process id, to report its CPU use from /proc/PID/stat.
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(Debug, Args)]
struct LoadArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// Number of connections.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Message (echo) or chunk (stream) size in bytes.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=(1 << 24)))]
    size: u64,
    /// Measured window in seconds (>= 5 advised when using --pid).
    #[arg(long)]
    duration: f64,
    /// Warm-up before the measured window, in seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Server process id, to report its CPU use from /proc/PID/stat.
    #[arg(long)]
    pid: Option<u32>,
}

/// Concurrent connection attempts during connect phases.
const CONNECT_CONCURRENCY: usize = 256;
/// How far a stream-mode writer may run ahead of the echoed bytes.
const STREAM_AHEAD: u64 = 4 << 20;
/// How long one round of `handshake` mode (connect, handshake, echo, close)
/// may take before it counts as an error.
const ROUND_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| LocalSet::new().block_on(&rt, run(cli.mode)));
    match result {
        Ok(line) => {
            em_examples::out!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `$body` with `$t` bound to the TCP address or the Unix-domain path
/// (so that each kind gets its own monomorphic code, and the TCP path is
/// exactly what it was without `--unix`).
macro_rules! on_plain_target {
    ($target:expr, |$t:ident| $body:expr) => {
        match ($target.addr, &$target.unix) {
            (Some(addr), _) => {
                let $t = &addr;
                $body
            }
            (None, Some(path)) => {
                let $t = &UnixPath(path);
                $body
            }
            (None, None) => unreachable!("clap requires --addr or --unix"),
        }
    };
}

/// Like `on_plain_target!`, with `$t` wrapped in [`Tls`] when `$tls` asks
/// for TLS (so the plain paths stay exactly as they were).
macro_rules! on_target {
    ($target:expr, $tls:expr, |$t:ident| $body:expr) => {
        match $tls.connector()? {
            None => on_plain_target!($target, |$t| $body),
            Some((connector, name)) => on_plain_target!($target, |plain| {
                let $t = &Tls {
                    inner: plain,
                    connector,
                    name,
                };
                $body
            }),
        }
    };
}

async fn run(mode: Mode) -> io::Result<String> {
    match mode {
        Mode::Echo { load, pipeline } => {
            let head = format!(
                "mode=echo conns={} size={} pipeline={pipeline}",
                load.conns, load.size
            );
            let batch = pipeline.min((64 << 10) / load.size).max(1);
            let plan = Plan {
                size: load.size,
                window: pipeline,
                batch,
                latency: true,
            };
            on_target!(&load.target, load.tls, |t| {
                measure(t, &load, plan, head).await
            })
        }
        Mode::Stream { load } => {
            let head = format!("mode=stream conns={} size={}", load.conns, load.size);
            let window = (STREAM_AHEAD / load.size).max(1);
            let plan = Plan {
                size: load.size,
                window,
                batch: 1,
                latency: false,
            };
            on_target!(&load.target, load.tls, |t| {
                measure(t, &load, plan, head).await
            })
        }
        Mode::C10k {
            target,
            conns,
            pid,
            size,
            http,
            tls,
        } => {
            let first = if http { First::Http } else { First::Echo(size) };
            on_target!(&target, tls, |t| c10k(t, conns, pid, first).await)
        }
        Mode::Handshake { load } => {
            on_target!(&load.target, load.tls, |t| handshake(t, &load).await)
        }
        Mode::Udp { load } => udp(&load).await,
    }
}

/// What the load runs over: a TCP address or a Unix-domain path, each with
/// its stream type and its halves.
trait Target: fmt::Display {
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;
    type Read: AsyncRead + Unpin;
    type Write: AsyncWrite + Unpin;
    /// Connects once.
    async fn open(&self) -> io::Result<Self::Stream>;
    /// Sets a new connection up (TCP_NODELAY for TCP).
    fn prepare(stream: &Self::Stream) -> io::Result<()>;
    fn split(stream: Self::Stream) -> (Self::Read, Self::Write);
}

impl Target for SocketAddr {
    type Stream = TcpStream;
    type Read = tcp::OwnedReadHalf;
    type Write = tcp::OwnedWriteHalf;

    async fn open(&self) -> io::Result<TcpStream> {
        TcpStream::connect(*self).await
    }

    fn prepare(stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)
    }

    fn split(stream: TcpStream) -> (Self::Read, Self::Write) {
        stream.into_split()
    }
}

/// A Unix-domain socket path.
struct UnixPath<'a>(&'a PathBuf);

impl fmt::Display for UnixPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

impl Target for UnixPath<'_> {
    type Stream = UnixStream;
    type Read = unix::OwnedReadHalf;
    type Write = unix::OwnedWriteHalf;

    async fn open(&self) -> io::Result<UnixStream> {
        UnixStream::connect(self.0).await
    }

    fn prepare(_: &UnixStream) -> io::Result<()> {
        Ok(())
    }

    fn split(stream: UnixStream) -> (Self::Read, Self::Write) {
        stream.into_split()
    }
}

/// A target reached over TLS: a connection to `inner`, set up as `inner`
/// sets its own up, then the client side of the handshake.
struct Tls<'a, T> {
    inner: &'a T,
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl<T: fmt::Display> fmt::Display for Tls<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (TLS)", self.inner)
    }
}

impl<T: Target> Target for Tls<'_, T> {
    type Stream = TlsStream<T::Stream>;
    type Read = ReadHalf<Self::Stream>;
    type Write = WriteHalf<Self::Stream>;

    async fn open(&self) -> io::Result<Self::Stream> {
        let stream = self.inner.open().await?;
        T::prepare(&stream)?;
        self.connector.connect(self.name.clone(), stream).await
    }

    /// Nothing left to do: `open` set the connection up before the
    /// handshake.
    fn prepare(_: &Self::Stream) -> io::Result<()> {
        Ok(())
    }

    fn split(stream: Self::Stream) -> (Self::Read, Self::Write) {
        tokio::io::split(stream)
    }
}

impl TlsArgs {
    /// The connector and the server name to use, with `--tls`; `None`
    /// without it.
    fn connector(&self) -> io::Result<Option<(TlsConnector, ServerName<'static>)>> {
        if !self.tls {
            return Ok(None);
        }
        let name = ServerName::try_from(self.server_name.clone()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--server-name {}: {e}", self.server_name),
            )
        })?;
        let config = client_config(&self.trust)?;
        Ok(Some((TlsConnector::from(Arc::new(config)), name)))
    }
}

/// The client configuration: rustls's safe defaults on ring, trusting
/// `--ca` or, with `--insecure`, any certificate. Session resumption is
/// off, so that every connection makes a full handshake.
fn client_config(trust: &TrustArgs) -> io::Result<ClientConfig> {
    let provider = tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let mut config = match &trust.ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in tls::load_certs(path)? {
                roots.add(cert).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// `--insecure`: accepts any server certificate, but checks the server's
/// handshake signatures with the provider's algorithms, as a verifying
/// client would (so the server proves it holds the certificate's key).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How each connection pumps data: at most `window` messages of `size` bytes
/// in flight, written `batch` messages per write, optionally timing each one.
#[derive(Debug, Clone, Copy)]
struct Plan {
    size: u64,
    window: u64,
    batch: u64,
    latency: bool,
}

/// Counters shared by all connection tasks of a run.
#[derive(Debug, Default)]
struct Shared {
    measuring: Cell<bool>,
    msgs: Cell<u64>,
    bytes: Cell<u64>,
    errors: Cell<u64>,
    hist: RefCell<Histogram>,
    /// Datagrams whose echo did not come in time (udp mode).
    lost: Cell<u64>,
}

/// One point in time: counters plus CPU times (in clock ticks).
#[derive(Debug)]
struct Snapshot {
    at: Instant,
    msgs: u64,
    bytes: u64,
    lost: u64,
    server_ticks: Option<u64>,
    self_ticks: Option<u64>,
}

impl Snapshot {
    fn take(sh: &Shared, pid: Option<u32>) -> io::Result<Self> {
        Ok(Self {
            at: Instant::now(),
            msgs: sh.msgs.get(),
            bytes: sh.bytes.get(),
            lost: sh.lost.get(),
            server_ticks: pid.map(|p| cpu_ticks(&p.to_string())).transpose()?,
            self_ticks: cpu_ticks("self").ok(),
        })
    }
}

/// Runs `load.conns` connections following `plan` through warm-up and the
/// measured window, and returns the summary line.
async fn measure<T: Target>(
    target: &T,
    load: &LoadArgs,
    plan: Plan,
    head: String,
) -> io::Result<String> {
    let streams = connect_all(target, load.conns).await?;
    let sh = Rc::new(Shared::default());
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| {
            let sh = sh.clone();
            tokio::task::spawn_local(async move {
                if drive::<T>(s, plan, &sh).await.is_err() {
                    sh.errors.set(sh.errors.get() + 1);
                }
            })
        })
        .collect();
    let (start, end) = window(&sh, load.warmup, load.duration, load.pid).await?;
    for t in tasks {
        t.abort();
    }

    Ok(summary(&head, "msg", &sh, &start, &end, plan.latency))
}

/// The summary line of a measured window: `LOADGEN {head} ...`, counting
/// `{unit}s` (msgs, handshakes) and the server's CPU per `unit`.
fn summary(
    head: &str,
    unit: &str,
    sh: &Shared,
    start: &Snapshot,
    end: &Snapshot,
    latency: bool,
) -> String {
    let tck = clock_ticks_per_sec();
    let elapsed = (end.at - start.at).as_secs_f64();
    let msgs = end.msgs - start.msgs;
    let mb = (end.bytes - start.bytes) as f64 / 1e6;
    let mut line = format!(
        "LOADGEN {head} duration_s={elapsed:.2} {unit}s={msgs} {unit}s_per_s={:.0} mb_per_s={:.2} errors={}",
        msgs as f64 / elapsed,
        mb / elapsed,
        sh.errors.get()
    );
    if head.starts_with("mode=udp") {
        line += &format!(" lost={}", end.lost - start.lost);
    }
    if latency {
        let h = sh.hist.borrow();
        line += &format!(
            " p50_us={:.1} p99_us={:.1}",
            h.quantile_us(0.5),
            h.quantile_us(0.99)
        );
    }
    if let (Some(a), Some(b)) = (start.server_ticks, end.server_ticks) {
        let cpu_us = (b - a) as f64 * 1e6 / tck;
        line += &format!(
            " server_cpu_us_per_{unit}={:.3} server_cpu_pct={:.1}",
            cpu_us / msgs.max(1) as f64,
            cpu_us / 1e4 / elapsed
        );
    }
    if let (Some(a), Some(b)) = (start.self_ticks, end.self_ticks) {
        line += &format!(
            " loadgen_cpu_pct={:.1}",
            (b - a) as f64 * 100.0 / tck / elapsed
        );
    }
    line
}

/// Per-connection flow control between the writer and the reader half.
#[derive(Debug, Default)]
struct Flow {
    sent: Cell<u64>,
    done: Cell<u64>,
    stamps: RefCell<VecDeque<Instant>>,
    progress: Notify,
}

/// The measuring window every mode shares: `warmup` seconds, then counts
/// from `duration` seconds of load (`sh.measuring` on), as the snapshots
/// at its start and end (with the server's CPU when `pid` is given).
async fn window(
    sh: &Shared,
    warmup: f64,
    duration: f64,
    pid: Option<u32>,
) -> io::Result<(Snapshot, Snapshot)> {
    tokio::time::sleep(secs(warmup)?).await;
    let start = Snapshot::take(sh, pid)?;
    sh.measuring.set(true);
    tokio::time::sleep(secs(duration)?).await;
    sh.measuring.set(false);
    let end = Snapshot::take(sh, pid)?;
    Ok((start, end))
}

/// Pumps messages over one connection until it fails or the task is aborted.
async fn drive<T: Target>(stream: T::Stream, plan: Plan, sh: &Shared) -> io::Result<Infallible> {
    let (rd, wr) = T::split(stream);
    let flow = Flow::default();
    tokio::try_join!(write_side(wr, plan, &flow), read_side(rd, plan, &flow, sh))
        .map(|(never, _)| never)
}

async fn write_side(
    mut wr: impl AsyncWrite + Unpin,
    plan: Plan,
    flow: &Flow,
) -> io::Result<Infallible> {
    let payload = vec![b'x'; (plan.size * plan.batch) as usize];
    loop {
        let free = plan.window - (flow.sent.get() - flow.done.get());
        if free == 0 {
            flow.progress.notified().await;
            continue;
        }
        let k = free.min(plan.batch);
        if plan.latency {
            let now = Instant::now();
            flow.stamps.borrow_mut().extend((0..k).map(|_| now));
        }
        flow.sent.set(flow.sent.get() + k);
        wr.write_all(&payload[..(k * plan.size) as usize]).await?;
        // A no-op on plain sockets; over TLS it sends the records rustls
        // still holds when the socket was full.
        wr.flush().await?;
    }
}

async fn read_side(
    mut rd: impl AsyncRead + Unpin,
    plan: Plan,
    flow: &Flow,
    sh: &Shared,
) -> io::Result<Infallible> {
    let mut buf = vec![0u8; 64 << 10];
    // Bytes received of the current, not yet complete message.
    let mut partial = 0u64;
    loop {
        let n = rd.read(&mut buf).await? as u64;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        sh.bytes.set(sh.bytes.get() + n);
        partial += n;
        let k = partial / plan.size;
        partial %= plan.size;
        if k == 0 {
            continue;
        }
        if plan.latency {
            let now = Instant::now();
            let mut stamps = flow.stamps.borrow_mut();
            let mut hist = sh.hist.borrow_mut();
            let k = (k as usize).min(stamps.len());
            for t in stamps.drain(..k) {
                if sh.measuring.get() {
                    hist.record((now - t).as_nanos() as u64);
                }
            }
        }
        flow.done.set(flow.done.get() + k);
        sh.msgs.set(sh.msgs.get() + k);
        flow.progress.notify_one();
    }
}

/// `udp` mode: `load.conns` sockets, each with one datagram in flight,
/// through warm-up and the measured window; the summary line.
async fn udp(load: &UdpArgs) -> io::Result<String> {
    check_nofile(load.conns)?;
    let bind: SocketAddr = if load.addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let mut sockets = Vec::with_capacity(load.conns);
    for _ in 0..load.conns {
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(load.addr).await?;
        sockets.push(socket);
    }
    let sh = Rc::new(Shared::default());
    let timeout = Duration::from_millis(load.timeout_ms);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|socket| {
            let sh = sh.clone();
            let size = load.size as usize;
            tokio::task::spawn_local(async move {
                if let Err(e) = ping(socket, size, timeout, &sh).await {
                    eprintln!("loadgen: udp socket: {e}");
                    sh.errors.set(sh.errors.get() + 1);
                }
            })
        })
        .collect();
    let (start, end) = window(&sh, load.warmup, load.duration, load.pid).await?;
    for t in tasks {
        t.abort();
    }
    let head = format!(
        "mode=udp conns={} size={} timeout_ms={}",
        load.conns, load.size, load.timeout_ms
    );
    Ok(summary(&head, "msg", &sh, &start, &end, true))
}

/// Sends one datagram of `size` bytes at a time on `socket` (connected to
/// the server) and waits for its echo, until an error or the task is
/// aborted. Each datagram starts with its sequence number (as many of its
/// 8 bytes as fit), so that a late echo of a datagram already counted lost
/// is not taken for the current one.
async fn ping(socket: UdpSocket, size: usize, timeout: Duration, sh: &Shared) -> io::Result<()> {
    let mut payload = vec![b'x'; size];
    let mut buf = vec![0u8; 65_536];
    let tag = size.min(8);
    for seq in 1u64.. {
        payload[..tag].copy_from_slice(&seq.to_le_bytes()[..tag]);
        let sent = Instant::now();
        socket.send(&payload).await?;
        let deadline = tokio::time::Instant::from_std(sent + timeout);
        loop {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => {
                    sh.lost.set(sh.lost.get() + 1);
                    break;
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(n)) if n == size && buf[..tag] == payload[..tag] => {
                    if sh.measuring.get() {
                        sh.hist
                            .borrow_mut()
                            .record(sent.elapsed().as_nanos() as u64);
                    }
                    sh.msgs.set(sh.msgs.get() + 1);
                    sh.bytes.set(sh.bytes.get() + n as u64);
                    break;
                }
                // A late echo of an earlier datagram: keep waiting.
                Ok(Ok(_)) => {}
            }
        }
    }
    Ok(())
}

/// What `c10k` does once on every connection before leaving it idle.
#[derive(Debug, Clone, Copy)]
enum First {
    /// Echo this many bytes.
    Echo(usize),
    /// One HTTP/1.1 keep-alive `GET /`, its response read whole.
    Http,
}

/// The request `c10k --http` makes on every connection.
const HTTP_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

async fn c10k<T: Target>(target: &T, conns: usize, pid: u32, first: First) -> io::Result<String> {
    let before = vm_rss_kb(pid)?;
    let streams = connect_all(target, conns).await?;
    let payload: Vec<u8> = match first {
        First::Echo(size) => (0..size).map(|i| (i % 251) as u8).collect(),
        First::Http => HTTP_GET.to_vec(),
    };
    let rounds = stream::iter(streams)
        .map(|mut s| {
            let payload = &payload;
            async move {
                s.write_all(payload).await?;
                s.flush().await?;
                let read = async {
                    match first {
                        First::Echo(_) => {
                            let mut back = vec![0u8; payload.len()];
                            s.read_exact(&mut back).await?;
                            if back != *payload {
                                return Err(io::Error::other(
                                    "echoed bytes differ from sent bytes",
                                ));
                            }
                            Ok(())
                        }
                        First::Http => read_http_response(&mut s).await,
                    }
                };
                tokio::time::timeout(Duration::from_secs(10), read)
                    .await
                    .map_err(|_| io::Error::other("response timed out"))??;
                Ok(s)
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<io::Result<T::Stream>>>()
        .await;
    let open = rounds.into_iter().collect::<io::Result<Vec<_>>>()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = vm_rss_kb(pid)?;
    let per_conn = (after as i64 - before as i64) * 1024 / conns.max(1) as i64;
    drop(open);
    let what = match first {
        First::Echo(size) => format!("size={size}"),
        First::Http => "http=1".to_owned(),
    };
    Ok(format!(
        "LOADGEN mode=c10k conns={conns} {what} rss_before_kb={before} rss_after_kb={after} rss_per_conn_bytes={per_conn}"
    ))
}

/// Reads one HTTP/1.1 response to a `GET` whole: the head, which must say
/// `200` and carry a `Content-Length` (no chunked bodies: the servers
/// measured answer with a fixed body), then that many bytes of body.
/// Nothing more may follow (the connection then idles).
async fn read_http_response<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 << 10 {
            return Err(io::Error::other("response head over 64 KiB"));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(io::Error::other(format!("response status line {status:?}")));
    }
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .ok_or_else(|| io::Error::other("response without a Content-Length"))?;
    let mut body = buf.len() - head_end;
    while body < length {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body += n;
    }
    if body > length {
        return Err(io::Error::other("bytes after the response"));
    }
    Ok(())
}

/// `handshake` mode: `load.conns` workers, each looping connect, handshake,
/// one echo of `load.size` bytes and close, through warm-up and the
/// measured window; the summary line.
async fn handshake<T: Target>(target: &T, load: &HandshakeArgs) -> io::Result<String> {
    check_nofile(load.conns)?;
    // One round first, with connect's retries: a server that is not there
    // (or a certificate that does not verify) is an error, not a count.
    let mut first = connect(target).await?;
    first.shutdown().await?;
    drop(first);
    let sh = Shared::default();
    let mut workers: FuturesUnordered<_> = (0..load.conns)
        .map(|_| churn(target, load.size as usize, &sh))
        .collect();
    // The workers never end: the window decides.
    let (start, end) = tokio::select! {
        window = window(&sh, load.warmup, load.duration, load.pid) => window?,
        _ = workers.next() => unreachable!("handshake workers loop forever"),
    };
    drop(workers);
    let head = format!("mode=handshake conns={} size={}", load.conns, load.size);
    Ok(summary(&head, "handshake", &sh, &start, &end, true))
}

/// One `handshake` worker: rounds one after another, each timed whole.
/// A failed round counts as an error (the first is also printed) and the
/// worker goes on after 10 ms.
async fn churn<T: Target>(target: &T, size: usize, sh: &Shared) -> Infallible {
    let payload = vec![b'x'; size];
    let mut back = vec![0u8; size];
    loop {
        let began = Instant::now();
        let done = tokio::time::timeout(ROUND_TIMEOUT, round(target, &payload, &mut back))
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "round timed out")));
        match done {
            Ok(()) => {
                if sh.measuring.get() {
                    sh.hist
                        .borrow_mut()
                        .record(began.elapsed().as_nanos() as u64);
                }
                sh.msgs.set(sh.msgs.get() + 1);
                sh.bytes.set(sh.bytes.get() + size as u64);
            }
            Err(e) => {
                if sh.errors.get() == 0 {
                    eprintln!("loadgen: handshake round: {e}");
                }
                sh.errors.set(sh.errors.get() + 1);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Connects (with the handshake), echoes `payload` once, and closes: over
/// TLS, `shutdown` sends `close_notify`, then the FIN.
async fn round<T: Target>(target: &T, payload: &[u8], back: &mut [u8]) -> io::Result<()> {
    let mut s = target.open().await?;
    T::prepare(&s)?;
    s.write_all(payload).await?;
    s.flush().await?;
    s.read_exact(back).await?;
    if back != payload {
        return Err(io::Error::other("echoed bytes differ from sent bytes"));
    }
    s.shutdown().await
}

/// Opens `n` connections with bounded concurrency, failing if any cannot be
/// established after a few attempts.
async fn connect_all<T: Target>(target: &T, n: usize) -> io::Result<Vec<T::Stream>> {
    check_nofile(n)?;
    stream::iter(0..n)
        .map(|_| connect(target))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn connect<T: Target>(target: &T) -> io::Result<T::Stream> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match tokio::time::timeout(Duration::from_secs(5), target.open()).await {
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        };
        match result {
            Ok(s) => {
                T::prepare(&s)?;
                return Ok(s);
            }
            Err(e) if attempt >= 5 => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("connect to {target}: {e}"),
                ))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50 * attempt)).await,
        }
    }
}

/// Fails with advice when the open-files soft limit is too low for `n` sockets.
fn check_nofile(n: usize) -> io::Result<()> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    match soft {
        Some(soft) if soft < n + 32 => Err(io::Error::other(format!(
            "open-files limit is {soft}, too low for {n} connections; raise it with \
             `ulimit -n {}` (the server needs a similar limit)",
            n + 1024
        ))),
        _ => Ok(()),
    }
}

/// utime + stime of a process, in clock ticks (fields 14 and 15 of `stat`).
fn cpu_ticks(pid: &str) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; fields resume after ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || fields.next().and_then(|f| f.parse::<u64>().ok());
    match (next(), next()) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => Err(io::Error::other(format!("cannot parse /proc/{pid}/stat"))),
    }
}

fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn vm_rss_kb(pid: u32) -> io::Result<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no VmRSS in /proc/{pid}/status")))
}

fn secs(s: f64) -> io::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Log-linear latency histogram: 32 sub-buckets per power of two of
/// nanoseconds (about 3 % resolution) in fixed memory. Quantiles report the
/// bucket midpoint.
#[derive(Debug)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB_BITS: u32 = 5;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; (64 - SUB_BITS as usize + 1) << SUB_BITS],
            total: 0,
        }
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < 1 << SUB_BITS {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros();
        let mantissa = (v >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        (((exp - SUB_BITS + 1) as usize) << SUB_BITS) | mantissa as usize
    }

    /// Lower bound of bucket `i` (upper bound of `i - 1`), in nanoseconds.
    fn value(i: usize) -> u64 {
        if i < 1 << SUB_BITS {
            return i as u64;
        }
        let exp = (i >> SUB_BITS) as u32 + SUB_BITS - 1;
        let mantissa = (i & ((1 << SUB_BITS) - 1)) as u64;
        ((1 << SUB_BITS) | mantissa) << (exp - SUB_BITS)
    }

    fn record(&mut self, nanos: u64) {
        self.counts[Self::index(nanos)] += 1;
        self.total += 1;
    }

    fn quantile_us(&self, q: f64) -> f64 {
        let target = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return (Self::value(i) + Self::value(i + 1)) as f64 / 2e3;
            }
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn buckets_bracket_their_values() {
        for v in (0..5000).chain([123_456, 9_876_543, 1 << 40, (1 << 41) - 1]) {
            let i = Histogram::index(v);
            assert!(
                Histogram::value(i) <= v && v < Histogram::value(i + 1),
                "{v}"
            );
        }
        let mut h = Histogram::default();
        (1..=100).for_each(|us| h.record(us * 1000));
        assert!((h.quantile_us(0.5) - 50.0).abs() < 2.0);
        assert!((h.quantile_us(0.99) - 99.0).abs() < 3.0);
    }
}
