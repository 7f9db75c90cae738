//! A response's body: empty, whole, written over time through a
//! [`BodyWriter`] (Goliath's `stream_send`), or a protocol to switch to
//! (`101 Switching Protocols`).

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::rc::{Rc, Weak};
use std::task::Poll;

use bytes::Bytes;

use crate::codec::response::Framing;
use crate::server::connection::{ConnCore, WakerSlot};
use crate::upgrade::Upgraded;

/// The body of a response. Build one from bytes or text (`"hi".into()`,
/// `Bytes`, `String`, `Vec<u8>`), as [`empty`](ResponseBody::empty), as a
/// stream with [`channel`](ResponseBody::channel), or as an upgrade with
/// [`upgrade`](ResponseBody::upgrade). `!Send`: made and used on the
/// reactor thread.
pub struct ResponseBody {
    kind: Kind,
}

pub(crate) enum Kind {
    Empty,
    Full(Bytes),
    Stream(Rc<StreamShared>),
    Upgrade(Box<dyn Upgraded>),
}

impl ResponseBody {
    /// No body (`Content-Length: 0`).
    pub fn empty() -> Self {
        ResponseBody { kind: Kind::Empty }
    }

    /// A body written over time: the [`BodyWriter`] sends its chunks, the
    /// `ResponseBody` goes in the response. Sent chunked to an HTTP/1.1
    /// client (unless the response sets `Content-Length`, which the writer
    /// must then honour), and delimited by closing the connection for an
    /// HTTP/1.0 one. Chunks sent before the response is given are kept and
    /// go out after its head.
    ///
    /// ```
    /// let (writer, body) = em_http::ResponseBody::channel();
    /// writer.send("first chunk").unwrap();
    /// let response = http::Response::new(body);
    /// # drop((writer, response));
    /// ```
    pub fn channel() -> (BodyWriter, ResponseBody) {
        let shared = Rc::new(StreamShared {
            st: RefCell::new(StreamState::default()),
            waker: WakerSlot::default(),
        });
        (
            BodyWriter {
                shared: shared.clone(),
            },
            ResponseBody {
                kind: Kind::Stream(shared),
            },
        )
    }

    /// The body of a `101 Switching Protocols` response: once the response
    /// is written, the connection's bytes go to `protocol` (WebSocket is
    /// built on this). With any other status the protocol is dropped and
    /// the body is empty.
    pub fn upgrade(protocol: impl Upgraded) -> Self {
        ResponseBody {
            kind: Kind::Upgrade(Box::new(protocol)),
        }
    }

    /// The body's length when it is known now: whole bodies and empty ones.
    pub fn len(&self) -> Option<usize> {
        match &self.kind {
            Kind::Empty | Kind::Upgrade(_) => Some(0),
            Kind::Full(b) => Some(b.len()),
            Kind::Stream(_) => None,
        }
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The whole body's bytes, when it is one.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.kind {
            Kind::Full(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    pub(crate) fn into_kind(self) -> Kind {
        self.kind
    }
}

impl Default for ResponseBody {
    fn default() -> Self {
        ResponseBody::empty()
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        ResponseBody {
            kind: Kind::Full(bytes),
        }
    }
}

impl From<&'static str> for ResponseBody {
    fn from(text: &'static str) -> Self {
        Bytes::from_static(text.as_bytes()).into()
    }
}

impl From<&'static [u8]> for ResponseBody {
    fn from(bytes: &'static [u8]) -> Self {
        Bytes::from_static(bytes).into()
    }
}

impl From<String> for ResponseBody {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<Vec<u8>> for ResponseBody {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<()> for ResponseBody {
    fn from((): ()) -> Self {
        ResponseBody::empty()
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Empty => f.write_str("ResponseBody::Empty"),
            Kind::Full(b) => write!(f, "ResponseBody::Full({} bytes)", b.len()),
            Kind::Stream(_) => f.write_str("ResponseBody::Stream"),
            Kind::Upgrade(_) => f.write_str("ResponseBody::Upgrade"),
        }
    }
}

/// The connection's side of a streamed body, shared with its writer.
pub(crate) struct StreamShared {
    st: RefCell<StreamState>,
    waker: WakerSlot,
}

#[derive(Default)]
struct StreamState {
    /// The connection and request the body belongs to, once its response
    /// was given.
    bound: Option<(Weak<ConnCore>, u64, Framing)>,
    /// Chunks sent before the response was given.
    early: Vec<Bytes>,
    /// The writer finished the body.
    finished: bool,
    /// Nothing more will be written (HEAD, connection gone, finished).
    closed: bool,
    written: u64,
    on_drained: Option<Box<dyn FnMut()>>,
}

impl StreamShared {
    /// The response was given: the body belongs to request `seq` of `core`.
    pub(crate) fn bind(&self, core: &Rc<ConnCore>, seq: u64, framing: Framing) {
        let (early, finished) = {
            let mut st = self.st.borrow_mut();
            st.bound = Some((Rc::downgrade(core), seq, framing));
            (std::mem::take(&mut st.early), st.finished)
        };
        for chunk in early {
            self.write(core, seq, framing, chunk);
        }
        if finished {
            self.end(core, seq, framing);
        }
    }

    fn write(&self, core: &Rc<ConnCore>, seq: u64, framing: Framing, chunk: Bytes) -> bool {
        let mut st = self.st.borrow_mut();
        let mut chunk = chunk;
        if let Framing::Length(n) = framing {
            let room = n.saturating_sub(st.written);
            if chunk.len() as u64 > room {
                tracing::warn!(conn = %core.id(), peer = ?core.conn.peer_addr().map(|a| a.to_string()), declared = n, "streamed body longer than its Content-Length; the excess is dropped");
                chunk.truncate(room as usize);
                st.closed = true;
            }
        }
        st.written += chunk.len() as u64;
        drop(st);
        core.stream_chunk(seq, framing, &chunk);
        true
    }

    fn end(&self, core: &Rc<ConnCore>, seq: u64, framing: Framing) {
        let short = {
            let mut st = self.st.borrow_mut();
            st.closed = true;
            matches!(framing, Framing::Length(n) if st.written < n)
        };
        core.stream_end(seq, framing, short);
    }

    /// Nothing more will be written (the request was HEAD, or the
    /// connection is gone).
    pub(crate) fn close(&self) {
        self.st.borrow_mut().closed = true;
        self.wake();
    }

    /// The writer may write again (or must notice it is closed).
    pub(crate) fn wake(&self) {
        self.waker.wake();
        let callback = self.st.borrow_mut().on_drained.take();
        if let Some(mut f) = callback {
            f();
            let mut st = self.st.borrow_mut();
            if st.on_drained.is_none() {
                st.on_drained = Some(f);
            }
        }
    }

    fn core(&self) -> Option<(Rc<ConnCore>, u64, Framing)> {
        let st = self.st.borrow();
        let (weak, seq, framing) = st.bound.as_ref()?;
        Some((weak.upgrade()?, *seq, *framing))
    }
}

/// Why a chunk could not be sent: the body was finished, the request was
/// `HEAD`, or the client is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyClosed;

impl fmt::Display for BodyClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response body is closed (finished, HEAD, or the client is gone)")
    }
}

impl std::error::Error for BodyClosed {}

/// Writes a streamed response body over time (Goliath's `stream_send`):
/// from callbacks, timers or async code, on the reactor thread. Made by
/// [`ResponseBody::channel`].
///
/// Backpressure: [`is_ready`](BodyWriter::is_ready) is false while the
/// connection's output is above its high watermark (a slow client), and
/// [`ready`](BodyWriter::ready) waits (or [`on_drained`](BodyWriter::on_drained)
/// calls back) until it drains, so a producer that heeds it keeps memory
/// bounded. [`send`](BodyWriter::send) itself never blocks and never
/// refuses for a full queue.
///
/// Dropping the writer finishes the body, as [`finish`](BodyWriter::finish)
/// does.
pub struct BodyWriter {
    shared: Rc<StreamShared>,
}

impl BodyWriter {
    /// Queues a chunk. Errors with [`BodyClosed`] when nothing more can be
    /// written; an empty chunk is a no-op.
    pub fn send(&self, data: impl Into<Bytes>) -> Result<(), BodyClosed> {
        let chunk = data.into();
        if self.is_closed() {
            return Err(BodyClosed);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        match self.shared.core() {
            Some((core, seq, framing)) => {
                self.shared.write(&core, seq, framing, chunk);
                Ok(())
            }
            None => {
                let mut st = self.shared.st.borrow_mut();
                if st.bound.is_some() {
                    st.closed = true;
                    return Err(BodyClosed);
                }
                st.early.push(chunk);
                Ok(())
            }
        }
    }

    /// Waits until the client can take more (see
    /// [`is_ready`](BodyWriter::is_ready)), then queues `data`.
    pub async fn send_ready(&self, data: impl Into<Bytes>) -> Result<(), BodyClosed> {
        self.ready().await;
        self.send(data)
    }

    /// Whether more may be written without growing the connection's queue
    /// past its high watermark. True once closed (a send then errors).
    pub fn is_ready(&self) -> bool {
        match self.shared.core() {
            Some((core, seq, _)) => self.is_closed() || core.stream_ready(seq),
            // Not given yet, or gone: a send says which.
            None => true,
        }
    }

    /// Resolves once [`is_ready`](BodyWriter::is_ready) is true.
    pub async fn ready(&self) {
        poll_fn(|cx| {
            if self.is_ready() {
                return Poll::Ready(());
            }
            self.shared.waker.register(cx.waker());
            // Checked again: the queue may have drained meanwhile.
            if self.is_ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Calls `f` on the reactor thread each time the connection's output,
    /// having passed its high watermark, drains to the low one (and when
    /// the response becomes the one being written): the callback style's
    /// [`ready`](BodyWriter::ready).
    pub fn on_drained(&self, f: impl FnMut() + 'static) {
        self.shared.st.borrow_mut().on_drained = Some(Box::new(f));
    }

    /// Whether nothing more can be written: finished, the request was
    /// `HEAD`, or the connection is gone.
    pub fn is_closed(&self) -> bool {
        let st = self.shared.st.borrow();
        if st.closed || st.finished {
            return true;
        }
        match &st.bound {
            Some((weak, _, _)) => weak.upgrade().is_none_or(|core| core.is_gone()),
            None => false,
        }
    }

    /// Ends the body (the last chunk of a chunked body).
    pub fn finish(self) {
        drop(self);
    }

    /// Ends the response abruptly: the connection is closed without the
    /// body's end, so the client sees it cut short.
    pub fn abort(self) {
        if let Some((core, _, _)) = self.shared.core() {
            core.conn.close_connection();
        }
        let mut st = self.shared.st.borrow_mut();
        st.closed = true;
        st.finished = true;
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        let bound = {
            let mut st = self.shared.st.borrow_mut();
            if st.finished {
                return;
            }
            st.finished = true;
            st.on_drained = None;
            st.bound.clone()
        };
        if let Some((weak, seq, framing)) = bound {
            if let Some(core) = weak.upgrade() {
                self.shared.end(&core, seq, framing);
            }
        }
    }
}

impl fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyWriter")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
