//! The callback style: EventMachine's deferrable over the same engine as
//! `send`. The request runs as a task on the reactor; the callbacks run
//! there too, in order: `headers`, `stream` for each piece, then
//! `callback` (or `errback`).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use bytes::Bytes;

use crate::client::error::{ClientError, ClientErrorKind};
use crate::client::request::RequestBuilder;
use crate::client::response::ClientResponse;

/// A request started with [`RequestBuilder::start`]: em-http-request's
/// deferrable client. Register its callbacks right after starting it
/// (they are all in place before the request's first event, since events
/// run on the reactor only after the current callback returns):
///
/// * [`headers`](HttpRequest::headers): the head arrived (status, headers);
/// * [`stream`](HttpRequest::stream): each piece of the body as it
///   arrives; with it, the body is not collected;
/// * [`callback`](HttpRequest::callback): the response, complete, its
///   body in [`ClientResponse::body`] (unless streamed);
/// * [`errback`](HttpRequest::errback): the request failed, and why.
///
/// Exactly one of `callback` and `errback` runs, once. A callback
/// registered after the request finished runs at once (EventMachine's
/// deferrable rule). `!Send`: reactor thread only. A panic in a callback is
/// contained like any em callback's.
///
/// ```no_run
/// use em_http::Client;
///
/// em_core::run(|| -> em_core::Result<()> {
///     let request = Client::new().get("http://127.0.0.1:8080/").start();
///     request
///         .headers(|response| println!("status {}", response.status()))
///         .callback(|response| {
///             println!("{} bytes", response.body().map_or(0, |b| b.len()));
///             em_core::stop();
///         })
///         .errback(|error| {
///             eprintln!("{error}");
///             em_core::stop();
///         });
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
#[derive(Clone)]
pub struct HttpRequest {
    st: Rc<RefCell<State>>,
}

type HeadersFn = Box<dyn FnOnce(&ClientResponse)>;
type StreamFn = Box<dyn FnMut(Bytes)>;
type CallbackFn = Box<dyn FnOnce(ClientResponse)>;
type ErrbackFn = Box<dyn FnOnce(ClientError)>;

#[derive(Default)]
struct State {
    headers: Option<HeadersFn>,
    stream: Option<StreamFn>,
    callback: Option<CallbackFn>,
    errback: Option<ErrbackFn>,
    /// The outcome, kept until its callback is registered.
    outcome: Option<Result<ClientResponse, ClientError>>,
    finished: bool,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.st.borrow();
        f.debug_struct("HttpRequest")
            .field("finished", &st.finished)
            .finish()
    }
}

impl HttpRequest {
    pub(crate) fn start(builder: RequestBuilder) -> HttpRequest {
        let request = HttpRequest {
            st: Rc::new(RefCell::new(State::default())),
        };
        // The task holds the state: the request runs (and calls back) even
        // when its handle is dropped, as EventMachine's deferrable does.
        let st = request.st.clone();
        let task = async move {
            let result = builder.send().await;
            let outcome = match result {
                Ok(mut response) => {
                    let headers = st.borrow_mut().headers.take();
                    if let Some(f) = headers {
                        f(&response);
                    }
                    let stream = st.borrow_mut().stream.take();
                    match stream {
                        Some(mut f) => loop {
                            match response.chunk().await {
                                Ok(Some(piece)) => f(piece),
                                Ok(None) => break Ok(response),
                                Err(e) => break Err(e),
                            }
                        },
                        None => match response.buffer().await {
                            Ok(_) => Ok(response),
                            Err(e) => Err(e),
                        },
                    }
                }
                Err(e) => Err(e),
            };
            finish(&st, outcome);
        };
        match em_core::spawn(task) {
            Ok(handle) => request.st.borrow_mut().task = Some(handle),
            Err(e) => {
                let error = ClientError::new(ClientErrorKind::InvalidRequest, e.to_string());
                request.st.borrow_mut().outcome = Some(Err(error));
                request.st.borrow_mut().finished = true;
            }
        }
        request
    }

    /// Runs `f` with the response, complete, when the request succeeds
    /// (any status is success: a 404 is an answer). Replaces an earlier
    /// callback.
    pub fn callback(&self, f: impl FnOnce(ClientResponse) + 'static) -> &Self {
        self.st.borrow_mut().callback = Some(Box::new(f));
        self.deliver();
        self
    }

    /// Runs `f` with the error when the request fails.
    pub fn errback(&self, f: impl FnOnce(ClientError) + 'static) -> &Self {
        self.st.borrow_mut().errback = Some(Box::new(f));
        self.deliver();
        self
    }

    /// Runs `f` with the response's head as soon as it arrives, before
    /// the body.
    pub fn headers(&self, f: impl FnOnce(&ClientResponse) + 'static) -> &Self {
        self.st.borrow_mut().headers = Some(Box::new(f));
        self
    }

    /// Runs `f` with each piece of the body as it arrives (and does not
    /// collect it).
    pub fn stream(&self, f: impl FnMut(Bytes) + 'static) -> &Self {
        self.st.borrow_mut().stream = Some(Box::new(f));
        self
    }

    /// Cancels the request if it is still running: no callback runs, and
    /// its connection is closed.
    pub fn cancel(&self) {
        let mut st = self.st.borrow_mut();
        st.finished = true;
        st.callback = None;
        st.errback = None;
        if let Some(task) = st.task.take() {
            task.abort();
        }
    }

    /// Whether the request has finished (its outcome is known).
    pub fn is_finished(&self) -> bool {
        self.st.borrow().finished
    }

    /// Runs the callback for an outcome that is in, if it is registered.
    fn deliver(&self) {
        let mut st = self.st.borrow_mut();
        let ready = match &st.outcome {
            Some(Ok(_)) => st.callback.is_some(),
            Some(Err(_)) => st.errback.is_some(),
            None => false,
        };
        if !ready {
            return;
        }
        let outcome = st.outcome.take().expect("checked above");
        match outcome {
            Ok(response) => {
                let f = st.callback.take().expect("checked above");
                drop(st);
                f(response);
            }
            Err(error) => {
                let f = st.errback.take().expect("checked above");
                drop(st);
                f(error);
            }
        }
    }
}

fn finish(st: &Rc<RefCell<State>>, outcome: Result<ClientResponse, ClientError>) {
    {
        let mut s = st.borrow_mut();
        s.finished = true;
        s.task = None;
        s.outcome = Some(outcome);
    }
    HttpRequest { st: st.clone() }.deliver();
}
