//! `Subscriber`: Redis pub/sub on a connection of its own, resubscribed
//! after every reconnect.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use em_core::{Conn, Endpoint};
use redis_protocol::resp2::types::RangeFrame;

use crate::codec::{Cmd, Frame, RespCodec, ToArg};
use crate::error::{RedisError, RedisResult};
use crate::link::{Link, Owner, Session};
use crate::options::Options;
use crate::reply::{Answer, Reply};

/// A channel's callback; shared so that it is called with no borrow of the
/// map held (it may subscribe or unsubscribe).
type OnMessage = Rc<RefCell<dyn FnMut(Bytes)>>;
/// A pattern's callback, likewise.
type OnPatternMessage = Rc<RefCell<dyn FnMut(Bytes, Bytes)>>;

/// Redis pub/sub (`SUBSCRIBE`, `PSUBSCRIBE`) on a connection of its own, as
/// Redis wants (a subscribed connection takes no other command); publish
/// with a [`Client`](crate::Client). Each message is handed to the
/// callback of its channel (or pattern) on the reactor thread, in the
/// order Redis sent them. After the connection drops it reconnects with a
/// back-off and subscribes to everything again; messages published while
/// it was down are not delivered (Redis pub/sub keeps nothing), and none
/// is delivered twice. `!Send`, cheap to clone; when the last clone is
/// dropped, the connection closes (and every subscription with it); a
/// callback that holds a clone of its own subscriber keeps it alive until
/// [`close`](Subscriber::close).
///
/// A subscription's [`Reply`] fails if Redis refuses it (an ACL, a missing
/// AUTH) or if the connection drops before Redis confirms it; in the
/// second case the subscription is still made once the connection is back
/// (it stays until [`unsubscribe`](Subscriber::unsubscribe)): follow
/// [`is_subscribed`](Subscriber::is_subscribed) and
/// [`on_subscribed`](Subscriber::on_subscribed) for the state.
///
/// ```no_run
/// em::synchrony(async {
///     let sub = em_redis::Subscriber::connect("127.0.0.1:6379")?;
///     sub.subscribe("news", |message| println!("news: {message:?}")).await?;
///     let redis = em_redis::Client::connect("127.0.0.1:6379")?;
///     redis.publish("news", "hello").await?;
///     Ok::<(), em_redis::RedisError>(())
/// })??;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Subscriber {
    link: Rc<Owner<Subscriptions>>,
}

#[derive(Default)]
pub(crate) struct Subscriptions {
    channels: RefCell<HashMap<Bytes, OnMessage>>,
    /// The channel the last message came on and its callback: most
    /// messages come on the channel of the one before, and comparing the
    /// name is cheaper than hashing it. Emptied whenever `channels`
    /// changes.
    last_channel: RefCell<Option<(Bytes, OnMessage)>>,
    patterns: RefCell<HashMap<Bytes, OnPatternMessage>>,
    /// Confirmations awaited, by (kind, name).
    confirming: RefCell<Vec<(&'static str, Bytes, Answer)>>,
    /// Subscriptions sent since the connection came up and not confirmed
    /// yet; `None` while down.
    unconfirmed: Cell<Option<usize>>,
    on_subscribed: RefCell<Vec<Box<dyn FnMut()>>>,
    messages: Cell<u64>,
}

impl Subscriptions {
    fn deliver(&self, frame: &Frame, kind: &[u8], parts: &[RangeFrame]) {
        let mut parts = parts.iter();
        let mut next = || match parts.next() {
            Some(RangeFrame::BulkString(range)) | Some(RangeFrame::SimpleString(range)) => {
                Some(*range)
            }
            _ => None,
        };
        match kind {
            b"message" => {
                if let (Some(channel), Some(payload)) = (next(), next()) {
                    self.messages.set(self.messages.get() + 1);
                    if let Some(f) = self.callback_for(frame.text(channel)) {
                        (f.borrow_mut())(frame.cut(payload));
                    }
                }
            }
            b"pmessage" => {
                if let (Some(pattern), Some(channel), Some(payload)) = (next(), next(), next()) {
                    self.messages.set(self.messages.get() + 1);
                    let f = self.patterns.borrow().get(frame.text(pattern)).cloned();
                    if let Some(f) = f {
                        (f.borrow_mut())(frame.cut(channel), frame.cut(payload));
                    }
                }
            }
            b"subscribe" | b"psubscribe" => {
                let which = if kind == b"subscribe" {
                    "subscribe"
                } else {
                    "psubscribe"
                };
                if let Some(name) = next() {
                    let name = frame.text(name);
                    let mut confirming = self.confirming.borrow_mut();
                    let mut answered = Vec::new();
                    let mut i = 0;
                    while i < confirming.len() {
                        if confirming[i].0 == which && confirming[i].1 == name {
                            answered.push(confirming.remove(i).2);
                        } else {
                            i += 1;
                        }
                    }
                    drop(confirming);
                    for a in answered {
                        a.send(Ok(crate::Value::Nil));
                    }
                    self.confirmed_one();
                }
            }
            _ => {}
        }
    }
}

impl Subscriptions {
    /// The callback of `channel`'s subscription, if any.
    fn callback_for(&self, channel: &[u8]) -> Option<OnMessage> {
        if let Some((name, f)) = &*self.last_channel.borrow() {
            if name[..] == *channel {
                return Some(f.clone());
            }
        }
        let (name, f) = {
            let channels = self.channels.borrow();
            let (name, f) = channels.get_key_value(channel)?;
            (name.clone(), f.clone())
        };
        // The map's own key: a handle, not a copy of the name.
        *self.last_channel.borrow_mut() = Some((name, f.clone()));
        Some(f)
    }

    /// One subscription confirmed; when none is left, the subscriber is
    /// whole: tell the listeners.
    fn confirmed_one(&self) {
        if let Some(n) = self.unconfirmed.get() {
            let left = n.saturating_sub(1);
            self.unconfirmed.set(Some(left));
            if left == 0 && n != 0 {
                self.notify_subscribed();
            }
        }
    }

    fn notify_subscribed(&self) {
        let mut listeners = std::mem::take(&mut *self.on_subscribed.borrow_mut());
        for f in &mut listeners {
            f();
        }
        let mut slot = self.on_subscribed.borrow_mut();
        listeners.append(&mut slot);
        *slot = listeners;
    }
}

impl Session for Subscriptions {
    fn up(&self, conn: &Conn<RespCodec>) {
        let total = self.channels.borrow().len() + self.patterns.borrow().len();
        self.unconfirmed.set(Some(total));
        if total == 0 {
            self.notify_subscribed();
        }
        let channels: Vec<Bytes> = self.channels.borrow().keys().cloned().collect();
        if !channels.is_empty() {
            let mut cmd = Cmd::named("SUBSCRIBE");
            for c in channels {
                cmd = cmd.arg(c);
            }
            conn.send_data(cmd);
        }
        let patterns: Vec<Bytes> = self.patterns.borrow().keys().cloned().collect();
        if !patterns.is_empty() {
            let mut cmd = Cmd::named("PSUBSCRIBE");
            for p in patterns {
                cmd = cmd.arg(p);
            }
            conn.send_data(cmd);
        }
    }

    fn frame(&self, conn: &Conn<RespCodec>, frame: Frame) {
        match frame.parsed() {
            RangeFrame::Array(parts) => match parts.first() {
                Some(RangeFrame::BulkString(kind)) | Some(RangeFrame::SimpleString(kind)) => {
                    self.deliver(&frame, frame.text(*kind), &parts[1..])
                }
                _ => tracing::debug!(conn = %conn.id(), ?frame, "redis: pub/sub frame ignored"),
            },
            RangeFrame::Error(e) => {
                // A refusal (NOAUTH, NOPERM…): the subscriptions waiting for
                // their confirmation fail with it.
                let e = String::from_utf8_lossy(frame.text(*e));
                tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), error = %e,
                    "redis: the server refused a subscription");
                let confirming: Vec<_> = self.confirming.borrow_mut().drain(..).collect();
                for (_, _, answer) in confirming {
                    answer.send(Err(RedisError::server(e.clone())));
                }
            }
            _ => tracing::debug!(conn = %conn.id(), ?frame, "redis: pub/sub frame ignored"),
        }
    }

    fn idle(&self) -> bool {
        true
    }

    fn down(&self, why: &str) {
        self.unconfirmed.set(None);
        let confirming: Vec<_> = self.confirming.borrow_mut().drain(..).collect();
        for (_, _, answer) in confirming {
            answer.send(Err(RedisError::disconnected(format!(
                "the connection ended before the subscription was confirmed: {why}"
            ))));
        }
    }
}

impl Subscriber {
    /// Connects a subscriber to Redis at `addr`, with the default
    /// [`Options`]. Reactor thread.
    pub fn connect(addr: impl Into<Endpoint>) -> RedisResult<Subscriber> {
        Self::connect_with(addr, Options::default())
    }

    /// [`connect`](Self::connect) with options.
    pub fn connect_with(addr: impl Into<Endpoint>, options: Options) -> RedisResult<Subscriber> {
        let link = Link::start(addr.into(), &options, Subscriptions::default())?;
        Ok(Subscriber {
            link: Rc::new(Owner(link)),
        })
    }

    /// Subscribes to `channel`: `on_message` gets each message's payload.
    /// The [`Reply`] resolves once Redis confirms the subscription (from
    /// then on every message published is delivered). A second subscribe
    /// to the same channel replaces the callback.
    pub fn subscribe(
        &self,
        channel: impl ToArg,
        on_message: impl FnMut(Bytes) + 'static,
    ) -> Reply<()> {
        let channel = channel.to_arg();
        let s = &self.link.session;
        s.last_channel.take();
        s.channels
            .borrow_mut()
            .insert(channel.clone(), Rc::new(RefCell::new(on_message)));
        self.confirm(
            "subscribe",
            Cmd::named("SUBSCRIBE").arg(channel.clone()),
            channel,
        )
    }

    /// Subscribes to the channels matching `pattern` (`news.*`):
    /// `on_message` gets each message's channel and payload.
    pub fn psubscribe(
        &self,
        pattern: impl ToArg,
        on_message: impl FnMut(Bytes, Bytes) + 'static,
    ) -> Reply<()> {
        let pattern = pattern.to_arg();
        let s = &self.link.session;
        s.patterns
            .borrow_mut()
            .insert(pattern.clone(), Rc::new(RefCell::new(on_message)));
        self.confirm(
            "psubscribe",
            Cmd::named("PSUBSCRIBE").arg(pattern.clone()),
            pattern,
        )
    }

    /// Stops the subscription to `channel`.
    pub fn unsubscribe(&self, channel: impl ToArg) {
        let channel = channel.to_arg();
        let s = &self.link.session;
        s.last_channel.take();
        s.channels.borrow_mut().remove(&channel);
        // A subscription still waiting for its confirmation is answered now.
        let waiting: Vec<Answer> = {
            let mut confirming = s.confirming.borrow_mut();
            let (gone, kept): (Vec<_>, Vec<_>) = confirming
                .drain(..)
                .partition(|(kind, name, _)| *kind == "subscribe" && *name == channel);
            *confirming = kept;
            gone.into_iter().map(|(_, _, answer)| answer).collect()
        };
        for answer in waiting {
            answer.send(Err(RedisError::disconnected(
                "unsubscribed before Redis confirmed the subscription",
            )));
        }
        if let Some(conn) = self.link.writable() {
            conn.send_data(Cmd::named("UNSUBSCRIBE").arg(channel));
        }
    }

    /// Registers the confirmation awaited, and sends `cmd` now if the
    /// connection is up (otherwise `up` subscribes to everything once it
    /// is).
    fn confirm(&self, kind: &'static str, cmd: Cmd, name: Bytes) -> Reply<()> {
        match self.link.phase() {
            crate::link::Phase::Closed => {
                return Reply::ready(Err(RedisError::disconnected("the subscriber is closed")))
            }
            crate::link::Phase::Up => {
                if let Some(conn) = self.link.writable() {
                    let s = &self.link.session;
                    s.unconfirmed.set(s.unconfirmed.get().map(|n| n + 1));
                    conn.send_data(cmd);
                }
            }
            crate::link::Phase::Connecting | crate::link::Phase::Reconnecting => {}
        }
        let (reply, answer) = Reply::pair();
        self.link
            .session
            .confirming
            .borrow_mut()
            .push((kind, name, answer));
        reply
    }

    /// Whether the connection is up and Redis has confirmed every
    /// subscription made so far (on this connection: after a reconnect,
    /// once it has confirmed them again).
    pub fn is_subscribed(&self) -> bool {
        Self::whole(&self.link)
    }

    /// Up, and every subscription confirmed.
    pub(crate) fn whole(link: &Owner<Subscriptions>) -> bool {
        link.phase() == crate::link::Phase::Up && link.session.unconfirmed.get() == Some(0)
    }

    /// Calls `f` on the reactor thread each time the subscriber becomes
    /// whole: connected, and every subscription confirmed (after the first
    /// connect, after each reconnect, and after a new subscription).
    pub fn on_subscribed(&self, f: impl FnMut() + 'static) {
        self.link
            .session
            .on_subscribed
            .borrow_mut()
            .push(Box::new(f));
    }

    /// A handle that does not keep the connection alive.
    pub(crate) fn downgrade(&self) -> std::rc::Weak<Owner<Subscriptions>> {
        Rc::downgrade(&self.link)
    }

    /// Messages received so far, on every channel and pattern.
    pub fn messages(&self) -> u64 {
        self.link.session.messages.get()
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.link.phase() == crate::link::Phase::Up
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

    /// Closes the connection and stops reconnecting.
    pub fn close(&self) {
        self.link.close();
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("phase", &self.link.phase())
            .field("channels", &self.link.session.channels.borrow().len())
            .field("patterns", &self.link.session.patterns.borrow().len())
            .finish()
    }
}
