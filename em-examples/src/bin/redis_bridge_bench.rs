//! `redis_bridge_bench`: publishes numbered messages through an
//! `em_redis::Bridge` and counts them back from the local `em::Channel`,
//! the figure `bench/redis.sh` compares with `redis-benchmark`'s PUBLISH.
//!
//! `--messages N` messages of `--size B` bytes are published on the Redis
//! channel `--channel` in batches of `--window W` (W pipelined on the
//! bridge's connection, then their replies awaited, as `redis-benchmark
//! -P W` does); the run ends when the last one has come back
//! through the bridge's subscription. Prints one line:
//! `BRIDGE messages=N secs=S msgs_per_s=R cpu_us_per_msg=C lost=L`.
//! Exits 1 if a message did not come back, or came back out of order.
//!
//! `--role receive` and `--role publish` split the two sides between two
//! processes, as `redis-benchmark` and a `redis-cli SUBSCRIBE` do: the
//! receiver's bridge prints `READY` once subscribed, counts `--messages`
//! and prints `RECEIVE messages=N secs=S msgs_per_s=R cpu_us_per_msg=C`
//! (first message to last); the publisher publishes them with an
//! `em_redis::Client` in batches of `--window` and prints
//! `PUBLISH messages=N secs=S msgs_per_s=R`.
//!
//! `--style callback` (the default) sends each batch from the callback of
//! the last reply of the one before, as em-hiredis programs (and the Ruby
//! baseline) do: the next batch leaves in the reactor turn that read the
//! replies. `--style await` awaits each reply in a task (em-synchrony's
//! style): the batch leaves when the task next runs, after whatever else
//! that turn woke (in `both`, the subscription's messages).
//!
//! `--unnumbered` makes the receiving side (`--role receive`, or `both`)
//! only count the messages, without reading a sequence number from them or
//! checking their order: for messages another publisher sends
//! (`redis-benchmark`'s PUBLISH sends the same payload every time).

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use em_examples::summary::process_cpu_seconds;

/// Publishes through an em_redis::Bridge and counts the messages back.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Redis: `host:port`, or `unix:PATH`.
    #[arg(long, default_value = "127.0.0.1:6379")]
    redis: String,
    /// Redis channel to publish on.
    #[arg(long, default_value = "em-bench")]
    channel: String,
    /// Messages to publish (1 or more).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Publishes per pipelined batch (1 or more).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    window: u64,
    /// Bytes per message (at least 8: the sequence number).
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Both sides in this process, or one of them.
    #[arg(long, value_enum, default_value_t = Role::Both)]
    role: Role,
    /// Only count the messages received, without checking their order
    /// (they need not carry a sequence number: e.g. from redis-benchmark).
    #[arg(long)]
    unnumbered: bool,
    /// How the publisher sends each batch after the one before.
    #[arg(long, value_enum, default_value_t = Style::Callback)]
    style: Style,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Style {
    /// From the callback of the batch's last reply (em-hiredis's style).
    Callback,
    /// `.await` on each reply in a task (em-synchrony's style).
    Await,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Publish through a Bridge and receive back through it.
    Both,
    /// Publish with a Client (the other process receives).
    Publish,
    /// Receive through a Bridge (the other process publishes).
    Receive,
}

fn main() -> ExitCode {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let endpoint = match args.redis.strip_prefix("unix:") {
        Some(path) => em::Endpoint::unix(path),
        None => em::Endpoint::from(args.redis.as_str()),
    };
    exit(em::synchrony(async move {
        match args.role {
            Role::Both => both(endpoint, args).await,
            Role::Publish => publish_only(endpoint, args).await,
            Role::Receive => receive_only(endpoint, args).await,
        }
    }))
}

/// Message `n`: its number (8 bytes, little-endian), then `x` up to
/// `size`, cut from `arena` (one allocation per batch, not per message, as
/// redis-benchmark writes from one buffer).
fn message(arena: &mut bytes::BytesMut, n: u64, size: usize) -> Bytes {
    arena.extend_from_slice(&n.to_le_bytes());
    arena.resize(arena.len() + size.max(8) - 8, b'x');
    arena.split().freeze()
}

fn exit(result: em::Result<em::Result<bool>>) -> ExitCode {
    match result {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => {
            eprintln!("redis_bridge_bench: a message did not come, or came out of order");
            ExitCode::FAILURE
        }
        Ok(Err(e)) | Err(e) => {
            eprintln!("redis_bridge_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Counts numbered messages arriving on a local channel.
struct Count {
    received: Rc<Cell<u64>>,
    in_order: Rc<Cell<bool>>,
    /// When the first came, and the process's CPU seconds then.
    first: Rc<Cell<Option<(Instant, f64)>>>,
    done: em::Deferred<(), ()>,
}

impl Count {
    /// Subscribes to `topic`; `done` succeeds at the `total`-th message.
    /// `numbered`: check that each message's first 8 bytes are its
    /// sequence number (else only count).
    fn subscribe(topic: &em::Channel<Bytes>, total: u64, numbered: bool) -> Count {
        let count = Count {
            received: Rc::new(Cell::new(0)),
            in_order: Rc::new(Cell::new(true)),
            first: Rc::new(Cell::new(None)),
            done: em::Deferred::new(),
        };
        let (r, o, f, d) = (
            count.received.clone(),
            count.in_order.clone(),
            count.first.clone(),
            count.done.clone(),
        );
        topic.subscribe(move |m: Bytes| {
            if f.get().is_none() {
                f.set(Some((Instant::now(), process_cpu_seconds().unwrap_or(0.0))));
            }
            if numbered {
                let n = m.get(..8).map_or(u64::MAX, |b| {
                    u64::from_le_bytes(b.try_into().unwrap_or_default())
                });
                if n != r.get() {
                    o.set(false);
                }
            }
            r.set(r.get() + 1);
            if r.get() == total {
                d.succeed(());
            }
        });
        count
    }

    /// Waits (bounded: a message that never comes fails the run) for all.
    async fn all_came(&self) -> bool {
        em::timeout(Duration::from_secs(60), self.done.clone())
            .await
            .is_ok()
    }

    fn complete(&self, total: u64) -> bool {
        self.in_order.get() && self.received.get() == total
    }
}

/// Publishes `args.messages` numbered messages with `publish`, in batches
/// of `window`, as `redis-benchmark -P window` pipelines: a batch, its
/// replies, the next; in the `--style` asked for.
async fn publish_batches(
    args: &Args,
    publish: impl Fn(Bytes) -> em_redis::Reply<i64> + 'static,
) -> em::Result<()> {
    match args.style {
        Style::Await => publish_awaiting(args, publish).await,
        Style::Callback => {
            let batches = Rc::new(Batches {
                publish: Box::new(publish),
                sent: Cell::new(0),
                total: args.messages,
                window: args.window,
                size: args.size,
                done: em::Deferred::new(),
            });
            Batches::send_next(&batches);
            // Bounded by progress, not by the whole run: a long run is
            // fine, replies that stop coming for 10 s are not.
            loop {
                let sent = batches.sent.get();
                match em::timeout(Duration::from_secs(10), batches.done.clone()).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => return Err(em::Error::other(e)),
                    Err(_) if batches.sent.get() == sent => {
                        return Err(em::Error::other("no reply for 10 s"))
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// `--style await`: each batch's replies awaited in this task.
async fn publish_awaiting(
    args: &Args,
    publish: impl Fn(Bytes) -> em_redis::Reply<i64>,
) -> em::Result<()> {
    let mut n = 0;
    let mut batch = Vec::with_capacity(args.window as usize);
    while n < args.messages {
        let mut arena = bytes::BytesMut::with_capacity(args.window as usize * args.size.max(8));
        batch.extend(
            (n..args.messages.min(n + args.window))
                .map(|m| publish(message(&mut arena, m, args.size))),
        );
        n += batch.len() as u64;
        for reply in batch.drain(..) {
            reply.await?;
        }
    }
    Ok(())
}

/// `--style callback`: the batches, each sent from the callback of the
/// last reply of the one before.
struct Batches {
    publish: Box<dyn Fn(Bytes) -> em_redis::Reply<i64>>,
    sent: Cell<u64>,
    total: u64,
    window: u64,
    size: usize,
    /// Succeeds at the last reply; fails with the first error.
    done: em::Deferred<(), String>,
}

impl Batches {
    fn send_next(me: &Rc<Batches>) {
        let from = me.sent.get();
        let to = me.total.min(from + me.window);
        me.sent.set(to);
        let mut arena = bytes::BytesMut::with_capacity((to - from) as usize * me.size.max(8));
        for m in from..to {
            let reply = (me.publish)(message(&mut arena, m, me.size));
            let me = me.clone();
            let last = m + 1 == to;
            reply.callback(move |result| match result {
                Err(e) => {
                    me.done.fail(e.to_string());
                }
                // A reply of this batch failed: no more batches.
                Ok(_) if last && me.done.is_resolved() => {}
                Ok(_) if last && to == me.total => {
                    me.done.succeed(());
                }
                Ok(_) if last => Batches::send_next(&me),
                Ok(_) => {}
            });
        }
    }
}

/// `--role both`: publishes through a Bridge and counts the messages back.
async fn both(endpoint: em::Endpoint, args: Args) -> em::Result<bool> {
    let topic = em::Channel::new();
    let bridge = em_redis::Bridge::start(endpoint, args.channel.as_str(), &topic)?;
    bridge.ready().await?;
    let count = Count::subscribe(&topic, args.messages, !args.unnumbered);
    let cpu_before = process_cpu_seconds().unwrap_or(0.0);
    let start = Instant::now();
    let publisher = bridge.clone();
    publish_batches(&args, move |m| publisher.publish(m)).await?;
    if !count.all_came().await {
        return Ok(false);
    }
    println!(
        "BRIDGE {} lost={}",
        figures(args.messages, start, cpu_before),
        bridge.lost()
    );
    Ok(count.complete(args.messages))
}

/// `messages=N secs=S msgs_per_s=R cpu_us_per_msg=C` since `start`, when
/// the process had used `cpu_before` seconds of CPU.
fn figures(messages: u64, start: Instant, cpu_before: f64) -> String {
    let secs = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds().unwrap_or(0.0) - cpu_before;
    format!(
        "messages={messages} secs={secs:.3} msgs_per_s={:.0} cpu_us_per_msg={:.2}",
        messages as f64 / secs,
        cpu * 1e6 / messages as f64
    )
}

/// `--role publish`: publishes with a Client.
async fn publish_only(endpoint: em::Endpoint, args: Args) -> em::Result<bool> {
    let client = em_redis::Client::connect(endpoint)?;
    client.ping().await?;
    let start = Instant::now();
    let channel = Bytes::from(args.channel.clone());
    let publisher = client.clone();
    publish_batches(&args, move |m| publisher.publish(&channel, m)).await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "PUBLISH messages={} secs={secs:.3} msgs_per_s={:.0}",
        args.messages,
        args.messages as f64 / secs
    );
    Ok(true)
}

/// `--role receive`: counts the messages through a Bridge.
async fn receive_only(endpoint: em::Endpoint, args: Args) -> em::Result<bool> {
    let topic = em::Channel::new();
    let bridge = em_redis::Bridge::start(endpoint, args.channel.as_str(), &topic)?;
    bridge.ready().await?;
    let count = Count::subscribe(&topic, args.messages, !args.unnumbered);
    println!("READY");
    if !count.all_came().await {
        return Ok(false);
    }
    let (start, cpu_before) = count.first.get().expect("a first message");
    println!("RECEIVE {}", figures(args.messages, start, cpu_before));
    Ok(count.complete(args.messages))
}
