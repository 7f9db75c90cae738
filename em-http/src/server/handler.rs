//! The async style: a function from a request to a future of a response,
//! each request's future run on the reactor (what Goliath's fiber per
//! request gave Ruby).

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

/// Runs an async handler under the callback engine: each request's future
/// is polled once at once (a handler that answers without waiting costs
/// no task), and spawned on the reactor if it must wait. The box a future
/// is polled in is kept for the connection's next request when the future
/// finished at once, so the common case allocates nothing for it.
pub(crate) struct AsyncHandler<H: Handler> {
    handler: Rc<H>,
    spare: Option<Pin<Box<Option<H::Future>>>>,
}

impl<H: Handler> AsyncHandler<H> {
    pub(crate) fn new(handler: Rc<H>) -> Self {
        AsyncHandler {
            handler,
            spare: None,
        }
    }
}

impl<H: Handler> RequestHandler for AsyncHandler<H> {
    fn on_request(&mut self, request: Request<Body>, responder: Responder) {
        let future = self.handler.call(request);
        let mut slot = match self.spare.take() {
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
                self.spare = Some(slot);
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
