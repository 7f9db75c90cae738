//! What a router's function answers for a client's first bytes: a
//! [`Route`], and for a backend, a [`Remote`] with its options.

use std::time::Duration;

use bytes::Bytes;
use em_core::Endpoint;

/// What to do with a client, given the bytes it sent so far
/// (ProxyMachine's hash: `{remote:}`, `{noop:}`, `{close:}`, `{reply:}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Connect to a backend, replay the buffered bytes (or the remote's
    /// [`data`](Remote::data)) to it, and join the two sockets.
    Remote(Remote),
    /// Not enough bytes to decide: wait for more. The router is called
    /// again with everything buffered so far.
    Noop,
    /// Send these bytes to the client, forget what was buffered, and wait
    /// for more: a handshake step (a greeting, a challenge) before the
    /// route is known.
    Reply(Bytes),
    /// Close the client now.
    Close,
    /// Send these bytes to the client (an error message), then close it
    /// once they have left (ProxyMachine's `{close: "text"}`).
    CloseWith(Bytes),
}

impl Route {
    /// [`Route::Remote`] to `endpoint`, with the default options.
    pub fn remote(endpoint: impl Into<Endpoint>) -> Route {
        Route::Remote(Remote::new(endpoint))
    }
}

impl From<Remote> for Route {
    fn from(remote: Remote) -> Route {
        Route::Remote(remote)
    }
}

/// A backend to route a client to, with the options of this route
/// (ProxyMachine's `:remote`, `:data`, `:reply`, `:connect_timeout`,
/// `:inactivity_timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub(crate) endpoint: Endpoint,
    pub(crate) data: Option<Bytes>,
    pub(crate) reply: Option<Bytes>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) inactivity_timeout: Option<Duration>,
}

impl Remote {
    /// To `endpoint`: `"host:port"`, a `SocketAddr`, an `Addr`, or
    /// [`Endpoint::unix`].
    pub fn new(endpoint: impl Into<Endpoint>) -> Remote {
        Remote {
            endpoint: endpoint.into(),
            data: None,
            reply: None,
            connect_timeout: None,
            inactivity_timeout: None,
        }
    }

    /// Replays `data` to the backend instead of the buffered bytes (a
    /// rewritten first request, or nothing: an empty `data` for a protocol
    /// whose header the router consumed, as SOCKS4's).
    pub fn data(mut self, data: impl Into<Bytes>) -> Remote {
        self.data = Some(data.into());
        self
    }

    /// Sends `reply` to the client as the route is taken, before any byte
    /// of the backend's.
    pub fn reply(mut self, reply: impl Into<Bytes>) -> Remote {
        self.reply = Some(reply.into());
        self
    }

    /// How long the connect may take, each attempt (em's
    /// `pending_connect_timeout`; default 20 s). Past it, the client is
    /// closed and the router's `on_connect_error` runs.
    pub fn connect_timeout(mut self, timeout: Duration) -> Remote {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long the backend may stay silent, nothing read nor written
    /// (em's `comm_inactivity_timeout`; default: no limit). Past it, both
    /// sides are closed and the router's `on_inactivity_error` runs.
    pub fn inactivity_timeout(mut self, timeout: Duration) -> Remote {
        self.inactivity_timeout = Some(timeout);
        self
    }

    /// Where it connects.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}
