//! `work_queue`: a work queue on RabbitMQ, the `amqp` gem's worker
//! pattern on em.
//!
//! `work_queue produce --amqp URL --queue NAME --jobs N` publishes N jobs
//! (`job-1` … `job-N`, persistent, to a durable queue) with publisher
//! confirms, and exits once the broker has confirmed them all.
//!
//! `work_queue consume --amqp URL --queue NAME --prefetch N --work-ms MS`
//! takes jobs through an `em_amqp::QueueBridge` with prefetch N, `defer`s
//! MS of blocking work per job to em's thread pool (N at a time), prints
//! `done JOB` on stdout for each and acknowledges it after. Run several
//! consumers in several processes: RabbitMQ shares the jobs out; kill one
//! mid-job and its unfinished jobs go to the others (flagged
//! redelivered). `--count C` exits after C jobs.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use em_amqp::{BasicProperties, Client, Job, QueueBridge, QueueOptions};

/// A work queue on RabbitMQ: produce jobs, or consume them with prefetch.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Publish N jobs (with confirms) and exit.
    Produce {
        /// The broker's URL.
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp: String,
        /// The queue (declared durable).
        #[arg(long, default_value = "jobs")]
        queue: String,
        /// How many jobs (1 or more).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        jobs: u64,
    },
    /// Work on jobs: prefetch N, MS of blocking work each, `done JOB` after.
    Consume {
        /// The broker's URL.
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp: String,
        /// The queue (declared durable).
        #[arg(long, default_value = "jobs")]
        queue: String,
        /// Jobs in flight at most (1 to 65535).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        prefetch: u16,
        /// Milliseconds of blocking work per job (on em's thread pool).
        #[arg(long, default_value_t = 100)]
        work_ms: u64,
        /// Exit after this many jobs (default: run until killed).
        #[arg(long)]
        count: Option<u64>,
    },
}

fn main() -> ExitCode {
    em_examples::log_to_stderr();
    let result = match Args::parse().mode {
        Mode::Produce { amqp, queue, jobs } => {
            em::synchrony(async move { produce(&amqp, &queue, jobs).await }).and_then(|r| r)
        }
        Mode::Consume {
            amqp,
            queue,
            prefetch,
            work_ms,
            count,
        } => em::run(move || consume(&amqp, &queue, prefetch, work_ms, count)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("work_queue: {e}");
            ExitCode::FAILURE
        }
    }
}

fn durable() -> QueueOptions {
    QueueOptions {
        durable: true,
        ..QueueOptions::default()
    }
}

async fn produce(url: &str, queue: &str, jobs: u64) -> em::Result<()> {
    let client = Client::connect(url)?;
    let ch = client.channel().await?;
    ch.queue_declare(queue, durable()).await?;
    ch.confirm_select().await?;
    // Pipelined: every publish goes out now; then the confirms are awaited.
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let confirms: Vec<_> = (1..=jobs)
        .map(|n| ch.basic_publish("", queue, format!("job-{n}"), persistent.clone()))
        .collect();
    for c in confirms {
        c.await?;
    }
    println!("published {jobs} jobs to {queue}");
    client.close().await?;
    Ok(())
}

fn consume(
    url: &str,
    queue: &str,
    prefetch: u16,
    work_ms: u64,
    count: Option<u64>,
) -> em::Result<()> {
    let client = Client::connect(url)?;
    let bridge = Rc::new(QueueBridge::start(&client, queue, prefetch));
    tracing::info!(queue, prefetch, work_ms, "consuming");
    let done = Rc::new(Cell::new(0u64));
    take_next(client, bridge, Duration::from_millis(work_ms), done, count);
    Ok(())
}

/// Takes the next job when there is one; works on it on the thread pool;
/// takes the next at once (the prefetch bounds how many run).
fn take_next(
    client: Client,
    bridge: Rc<QueueBridge>,
    work: Duration,
    done: Rc<Cell<u64>>,
    count: Option<u64>,
) {
    let jobs = bridge.jobs();
    jobs.pop(move |job: Job| {
        let name = String::from_utf8_lossy(job.body()).into_owned();
        tracing::info!(job = %name, redelivered = job.redelivered(), "working on it");
        let (c, b, d) = (client.clone(), bridge.clone(), done.clone());
        let deferred = em::defer(
            move || std::thread::sleep(work),
            move |()| {
                println!("done {name}");
                if let Err(e) = job.done() {
                    tracing::warn!(job = %name, error = %e, "cannot acknowledge; the broker will redeliver it");
                }
                d.set(d.get() + 1);
                if count.is_some_and(|n| d.get() >= n) {
                    // Stop after the broker has every acknowledgement: the
                    // channel's and the connection's close go out behind
                    // them, and the broker answers the close after
                    // processing them (em::stop alone would drop them).
                    b.stop();
                    c.close().completion(|_| em::stop());
                }
            },
        );
        if let Err(e) = deferred {
            tracing::warn!(error = %e, "cannot defer the work");
        }
        if count.is_none_or(|c| done.get() < c) {
            take_next(client, bridge, work, done, count);
        }
    });
}
