//! The async style: a function from a request to a future of a response,
//! each request's future run on the reactor (what Goliath's fiber per
//! request gave Ruby).

use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use http::Request;

use crate::body::request::Body;
use crate::into_response::IntoResponse;
use crate::server::responder::{RequestHandler, Responder};

/// A handler in the async style: called on the reactor thread with each
/// request, it returns a future (`!Send` is fine) whose output answers it.
/// Implemented for every `Fn(Request<Body>) -> impl Future<Output: IntoResponse>`,
/// so a closure or an `async fn` is a handler; one handler serves every
/// connection of its server.
///
/// ```
/// use em_http::Body;
/// use http::Request;
///
/// async fn hello(request: Request<Body>) -> String {
///     format!("Hello, {}!\n", request.uri().path().trim_start_matches('/'))
/// }
///
/// em_core::run(|| -> em_core::Result<()> {
///     em_http::serve("127.0.0.1:0", hello)?;
///     em_core::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub trait Handler: 'static {
    /// What the handler answers with.
    type Output: IntoResponse;
    /// The future of that answer.
    type Future: Future<Output = Self::Output> + 'static;

    /// Handles one request.
    fn call(&self, request: Request<Body>) -> Self::Future;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request<Body>) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: IntoResponse,
{
    type Output = Fut::Output;
    type Future = Fut;

    fn call(&self, request: Request<Body>) -> Fut {
        self(request)
    }
}

/// The most spare future boxes a server keeps (see [`AsyncHandler`]).
const SPARE_BOXES: usize = 16;

/// A box a handler's future is polled in (empty between requests).
type FutureBox<F> = Pin<Box<Option<F>>>;

/// An async handler and what its server's connections share: spare boxes
/// for the handler's futures.
pub(crate) struct AsyncShared<H: Handler> {
    handler: H,
    spare: RefCell<Vec<FutureBox<H::Future>>>,
}

impl<H: Handler> AsyncShared<H> {
    pub(crate) fn new(handler: H) -> Rc<Self> {
        Rc::new(AsyncShared {
            handler,
            spare: RefCell::new(Vec::new()),
        })
    }
}

/// Runs an async handler under the callback engine: each request's future
/// is polled once at once (a handler that answers without waiting costs
/// no task), and spawned on the reactor if it must wait. The box a future
/// is polled in goes back to the server's spares when the future finished
/// at once, so the common case allocates nothing for it, and an idle
/// connection keeps no box.
pub(crate) struct AsyncHandler<H: Handler>(pub(crate) Rc<AsyncShared<H>>);

impl<H: Handler> RequestHandler for AsyncHandler<H> {
    fn on_request(&mut self, request: Request<Body>, responder: Responder) {
        let future = self.0.handler.call(request);
        let spare = self.0.spare.borrow_mut().pop();
        let mut slot = match spare {
            Some(mut slot) => {
                slot.set(Some(future));
                slot
            }
            None => Box::pin(Some(future)),
        };
        let mut cx = Context::from_waker(Waker::noop());
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let future = slot.as_mut().as_pin_mut().expect("set above");
            future.poll(&mut cx)
        }));
        match polled {
            Ok(Poll::Ready(output)) => {
                slot.set(None);
                let mut spare = self.0.spare.borrow_mut();
                if spare.len() < SPARE_BOXES {
                    spare.push(slot);
                }
                drop(spare);
                responder.respond(output);
            }
            // Polled again by its task, which registers the real waker.
            Ok(Poll::Pending) => {
                let task = async move {
                    let output = slot.as_mut().as_pin_mut().expect("set above").await;
                    responder.respond(output);
                };
                if let Err(e) = em_core::spawn(task) {
                    tracing::debug!(error = %e, "request dropped: the reactor is stopping");
                }
            }
            Err(payload) => {
                // The responder answers 500 as it is dropped; the panic
                // goes to em's error handler as any contained one.
                drop(slot);
                drop(responder);
                let _ = em_core::spawn(async move { std::panic::resume_unwind(payload) });
            }
        }
    }
}
