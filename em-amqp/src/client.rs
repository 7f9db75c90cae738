//! `Client`: one AMQP connection to the broker, kept up (handshake,
//! heartbeats, reconnect with back-off), carrying the channels.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use amq_protocol::frame::{AMQPFrame, ProtocolVersion};
use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use em_core::{Backoff, Conn, Connection, Endpoint, UnbindReason};
use em_timers::PeriodicTimer;
use tokio::time::Instant;

use crate::channel::{Channel, ChannelState};
use crate::codec::AmqpCodec;
use crate::error::{AmqpError, AmqpResult, Reply};
use crate::options::{parse_url, Options, Target};

type Listener = Box<dyn FnMut(&Client)>;
type DownListener = Box<dyn FnMut(&AmqpError)>;
type Waiter = Box<dyn FnOnce(AmqpResult<()>)>;

/// How long the broker has to answer `Connection.Close` before the socket
/// is closed anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting, or in the handshake (first time or again).
    Connecting,
    /// The handshake finished: channels may open.
    Open,
    /// Down, waiting for the next reconnect.
    Reconnecting,
    /// `Connection.Close` sent, waiting for `Close-Ok`.
    Closing,
    /// Closed for good (by the program, a refusal, or the reactor stopped).
    Closed,
}

/// The connection's state, shared by the em handler, the program's
/// handles and the channels (which hold it weakly).
pub(crate) struct Shared {
    endpoint: Endpoint,
    target: Target,
    options: Options,
    phase: Cell<Phase>,
    conn: RefCell<Option<Conn<AmqpCodec>>>,
    /// Counts the connections opened; a channel belongs to one.
    generation: Cell<u64>,
    frame_max: Cell<u32>,
    channel_max: Cell<u16>,
    heartbeat: Cell<u16>,
    channels: RefCell<HashMap<u16, Rc<ChannelState>>>,
    next_channel: Cell<u16>,
    /// Calls waiting for the connection to open (`channel()` before it is).
    waiting: RefCell<Vec<Waiter>>,
    on_up: RefCell<Vec<Listener>>,
    on_down: RefCell<Vec<DownListener>>,
    backoff: RefCell<Backoff>,
    reconnects: Cell<u64>,
    heartbeat_timer: RefCell<Option<PeriodicTimer>>,
    last_heard: Cell<Instant>,
    /// Why the connection is ending, when the broker or a heartbeat said
    /// (the socket's own reason otherwise).
    ending: RefCell<Option<AmqpError>>,
    /// Closed for good: why, for the calls made afterwards.
    fatal: RefCell<Option<AmqpError>>,
    closing: RefCell<Option<Reply<()>>>,
    blocked: Cell<bool>,
    /// The program's handles, for the `on_connected` callbacks.
    owner: RefCell<Weak<Owner>>,
    /// Counts TCP connects, to tell a handshake's timer from a later one's.
    attempts: Cell<u64>,
}

/// The program's handle on the connection (inside `Client` and `Channel`):
/// when the last one goes, the connection closes.
pub(crate) struct Owner(pub(crate) Rc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.close_now();
    }
}

/// A connection to RabbitMQ (or any AMQP 0.9.1 broker), kept up: it
/// reconnects with back-off when it drops, and tells
/// [`on_connected`](Client::on_connected) each time it is up again.
/// Channels ([`Client::channel`]) belong to one connection: they end with
/// it and are opened again by the program (the [`QueueBridge`] does so by
/// itself).
///
/// A cheap `Clone` handle, `!Send`: made and used on the reactor thread;
/// every callback runs there. When the last `Client` and the last
/// [`Channel`] are dropped, the connection closes (politely, with
/// `Connection.Close`) and stops reconnecting.
///
/// [`QueueBridge`]: crate::QueueBridge
#[derive(Clone)]
pub struct Client {
    pub(crate) owner: Rc<Owner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.owner.0;
        f.debug_struct("Client")
            .field("host", &s.target.host)
            .field("port", &s.target.port)
            .field("vhost", &s.target.vhost)
            .field("phase", &s.phase.get())
            .finish()
    }
}

impl Client {
    /// Connects to the broker at `url` (`amqp://user:pass@host:port/vhost`,
    /// RabbitMQ's URI spec: `amqp://guest:guest@127.0.0.1:5672/%2f`, or
    /// just `amqp://localhost`) with the default [`Options`]. Returns at
    /// once; calls made before the handshake finishes wait for it. Reactor
    /// thread.
    ///
    /// Errors: `is_invalid_argument()` for a URL that is not `amqp://`;
    /// `is_em()` where no reactor runs.
    pub fn connect(url: &str) -> AmqpResult<Client> {
        Client::connect_with(url, Options::default())
    }

    /// [`connect`](Client::connect) with `options`.
    pub fn connect_with(url: &str, mut options: Options) -> AmqpResult<Client> {
        let target = parse_url(url, &mut options)?;
        let endpoint = Endpoint::from((target.host.clone(), target.port));
        let shared = Rc::new(Shared {
            endpoint: endpoint.clone(),
            backoff: RefCell::new(Backoff::new(options.reconnect_min, options.reconnect_max)),
            frame_max: Cell::new(options.frame_max),
            channel_max: Cell::new(options.channel_max),
            heartbeat: Cell::new(0),
            target,
            options,
            phase: Cell::new(Phase::Connecting),
            conn: RefCell::new(None),
            generation: Cell::new(0),
            channels: RefCell::new(HashMap::new()),
            next_channel: Cell::new(1),
            waiting: RefCell::new(Vec::new()),
            on_up: RefCell::new(Vec::new()),
            on_down: RefCell::new(Vec::new()),
            reconnects: Cell::new(0),
            heartbeat_timer: RefCell::new(None),
            last_heard: Cell::new(Instant::now()),
            ending: RefCell::new(None),
            fatal: RefCell::new(None),
            closing: RefCell::new(None),
            blocked: Cell::new(false),
            owner: RefCell::new(Weak::new()),
            attempts: Cell::new(0),
        });
        let conn = em_core::connect(
            endpoint,
            LinkConn {
                shared: shared.clone(),
            },
        )?;
        *shared.conn.borrow_mut() = Some(conn);
        let owner = Rc::new(Owner(shared.clone()));
        *shared.owner.borrow_mut() = Rc::downgrade(&owner);
        Ok(Client { owner })
    }

    /// Opens a channel (`Channel.Open`). Waits for the connection if it is
    /// still connecting or reconnecting. Reactor thread.
    ///
    /// Fails with `is_closed()` once the client is closed, with the
    /// broker's refusal (`is_connection_closed()`, 403 access refused) if
    /// the handshake was refused, `is_disconnected()` if the connection
    /// drops before the broker answers.
    pub fn channel(&self) -> Reply<Channel> {
        let reply = Reply::new();
        let shared = &self.owner.0;
        match shared.phase.get() {
            Phase::Open => shared.open_channel(&self.owner, reply.clone()),
            Phase::Connecting | Phase::Reconnecting => {
                // Weak: a pending reply does not keep the connection open.
                let owner = Rc::downgrade(&self.owner);
                let r = reply.clone();
                shared
                    .waiting
                    .borrow_mut()
                    .push(Box::new(move |up| match (up, owner.upgrade()) {
                        (Ok(()), Some(owner)) => owner.0.open_channel(&owner, r),
                        (Ok(()), None) => {
                            r.fail(AmqpError::closed("client"));
                        }
                        (Err(e), _) => {
                            r.fail(e);
                        }
                    }));
            }
            Phase::Closing | Phase::Closed => {
                reply.fail(shared.fatal_error());
            }
        }
        reply
    }

    /// Closes the connection for good: `Connection.Close`, then the
    /// socket once the broker answers. Every channel closes with it
    /// (their pending calls fail with `is_closed()`); no reconnect. The
    /// reply succeeds once it is closed. Reactor thread.
    pub fn close(&self) -> Reply<()> {
        self.owner.0.close_politely()
    }

    /// Calls `f` each time the connection is up: after the first handshake
    /// and after each reconnect (open channels, declare, consume again
    /// there, with the `&Client` it is given: a `Client` captured by `f`
    /// would keep the connection open for ever). Reactor thread.
    pub fn on_connected(&self, f: impl FnMut(&Client) + 'static) {
        self.owner.0.on_up.borrow_mut().push(Box::new(f));
    }

    /// Calls `f` with the reason each time an open connection goes down
    /// (before reconnecting). Reactor thread.
    pub fn on_disconnected(&self, f: impl FnMut(&AmqpError) + 'static) {
        self.owner.0.on_down.borrow_mut().push(Box::new(f));
    }

    /// The handshake finished and the connection is up.
    pub fn is_connected(&self) -> bool {
        self.owner.0.phase.get() == Phase::Open
    }

    /// How many times it has reconnected.
    pub fn reconnects(&self) -> u64 {
        self.owner.0.reconnects.get()
    }

    /// The broker asked publishers to wait (`Connection.Blocked`, a memory
    /// or disk alarm); publishes still queue here.
    pub fn is_blocked(&self) -> bool {
        self.owner.0.blocked.get()
    }

    /// The heartbeat and largest frame agreed with the broker (zero before
    /// the first handshake).
    pub fn tuning(&self) -> (Duration, u32) {
        let s = &self.owner.0;
        (
            Duration::from_secs(s.heartbeat.get() as u64),
            s.frame_max.get(),
        )
    }
}

impl Shared {
    pub(crate) fn frame_max(&self) -> u32 {
        self.frame_max.get()
    }

    /// Is the connection of `generation` still the open one?
    pub(crate) fn is_current(&self, generation: u64) -> bool {
        self.phase.get() == Phase::Open && self.generation.get() == generation
    }

    /// Sends one frame on the open connection of `generation`.
    pub(crate) fn send(&self, generation: u64, frame: AMQPFrame) -> AmqpResult<()> {
        if !self.is_current(generation) {
            return Err(self.down_error());
        }
        match self.conn.borrow().as_ref() {
            Some(conn) => {
                conn.send_data(frame);
                Ok(())
            }
            None => Err(self.down_error()),
        }
    }

    /// Sends several frames at once (a message: method, header, bodies).
    pub(crate) fn send_all(
        &self,
        generation: u64,
        frames: impl IntoIterator<Item = AMQPFrame>,
    ) -> AmqpResult<()> {
        if !self.is_current(generation) {
            return Err(self.down_error());
        }
        match self.conn.borrow().as_ref() {
            Some(conn) => {
                for f in frames {
                    conn.send_data(f);
                }
                Ok(())
            }
            None => Err(self.down_error()),
        }
    }

    /// The error for a call made while not connected.
    pub(crate) fn down_error(&self) -> AmqpError {
        match self.phase.get() {
            Phase::Closing | Phase::Closed => self.fatal_error(),
            _ => AmqpError::disconnected("the connection to the broker is down"),
        }
    }

    fn fatal_error(&self) -> AmqpError {
        self.fatal
            .borrow()
            .clone()
            .unwrap_or_else(|| AmqpError::closed("client"))
    }

    pub(crate) fn forget_channel(&self, id: u16) {
        self.channels.borrow_mut().remove(&id);
    }

    fn open_channel(self: &Rc<Self>, owner: &Rc<Owner>, reply: Reply<Channel>) {
        let max = self.channel_max.get().max(1);
        let id = {
            let channels = self.channels.borrow();
            if channels.len() >= max as usize {
                reply.fail(AmqpError::invalid(format!(
                    "all {max} channels of the connection are open"
                )));
                return;
            }
            let mut id = self.next_channel.get();
            while channels.contains_key(&id) || id == 0 || id > max {
                id = if id >= max { 1 } else { id + 1 };
            }
            id
        };
        self.next_channel.set(if id >= max { 1 } else { id + 1 });
        let state = ChannelState::new(id, self.generation.get(), Rc::downgrade(self));
        self.channels.borrow_mut().insert(id, state.clone());
        let channel = Channel {
            state: state.clone(),
            _owner: owner.clone(),
        };
        state.open(channel, reply);
    }

    fn notify_up(&self) {
        let Some(owner) = self.owner.borrow().upgrade() else {
            return;
        };
        let client = Client { owner };
        let mut listeners = std::mem::take(&mut *self.on_up.borrow_mut());
        for f in &mut listeners {
            f(&client);
        }
        let mut slot = self.on_up.borrow_mut();
        listeners.append(&mut slot);
        *slot = listeners;
    }

    fn notify_down(&self, why: &AmqpError) {
        let mut listeners = std::mem::take(&mut *self.on_down.borrow_mut());
        for f in &mut listeners {
            f(why);
        }
        let mut slot = self.on_down.borrow_mut();
        listeners.append(&mut slot);
        *slot = listeners;
    }

    fn run_waiting(&self, result: AmqpResult<()>) {
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        for w in waiting {
            w(result.clone());
        }
    }

    /// `Connection.Close` if open (the socket closes at the broker's
    /// `Close-Ok`); otherwise the socket now. No reconnect.
    fn close_politely(&self) -> Reply<()> {
        if let Some(r) = self.closing.borrow().as_ref() {
            return r.clone();
        }
        let reply = Reply::new();
        match self.phase.get() {
            Phase::Open => {
                *self.closing.borrow_mut() = Some(reply.clone());
                self.phase.set(Phase::Closing);
                if let Some(conn) = self.conn.borrow().as_ref() {
                    conn.send_data(AMQPFrame::Method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                            reply_code: 200,
                            reply_text: "goodbye".into(),
                            class_id: 0,
                            method_id: 0,
                        })),
                    ));
                    // A broker that never answers: close the socket anyway.
                    let conn = conn.clone();
                    let timer = em_timers::add_timer(CLOSE_TIMEOUT, move || {
                        conn.close_connection();
                    });
                    if timer.is_err() {
                        if let Some(conn) = self.conn.borrow().as_ref() {
                            conn.close_connection();
                        }
                    }
                }
            }
            Phase::Closing => {}
            Phase::Connecting | Phase::Reconnecting | Phase::Closed => {
                self.phase.set(Phase::Closed);
                if let Some(conn) = self.conn.borrow().as_ref() {
                    conn.close_connection();
                }
                self.run_waiting(Err(AmqpError::closed("client")));
                reply.succeed(());
            }
        }
        reply
    }

    /// The last handle went: close politely, without waiting.
    fn close_now(&self) {
        drop(self.close_politely());
    }

    /// Ends the connection because of `why` (a heartbeat missed, a protocol
    /// error): it reconnects.
    fn abort(&self, why: AmqpError) {
        *self.ending.borrow_mut() = Some(why);
        if let Some(conn) = self.conn.borrow().as_ref() {
            conn.close_connection();
        }
    }

    fn start_heartbeats(self: &Rc<Self>) {
        let period = self.heartbeat.get();
        if period == 0 {
            return;
        }
        let weak = Rc::downgrade(self);
        let generation = self.generation.get();
        let period = Duration::from_secs(period as u64);
        let timer = em_timers::add_periodic_timer(period / 2, move |timer| {
            let Some(shared) = weak.upgrade() else {
                timer.cancel();
                return;
            };
            if !shared.is_current(generation) {
                timer.cancel();
                return;
            }
            if shared.last_heard.get().elapsed() > period * 2 {
                shared.abort(AmqpError::disconnected(format!(
                    "nothing heard from the broker for two heartbeat periods ({period:?} each)"
                )));
                timer.cancel();
                return;
            }
            let _ = shared.send(generation, AMQPFrame::Heartbeat);
        });
        match timer {
            Ok(t) => *self.heartbeat_timer.borrow_mut() = Some(t),
            Err(e) => tracing::warn!(error = %e, "amqp: cannot start heartbeats"),
        }
    }

    fn handshake(self: &Rc<Self>, conn: &Conn<AmqpCodec>, method: connection::AMQPMethod) {
        use connection::AMQPMethod as M;
        match method {
            M::Start(start) => {
                let mechanisms = start.mechanisms.to_string();
                if !mechanisms.split(' ').any(|m| m == "PLAIN") {
                    self.refuse(
                        conn,
                        AmqpError::protocol(format!(
                            "the broker offers no PLAIN login (it offers {mechanisms:?})"
                        )),
                    );
                    return;
                }
                let t = &self.target;
                let response = format!("\0{}\0{}", t.username, t.password);
                conn.send_data(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(M::StartOk(connection::StartOk {
                        client_properties: self.client_properties(),
                        mechanism: "PLAIN".into(),
                        response: LongString::from(response),
                        locale: "en_US".into(),
                    })),
                ));
            }
            M::Secure(_) => {
                self.refuse(
                    conn,
                    AmqpError::protocol(
                        "the broker asked a SASL challenge; em-amqp logs in with PLAIN only",
                    ),
                );
            }
            M::Tune(tune) => {
                let ours = &self.options;
                let pick = |theirs: u32, mine: u32| match (theirs, mine) {
                    (0, m) => m,
                    (t, 0) => t,
                    (t, m) => t.min(m),
                };
                let channel_max = pick(tune.channel_max as u32, ours.channel_max as u32) as u16;
                let frame_max = pick(tune.frame_max, ours.frame_max);
                let heartbeat = if ours.heartbeat == 0 {
                    0
                } else {
                    pick(tune.heartbeat as u32, ours.heartbeat as u32) as u16
                };
                self.channel_max.set(channel_max);
                self.frame_max.set(frame_max);
                self.heartbeat.set(heartbeat);
                conn.send_data(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(M::TuneOk(connection::TuneOk {
                        channel_max,
                        frame_max,
                        heartbeat,
                    })),
                ));
                let vhost = match ShortString::try_new(self.target.vhost.clone()) {
                    Ok(v) => v,
                    Err(e) => {
                        self.refuse(conn, AmqpError::invalid(format!("vhost: {e}")));
                        return;
                    }
                };
                conn.send_data(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(M::Open(connection::Open {
                        virtual_host: vhost,
                    })),
                ));
            }
            M::OpenOk(_) => {
                tracing::debug!(conn = %conn.id(), peer = ?conn.peer_addr(),
                    heartbeat = self.heartbeat.get(), frame_max = self.frame_max.get(),
                    "amqp: connected");
                self.generation.set(self.generation.get() + 1);
                self.phase.set(Phase::Open);
                self.backoff.borrow_mut().reset();
                self.start_heartbeats();
                self.run_waiting(Ok(()));
                if self.phase.get() == Phase::Open {
                    self.notify_up();
                }
            }
            M::Close(close) => {
                conn.send_data(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(M::CloseOk(connection::CloseOk {})),
                ));
                let e = AmqpError::connection_closed(close.reply_code, close.reply_text.as_str());
                tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), error = %e,
                    "amqp: the broker refused the connection");
                if self.generation.get() == 0 {
                    // Refused at the first connect (403 access refused, 530
                    // no such vhost): trying again would be refused again.
                    self.refuse(conn, e);
                } else {
                    // On a reconnect (a broker still starting, a vhost down
                    // for a moment): try again after the back-off.
                    *self.ending.borrow_mut() = Some(e);
                    conn.close_connection_after_writing();
                }
            }
            other => self.refuse(
                conn,
                AmqpError::protocol(format!("unexpected in the handshake: {other:?}")),
            ),
        }
    }

    /// The handshake failed for good: no reconnect; what waits fails.
    fn refuse(&self, conn: &Conn<AmqpCodec>, why: AmqpError) {
        *self.fatal.borrow_mut() = Some(why.clone());
        self.phase.set(Phase::Closed);
        conn.close_connection_after_writing();
        self.run_waiting(Err(why));
    }

    fn client_properties(&self) -> FieldTable {
        let mut capabilities = FieldTable::default();
        for c in [
            "publisher_confirms",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "exchange_exchange_bindings",
            // A refused login is told with Connection.Close (403), not a
            // bare TCP close, so that it is not retried.
            "authentication_failure_close",
        ] {
            capabilities.insert(c.into(), AMQPValue::Boolean(true));
        }
        let mut props = FieldTable::default();
        props.insert("product".into(), AMQPValue::LongString("em-amqp".into()));
        props.insert(
            "version".into(),
            AMQPValue::LongString(env!("CARGO_PKG_VERSION").into()),
        );
        props.insert("platform".into(), AMQPValue::LongString("Rust".into()));
        props.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
        if let Some(name) = &self.options.name {
            props.insert(
                "connection_name".into(),
                AMQPValue::LongString(name.as_str().into()),
            );
        }
        props
    }

    fn frame(self: &Rc<Self>, conn: &Conn<AmqpCodec>, frame: AMQPFrame) {
        self.last_heard.set(Instant::now());
        match frame {
            AMQPFrame::Heartbeat => {}
            AMQPFrame::Method(0, AMQPClass::Connection(method)) => {
                if self.phase.get() == Phase::Connecting {
                    self.handshake(conn, method);
                } else {
                    self.connection_method(conn, method);
                }
            }
            AMQPFrame::Method(0, other) => self.abort(AmqpError::protocol(format!(
                "a non-connection method on channel 0: {other:?}"
            ))),
            AMQPFrame::Method(id, method) => self.to_channel(id, |ch| ch.method(method)),
            AMQPFrame::Header(id, header) => self.to_channel(id, |ch| ch.header(header)),
            AMQPFrame::Body(id, body) => self.to_channel(id, |ch| ch.body(body)),
            AMQPFrame::ProtocolHeader(version) => self.refuse(
                conn,
                AmqpError::protocol(format!(
                    "the broker wants AMQP {}.{}.{}, not 0.9.1",
                    version.major, version.minor, version.revision
                )),
            ),
            AMQPFrame::InvalidHeartbeat(id) => {
                self.abort(AmqpError::protocol(format!("a heartbeat on channel {id}")))
            }
        }
    }

    fn to_channel(&self, id: u16, f: impl FnOnce(&Rc<ChannelState>) -> AmqpResult<()>) {
        let channel = self.channels.borrow().get(&id).cloned();
        let result = match channel {
            Some(ch) => f(&ch),
            None => Err(AmqpError::protocol(format!(
                "a frame for channel {id}, which is not open"
            ))),
        };
        if let Err(e) = result {
            self.abort(e);
        }
    }

    fn connection_method(&self, conn: &Conn<AmqpCodec>, method: connection::AMQPMethod) {
        use connection::AMQPMethod as M;
        match method {
            M::Close(close) => {
                let e = AmqpError::connection_closed(close.reply_code, close.reply_text.as_str());
                tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), error = %e,
                    "amqp: the broker closed the connection");
                conn.send_data(AMQPFrame::Method(
                    0,
                    AMQPClass::Connection(M::CloseOk(connection::CloseOk {})),
                ));
                *self.ending.borrow_mut() = Some(e);
                conn.close_connection_after_writing();
            }
            M::CloseOk(_) => conn.close_connection(),
            M::Blocked(b) => {
                tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), reason = %b.reason,
                    "amqp: the broker blocked publishing");
                self.blocked.set(true);
            }
            M::Unblocked(_) => {
                tracing::info!(conn = %conn.id(), peer = ?conn.peer_addr(), "amqp: the broker unblocked publishing");
                self.blocked.set(false);
            }
            other => self.abort(AmqpError::protocol(format!(
                "unexpected on an open connection: {other:?}"
            ))),
        }
    }
}

/// The em handler under a [`Client`].
struct LinkConn {
    shared: Rc<Shared>,
}

impl Connection for LinkConn {
    type Codec = AmqpCodec;

    fn codec(&self) -> AmqpCodec {
        AmqpCodec::new(self.shared.options.frame_max as usize)
    }

    fn connection_completed(&mut self, conn: &Conn<AmqpCodec>) {
        let s = &self.shared;
        if s.phase.get() == Phase::Closed {
            conn.close_connection();
            return;
        }
        tracing::debug!(conn = %conn.id(), peer = ?conn.peer_addr(), "amqp: TCP connected; handshake");
        s.phase.set(Phase::Connecting);
        s.last_heard.set(Instant::now());
        conn.send_data(AMQPFrame::ProtocolHeader(ProtocolVersion::amqp_0_9_1()));
        // A peer that accepts and never finishes the handshake (a balancer
        // with no broker behind it): give up on this try, reconnect later.
        let attempt = s.attempts.get() + 1;
        s.attempts.set(attempt);
        let weak = Rc::downgrade(s);
        let limit = s.options.connection_timeout;
        let timer = em_timers::add_timer(limit, move || {
            if let Some(s) = weak.upgrade() {
                if s.phase.get() == Phase::Connecting && s.attempts.get() == attempt {
                    s.abort(AmqpError::disconnected(format!(
                        "the broker did not finish the handshake within {limit:?}"
                    )));
                }
            }
        });
        if let Err(e) = timer {
            tracing::warn!(conn = %conn.id(), error = %e, "amqp: no handshake timeout");
        }
    }

    fn receive_data(&mut self, conn: &Conn<AmqpCodec>, frame: AMQPFrame) {
        self.shared.frame(conn, frame);
    }

    fn unbind(&mut self, conn: &Conn<AmqpCodec>, reason: UnbindReason) {
        let s = &self.shared;
        let was_open = matches!(s.phase.get(), Phase::Open | Phase::Closing);
        let stopping = matches!(reason, UnbindReason::ReactorStopped);
        let for_good = matches!(s.phase.get(), Phase::Closing | Phase::Closed) || stopping;
        let why = s
            .ending
            .borrow_mut()
            .take()
            .unwrap_or_else(|| AmqpError::disconnected(reason.to_string()));
        let heartbeats = s.heartbeat_timer.borrow_mut().take();
        if let Some(t) = heartbeats {
            t.cancel();
        }
        s.blocked.set(false);
        s.phase.set(if for_good {
            Phase::Closed
        } else {
            Phase::Reconnecting
        });
        // What the channels' pending calls fail with: `is_disconnected()`
        // for any drop (with the broker's or the socket's reason in the
        // text), the client's own error once it is closed for good.
        let channel_error = if for_good && !stopping {
            s.fatal_error()
        } else if why.is_disconnected() {
            why.clone()
        } else {
            AmqpError::disconnected(why.detail())
        };
        let channels: Vec<_> = s.channels.borrow_mut().drain().map(|(_, c)| c).collect();
        for ch in channels {
            ch.ended(channel_error.clone());
        }
        if was_open {
            s.notify_down(&why);
        }
        let closing = s.closing.borrow_mut().take();
        if let Some(r) = closing {
            r.succeed(());
        }
        if for_good || s.phase.get() == Phase::Closed {
            s.phase.set(Phase::Closed);
            let fatal = if stopping {
                AmqpError::disconnected("the reactor stopped")
            } else {
                s.fatal_error()
            };
            s.run_waiting(Err(fatal));
            return;
        }
        let delay = s.backoff.borrow_mut().next_delay();
        tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), reason = %why, retry_in = ?delay,
            "amqp: connection lost; reconnecting");
        s.reconnects.set(s.reconnects.get() + 1);
        if let Err(e) = conn.reconnect_after(delay, s.endpoint.clone()) {
            tracing::warn!(conn = %conn.id(), error = %e, "amqp: cannot reconnect");
            s.phase.set(Phase::Closed);
            s.run_waiting(Err(AmqpError::from(e)));
        }
    }
}
