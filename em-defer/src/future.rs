//! `DeferFuture`: the result of [`defer_async`](crate::defer_async), for
//! procedural code under `em::spawn`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::error::DeferError;
use crate::task::Reply;

/// The outcome of an op started by [`defer_async`](crate::defer_async):
/// resolves, on the reactor thread, to the op's value or to a
/// [`DeferError`].
///
/// The op was queued when `defer_async` was called and runs whether or not
/// this future is polled; dropping the future drops the value when it comes.
/// It is `!Send`: await it on the reactor thread (under `em::spawn`). If the
/// reactor stops first, the future is dropped with its task; polled anyway
/// (from a task that outlives the reactor), it returns an error that
/// [`is_stopped()`](DeferError::is_stopped).
#[must_use = "the op runs anyway; await the future to get its value"]
pub struct DeferFuture<T> {
    state: State<T>,
}

enum State<T> {
    Waiting(Rc<Slot<T>>),
    Failed(Option<DeferError>),
}

struct Slot<T> {
    outcome: RefCell<Option<Result<T, DeferError>>>,
    waker: RefCell<Option<Waker>>,
}

impl<T> Slot<T> {
    fn resolve(&self, outcome: Result<T, DeferError>) {
        *self.outcome.borrow_mut() = Some(outcome);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl<T> DeferFuture<T> {
    /// A future waiting for `Wake` to resolve it.
    pub(crate) fn waiting() -> (Self, Wake<T>) {
        let slot = Rc::new(Slot {
            outcome: RefCell::new(None),
            waker: RefCell::new(None),
        });
        let future = DeferFuture {
            state: State::Waiting(slot.clone()),
        };
        (future, Wake(Some(slot)))
    }

    /// A future that resolves at once to `error`.
    pub(crate) fn failed(error: DeferError) -> Self {
        DeferFuture {
            state: State::Failed(Some(error)),
        }
    }
}

impl<T> Future for DeferFuture<T> {
    type Output = Result<T, DeferError>;

    /// Panics if polled again after it resolved.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Failed(error) => Poll::Ready(Err(error
                .take()
                .expect("DeferFuture polled after completion"))),
            State::Waiting(slot) => {
                if let Some(outcome) = slot.outcome.borrow_mut().take() {
                    return Poll::Ready(outcome);
                }
                *slot.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for DeferFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting(slot) if slot.outcome.borrow().is_some() => "ready",
            State::Waiting(_) => "waiting",
            State::Failed(_) => "failed",
        };
        f.debug_struct("DeferFuture")
            .field("state", &state)
            .finish()
    }
}

/// The reply of a [`DeferFuture`]: resolves it and wakes its task. Dropped
/// unused (the reactor stopped), it resolves it to a "stopped" error.
pub(crate) struct Wake<T>(Option<Rc<Slot<T>>>);

impl<T: 'static> Reply<T> for Wake<T> {
    fn reply(mut self, outcome: Result<T, DeferError>) {
        if let Some(slot) = self.0.take() {
            slot.resolve(outcome);
        }
    }
}

impl<T> Drop for Wake<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.resolve(Err(DeferError::stopped()));
        }
    }
}
