//! `Client`: commands with typed replies on one connection, pipelined.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use em_core::{Conn, Endpoint};

use crate::codec::{Cmd, Frame, RespCodec, ToArg};
use crate::error::{RedisError, RedisResult};
use crate::link::{Link, Owner, Phase, Session};
use crate::options::Options;
use crate::reply::{Answer, Reply};
use crate::value::{FromValue, Value};

/// A Redis client on one em connection (em-hiredis's `EM::Hiredis::Client`):
/// each command is written at once and its [`Reply`] resolves when the
/// answer comes; commands given before the replies come are pipelined (one
/// write, answers in order). Reconnects by itself after the connection
/// drops, with a back-off ([`Options`]); a command given while it is down
/// fails at once with [`is_disconnected`](RedisError::is_disconnected), and
/// so do the commands whose replies were still due when it dropped (they
/// may or may not have run).
///
/// Cheap to clone (the clones share the connection), `!Send`: it lives on
/// the reactor thread where it was made, like every reactor-owned handle.
/// When the last clone is dropped, the connection closes once the replies
/// due have come (their callbacks still run). A callback given to
/// [`on_connected`](Client::on_connected) or [`on_disconnected`](Client::on_disconnected)
/// that holds a clone of its own client keeps it alive (and connected)
/// until [`close`](Client::close).
///
/// ```no_run
/// em::synchrony(async {
///     let redis = em_redis::Client::connect("127.0.0.1:6379")?;
///     redis.set("greeting", "hello").await?;
///     let v: Option<String> = redis.get("greeting").await?;
///     assert_eq!(v.as_deref(), Some("hello"));
///     // Pipelined: three commands, one write, answers in order.
///     let (a, b, c) = (redis.incr("n"), redis.incr("n"), redis.incr("n"));
///     assert_eq!(c.await? - a.await?, 2);
///     let _ = b;
///     Ok::<(), em_redis::RedisError>(())
/// })??;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Client {
    link: Rc<Owner<Commands>>,
}

/// The replies due, in the order their commands went out.
#[derive(Default)]
pub(crate) struct Commands {
    due: RefCell<VecDeque<Answer>>,
}

impl Session for Commands {
    fn up(&self, _conn: &Conn<RespCodec>) {}

    fn frame(&self, conn: &Conn<RespCodec>, frame: Frame) {
        let answer = self.due.borrow_mut().pop_front();
        match answer {
            Some(answer) => answer.send(Value::from_frame(frame)),
            None => tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), ?frame,
                "redis: a reply nobody asked for; ignored"),
        }
    }

    fn idle(&self) -> bool {
        self.due.borrow().is_empty()
    }

    fn down(&self, why: &str) {
        let due: Vec<Answer> = self.due.borrow_mut().drain(..).collect();
        for answer in due {
            answer.send(Err(RedisError::disconnected(format!(
                "the connection ended before the reply: {why}"
            ))));
        }
    }
}

impl Client {
    /// Connects to Redis at `addr` (`"host:port"`, a `SocketAddr`, a Unix
    /// socket's [`Endpoint`]) with the default [`Options`]. Returns at
    /// once; commands given before the connect completes are sent once it
    /// does. Reactor thread; errors with em's error where no reactor runs.
    pub fn connect(addr: impl Into<Endpoint>) -> RedisResult<Client> {
        Self::connect_with(addr, Options::default())
    }

    /// [`connect`](Self::connect) with options.
    pub fn connect_with(addr: impl Into<Endpoint>, options: Options) -> RedisResult<Client> {
        let link = Link::start(addr.into(), &options, Commands::default())?;
        Ok(Client {
            link: Rc::new(Owner(link)),
        })
    }

    /// Sends any command; the reply as a [`Value`].
    /// `client.cmd(["LPUSH", "jobs", "a"])`, or a [`Cmd`] for arguments of
    /// several types.
    pub fn cmd(&self, cmd: impl Into<Cmd>) -> Reply<Value> {
        self.cmd_as(cmd)
    }

    /// Sends any command; the reply converted to `T` (`i64`, `String`,
    /// `Option<Bytes>`, `Vec<String>`…).
    pub fn cmd_as<T: FromValue + 'static>(&self, cmd: impl Into<Cmd>) -> Reply<T> {
        let cmd = cmd.into();
        if cmd.is_empty() {
            return Reply::ready(Err(RedisError::invalid_command("a command needs a name")));
        }
        if cmd.starts_a_push_mode() {
            // Its pushed messages would be taken for the next commands' replies.
            return Reply::ready(Err(RedisError::invalid_command(
                "SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and MONITOR need a connection of their own: use Subscriber",
            )));
        }
        self.send(cmd)
    }

    /// Sends a command known to be valid (the named ones below): no check
    /// of its name.
    fn send<T: FromValue + 'static>(&self, cmd: Cmd) -> Reply<T> {
        let Some(conn) = self.link.writable() else {
            let why = match self.link.phase() {
                Phase::Closed => "the client is closed",
                _ => "the connection is down; reconnecting",
            };
            return Reply::ready(Err(RedisError::disconnected(why)));
        };
        match conn.try_send_data(cmd) {
            Ok(_) => {
                let (reply, answer) = Reply::pair();
                self.link.session.due.borrow_mut().push_back(answer);
                reply
            }
            Err(e) if e.is_closed() => Reply::ready(Err(RedisError::disconnected(e.to_string()))),
            Err(e) => Reply::ready(Err(RedisError::from(e))),
        }
    }

    /// `GET key`: the value, or `None` for a missing key.
    pub fn get<T: FromValue + 'static>(&self, key: impl ToArg) -> Reply<Option<T>> {
        self.send(Cmd::named("GET").arg(key))
    }

    /// `SET key value`.
    pub fn set(&self, key: impl ToArg, value: impl ToArg) -> Reply<()> {
        self.send(Cmd::named("SET").arg(key).arg(value))
    }

    /// `INCR key`: the new value.
    pub fn incr(&self, key: impl ToArg) -> Reply<i64> {
        self.send(Cmd::named("INCR").arg(key))
    }

    /// `DEL key`: how many keys were removed (0 or 1).
    pub fn del(&self, key: impl ToArg) -> Reply<i64> {
        self.send(Cmd::named("DEL").arg(key))
    }

    /// `EXISTS key`.
    pub fn exists(&self, key: impl ToArg) -> Reply<bool> {
        self.send(Cmd::named("EXISTS").arg(key))
    }

    /// `EXPIRE key seconds`: whether the key exists (and now expires).
    pub fn expire(&self, key: impl ToArg, seconds: u64) -> Reply<bool> {
        self.send(Cmd::named("EXPIRE").arg(key).arg(seconds))
    }

    /// `PUBLISH channel message`: how many subscribers got it.
    pub fn publish(&self, channel: impl ToArg, message: impl ToArg) -> Reply<i64> {
        self.send(Cmd::named("PUBLISH").arg(channel).arg(message))
    }

    /// `PING`: `"PONG"`.
    pub fn ping(&self) -> Reply<String> {
        self.send(Cmd::named("PING"))
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.link.phase() == Phase::Up
    }

    /// A handle that does not keep the connection alive (for callbacks
    /// that need their own client).
    pub(crate) fn downgrade(&self) -> std::rc::Weak<Owner<Commands>> {
        Rc::downgrade(&self.link)
    }

    /// The client behind a handle from [`downgrade`](Self::downgrade), if
    /// a clone still lives.
    pub(crate) fn upgrade(weak: &std::rc::Weak<Owner<Commands>>) -> Option<Client> {
        weak.upgrade().map(|link| Client { link })
    }

    /// Down and reconnecting, or closed: a command given now fails at once.
    pub(crate) fn is_down(&self) -> bool {
        matches!(self.link.phase(), Phase::Reconnecting | Phase::Closed)
    }

    /// Calls `f` on the reactor thread each time the connection comes up:
    /// the first connect and every reconnect (em-hiredis's `connected` and
    /// `reconnected` events).
    pub fn on_connected(&self, f: impl FnMut() + 'static) {
        self.link.on_up(f);
    }

    /// Calls `f` with the reason on the reactor thread each time the
    /// connection, having been up, goes down (em-hiredis's `disconnected`).
    pub fn on_disconnected(&self, f: impl FnMut(&str) + 'static) {
        self.link.on_down(f);
    }

    /// How many times the connection dropped and a reconnect began.
    pub fn reconnects(&self) -> u64 {
        self.link.reconnects()
    }

    /// Closes the connection after the commands already sent, and stops
    /// reconnecting; later commands fail with `is_disconnected()`.
    pub fn close(&self) {
        self.link.close();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("phase", &self.link.phase())
            .field("due", &self.link.session.due.borrow().len())
            .finish()
    }
}
