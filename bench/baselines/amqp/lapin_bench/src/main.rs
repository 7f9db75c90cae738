//! lapin's side of bench/amqp.sh: the same command line and output as
//! em-examples' `amqp_bench`.
//!
//!   lapin_bench publish --amqp URL --queue NAME --messages N --size BYTES --window W
//!   lapin_bench consume --amqp URL --queue NAME --messages N --prefetch P
//!
//! Prints one line: `publish messages=N seconds=S rate=R` (first publish to
//! last confirm) or `consume messages=N seconds=S rate=R` (basic.consume to
//! the N-th ack written).
//!
//! A current-thread tokio runtime, for fairness with em's one reactor
//! thread (lapin still runs its own I/O loop thread beside it).

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::Instant;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};

type Error = Box<dyn std::error::Error>;

struct Args {
    mode: String,
    amqp: String,
    queue: String,
    messages: u64,
    size: usize,
    window: usize,
    prefetch: u16,
}

fn parse() -> Result<Args, Error> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().ok_or("missing mode: publish or consume")?;
    if mode != "publish" && mode != "consume" {
        return Err(format!("unknown mode {mode:?}: publish or consume").into());
    }
    let mut a = Args {
        mode,
        amqp: String::new(),
        queue: String::new(),
        messages: 0,
        size: 64,
        window: 1000,
        prefetch: 1000,
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--amqp" => a.amqp = value,
            "--queue" => a.queue = value,
            "--messages" => a.messages = value.parse()?,
            "--size" => a.size = value.parse()?,
            "--window" => a.window = value.parse()?,
            "--prefetch" => a.prefetch = value.parse()?,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    if a.amqp.is_empty() || a.queue.is_empty() || a.messages == 0 || a.window == 0 {
        return Err("needs --amqp, --queue, --messages > 0 (and --window > 0)".into());
    }
    Ok(a)
}

async fn connect(a: &Args) -> Result<(Connection, Channel), Error> {
    let conn = Connection::connect_with_runtime(
        &a.amqp,
        ConnectionProperties::default(),
        async_rs::Runtime::tokio_current(),
    )
    .await?;
    let channel = conn.create_channel().await?;
    // Non-durable, not exclusive, not auto-delete.
    channel
        .queue_declare(
            a.queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((conn, channel))
}

async fn publish(a: &Args) -> Result<f64, Error> {
    let (conn, channel) = connect(a).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let payload = vec![b'x'; a.size];
    let mut pending: VecDeque<PublisherConfirm> = VecDeque::with_capacity(a.window);
    let start = Instant::now();
    for _ in 0..a.messages {
        if pending.len() == a.window {
            let confirm = pending.pop_front().unwrap();
            if !confirm.await?.is_ack() {
                return Err("a publish was nacked".into());
            }
        }
        // persistent=false: delivery_mode left unset (transient).
        let confirm = channel
            .basic_publish(
                "".into(),
                a.queue.as_str().into(),
                BasicPublishOptions::default(),
                &payload,
                BasicProperties::default(),
            )
            .await?;
        pending.push_back(confirm);
    }
    for confirm in pending {
        if !confirm.await?.is_ack() {
            return Err("a publish was nacked".into());
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    conn.close(200, "OK".into()).await?;
    Ok(seconds)
}

async fn consume(a: &Args) -> Result<f64, Error> {
    let (conn, channel) = connect(a).await?;
    channel
        .basic_qos(a.prefetch, BasicQosOptions::default())
        .await?;
    let start = Instant::now();
    let mut consumer = channel
        .basic_consume(
            a.queue.as_str().into(),
            "lapin_bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // Each ack is its own task, so the next delivery is taken while the ack
    // goes out (awaiting each in turn would wait on lapin's I/O thread).
    let mut acks = Vec::with_capacity(a.messages as usize);
    while (acks.len() as u64) < a.messages {
        let delivery = consumer
            .next()
            .await
            .ok_or("the consumer was cancelled")??;
        acks.push(tokio::spawn(async move {
            delivery.ack(BasicAckOptions::default()).await
        }));
    }
    for ack in acks {
        ack.await??;
    }
    let seconds = start.elapsed().as_secs_f64();
    conn.close(200, "OK".into()).await?;
    Ok(seconds)
}

fn main() -> ExitCode {
    let result = parse().and_then(|a| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let seconds = runtime.block_on(async {
            if a.mode == "publish" {
                publish(&a).await
            } else {
                consume(&a).await
            }
        })?;
        let rate = (a.messages as f64 / seconds).round() as u64;
        println!(
            "{} messages={} seconds={seconds:.3} rate={rate}",
            a.mode, a.messages
        );
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lapin_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
