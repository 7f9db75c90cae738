//! `http_get`: fetches URLs with em-http's client, em-http-request style.
//!
//! Each URL is fetched `--repeat` times, `--concurrency` fetches in flight
//! at once over the client's keep-alive pool, all on one reactor thread.
//! For each URL it prints the final URL, the status line, the headers and
//! the SHA-256 of the body, which is fed to the hasher piece by piece as it
//! arrives and never held whole in memory; a long download shows a
//! progress bar on stderr when stderr is a terminal. Repeated fetches of
//! the same URL are counted, not printed again (`--quiet` prints no
//! fetch at all). At the end it prints a summary table: requests,
//! failures, requests/s, MB/s, latency percentiles (from sending the
//! request to the body's last byte) and the process's CPU time per
//! request, the figures `bench/http_client.sh` compares with `hyper_get`.
//!
//! Exits 0 when every fetch succeeded (whatever the status code), 1 with
//! the first error's message (`GET http://…: too many redirects (more than
//! 5)`) otherwise.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use clap::Parser;
use em_examples::summary::Summary;
use em_http::{Client, ClientResponse, ClientResult};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use url::Url;

/// Fetch URLs with em-http's client: status, headers and SHA-256 of each
/// body, then a summary (requests/s, latency percentiles, CPU per request).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The URLs to fetch (http:// or https://), each parsed once however
    /// often it is fetched.
    #[arg(required = true)]
    urls: Vec<Url>,
    /// Trust the CA certificates in this PEM file instead of Mozilla's
    /// roots.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Do not verify TLS certificates (testing only).
    #[arg(long)]
    insecure: bool,
    /// How many fetches are in flight at once.
    #[arg(long, short = 'c', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// How many times each URL is fetched.
    #[arg(long, short = 'n', default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Print only the summary, not each URL's status, headers and hash.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Count the body's bytes without hashing them (for throughput
    /// measurements, where SHA-256 would be the bottleneck).
    #[arg(long)]
    no_hash: bool,
    /// How many redirects to follow.
    #[arg(long, default_value_t = 5)]
    redirects: usize,
}

/// Bodies at least this large get a progress bar (when stderr is a
/// terminal).
const PROGRESS_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// The state every worker shares (all on the reactor thread).
struct Shared {
    args: Args,
    client: Client,
    /// The next fetch to start, as an index into `urls × repeat`.
    next: Cell<u64>,
    /// The URLs whose first fetch has been printed.
    printed: RefCell<HashSet<usize>>,
    summary: RefCell<Summary>,
    /// The first failure's message, and whether it was printed already.
    first_error: RefCell<Option<(String, bool)>>,
    progress: MultiProgress,
}

fn main() -> ExitCode {
    em_examples::log_to_stderr();
    let args = Args::parse();

    let mut builder = Client::builder()
        .redirects(args.redirects)
        .pool_max_idle_per_host(args.concurrency as usize);
    if let Some(ca) = &args.ca {
        builder = builder.root_certs_file(ca);
    }
    if args.insecure {
        builder = builder.danger_accept_invalid_certs();
    }
    let progress = MultiProgress::with_draw_target(if io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let total = args.urls.len() as u64 * args.repeat;
    let workers = u64::from(args.concurrency).min(total);

    let started = Instant::now();
    let finished = Rc::new(Cell::new(started));
    let shared_out: Rc<RefCell<Option<Rc<Shared>>>> = Rc::default();
    let (finished_in, shared_in) = (finished.clone(), shared_out.clone());
    let ran = em::Reactor::builder()
        .stop_on_panic(true)
        .run(move || -> em::Result<()> {
            // The client lives on the reactor thread: made here, inside run.
            let shared = Rc::new(Shared {
                client: builder.build(),
                args,
                next: Cell::new(0),
                printed: RefCell::default(),
                summary: RefCell::new(Summary::with_capacity(total.min(10_000_000) as usize)),
                first_error: RefCell::default(),
                progress,
            });
            *shared_in.borrow_mut() = Some(shared.clone());
            let running = Rc::new(Cell::new(workers));
            for _ in 0..workers {
                let (shared, running, finished) =
                    (shared.clone(), running.clone(), finished_in.clone());
                em::spawn(async move {
                    worker(&shared).await;
                    running.set(running.get() - 1);
                    if running.get() == 0 {
                        finished.set(Instant::now());
                        em::stop();
                    }
                })?;
            }
            Ok(())
        });
    if let Err(e) = ran {
        eprintln!("http_get: {e}");
        return ExitCode::FAILURE;
    }
    let shared = shared_out.borrow_mut().take().expect("the reactor ran");
    shared.summary.take().print(finished.get() - started);
    match shared.first_error.take() {
        Some((e, shown)) => {
            if !shown {
                eprintln!("http_get: {e}");
            }
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

/// Takes fetches off the shared counter until none are left.
async fn worker(shared: &Shared) {
    let urls = &shared.args.urls;
    let total = urls.len() as u64 * shared.args.repeat;
    loop {
        let n = shared.next.get();
        if n >= total {
            return;
        }
        shared.next.set(n + 1);
        // URL by URL: every repeat of the first, then of the second…
        let index = (n / shared.args.repeat) as usize;
        let show = !shared.args.quiet && shared.printed.borrow_mut().insert(index);
        let start = Instant::now();
        match fetch(shared, &urls[index], show).await {
            Ok(bytes) => shared.summary.borrow_mut().ok(start.elapsed(), bytes),
            Err(e) => {
                shared.summary.borrow_mut().failed();
                // Each URL's first failure is worth a line; the same
                // failure repeated is counted in the summary.
                if show {
                    eprintln!("http_get: {e}");
                }
                shared
                    .first_error
                    .borrow_mut()
                    .get_or_insert_with(|| (e.to_string(), show));
            }
        }
    }
}

/// One fetch: the head, then the body streamed through the hasher.
/// Returns the body's length.
async fn fetch(shared: &Shared, url: &Url, show: bool) -> ClientResult<u64> {
    let mut response = shared.client.get(url).send().await?;
    let bar = progress_bar(shared, &response);
    let mut hasher = (!shared.args.no_hash).then(Sha256::new);
    let mut length = 0u64;
    while let Some(piece) = response.chunk().await? {
        length += piece.len() as u64;
        if let Some(hasher) = &mut hasher {
            hasher.update(&piece);
        }
        if let Some(bar) = &bar {
            bar.inc(piece.len() as u64);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
        shared.progress.remove(&bar);
    }
    if show {
        print_response(&response, hasher, length);
    }
    Ok(length)
}

/// A progress bar for a large (or unsized) body, drawn only when stderr is
/// a terminal.
fn progress_bar(shared: &Shared, response: &ClientResponse) -> Option<ProgressBar> {
    if shared.progress.is_hidden() {
        return None;
    }
    let bar = match response.content_length() {
        Some(n) if n >= PROGRESS_MIN_BYTES => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("a valid template"),
        ),
        Some(_) => return None,
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                .expect("a valid template"),
        ),
    };
    let bar = shared.progress.add(bar);
    bar.set_message(response.url().to_string());
    Some(bar)
}

/// The URL that answered, the status line, the headers and the hash.
fn print_response(response: &ClientResponse, hasher: Option<Sha256>, length: u64) {
    let mut out = String::new();
    let _ = writeln!(out, "{}", response.url());
    let _ = writeln!(out, "{:?} {}", response.version(), response.status());
    for (name, value) in response.headers() {
        let _ = writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
    match hasher {
        Some(hasher) => {
            let _ = write!(out, "sha256 ");
            for byte in hasher.finalize() {
                let _ = write!(out, "{byte:02x}");
            }
            let _ = writeln!(out, "  {length} bytes");
        }
        None => {
            let _ = writeln!(out, "{length} bytes");
        }
    }
    out.push('\n');
    let mut stdout = io::stdout().lock();
    em_examples::exit_unless_written(
        stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush()),
    );
}
