//! A streaming server: `firehose --listen ADDR` (default 127.0.0.1:8083)
//! pushes a stream of events, made by a periodic timer, to every connected
//! client through an `em::Channel`. Prints `listening on ADDR` once ready;
//! stops gracefully on SIGINT/SIGTERM. Try it with `nc 127.0.0.1 8083`.
//!
//! Each client is a connection subscription (`Channel::subscribe_conn`)
//! from connect to close; the timer pushes one line per event and the
//! channel fans it out at once, on the reactor thread. A client that does
//! not keep up misses events instead of being cut off: while its output is
//! above its high watermark, events are dropped for it and counted, and a
//! warning says how many clients are behind. Input from clients is ignored.

use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use em::prelude::*;

/// Streams events from a timer to every connected client.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (IPv4 or IPv6; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8083")]
    listen: String,
    /// Milliseconds between timer ticks (1 or more).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    interval_ms: u64,
    /// Events per timer tick (1 or more).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Print the reactor's stats to stderr every SECS seconds (they are
    /// also printed on SIGUSR1).
    #[arg(long, value_name = "SECS")]
    stats_every: Option<u64>,
}

/// One client: subscribed to the firehose while connected.
struct Client {
    events: em::Channel<Rc<str>>,
    subscription: Option<em::SubscriptionId>,
}

impl Connection for Client {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        self.subscription = Some(self.events.subscribe_conn(conn, |me, event: Rc<str>| {
            me.send_data(&*event);
        }));
    }

    fn receive_data(&mut self, _conn: &Conn<LinesCodec>, _line: String) {}

    fn unbind(&mut self, _conn: &Conn<LinesCodec>, _reason: UnbindReason) {
        if let Some(id) = self.subscription.take() {
            self.events.unsubscribe(id);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    em::run(move || {
        let events = em::Channel::<Rc<str>>::new();
        let e = events.clone();
        let server = em::start_server(args.listen.as_str(), move || Client {
            events: e.clone(),
            subscription: None,
        })?;
        let mut seq = 0u64;
        let mut reported = 0u64;
        let mut last_warning: Option<std::time::Instant> = None;
        em::add_periodic_timer(Duration::from_millis(args.interval_ms), move |_| {
            for _ in 0..args.batch {
                seq += 1;
                events.push(Rc::from(format!("event {seq}")));
            }
            let dropped = events.dropped_count();
            let quiet = last_warning.is_some_and(|t| t.elapsed() < Duration::from_secs(5));
            if dropped > reported && !quiet {
                last_warning = Some(std::time::Instant::now());
                tracing::warn!(
                    behind = events.num_behind(),
                    dropped = dropped - reported,
                    "clients behind: events dropped for them"
                );
                reported = dropped;
            }
        })?;
        // Handlers first: a supervisor may send SIGTERM the moment it reads
        // the line below.
        em_examples::stop_on_signal()?;
        em_examples::report_stats(args.stats_every.map(Duration::from_secs))?;
        em_examples::out!("listening on {}", server.local_addr());
        Ok(())
    })?;
    Ok(())
}
