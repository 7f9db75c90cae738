//! One op on its way through the pool and back: the `Send` half that travels
//! (the op, then its outcome) and the reactor-side replies that wait for it
//! (callbacks, errbacks, a future's slot).
//!
//! The two halves meet again on the reactor thread by slot number: a reply is
//! `!Send` (user callbacks capture `Rc`s), so it never leaves the reactor,
//! and the travelling half knows the reply's concrete type, so handing the
//! value over needs no boxing of `T`.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::DeferError;

/// The travelling half of an op. One allocation carries the op to a pool
/// thread and its outcome back.
pub(crate) trait Task: Send {
    /// Where the reply waits, on the reactor side.
    fn slot(&self) -> usize;

    /// Pool thread: runs the op, catching a panic.
    fn run(&mut self);

    /// Any thread: records that the op will never run.
    fn fail(&mut self, error: DeferError);

    /// Reactor thread: hands the outcome to `reply`, which waited in
    /// [`slot`](Task::slot).
    fn deliver(self: Box<Self>, reply: Box<dyn Any>);
}

enum Stage<F, T> {
    Op(F),
    Done(Result<T, DeferError>),
    Gone,
}

/// The [`Task`] for an op `F` returning `T`, whose reply is an `R`.
pub(crate) struct OpTask<F, T, R> {
    slot: usize,
    stage: Stage<F, T>,
    // `fn(R)`: the task is Send whatever `R` is; it only names the type.
    reply: PhantomData<fn(R)>,
}

impl<F, T, R> OpTask<F, T, R> {
    pub(crate) fn new(slot: usize, op: F) -> Self {
        OpTask {
            slot,
            stage: Stage::Op(op),
            reply: PhantomData,
        }
    }
}

impl<F, T, R> Task for OpTask<F, T, R>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    R: Reply<T>,
{
    fn slot(&self) -> usize {
        self.slot
    }

    fn run(&mut self) {
        if let Stage::Op(op) = std::mem::replace(&mut self.stage, Stage::Gone) {
            self.stage = Stage::Done(catch_unwind(AssertUnwindSafe(op)).map_err(|payload| {
                DeferError::panicked(em_core::extension::panic_message(&*payload))
            }));
        }
    }

    fn fail(&mut self, error: DeferError) {
        self.stage = Stage::Done(Err(error));
    }

    fn deliver(self: Box<Self>, reply: Box<dyn Any>) {
        let outcome = match self.stage {
            Stage::Done(outcome) => outcome,
            // Not reachable: only finished tasks are delivered.
            Stage::Op(_) | Stage::Gone => Err(DeferError::stopped()),
        };
        match reply.downcast::<R>() {
            Ok(reply) => reply.reply(outcome),
            Err(_) => debug_assert!(false, "a defer reply of the wrong type"),
        }
    }
}

/// The reactor-side half of an op: what happens to its outcome. Runs on the
/// reactor thread; dropped there unused when the reactor stops first.
pub(crate) trait Reply<T>: 'static {
    fn reply(self, outcome: Result<T, DeferError>);
}

/// `defer(op, callback)`.
pub(crate) struct Callback<C>(pub(crate) C);

impl<T, C: FnOnce(T) + 'static> Reply<T> for Callback<C> {
    fn reply(self, outcome: Result<T, DeferError>) {
        match outcome {
            Ok(value) => {
                let _ = em_core::extension::catch("defer callback", || (self.0)(value));
            }
            Err(error) => unhandled(&error),
        }
    }
}

/// `defer_with_errback(op, callback, errback)`.
pub(crate) struct Callbacks<C, E> {
    pub(crate) callback: C,
    pub(crate) errback: E,
}

impl<T, C, E> Reply<T> for Callbacks<C, E>
where
    C: FnOnce(T) + 'static,
    E: FnOnce(DeferError) + 'static,
{
    fn reply(self, outcome: Result<T, DeferError>) {
        let _ = match outcome {
            Ok(value) => em_core::extension::catch("defer callback", || (self.callback)(value)),
            Err(error) => em_core::extension::catch("defer errback", || (self.errback)(error)),
        };
    }
}

/// `defer_op(op)`: nothing waits for the value; a panic is reported.
pub(crate) struct Forget;

impl Reply<()> for Forget {
    fn reply(self, outcome: Result<(), DeferError>) {
        if let Err(error) = outcome {
            unhandled(&error);
        }
    }
}

/// Reports the failure of an op that has no errback, on the reactor thread.
fn unhandled(error: &DeferError) {
    match error.panic_message() {
        Some(message) => tracing::error!(
            callback = "defer op",
            panic = %message,
            "panic in a defer op without an errback contained"
        ),
        None => tracing::error!(error = %error, "a defer op without an errback failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    #[test]
    fn a_task_carries_the_value_to_its_callback() {
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        let reply = Callback(move |v: u32| g.set(v));
        let mut task = typed_task(7, || 42u32, &reply);
        assert_eq!(task.slot(), 7);
        task.run();
        task.deliver(Box::new(reply));
        assert_eq!(got.get(), 42);
    }

    #[test]
    fn a_panicking_op_becomes_a_panic_error_with_its_message() {
        let seen = Rc::new(Cell::new(false));
        let s = seen.clone();
        let reply = Callbacks {
            callback: |_: u8| unreachable!(),
            errback: move |e: DeferError| {
                assert!(e.is_panic());
                assert_eq!(e.panic_message(), Some("boom 3"));
                s.set(true);
            },
        };
        let mut task = typed_task(0, || -> u8 { panic!("boom {}", 3) }, &reply);
        task.run();
        task.deliver(Box::new(reply));
        assert!(seen.get());
    }

    #[test]
    fn a_failed_task_reaches_the_errback_without_running() {
        let seen = Rc::new(Cell::new(false));
        let s = seen.clone();
        let reply = Callbacks {
            callback: |_: ()| unreachable!(),
            errback: move |e: DeferError| s.set(e.is_spawn()),
        };
        let mut task = typed_task(0, || unreachable!(), &reply);
        task.fail(DeferError::spawn(std::io::Error::other("no threads")));
        task.deliver(Box::new(reply));
        assert!(seen.get());
    }

    fn typed_task<F, T, R>(slot: usize, op: F, _: &R) -> Box<dyn Task>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        R: Reply<T>,
    {
        Box::new(OpTask::<F, T, R>::new(slot, op))
    }
}
