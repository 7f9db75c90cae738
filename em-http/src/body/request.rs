//! A request's body, read as it arrives, with backpressure: em-http stops
//! reading from the connection while more than
//! [`Limits::body_buffer`](crate::Limits::body_buffer) bytes wait unread.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;

use crate::codec::request::BodyLength;
use crate::error::{ErrorKind, HttpError};
use crate::server::connection::{ConnCore, WakerSlot};

/// The body of a request: empty, or streamed from the connection as it
/// arrives (chunked or by `Content-Length`), the chunks in order.
///
/// Read it whole with [`bytes`](Body::bytes) or [`text`](Body::text), chunk
/// by chunk with [`chunk`](Body::chunk) or as a [`Stream`], or from a
/// callback with [`on_complete`](Body::on_complete). A client that sent
/// `Expect: 100-continue` gets its `100 Continue` when the body is first
/// read; a handler that answers without reading it never asks for it (the
/// connection then closes after the answer, as the client's body was never
/// sent). Dropping the body discards the rest of it as it arrives.
///
/// `!Send`: it lives on the reactor thread of its connection.
pub struct Body {
    feed: Option<Rc<BodyFeed>>,
}

/// The connection's side of a streamed body.
pub(crate) struct BodyFeed {
    core: Weak<ConnCore>,
    seq: u64,
    length: BodyLength,
    st: RefCell<FeedState>,
    waker: WakerSlot,
}

struct FeedState {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    ended: bool,
    error: Option<HttpError>,
    dropped: bool,
    continue_pending: bool,
}

impl BodyFeed {
    pub(crate) fn new(
        core: Weak<ConnCore>,
        seq: u64,
        expect_continue: bool,
        length: BodyLength,
    ) -> Self {
        BodyFeed {
            core,
            seq,
            length,
            st: RefCell::new(FeedState {
                chunks: VecDeque::new(),
                buffered: 0,
                ended: false,
                error: None,
                dropped: false,
                continue_pending: expect_continue,
            }),
            waker: WakerSlot::default(),
        }
    }

    /// A chunk arrived; returns the bytes now waiting unread.
    pub(crate) fn push(&self, chunk: Bytes) -> usize {
        let mut st = self.st.borrow_mut();
        if st.dropped {
            return 0;
        }
        st.continue_pending = false;
        st.buffered += chunk.len();
        st.chunks.push_back(chunk);
        let buffered = st.buffered;
        drop(st);
        self.waker.wake();
        buffered
    }

    /// The body is complete, or failed.
    pub(crate) fn end(&self, error: Option<HttpError>) {
        {
            let mut st = self.st.borrow_mut();
            st.ended = true;
            st.continue_pending = false;
            if error.is_some() && st.error.is_none() {
                st.error = error;
            }
        }
        self.waker.wake();
    }
}

impl Body {
    pub(crate) fn empty() -> Self {
        Body { feed: None }
    }

    pub(crate) fn streamed(feed: Rc<BodyFeed>) -> Self {
        Body { feed: Some(feed) }
    }

    /// The body's length when the request declared one (`Content-Length`),
    /// `Some(0)` for no body, `None` for a chunked body.
    pub fn content_length(&self) -> Option<u64> {
        match &self.feed {
            None => Some(0),
            Some(feed) => match feed.length {
                BodyLength::Empty => Some(0),
                BodyLength::Fixed(n) => Some(n),
                BodyLength::Chunked | BodyLength::UntilClose => None,
            },
        }
    }

    /// Whether the request has no body at all.
    pub fn is_empty(&self) -> bool {
        self.feed.is_none()
    }

    /// Polls for the next chunk: `None` at the end, an error when the body
    /// could not be read whole (too large, malformed, connection gone).
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, HttpError>>> {
        let Some(feed) = &self.feed else {
            return Poll::Ready(None);
        };
        let mut st = feed.st.borrow_mut();
        if st.continue_pending {
            st.continue_pending = false;
            drop(st);
            if let Some(core) = feed.core.upgrade() {
                core.send_continue(feed.seq);
            }
            st = feed.st.borrow_mut();
        }
        if let Some(chunk) = st.chunks.pop_front() {
            st.buffered -= chunk.len();
            let buffered = st.buffered;
            drop(st);
            if let Some(core) = feed.core.upgrade() {
                core.body_drained(buffered);
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        if let Some(e) = st.error.take() {
            st.ended = true;
            return Poll::Ready(Some(Err(e)));
        }
        if st.ended {
            return Poll::Ready(None);
        }
        drop(st);
        feed.waker.register(cx.waker());
        Poll::Pending
    }

    /// The next chunk: `None` at the end.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, HttpError>> {
        poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// The whole body (at most [`Limits::max_body_size`](crate::Limits::max_body_size)
    /// bytes, which the server enforces as it reads).
    pub async fn bytes(mut self) -> Result<Bytes, HttpError> {
        let mut first: Option<Bytes> = None;
        let mut all: Option<BytesMut> = None;
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            match (&mut first, &mut all) {
                (None, None) => first = Some(chunk),
                (Some(f), None) => {
                    let mut buf = BytesMut::with_capacity(f.len() + chunk.len());
                    buf.extend_from_slice(f);
                    buf.extend_from_slice(&chunk);
                    first = None;
                    all = Some(buf);
                }
                (_, Some(buf)) => buf.extend_from_slice(&chunk),
            }
        }
        Ok(match (first, all) {
            (_, Some(buf)) => buf.freeze(),
            (Some(f), None) => f,
            (None, None) => Bytes::new(),
        })
    }

    /// The whole body as UTF-8 text; invalid UTF-8 is a `BadRequest` error.
    pub async fn text(self) -> Result<String, HttpError> {
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| HttpError::new(ErrorKind::BadRequest, format!("body is not UTF-8: {e}")))
    }

    /// Calls `f` on the reactor thread with the whole body once it has
    /// arrived (or with the error that ended it): the callback style's
    /// [`bytes`](Body::bytes).
    pub fn on_complete(self, f: impl FnOnce(Result<Bytes, HttpError>) + 'static) {
        let task = async move { f(self.bytes().await) };
        if let Err(e) = em_core::spawn(task) {
            tracing::debug!(error = %e, "request body dropped: the reactor is stopping");
        }
    }
}

impl Stream for Body {
    type Item = Result<Bytes, HttpError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_chunk(cx)
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(feed) = self.feed.take() {
            let mut st = feed.st.borrow_mut();
            st.dropped = true;
            st.continue_pending = false;
            st.chunks.clear();
            st.buffered = 0;
            drop(st);
            if let Some(core) = feed.core.upgrade() {
                core.body_drained(0);
            }
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("content_length", &self.content_length())
            .finish_non_exhaustive()
    }
}
