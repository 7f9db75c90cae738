//! A request/response service over `em_protocols::ObjectCodec`
//! (EventMachine's `ObjectProtocol`): each request is an object
//! `{"id", "op", "numbers"}` in a frame of a 4-byte big-endian length and
//! a JSON payload (MessagePack with `--format msgpack`); each answer is
//! `{"id", "value"}` or `{"id", "error"}`.
//!
//! * `objects --listen ADDR`: the server. Prints `listening on ADDR` once
//!   ready (port 0 works); stops gracefully on SIGINT/SIGTERM. A client
//!   whose frame does not parse, or is longer than 64 KiB, is cut off (a
//!   line on stderr says why); the others are not touched.
//! * `objects --connect ADDR [REQUEST…]`: the client. Each REQUEST is
//!   `OP:N,N,…` with OP one of `sum`, `mean`, `min`, `max` (`sum:1,2,3`,
//!   `max:` for no numbers). Sends them all, prints each answer as
//!   `#ID OP(N, …) = VALUE` or `#ID OP(…) error: WHY`, and exits 0 once
//!   all have come back; 1 on an early close or a timeout.
//! * `objects [REQUEST…]`: both in one process, on a port of its own.
//!
//! The default requests are `sum:1,2,3 mean:2,4,9 max:`.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use em::prelude::*;
use em_protocols::{Json, MessagePack, ObjectCodec, ObjectFormat};
use serde::{Deserialize, Serialize};

/// A request/response service over the object codec.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Run the server on this address (IPv4 or IPv6; port 0 picks one).
    #[arg(long, value_name = "ADDR", conflicts_with = "connect")]
    listen: Option<String>,
    /// Run the client against the server at this address (host:port).
    #[arg(long, value_name = "ADDR")]
    connect: Option<String>,
    /// The payload format, the same on both sides.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// The client gives up after this many seconds (fractions allowed,
    /// such as 0.5; more than 0).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = em_examples::parse_seconds)]
    timeout: Duration,
    /// Requests, `OP:N,N,…` (OP: sum, mean, min, max).
    #[arg(value_parser = parse_request, default_values = ["sum:1,2,3", "mean:2,4,9", "max:"])]
    requests: Vec<Ask>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// JSON (serde_json).
    Json,
    /// MessagePack (rmp-serde).
    Msgpack,
}

/// What to compute.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Sum,
    Mean,
    Min,
    Max,
}

/// A request, as typed on the command line.
#[derive(Clone, Debug)]
struct Ask {
    op: Op,
    numbers: Vec<f64>,
}

/// A request on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    id: u32,
    op: Op,
    numbers: Vec<f64>,
}

/// An answer on the wire: a value, or why there is none.
#[derive(Debug, Serialize, Deserialize)]
struct Response {
    id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The server's largest request, in bytes: a frame announcing more cuts
/// the client off before anything is held.
const MAX_REQUEST: usize = 64 * 1024;

fn parse_request(s: &str) -> Result<Ask, String> {
    let (op, numbers) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not OP:N,N,…"))?;
    let op = match op {
        "sum" => Op::Sum,
        "mean" => Op::Mean,
        "min" => Op::Min,
        "max" => Op::Max,
        _ => return Err(format!("unknown op {op:?} (sum, mean, min, max)")),
    };
    let numbers = numbers
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|n| n.parse().map_err(|_| format!("{n:?} is not a number")))
        .collect::<Result<_, _>>()?;
    Ok(Ask { op, numbers })
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Sum => "sum",
            Op::Mean => "mean",
            Op::Min => "min",
            Op::Max => "max",
        })
    }
}

/// The server's work.
fn answer(request: &Request) -> Response {
    let numbers = &request.numbers;
    // From +0.0: `Iterator::sum` of no floats is -0.0.
    let sum = numbers.iter().fold(0.0, |sum, n| sum + n);
    let value = match request.op {
        _ if numbers.is_empty() && request.op != Op::Sum => None,
        Op::Sum => Some(sum),
        Op::Mean => Some(sum / numbers.len() as f64),
        Op::Min => numbers.iter().copied().reduce(f64::min),
        Op::Max => numbers.iter().copied().reduce(f64::max),
    };
    Response {
        id: request.id,
        error: value.is_none().then(|| "no numbers".to_owned()),
        value,
    }
}

/// One server connection: an answer per request.
struct Service<F>(PhantomData<F>);

impl<F: ObjectFormat + 'static> Connection for Service<F> {
    type Codec = ObjectCodec<Request, F>;

    fn codec(&self) -> Self::Codec {
        ObjectCodec::new_with_max_frame_length(MAX_REQUEST)
    }

    fn receive_data(&mut self, conn: &Conn<Self::Codec>, request: Request) {
        conn.send_data(answer(&request));
    }

    fn unbind(&mut self, conn: &Conn<Self::Codec>, reason: UnbindReason) {
        if let UnbindReason::Codec(_) = reason {
            eprintln!("objects: client {} cut off: {reason}", conn.id());
        } else {
            tracing::debug!(conn = %conn.id(), %reason, "client gone");
        }
    }
}

/// The client: sends every request at once, prints each answer, closes
/// after the last; stops the reactor when it ends.
struct Client<F> {
    asks: Vec<Ask>,
    waiting: VecDeque<u32>,
    failed: Rc<Cell<bool>>,
    _format: PhantomData<F>,
}

impl<F: ObjectFormat + 'static> Connection for Client<F> {
    type Codec = ObjectCodec<Response, F>;

    fn codec(&self) -> Self::Codec {
        ObjectCodec::new()
    }

    fn connection_completed(&mut self, conn: &Conn<Self::Codec>) {
        for (id, ask) in (1..).zip(&self.asks) {
            conn.send_data(Request {
                id,
                op: ask.op,
                numbers: ask.numbers.clone(),
            });
            self.waiting.push_back(id);
        }
        if self.waiting.is_empty() {
            conn.close_connection();
        }
    }

    fn receive_data(&mut self, conn: &Conn<Self::Codec>, response: Response) {
        self.waiting.retain(|id| *id != response.id);
        let Some(ask) = usize::try_from(response.id)
            .ok()
            .and_then(|id| self.asks.get(id.wrapping_sub(1)))
        else {
            eprintln!("objects: an answer to no request: {response:?}");
            return;
        };
        let numbers: Vec<String> = ask.numbers.iter().map(f64::to_string).collect();
        let asked = format!("#{} {}({})", response.id, ask.op, numbers.join(", "));
        match (response.value, response.error) {
            (Some(value), _) => em_examples::out!("{asked} = {value}"),
            (None, error) => em_examples::out!("{asked} error: {}", error.unwrap_or_default()),
        }
        if self.waiting.is_empty() {
            conn.close_connection();
        }
    }

    fn unbind(&mut self, _: &Conn<Self::Codec>, reason: UnbindReason) {
        // After a timeout (already reported) the stop ends the connection
        // too: one message is enough.
        if !self.waiting.is_empty() && !self.failed.get() {
            eprintln!("objects: connection ended early: {reason}");
            self.failed.set(true);
        }
        em::stop();
    }
}

/// Runs what `args` asks for, with the format `F`; `Ok(false)` when the
/// client failed.
fn run<F: ObjectFormat + 'static>(args: Args) -> Result<bool, em::BoxError> {
    let failed = Rc::new(Cell::new(false));
    let f = failed.clone();
    // A client (alone, or with its server) stops on a panic in a callback
    // rather than wait for answers that will not come; a server serves on.
    let client = args.listen.is_none();
    em::Reactor::builder().stop_on_panic(client).run(move || {
        let target = match (&args.listen, &args.connect) {
            (Some(listen), _) => {
                let server = em::start_server(listen.as_str(), || Service::<F>(PhantomData))?;
                // Handlers first: a supervisor may send SIGTERM the moment
                // it reads the line below.
                em_examples::stop_on_signal()?;
                em_examples::out!("listening on {}", server.local_addr());
                return Ok(());
            }
            (None, Some(connect)) => em::Endpoint::from(connect.as_str()),
            (None, None) => {
                let server = em::start_server("127.0.0.1:0", || Service::<F>(PhantomData))?;
                em::Endpoint::from(server.local_addr())
            }
        };
        em::connect(
            target,
            Client::<F> {
                asks: args.requests,
                waiting: VecDeque::new(),
                failed: f.clone(),
                _format: PhantomData,
            },
        )?;
        let timeout = args.timeout;
        em::spawn(async move {
            tokio::time::sleep(timeout).await;
            eprintln!("objects: timed out after {timeout:?}");
            f.set(true);
            em::stop();
        })?;
        Ok(())
    })?;
    Ok(!failed.get())
}

fn main() -> Result<(), em::BoxError> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    let ok = match args.format {
        Format::Json => run::<Json>(args)?,
        Format::Msgpack => run::<MessagePack>(args)?,
    };
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
