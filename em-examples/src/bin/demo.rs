//! The em demo: an echo server and a client in one process, `next_tick`, a
//! one-shot and a periodic timer, a blocking hash deferred to the thread pool
//! while the echo traffic flows, and a closure scheduled from another thread
//! that stops the reactor once everything is done; each event printed in
//! order with its time since start. Exits 0 by itself in well under 2 seconds.
//!
//! Run it with `cargo run --release -p em-examples --bin demo`.

use std::cell::Cell;
use std::time::{Duration, Instant};

use clap::Parser;
use em::prelude::*;
use tokio_util::codec::LinesCodec;

/// Runs an echo server and a client in one em reactor and prints what happens.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Lines the client sends.
    #[arg(default_values_t = ["hello".to_string(), "from".to_string(), "em".to_string()])]
    lines: Vec<String>,
}

thread_local! {
    static START: Instant = Instant::now();
    /// Activities still running: the echo exchange, the periodic timer and
    /// the deferred hash.
    static RUNNING: Cell<u32> = const { Cell::new(3) };
}

/// One activity finished; after the last, stop the reactor from another
/// thread through the one cross-thread door, a `Send` handle.
fn finished(what: &str) {
    let left = RUNNING.with(|r| {
        r.set(r.get() - 1);
        r.get()
    });
    event(format_args!("{what} finished ({left} still running)"));
    if left == 0 {
        let handle = em::handle().expect("on the reactor thread");
        std::thread::spawn(move || {
            let _ = handle.schedule(|| {
                event("reactor: closure scheduled from another thread runs here; stopping");
                em::stop();
            });
        });
    }
}

/// A blocking computation for the defer pool: hashes 8 MiB.
fn hash_8_mib() -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut h = DefaultHasher::new();
    h.write(&data);
    h.finish()
}

/// Prints one event with the milliseconds since start (exits quietly if
/// stdout is closed, as in `demo | head -3`).
fn event(what: impl std::fmt::Display) {
    let ms = START.with(|s| s.elapsed().as_secs_f64() * 1000.0);
    em_examples::out!("{ms:8.3} ms  {what}");
}

/// The peer's address as text, `unknown` where there is none.
fn peer(conn: &Conn<LinesCodec>) -> String {
    conn.peer_addr()
        .map_or_else(|| "unknown".to_owned(), |addr| addr.to_string())
}

/// The server side: echoes every line back, upper-cased.
struct Shout;

impl Connection for Shout {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(4096)
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        event(format_args!(
            "server: accepted {} from {}",
            conn.id(),
            peer(conn)
        ));
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        event(format_args!("server: got {line:?}"));
        conn.send_data(line.to_uppercase());
    }
    fn unbind(&mut self, conn: &Conn<LinesCodec>, reason: UnbindReason) {
        event(format_args!("server: {} unbound ({reason})", conn.id()));
        finished("echo exchange");
    }
}

/// The client side: sends its lines, prints the replies, closes after the last.
struct Client {
    lines: Vec<String>,
    replies: usize,
}

impl Connection for Client {
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(4096)
    }
    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        event("client: post_init (connect in progress; sending now queues the lines)");
        for line in &self.lines {
            conn.send_data(line.as_str());
        }
    }
    fn connection_completed(&mut self, conn: &Conn<LinesCodec>) {
        event(format_args!("client: connected to {}", peer(conn)));
    }
    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        event(format_args!("client: reply {line:?}"));
        self.replies += 1;
        if self.replies == self.lines.len() {
            conn.close_connection();
        }
    }
    fn unbind(&mut self, _conn: &Conn<LinesCodec>, reason: UnbindReason) {
        event(format_args!("client: unbound ({reason})"));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    START.with(|_| ());
    // A panic in a callback stops the reactor (and `run` returns it)
    // instead of leaving the demo waiting for an activity that never ends.
    em::Reactor::builder().stop_on_panic(true).run(move || -> em::Result<()> {
        event("reactor: run block");
        em::next_tick(|| event("reactor: next_tick runs (queued in the run block)"));
        event("reactor: next_tick queued; it runs after the run block");
        // Blocking work goes to the defer pool; the echo traffic flows meanwhile.
        em::defer(
            || {
                let thread = std::thread::current().name().unwrap_or("?").to_owned();
                (hash_8_mib(), thread)
            },
            |(digest, thread)| {
                event(format_args!(
                    "defer: 8 MiB hashed on pool thread {thread}: {digest:016x}; callback on the reactor thread"
                ));
                finished("deferred hash");
            },
        )?;
        em::add_timer(Duration::from_millis(30), || {
            event("timer: one-shot fired after 30 ms")
        })?;
        let mut ticks = 0;
        em::add_periodic_timer(Duration::from_millis(20), move |timer| {
            ticks += 1;
            event(format_args!("timer: periodic tick {ticks} of 3"));
            if ticks == 3 {
                timer.cancel();
                finished("periodic timer");
            }
        })?;
        let server = em::start_server("127.0.0.1:0", || Shout)?;
        event(format_args!("server: listening on {}", server.local_addr()));
        em::connect(
            server.local_addr(),
            Client {
                lines: args.lines,
                replies: 0,
            },
        )?;
        event("client: em::connect returned");
        Ok(())
    })?;
    event("reactor: run returned");
    Ok(())
}
