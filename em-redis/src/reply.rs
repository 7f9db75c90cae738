//! `Reply`: the future of one command's reply, or a callback for it.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::error::{RedisError, RedisResult};
use crate::value::{FromValue, Value};

enum Slot {
    Waiting(Option<Waker>),
    Callback(Box<dyn FnOnce(RedisResult<Value>)>),
    Done(RedisResult<Value>),
    Taken,
}

/// Where a reply goes: the sending side of a [`Reply`].
pub(crate) struct Answer(Rc<RefCell<Slot>>);

impl Answer {
    /// Delivers the reply: to the waiting future, or to the callback.
    pub(crate) fn send(self, result: RedisResult<Value>) {
        let previous = std::mem::replace(&mut *self.0.borrow_mut(), Slot::Taken);
        match previous {
            Slot::Waiting(waker) => {
                *self.0.borrow_mut() = Slot::Done(result);
                if let Some(w) = waker {
                    w.wake();
                }
            }
            Slot::Callback(f) => f(result),
            Slot::Done(_) | Slot::Taken => {}
        }
    }
}

/// The reply to one command: a future of its typed result (on the reactor
/// thread, under [`em::spawn`](em_core::spawn) or `em::synchrony`), or,
/// with [`callback`](Reply::callback), a call of your closure when it
/// comes (em-hiredis's deferrable). The command was sent when the `Reply`
/// was made, so several commands given before awaiting are pipelined.
/// Dropping it drops the reply, not the command.
#[must_use = "the reply is dropped unless awaited or given a callback"]
pub struct Reply<T> {
    slot: Rc<RefCell<Slot>>,
    _type: PhantomData<fn() -> T>,
}

impl<T: FromValue + 'static> Reply<T> {
    /// A reply and where to send it.
    pub(crate) fn pair() -> (Reply<T>, Answer) {
        let slot = Rc::new(RefCell::new(Slot::Waiting(None)));
        (
            Reply {
                slot: slot.clone(),
                _type: PhantomData,
            },
            Answer(slot),
        )
    }

    /// A reply that is already there.
    pub(crate) fn ready(result: RedisResult<Value>) -> Reply<T> {
        Reply {
            slot: Rc::new(RefCell::new(Slot::Done(result))),
            _type: PhantomData,
        }
    }

    /// Calls `f` with the typed result when the reply comes (at once if it
    /// is there already), on the reactor thread: the callback style of
    /// em-hiredis (`redis.get('k').callback { |v| … }`).
    pub fn callback(self, f: impl FnOnce(RedisResult<T>) + 'static) {
        let convert = move |r: RedisResult<Value>| f(r.and_then(T::from_value));
        let previous = std::mem::replace(&mut *self.slot.borrow_mut(), Slot::Taken);
        match previous {
            Slot::Done(result) => convert(result),
            Slot::Waiting(_) => *self.slot.borrow_mut() = Slot::Callback(Box::new(convert)),
            Slot::Callback(_) | Slot::Taken => {}
        }
    }
}

impl<T: FromValue> Future for Reply<T> {
    type Output = RedisResult<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RedisResult<T>> {
        let mut slot = self.slot.borrow_mut();
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Done(result) => Poll::Ready(result.and_then(T::from_value)),
            Slot::Waiting(_) => {
                *slot = Slot::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
            other => {
                *slot = other;
                Poll::Ready(Err(RedisError::disconnected("the reply was already taken")))
            }
        }
    }
}

impl<T> std::fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.slot.borrow() {
            Slot::Waiting(_) | Slot::Callback(_) => "waiting",
            Slot::Done(_) => "done",
            Slot::Taken => "taken",
        };
        f.debug_struct("Reply").field("state", &state).finish()
    }
}
