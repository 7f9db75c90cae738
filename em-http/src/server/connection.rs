//! One HTTP connection: requests read in order, handed to the handler,
//! and answered in the same order however the handlers finish
//! (pipelining), with keep-alive, `100 Continue`, streamed bodies, limits
//! and upgrades. Everything here runs on the reactor thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::Waker;

use bytes::{Bytes, BytesMut};
use em_core::{Conn, Connection, UnbindReason};
use http::{header, Method, Request, Response, StatusCode, Version};

use crate::body::request::{Body, BodyFeed};
use crate::body::response::{Kind, StreamShared};
use crate::codec::header_pool;
use crate::codec::request::{BodyLength, RequestFrame, RequestHead};
use crate::codec::response::Framing;
use crate::codec::{Outgoing, ServerCodec, ServerFrame};
use crate::error::HttpError;
use crate::server::responder::{RequestHandler, Responder};
use crate::server::Shared;
use crate::upgrade::{Upgraded, UpgradedIo};
use crate::ResponseBody;

/// Why reading is paused (a bit each): reading resumes when none is left.
const PAUSE_BODY: u8 = 1;
const PAUSE_PIPELINE: u8 = 2;
const PAUSE_UPGRADE: u8 = 4;

/// The em handler of one HTTP connection.
pub(crate) struct HttpConnection<H> {
    handler: H,
    shared: Rc<Shared>,
    core: Option<Rc<ConnCore>>,
}

impl<H: RequestHandler> HttpConnection<H> {
    pub(crate) fn new(handler: H, shared: Rc<Shared>) -> Self {
        HttpConnection {
            handler,
            shared,
            core: None,
        }
    }
}

/// What a connection shares with its responders, bodies and writers.
pub(crate) struct ConnCore {
    pub(crate) conn: Conn<ServerCodec>,
    pub(crate) shared: Rc<Shared>,
    st: RefCell<State>,
    /// Set once the connection has ended.
    pub(crate) gone: Cell<bool>,
}

struct State {
    /// The sequence number of `slots[0]`.
    head_seq: u64,
    next_seq: u64,
    /// The requests in flight, oldest first.
    slots: VecDeque<Slot>,
    /// The body being received, with its request's sequence number.
    body: Option<(u64, Rc<BodyFeed>)>,
    /// No more requests will be read: close once the slots are done.
    closing: bool,
    pause: u8,
    /// The keep-alive idle timeout is armed (no request in flight).
    idle_timeout_on: bool,
    header_timer: Option<em_timers::Timer>,
    /// The protocol the connection was upgraded to.
    upgraded: Option<Box<dyn Upgraded>>,
    /// Bytes the upgraded protocol left unconsumed, given back to it in
    /// front of the next ones (the `Upgraded::on_data` contract).
    upgraded_rest: BytesMut,
}

struct Slot {
    head_only: bool,
    http10: bool,
    /// The client allows keep-alive after this exchange.
    keep_alive: bool,
    /// The response and its body are written whole (into `out` while an
    /// earlier response is still being written).
    done: bool,
    /// A response was given (by the handler or the engine).
    answered: bool,
    /// The connection closes after this response.
    close: bool,
    /// The request's body is still arriving.
    body_pending: bool,
    /// The client waits for `100 Continue` before sending the body, and it
    /// has not been sent.
    continue_wanted: bool,
    /// What only some exchanges need, boxed so that the slot queue an
    /// idle keep-alive connection keeps stays small.
    extra: Option<Box<SlotExtra>>,
    upgrade_request: bool,
}

#[derive(Default)]
struct SlotExtra {
    /// Output written while an earlier response is still in progress.
    out: BytesMut,
    /// The response streams: its writer's shared state.
    stream: Option<Rc<StreamShared>>,
    /// A `101 Switching Protocols` response's new protocol.
    upgrade: Option<Box<dyn Upgraded>>,
}

impl Slot {
    fn new(head_only: bool, http10: bool, keep_alive: bool) -> Self {
        Slot {
            head_only,
            http10,
            keep_alive,
            done: false,
            answered: false,
            close: false,
            body_pending: false,
            continue_wanted: false,
            upgrade_request: false,
            extra: None,
        }
    }

    fn extra(&mut self) -> &mut SlotExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    fn stream(&self) -> Option<Rc<StreamShared>> {
        self.extra.as_ref().and_then(|e| e.stream.clone())
    }

    fn buffered(&self) -> usize {
        self.extra.as_ref().map_or(0, |e| e.out.len())
    }
}

impl<H: RequestHandler> Connection for HttpConnection<H> {
    type Codec = ServerCodec;

    fn codec(&self) -> ServerCodec {
        ServerCodec::new(self.shared.limits.clone())
    }

    fn post_init(&mut self, conn: &Conn<ServerCodec>) {
        if let Some(tls) = &self.shared.tls {
            if let Err(e) = conn.start_tls(tls) {
                tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr().map(|a| a.to_string()), error = %e, "could not start TLS; closing");
                conn.close_connection();
                return;
            }
        }
        let core = Rc::new(ConnCore {
            conn: conn.clone(),
            shared: self.shared.clone(),
            st: RefCell::new(State {
                head_seq: 0,
                next_seq: 0,
                slots: VecDeque::new(),
                body: None,
                closing: false,
                pause: 0,
                idle_timeout_on: false,
                header_timer: None,
                upgraded: None,
                upgraded_rest: BytesMut::new(),
            }),
            gone: Cell::new(false),
        });
        self.shared.register(conn.id(), Rc::downgrade(&core));
        core.arm_idle_timeout();
        if self.shared.draining.get() {
            conn.close_connection();
        }
        self.core = Some(core);
    }

    #[inline]
    fn receive_data(&mut self, _conn: &Conn<ServerCodec>, frame: ServerFrame) {
        let Some(core) = self.core.clone() else {
            return;
        };
        match frame {
            ServerFrame::Request(RequestFrame::Head(head)) => {
                core.on_head(head, &mut self.handler);
            }
            ServerFrame::Request(RequestFrame::Body(chunk)) => core.on_body(chunk),
            ServerFrame::Request(RequestFrame::BodyEnd) => core.on_body_end(),
            ServerFrame::Request(RequestFrame::HeadStarted) => core.on_head_started(),
            ServerFrame::Request(RequestFrame::Error(e)) => core.on_error(e),
            ServerFrame::Upgraded(bytes) => core.on_upgraded_data(bytes),
        }
    }

    fn outbound_drained(&mut self, _conn: &Conn<ServerCodec>) {
        if let Some(core) = self.core.clone() {
            core.on_drained();
        }
    }

    fn unbind(&mut self, conn: &Conn<ServerCodec>, reason: UnbindReason) {
        if let Some(core) = self.core.take() {
            self.shared.unregister(conn.id());
            core.on_unbind(&reason);
        }
    }
}

impl ConnCore {
    fn on_head(self: &Rc<Self>, head: RequestHead, handler: &mut impl RequestHandler) {
        let RequestHead {
            parts,
            body,
            keep_alive,
            expect_continue,
            upgrade,
        } = head;
        let seq;
        let feed;
        {
            let mut st = self.st.borrow_mut();
            if let Some(timer) = st.header_timer.take() {
                timer.cancel();
            }
            if st.closing {
                // A request after one that closes the connection: ignored.
                return;
            }
            seq = st.next_seq;
            st.next_seq += 1;
            let has_body = body != BodyLength::Empty;
            feed = has_body.then(|| {
                let f = Rc::new(BodyFeed::new(
                    Rc::downgrade(self),
                    seq,
                    expect_continue,
                    body,
                ));
                st.body = Some((seq, f.clone()));
                f
            });
            let mut slot = Slot::new(
                parts.method == Method::HEAD,
                parts.version == Version::HTTP_10,
                keep_alive,
            );
            slot.body_pending = has_body;
            slot.continue_wanted = expect_continue && has_body;
            slot.upgrade_request = upgrade;
            st.slots.push_back(slot);
            if !keep_alive {
                st.closing = true;
            }
            if upgrade {
                self.set_pause(&mut st, PAUSE_UPGRADE, true);
            }
            if st.slots.len() >= self.shared.limits.max_in_flight {
                self.set_pause(&mut st, PAUSE_PIPELINE, true);
            }
        }
        let body = match feed {
            Some(f) => Body::streamed(f),
            None => Body::empty(),
        };
        let request = Request::from_parts(parts, body);
        handler.on_request(request, Responder::new(self.clone(), seq));
        // Answered at once (the common case) or not: the idle timeout is
        // only for a connection with nothing in flight.
        let mut st = self.st.borrow_mut();
        if !st.slots.is_empty() && st.idle_timeout_on {
            st.idle_timeout_on = false;
            drop(st);
            self.conn
                .set_comm_inactivity_timeout(std::time::Duration::ZERO);
        }
    }

    fn on_body(&self, chunk: Bytes) {
        let feed = self.st.borrow().body.as_ref().map(|(_, f)| f.clone());
        if let Some(feed) = feed {
            if feed.push(chunk) > self.shared.limits.body_buffer {
                let mut st = self.st.borrow_mut();
                self.set_pause(&mut st, PAUSE_BODY, true);
            }
        }
    }

    fn on_body_end(&self) {
        let taken = {
            let mut st = self.st.borrow_mut();
            let taken = st.body.take();
            if let Some((seq, _)) = &taken {
                if let Some(slot) = st.slot_mut(*seq) {
                    slot.body_pending = false;
                    slot.continue_wanted = false;
                }
            }
            self.set_pause(&mut st, PAUSE_BODY, false);
            taken
        };
        if let Some((_, feed)) = taken {
            feed.end(None);
        }
    }

    /// The body reader took bytes out: reading may resume.
    pub(crate) fn body_drained(&self, buffered: usize) {
        if buffered <= self.shared.limits.body_buffer / 2 {
            if let Ok(mut st) = self.st.try_borrow_mut() {
                self.set_pause(&mut st, PAUSE_BODY, false);
            }
        }
    }

    fn on_head_started(self: &Rc<Self>) {
        let timeout = self.shared.limits.header_timeout;
        if timeout.is_zero() {
            return;
        }
        let heads = self.conn.with_codec(|c| c.head_progress().1).unwrap_or(0);
        let weak = Rc::downgrade(self);
        let timer = em_timers::add_timer(timeout, move || {
            if let Some(core) = weak.upgrade() {
                core.header_timed_out(heads);
            }
        });
        if let Ok(timer) = timer {
            if let Some(old) = self.st.borrow_mut().header_timer.replace(timer) {
                old.cancel();
            }
        }
    }

    fn header_timed_out(self: &Rc<Self>, heads: u64) {
        let (partial, now) = self
            .conn
            .with_codec(|c| c.head_progress())
            .unwrap_or((false, 0));
        if !partial || now != heads || self.gone.get() {
            return;
        }
        tracing::debug!(conn = %self.conn.id(), peer = ?self.peer(), "request head timed out; answering 408");
        let _ = self.conn.with_codec(|c| c.request.fail());
        self.on_error(HttpError::new(crate::error::ErrorKind::Timeout, ""));
    }

    /// A request could not be read: answer with the error's status (for
    /// the request whose body failed, or as a response of its own) and
    /// close once everything before it is written.
    fn on_error(self: &Rc<Self>, error: HttpError) {
        tracing::debug!(conn = %self.conn.id(), peer = ?self.peer(), %error, "bad request");
        let status = error.status();
        let body_feed = {
            let mut st = self.st.borrow_mut();
            st.closing = true;
            self.set_pause(&mut st, PAUSE_BODY | PAUSE_PIPELINE, false);
            st.body.take()
        };
        let seq = match body_feed {
            Some((seq, feed)) => {
                feed.end(Some(error.clone()));
                let mut st = self.st.borrow_mut();
                match st.slot_mut(seq) {
                    Some(slot) if !slot.answered => {
                        slot.body_pending = false;
                        // The connection closes after this answer: say so.
                        slot.close = true;
                        Some(seq)
                    }
                    _ => {
                        drop(st);
                        self.close_when_done();
                        return;
                    }
                }
            }
            None => None,
        };
        let seq = seq.unwrap_or_else(|| {
            let mut st = self.st.borrow_mut();
            let seq = st.next_seq;
            st.next_seq += 1;
            let mut slot = Slot::new(false, false, false);
            slot.close = true;
            st.slots.push_back(slot);
            seq
        });
        let mut response = Response::new(ResponseBody::from(format!(
            "{} {}\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
        self.respond(seq, response);
    }

    fn on_upgraded_data(&self, bytes: BytesMut) {
        let (upgraded, mut data) = {
            let mut st = self.st.borrow_mut();
            (st.upgraded.take(), std::mem::take(&mut st.upgraded_rest))
        };
        let Some(mut upgraded) = upgraded else {
            return;
        };
        if data.is_empty() {
            data = bytes;
        } else {
            data.extend_from_slice(&bytes);
        }
        let io = UpgradedIo::new(self.conn.clone());
        upgraded.on_data(&io, &mut data);
        let mut st = self.st.borrow_mut();
        if st.upgraded.is_none() && !self.gone.get() {
            st.upgraded = Some(upgraded);
            st.upgraded_rest = data;
        }
    }

    fn on_drained(&self) {
        let (stream, upgraded) = {
            let mut st = self.st.borrow_mut();
            (st.slots.front().and_then(Slot::stream), st.upgraded.take())
        };
        if let Some(stream) = stream {
            stream.wake();
        }
        if let Some(mut upgraded) = upgraded {
            upgraded.on_drained(&UpgradedIo::new(self.conn.clone()));
            let mut st = self.st.borrow_mut();
            if st.upgraded.is_none() && !self.gone.get() {
                st.upgraded = Some(upgraded);
            }
        }
    }

    fn on_unbind(&self, reason: &UnbindReason) {
        self.gone.set(true);
        let (slots, body, upgraded, timer) = {
            let mut st = self.st.borrow_mut();
            (
                std::mem::take(&mut st.slots),
                st.body.take(),
                st.upgraded.take(),
                st.header_timer.take(),
            )
        };
        if let Some(timer) = timer {
            timer.cancel();
        }
        if let Some((_, feed)) = body {
            feed.end(Some(HttpError::new(
                crate::error::ErrorKind::Truncated,
                format!("the connection ended ({reason})"),
            )));
        }
        for slot in slots {
            if let Some(stream) = slot.stream() {
                stream.wake();
            }
        }
        if let Some(mut upgraded) = upgraded {
            upgraded.on_close(&UpgradedIo::new(self.conn.clone()), reason);
        }
    }

    fn peer(&self) -> Option<String> {
        self.conn.peer_addr().map(|a| a.to_string())
    }

    pub(crate) fn is_gone(&self) -> bool {
        self.gone.get() || self.conn.is_closed()
    }

    fn set_pause(&self, st: &mut State, bits: u8, on: bool) {
        let before = st.pause;
        if on {
            st.pause |= bits;
        } else {
            st.pause &= !bits;
        }
        if before == 0 && st.pause != 0 {
            self.conn.pause();
        } else if before != 0 && st.pause == 0 {
            self.conn.resume();
        }
    }

    fn arm_idle_timeout(&self) {
        let timeout = self.shared.limits.keep_alive_timeout;
        let mut st = self.st.borrow_mut();
        if !timeout.is_zero() && !st.idle_timeout_on {
            st.idle_timeout_on = true;
            drop(st);
            self.conn.set_comm_inactivity_timeout(timeout);
        }
    }

    /// Writes `item` for the request `seq`: to the connection when its
    /// response is the one being written, else into its slot.
    fn write(&self, st: &mut State, seq: u64, item: Outgoing<'_>) {
        if seq == st.head_seq {
            self.conn.send_data(item);
        } else if let Some(slot) = st.slot_mut(seq) {
            item.encode(&mut slot.extra().out);
        }
    }

    /// Sends `100 Continue` for the request `seq`, if its client waits for
    /// it (its body is being read).
    pub(crate) fn send_continue(&self, seq: u64) {
        let mut st = self.st.borrow_mut();
        let wanted = match st.slot_mut(seq) {
            Some(slot) if slot.continue_wanted && !slot.answered => {
                slot.continue_wanted = false;
                true
            }
            _ => false,
        };
        if wanted {
            self.write(&mut st, seq, Outgoing::Continue);
        }
    }

    /// Whether the request `seq` still waits for its response.
    pub(crate) fn is_unanswered(&self, seq: u64) -> bool {
        !self.gone.get()
            && self
                .st
                .borrow()
                .slot(seq)
                .is_some_and(|slot| !slot.answered)
    }

    /// The response to the request `seq`.
    pub(crate) fn respond(self: &Rc<Self>, seq: u64, response: Response<ResponseBody>) {
        if self.gone.get() {
            if let Kind::Stream(stream) = response.body().kind() {
                stream.close();
            }
            return;
        }
        let (parts, body) = response.into_parts();
        let mut st = self.st.borrow_mut();
        let draining = self.shared.draining.get();
        let Some(slot) = st.slot_mut(seq) else {
            return;
        };
        if slot.answered {
            return;
        }
        slot.answered = true;
        let head_only = slot.head_only;
        let http10 = slot.http10;
        // The client still has a body to send that it waits to be asked
        // for: it will not be read, so the connection cannot be reused.
        let unread_body = slot.body_pending && slot.continue_wanted;
        let mut close = !slot.keep_alive || draining || unread_body || slot.close;
        let status = parts.status;
        let no_body = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let mut upgrade = None;
        let mut stream = None;
        let mut full: Option<Bytes> = None;
        let framing = match body.into_kind() {
            Kind::Upgrade(u)
                if status == StatusCode::SWITCHING_PROTOCOLS && slot.upgrade_request =>
            {
                upgrade = Some(u);
                close = false;
                Framing::Unframed
            }
            _ if no_body => Framing::Unframed,
            Kind::Upgrade(_) | Kind::Empty => Framing::Length(0),
            Kind::Full(bytes) => {
                let len = bytes.len() as u64;
                full = Some(bytes);
                Framing::Length(len)
            }
            Kind::Stream(s) => {
                let declared = parts
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let framing = match declared {
                    Some(n) => Framing::Length(n),
                    None if http10 => {
                        close = true;
                        Framing::Unframed
                    }
                    None => Framing::Chunked,
                };
                stream = Some(s);
                framing
            }
        };
        if slot.upgrade_request && upgrade.is_none() {
            // Not upgraded: reading goes on as HTTP.
            self.set_pause(&mut st, PAUSE_UPGRADE, false);
        }
        let slot = st.slot_mut(seq).expect("slot checked above");
        slot.close = close;
        if upgrade.is_some() {
            slot.extra().upgrade = upgrade;
        }
        let keep_alive_10 = http10 && !close;
        let body: &[u8] = match &full {
            Some(bytes) if !head_only => bytes,
            _ => b"",
        };
        self.write(
            &mut st,
            seq,
            Outgoing::Head {
                parts: &parts,
                framing,
                close,
                keep_alive_10,
                body,
            },
        );
        header_pool::give(parts.headers);
        match stream {
            Some(s) => {
                let slot = st.slot_mut(seq).expect("slot checked above");
                if head_only {
                    slot.done = true;
                    drop(st);
                    s.close();
                } else {
                    slot.extra().stream = Some(s.clone());
                    drop(st);
                    // Chunks written before the response was given go out now.
                    s.bind(self, seq, framing);
                    return;
                }
            }
            None => {
                st.slot_mut(seq).expect("slot checked above").done = true;
                drop(st);
            }
        }
        self.advance();
    }

    /// A chunk of the streamed response to `seq`.
    pub(crate) fn stream_chunk(&self, seq: u64, framing: Framing, chunk: &[u8]) {
        let mut st = self.st.borrow_mut();
        match framing {
            Framing::Chunked => self.write(&mut st, seq, Outgoing::Chunk(chunk)),
            _ => self.write(&mut st, seq, Outgoing::Raw(chunk)),
        }
    }

    /// The streamed response to `seq` is complete; `short` says a body
    /// with a declared length ended early (the connection must close).
    pub(crate) fn stream_end(&self, seq: u64, framing: Framing, short: bool) {
        {
            let mut st = self.st.borrow_mut();
            if framing == Framing::Chunked {
                self.write(&mut st, seq, Outgoing::LastChunk);
            }
            let Some(slot) = st.slot_mut(seq) else {
                return;
            };
            slot.done = true;
            if let Some(extra) = &mut slot.extra {
                extra.stream = None;
            }
            if short || framing == Framing::Unframed {
                slot.close = true;
            }
        }
        self.advance();
    }

    /// Whether the writer of `seq` may write more now: its response is
    /// being written and the connection's output is under its high
    /// watermark, or it is buffered behind another under that much.
    pub(crate) fn stream_ready(&self, seq: u64) -> bool {
        if self.is_gone() {
            return true;
        }
        let st = self.st.borrow();
        if seq == st.head_seq {
            !self.conn.is_above_high_watermark()
        } else {
            let high = self.conn.outbound_watermarks().0;
            st.slot(seq).is_none_or(|s| s.buffered() < high)
        }
    }

    /// Finishes the responses at the front that are complete, hands the
    /// connection to the next one, and closes it when a response said so.
    fn advance(&self) {
        let mut wake: Option<Rc<StreamShared>> = None;
        let mut upgraded: Option<Box<dyn Upgraded>> = None;
        {
            let mut st = self.st.borrow_mut();
            while st.slots.front().is_some_and(|front| front.done) {
                let slot = st.slots.pop_front().expect("front checked");
                st.head_seq += 1;
                if let Some(u) = slot.extra.and_then(|e| e.upgrade) {
                    st.closing = true;
                    upgraded = Some(u);
                    break;
                }
                if slot.close {
                    st.closing = true;
                    st.slots.clear();
                    self.conn.close_connection_after_writing();
                    return;
                }
                if let Some(next) = st.slots.front_mut() {
                    if let Some(extra) = &mut next.extra {
                        if !extra.out.is_empty() {
                            let out = std::mem::take(&mut extra.out);
                            self.conn.send_data(Outgoing::Raw(&out));
                        }
                        wake = extra.stream.clone();
                    }
                }
            }
            if upgraded.is_none() {
                if st.slots.len() < self.shared.limits.max_in_flight {
                    self.set_pause(&mut st, PAUSE_PIPELINE, false);
                }
                if st.slots.is_empty() {
                    if st.closing || self.shared.draining.get() {
                        self.conn.close_connection_after_writing();
                    } else {
                        drop(st);
                        self.arm_idle_timeout();
                    }
                }
            }
        }
        if let Some(s) = wake {
            s.wake();
        }
        if let Some(mut u) = upgraded {
            let _ = self.conn.with_codec(|c| c.upgrade());
            {
                let mut st = self.st.borrow_mut();
                self.set_pause(&mut st, PAUSE_UPGRADE | PAUSE_PIPELINE | PAUSE_BODY, false);
            }
            self.conn
                .set_comm_inactivity_timeout(std::time::Duration::ZERO);
            u.on_open(&UpgradedIo::new(self.conn.clone()));
            let mut st = self.st.borrow_mut();
            if !self.gone.get() {
                st.upgraded = Some(u);
            }
        }
    }

    /// Closes the connection once no response is in progress.
    fn close_when_done(&self) {
        let mut st = self.st.borrow_mut();
        st.closing = true;
        if let Some(last) = st.slots.back_mut() {
            last.close = true;
        } else {
            self.conn.close_connection_after_writing();
        }
    }

    /// Graceful stop: an idle connection closes now, a busy one after its
    /// responses.
    pub(crate) fn drain(&self) {
        self.close_when_done();
    }

    /// The connection's id (for log lines).
    pub(crate) fn id(&self) -> em_core::ConnectionId {
        self.conn.id()
    }
}

impl State {
    fn slot(&self, seq: u64) -> Option<&Slot> {
        let idx = seq.checked_sub(self.head_seq)?;
        self.slots.get(usize::try_from(idx).ok()?)
    }

    fn slot_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let idx = seq.checked_sub(self.head_seq)?;
        self.slots.get_mut(usize::try_from(idx).ok()?)
    }
}

/// A waker slot for a future that waits on a connection event.
#[derive(Default)]
pub(crate) struct WakerSlot(RefCell<Option<Waker>>);

impl WakerSlot {
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.0.borrow_mut();
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    pub(crate) fn wake(&self) {
        if let Some(w) = self.0.borrow_mut().take() {
            w.wake();
        }
    }
}
