//! A line-protocol pub/sub server on `em::Channel`: `pubsub --listen ADDR`
//! (default 127.0.0.1:8084). Prints `listening on ADDR` once ready; stops
//! gracefully on SIGINT/SIGTERM. Try it with `nc 127.0.0.1 8084`:
//!
//! ```text
//! SUB news              -> SUBSCRIBED news
//! PUB news hello world  -> PUBLISHED news 1   (every subscriber: MSG news hello world)
//! UNSUB news            -> UNSUBSCRIBED news
//! STATS news           -> STATS news subscribers=3 behind=1 dropped=42
//! ```
//!
//! One channel per topic; each subscriber is a connection subscription
//! (`Channel::subscribe_conn`) that writes to its connection. Writes never
//! block the reactor, so a slow subscriber never holds up the others, and
//! its output does not pile up either: while it is above its high
//! watermark, messages are dropped for it and counted (`STATS` shows how
//! many subscribers are behind and how many messages were dropped), and it
//! gets messages again once it has caught up.
//!
//! With `--redis ADDR` (`host:port`, or `unix:PATH`), servers on several
//! machines share their topics through Redis: a `PUB` goes to the Redis
//! channel `pubsub:TOPIC` (answered `PUBLISHED topic N` with the number of
//! servers that got it, or `ERR` while Redis is down: the message is lost),
//! and each server pattern-subscribes to `pubsub:*` and hands what comes to
//! its local subscribers, so each subscriber sees each message once,
//! whichever server it was published on. Reconnects to Redis by itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use std::time::Duration;

use bytes::BytesMut;
use clap::Parser;
use em::prelude::*;
use tokio_util::codec::{Decoder, Encoder, LinesCodecError};

/// A line-protocol publish/subscribe server: SUB, UNSUB, PUB and STATS.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (IPv4 or IPv6; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8084")]
    listen: String,
    /// Longest accepted line, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_line: usize,
    /// Print the reactor's stats to stderr every SECS seconds (they are
    /// also printed on SIGUSR1).
    #[arg(long, value_name = "SECS")]
    stats_every: Option<u64>,
    /// Share the topics with other servers through the Redis at ADDR
    /// (`host:port`, or `unix:PATH` for a Unix-domain socket).
    #[arg(long, value_name = "ADDR")]
    redis: Option<String>,
}

/// Where Redis is: `host:port`, `redis://host:port`, or `unix:PATH`.
fn redis_endpoint(addr: &str) -> em::Endpoint {
    match addr.strip_prefix("unix:") {
        Some(path) => em::Endpoint::unix(path),
        None => em::Endpoint::from(addr.trim_start_matches("redis://").trim_end_matches('/')),
    }
}

/// What a client sent: a line, or one longer than `--max-line` (which is
/// answered with an `ERR` before the connection is closed).
enum Input {
    Line(String),
    TooLong,
}

/// `LinesCodec`, with a line that is too long handed to the handler as
/// [`Input::TooLong`] rather than failing the connection at once, so that
/// the client is told why it is closed.
struct Lines(LinesCodec);

impl Decoder for Lines {
    type Item = Input;
    type Error = LinesCodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Input>, LinesCodecError> {
        match self.0.decode(buf) {
            Ok(line) => Ok(line.map(Input::Line)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Input::TooLong)),
            Err(e) => Err(e),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Input>, LinesCodecError> {
        match self.0.decode_eof(buf) {
            Ok(line) => Ok(line.map(Input::Line)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Input::TooLong)),
            Err(e) => Err(e),
        }
    }
}

impl<T: AsRef<str>> Encoder<T> for Lines {
    type Error = LinesCodecError;

    fn encode(&mut self, line: T, buf: &mut BytesMut) -> Result<(), LinesCodecError> {
        self.0.encode(line, buf)
    }
}

/// The topics, shared by every connection (reactor thread only).
type Topics = Rc<RefCell<HashMap<String, em::Channel<Rc<str>>>>>;

/// One client: its subscriptions by topic.
struct Client {
    topics: Topics,
    /// With `--redis`: where a `PUB` goes.
    redis: Option<em_redis::Client>,
    subscriptions: HashMap<String, em::SubscriptionId>,
    max_line: usize,
    /// Told its line was too long; closing.
    closing: bool,
}

impl Client {
    fn channel(&self, topic: &str) -> em::Channel<Rc<str>> {
        self.topics
            .borrow_mut()
            .entry(topic.to_owned())
            .or_default()
            .clone()
    }

    fn unsubscribe(&mut self, topic: &str) -> bool {
        let Some(id) = self.subscriptions.remove(topic) else {
            return false;
        };
        let mut topics = self.topics.borrow_mut();
        if let Some(ch) = topics.get(topic) {
            ch.unsubscribe(id);
            if ch.num_subscribers() == 0 {
                topics.remove(topic);
            }
        }
        true
    }
}

impl Connection for Client {
    type Codec = Lines;

    fn codec(&self) -> Lines {
        Lines(LinesCodec::new_with_max_length(self.max_line))
    }

    fn receive_data(&mut self, conn: &Conn<Lines>, input: Input) {
        if self.closing {
            // Lines that came after the one too long: not answered.
            return;
        }
        let line = match input {
            Input::Line(line) => line,
            Input::TooLong => {
                conn.send_data(format!("ERR line too long (over {} bytes)", self.max_line));
                conn.close_connection_after_writing();
                self.closing = true;
                return;
            }
        };
        let line = line.trim_end_matches('\r');
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match verb {
            "SUB" if !rest.is_empty() && !rest.contains(' ') => {
                if !self.subscriptions.contains_key(rest) {
                    let id = self.channel(rest).subscribe_conn(conn, |me, msg: Rc<str>| {
                        me.send_data(&*msg);
                    });
                    self.subscriptions.insert(rest.to_owned(), id);
                }
                conn.send_data(format!("SUBSCRIBED {rest}"));
            }
            "UNSUB" if !rest.is_empty() => {
                if self.unsubscribe(rest) {
                    conn.send_data(format!("UNSUBSCRIBED {rest}"));
                } else {
                    conn.send_data(format!("ERR not subscribed to {rest}"));
                }
            }
            "PUB" => match rest.split_once(' ') {
                Some((topic, message)) if !topic.is_empty() && self.redis.is_some() => {
                    let redis = self.redis.as_ref().expect("checked");
                    let (conn, topic) = (conn.clone(), topic.to_owned());
                    redis
                        .publish(format!("pubsub:{topic}"), message)
                        .callback(move |servers| match servers {
                            Ok(n) => {
                                conn.send_data(format!("PUBLISHED {topic} {n}"));
                            }
                            Err(e) => {
                                tracing::warn!(conn = %conn.id(), error = %e, "PUB lost");
                                conn.send_data(format!("ERR {topic}: not published ({e})"));
                            }
                        });
                }
                Some((topic, message)) if !topic.is_empty() => {
                    let ch = self.topics.borrow().get(topic).cloned();
                    let n = ch.as_ref().map_or(0, |ch| ch.num_subscribers());
                    if let Some(ch) = ch {
                        ch.push(Rc::from(format!("MSG {topic} {message}")));
                    }
                    conn.send_data(format!("PUBLISHED {topic} {n}"));
                }
                _ => {
                    conn.send_data("ERR usage: PUB topic message");
                }
            },
            "STATS" if !rest.is_empty() => {
                let ch = self.topics.borrow().get(rest).cloned();
                let (n, behind, dropped) = ch.map_or((0, 0, 0), |ch| {
                    (ch.num_subscribers(), ch.num_behind(), ch.dropped_count())
                });
                conn.send_data(format!(
                    "STATS {rest} subscribers={n} behind={behind} dropped={dropped}"
                ));
            }
            _ => {
                conn.send_data(
                    "ERR commands: SUB topic | UNSUB topic | PUB topic message | STATS topic",
                );
            }
        }
    }

    fn unbind(&mut self, _conn: &Conn<Lines>, _reason: UnbindReason) {
        let topics: Vec<String> = self.subscriptions.keys().cloned().collect();
        for topic in topics {
            self.unsubscribe(&topic);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    em::run(move || {
        let topics = Topics::default();
        let max_line = args.max_line;
        let (redis, subscriber) = match &args.redis {
            Some(addr) => {
                let (client, subscriber) = share_through_redis(redis_endpoint(addr), &topics)?;
                (Some(client), Some(subscriber))
            }
            None => (None, None),
        };
        let server = em::start_server(args.listen.as_str(), move || {
            // The subscriber lives as long as the server.
            let _ = &subscriber;
            Client {
                topics: topics.clone(),
                redis: redis.clone(),
                subscriptions: HashMap::new(),
                max_line,
                closing: false,
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

/// `--redis`: every message published on `pubsub:*`, by any server, goes
/// to the local subscribers of its topic; returns the client `PUB` sends
/// with, and the subscriber (which unsubscribes when dropped).
fn share_through_redis(
    addr: em::Endpoint,
    topics: &Topics,
) -> em::Result<(em_redis::Client, em_redis::Subscriber)> {
    let client = em_redis::Client::connect(addr.clone())?;
    let subscriber = em_redis::Subscriber::connect(addr)?;
    let topics = topics.clone();
    let messages = subscriber.psubscribe("pubsub:*", move |channel, message| {
        let channel = String::from_utf8_lossy(&channel);
        let Some(topic) = channel.strip_prefix("pubsub:") else {
            return;
        };
        let ch = topics.borrow().get(topic).cloned();
        if let Some(ch) = ch {
            let message = String::from_utf8_lossy(&message);
            ch.push(Rc::from(format!("MSG {topic} {message}")));
        }
    });
    messages.callback(|subscribed| {
        if let Err(e) = subscribed {
            tracing::warn!(error = %e, "Redis: not subscribed yet (subscribing again once connected)");
        }
    });
    subscriber.on_subscribed(|| tracing::info!("sharing topics through Redis"));
    subscriber.on_disconnected(|why| tracing::warn!(reason = why, "Redis went away; reconnecting"));
    Ok((client, subscriber))
}
