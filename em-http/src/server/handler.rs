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
/// no task), and spawned on the reactor if it must wait.
pub(crate) struct AsyncHandler<H>(pub(crate) Rc<H>);

impl<H: Handler> RequestHandler for AsyncHandler<H> {
    fn on_request(&mut self, request: Request<Body>, responder: Responder) {
        let future = self.0.call(request);
        let mut task: Pin<Box<dyn Future<Output = ()>>> = Box::pin(async move {
            let output = future.await;
            responder.respond(output);
        });
        let mut cx = Context::from_waker(Waker::noop());
        match catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(&mut cx))) {
            Ok(Poll::Ready(())) => {}
            // Polled again by its task, which registers the real waker.
            Ok(Poll::Pending) => {
                if let Err(e) = em_core::spawn(task) {
                    tracing::debug!(error = %e, "request dropped: the reactor is stopping");
                }
            }
            Err(payload) => {
                // The responder answers 500 as the task is dropped; the
                // panic goes to em's error handler as any contained one.
                drop(task);
                let _ = em_core::spawn(async move { std::panic::resume_unwind(payload) });
            }
        }
    }
}
