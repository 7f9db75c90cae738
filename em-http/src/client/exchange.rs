//! One request's response on its way from the connection (which delivers
//! its head, body pieces and end as they are read) to whoever waits for it
//! (a `send` future, then the response's body). Reactor thread only.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::client::connection::ConnShared;
use crate::client::error::{ClientError, ClientResult};
use crate::codec::client::ResponseHead;

/// Body bytes buffered for a reader that has not taken them: above this
/// the connection stops reading, below [`LOW_WATER`] it reads again.
const HIGH_WATER: usize = 256 * 1024;
const LOW_WATER: usize = 64 * 1024;

/// The shared state of one exchange.
pub(crate) struct Exchange {
    st: RefCell<State>,
}

#[derive(Default)]
struct State {
    head: Option<ResponseHead>,
    chunks: VecDeque<Bytes>,
    buffered: usize,
    /// Something of the response arrived.
    responded: bool,
    /// The whole response arrived.
    ended: bool,
    /// The exchange failed (after whatever is still buffered).
    error: Option<ClientError>,
    /// Nobody will read the response: what still arrives is dropped.
    abandoned: bool,
    waker: Option<Waker>,
    conn: Weak<ConnShared>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.st.borrow();
        f.debug_struct("Exchange")
            .field("responded", &st.responded)
            .field("ended", &st.ended)
            .field("buffered", &st.buffered)
            .finish()
    }
}

impl Exchange {
    pub(crate) fn new(conn: &Rc<ConnShared>) -> Rc<Exchange> {
        Rc::new(Exchange {
            st: RefCell::new(State {
                conn: Rc::downgrade(conn),
                ..State::default()
            }),
        })
    }

    fn wake(st: &mut State) {
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }

    // The connection's side.

    pub(crate) fn deliver_head(&self, head: ResponseHead) {
        let mut st = self.st.borrow_mut();
        st.responded = true;
        if !st.abandoned {
            st.head = Some(head);
        }
        Self::wake(&mut st);
    }

    /// Adds a piece of the body; whether the reader is behind (reading
    /// should pause).
    pub(crate) fn deliver_chunk(&self, chunk: Bytes) -> bool {
        let mut st = self.st.borrow_mut();
        if st.abandoned || chunk.is_empty() {
            return false;
        }
        st.buffered += chunk.len();
        st.chunks.push_back(chunk);
        Self::wake(&mut st);
        st.buffered > HIGH_WATER
    }

    pub(crate) fn deliver_end(&self) {
        let mut st = self.st.borrow_mut();
        st.responded = true;
        st.ended = true;
        Self::wake(&mut st);
    }

    /// Ends the exchange with `error`, unless it ended already.
    pub(crate) fn fail(&self, error: ClientError) {
        let mut st = self.st.borrow_mut();
        if st.ended || st.error.is_some() {
            return;
        }
        st.error = Some(error);
        Self::wake(&mut st);
    }

    // The reader's side.

    /// Whether any of the response arrived (a request that failed before
    /// may be retried on another connection).
    pub(crate) fn responded(&self) -> bool {
        self.st.borrow().responded
    }

    /// Whether the whole response arrived, or the exchange failed.
    pub(crate) fn is_finished(&self) -> bool {
        let st = self.st.borrow();
        st.ended || st.error.is_some()
    }

    pub(crate) fn poll_head(&self, cx: &mut Context<'_>) -> Poll<ClientResult<ResponseHead>> {
        let mut st = self.st.borrow_mut();
        if let Some(head) = st.head.take() {
            return Poll::Ready(Ok(head));
        }
        if let Some(e) = st.error.take() {
            st.ended = true;
            return Poll::Ready(Err(e));
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn poll_chunk(&self, cx: &mut Context<'_>) -> Poll<Option<ClientResult<Bytes>>> {
        let mut st = self.st.borrow_mut();
        if let Some(chunk) = st.chunks.pop_front() {
            let was_high = st.buffered > HIGH_WATER;
            st.buffered -= chunk.len();
            if st.buffered < LOW_WATER || was_high {
                let conn = st.conn.upgrade();
                drop(st);
                if let Some(conn) = conn {
                    conn.reader_caught_up();
                }
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
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Nobody will read the rest: buffered bytes are dropped, and the
    /// connection decides whether to read and drop the rest or to close.
    pub(crate) fn abandon(self: &Rc<Self>) {
        let conn = {
            let mut st = self.st.borrow_mut();
            if st.abandoned {
                return;
            }
            st.abandoned = true;
            st.chunks.clear();
            st.buffered = 0;
            st.head = None;
            st.waker = None;
            if st.ended || st.error.is_some() {
                return;
            }
            st.conn.upgrade()
        };
        if let Some(conn) = conn {
            conn.abandoned(self);
        }
    }
}

/// Abandons its exchange when dropped unfinished (a `send` future or a
/// response body dropped early, a deadline).
#[derive(Debug)]
pub(crate) struct ExchangeGuard(pub(crate) Rc<Exchange>);

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.abandon();
        }
    }
}
