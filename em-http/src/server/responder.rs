//! The callback style: a handler per connection whose `on_request` gets
//! each request with a [`Responder`] to answer it, now or later.

use std::fmt;
use std::rc::Rc;

use em_core::{Addr, ConnectionId};
use http::{Request, StatusCode};

use crate::body::request::Body;
use crate::into_response::IntoResponse;
use crate::server::connection::ConnCore;

/// A handler in the callback style (em-websocket's and EventMachine's
/// model): one value per connection, made by the factory given to
/// [`serve_callbacks`](crate::serve_callbacks), called on the reactor
/// thread for each request in the order they arrive.
///
/// ```
/// use em_http::{Body, RequestHandler, Responder};
/// use http::Request;
///
/// struct Hello {
///     served: u64,
/// }
///
/// impl RequestHandler for Hello {
///     fn on_request(&mut self, _request: Request<Body>, responder: Responder) {
///         self.served += 1;
///         responder.respond(format!("request {} on this connection\n", self.served));
///     }
/// }
///
/// em_core::run(|| -> em_core::Result<()> {
///     let server = em_http::serve_callbacks("127.0.0.1:0", || Hello { served: 0 })?;
///     assert!(server.local_addr().inet().is_some());
///     em_core::stop();
///     Ok(())
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub trait RequestHandler: 'static {
    /// A request arrived (its head; the body streams in through
    /// [`Body`]). Answer with `responder`, now or later from any callback
    /// on the reactor thread; responses leave in request order whatever
    /// order they are given in.
    fn on_request(&mut self, request: Request<Body>, responder: Responder);
}

/// Answers one request: [`respond`](Responder::respond) exactly once, now
/// or later. Dropped without answering, it answers
/// `500 Internal Server Error` (so a handler that panics or forgets still
/// leaves the connection usable and in order). `!Send`: reactor thread only.
pub struct Responder {
    core: Rc<ConnCore>,
    seq: u64,
    done: bool,
}

impl Responder {
    pub(crate) fn new(core: Rc<ConnCore>, seq: u64) -> Self {
        Responder {
            core,
            seq,
            done: false,
        }
    }

    /// Gives the response. It is written at once if every earlier request
    /// on the connection is answered, else as soon as they are. A response
    /// for a connection that is gone is dropped.
    pub fn respond(mut self, response: impl IntoResponse) {
        self.done = true;
        self.core.respond(self.seq, response.into_response());
    }

    /// Whether the connection is gone (nothing given now would be sent).
    pub fn is_closed(&self) -> bool {
        self.core.is_gone()
    }

    /// The client's address.
    pub fn peer_addr(&self) -> Option<Addr> {
        self.core.conn.peer_addr()
    }

    /// The id of the connection the request came on (as em's logs show it).
    pub fn connection_id(&self) -> ConnectionId {
        self.core.id()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.done && self.core.is_unanswered(self.seq) {
            tracing::warn!(conn = %self.core.id(), peer = ?self.core.conn.peer_addr().map(|a| a.to_string()),
                "a request was dropped without a response (or its handler panicked); answering 500");
            self.core
                .respond(self.seq, StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("connection", &self.core.id())
            .field("request", &self.seq)
            .finish()
    }
}
