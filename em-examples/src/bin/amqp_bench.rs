//! `amqp_bench`: RabbitMQ's publish-with-confirm and consume-with-ack
//! rates through em-amqp, the figures `bench/amqp.sh` compares with lapin
//! on a plain tokio runtime and with Ruby's `amqp` gem on EventMachine
//! (same command line, same output, in `bench/baselines/amqp/`).
//!
//! `amqp_bench publish --queue Q --messages N --size B --window W` declares
//! Q, turns on publisher confirms and publishes N messages of B bytes to it,
//! at most W unconfirmed at once; prints
//! `publish messages=N seconds=S rate=R` (first publish to last confirm).
//! `amqp_bench consume --queue Q --messages N --prefetch P` consumes N
//! messages from Q with prefetch P, acknowledging each on its own; prints
//! `consume messages=N seconds=S rate=R` (consume call to the N-th ack).

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use em_amqp::{BasicProperties, Client, ConsumeOptions, QueueOptions};

/// Measures RabbitMQ publish-with-confirm and consume-with-ack rates.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Publish N messages with confirms, at most W unconfirmed.
    Publish {
        /// The broker's URL.
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp: String,
        /// Queue to publish to (declared, not durable).
        #[arg(long)]
        queue: String,
        /// Messages (1 or more).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        messages: u64,
        /// Bytes per message.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Unconfirmed messages at most (1 or more).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        window: u64,
    },
    /// Consume N messages with prefetch P, acking each.
    Consume {
        /// The broker's URL.
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp: String,
        /// Queue to consume from.
        #[arg(long)]
        queue: String,
        /// Messages to take (1 or more).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        messages: u64,
        /// Prefetch (unacknowledged at most, 1 to 65535).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..))]
        prefetch: u16,
    },
}

fn main() -> ExitCode {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let result = em::synchrony(async move {
        match args.mode {
            Mode::Publish {
                amqp,
                queue,
                messages,
                size,
                window,
            } => publish(&amqp, &queue, messages, size, window).await,
            Mode::Consume {
                amqp,
                queue,
                messages,
                prefetch,
            } => consume(&amqp, &queue, messages, prefetch).await,
        }
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("amqp_bench: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("amqp_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report(mode: &str, messages: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{mode} messages={messages} seconds={secs:.3} rate={:.0}",
        messages as f64 / secs
    );
}

async fn publish(
    url: &str,
    queue: &str,
    messages: u64,
    size: usize,
    window: u64,
) -> em::Result<()> {
    let client = Client::connect(url)?;
    let ch = client.channel().await?;
    ch.queue_declare(queue, QueueOptions::default()).await?;
    ch.confirm_select().await?;
    let body = vec![b'x'; size];
    let done: em::Deferred<(), em_amqp::AmqpError> = em::Deferred::new();
    let sent = Rc::new(Cell::new(0u64));
    let confirmed = Rc::new(Cell::new(0u64));
    let started = Instant::now();
    // Publishes while fewer than `window` are unconfirmed; each confirm
    // publishes the next.
    fn pump(
        ch: &em_amqp::Channel,
        queue: &Rc<str>,
        body: &Rc<[u8]>,
        state: (&Rc<Cell<u64>>, &Rc<Cell<u64>>, u64, u64),
        done: &em::Deferred<(), em_amqp::AmqpError>,
    ) {
        let (sent, confirmed, messages, window) = state;
        while sent.get() < messages && sent.get() - confirmed.get() < window {
            sent.set(sent.get() + 1);
            let (ch2, q, b, s, c, d) = (
                ch.clone(),
                queue.clone(),
                body.clone(),
                sent.clone(),
                confirmed.clone(),
                done.clone(),
            );
            ch.basic_publish("", queue, &body[..], BasicProperties::default())
                .completion(move |r| match r {
                    Ok(()) => {
                        c.set(c.get() + 1);
                        if c.get() == messages {
                            d.succeed(());
                        } else {
                            pump(&ch2, &q, &b, (&s, &c, messages, window), &d);
                        }
                    }
                    Err(e) => {
                        d.fail(e.clone());
                    }
                });
        }
    }
    let queue: Rc<str> = Rc::from(queue);
    let body: Rc<[u8]> = Rc::from(body);
    pump(
        &ch,
        &queue,
        &body,
        (&sent, &confirmed, messages, window),
        &done,
    );
    done.await?;
    report("publish", messages, started);
    client.close().await?;
    Ok(())
}

async fn consume(url: &str, queue: &str, messages: u64, prefetch: u16) -> em::Result<()> {
    let client = Client::connect(url)?;
    let ch = client.channel().await?;
    ch.basic_qos(prefetch).await?;
    let done: em::Deferred<(), em_amqp::AmqpError> = em::Deferred::new();
    let count = Rc::new(Cell::new(0u64));
    let started = Instant::now();
    let (c, d) = (count.clone(), done.clone());
    ch.basic_consume(queue, ConsumeOptions::default(), move |delivery| {
        if let Err(e) = delivery.ack() {
            d.fail(e);
            return;
        }
        c.set(c.get() + 1);
        if c.get() == messages {
            d.succeed(());
        }
    })
    .await?;
    done.await?;
    report("consume", messages, started);
    client.close().await?;
    Ok(())
}
