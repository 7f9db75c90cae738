//! The router's engine: [`Front`], the client's handler, buffers and asks
//! the routing function; [`Back`], the backend's handler, connects (with
//! retries), replays, and joins the two with em's relays.
//!
//! While the backend connects the client is paused, so nothing is read
//! that could be lost to a retry; bytes read before the pause wait in the
//! session's buffer and are replayed first, in order.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use em_core::{Conn, Connection, Endpoint, UnbindReason};
use tokio_util::codec::BytesCodec;

use super::{Remote, Route, Setup};
use crate::server::Way;
use crate::stats::add;

/// What the client's and the backend's handlers share once routed.
struct Link {
    /// Bytes for the backend until it is joined: the replay, then
    /// anything read since.
    pending: RefCell<BytesMut>,
    joined: Cell<bool>,
    backend: RefCell<Option<Conn<BytesCodec>>>,
}

/// The client's handler.
pub(crate) struct Front {
    setup: Rc<Setup>,
    buffer: BytesMut,
    link: Option<Rc<Link>>,
}

impl Front {
    pub(crate) fn new(setup: Rc<Setup>) -> Front {
        Front {
            setup,
            buffer: BytesMut::new(),
            link: None,
        }
    }

    fn take_route(&mut self, conn: &Conn<BytesCodec>, remote: Remote) {
        if let Some(reply) = remote.reply {
            conn.send_data(reply);
        }
        let buffered = self.buffer.split();
        let replay = match remote.data {
            Some(data) => BytesMut::from(&data[..]),
            None => buffered,
        };
        let link = Rc::new(Link {
            pending: RefCell::new(replay),
            joined: Cell::new(false),
            backend: RefCell::new(None),
        });
        conn.pause();
        let back = Back {
            setup: self.setup.clone(),
            client: conn.clone(),
            link: link.clone(),
            endpoint: remote.endpoint.clone(),
            retries_left: self.setup.retries,
            inactivity: remote.inactivity_timeout,
        };
        match em_core::connect(remote.endpoint.clone(), back) {
            Ok(backend) => {
                if let Some(timeout) = remote.connect_timeout {
                    backend.set_pending_connect_timeout(timeout);
                }
                *link.backend.borrow_mut() = Some(backend);
                self.link = Some(link);
            }
            Err(e) => {
                tracing::warn!(
                    conn = %conn.id(),
                    peer = ?conn.peer_addr(),
                    endpoint = %remote.endpoint,
                    error = %e,
                    "cannot connect to the route's backend"
                );
                conn.close_connection();
                connect_error(&self.setup, &remote.endpoint);
            }
        }
    }
}

/// Counts a backend that could not be reached and tells the router.
fn connect_error(setup: &Setup, endpoint: &Endpoint) {
    add(&setup.shared.counters.connect_errors, 1);
    if let Some(f) = &setup.on_connect_error {
        f(endpoint);
    }
}

impl Connection for Front {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        self.setup.shared.session_opened();
        if let Some(tls) = &self.setup.tls {
            if let Err(e) = conn.start_tls(tls) {
                tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), error = %e, "cannot start TLS; closing the client");
                conn.close_connection();
            }
        }
    }

    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        add(
            &self.setup.shared.counters.bytes_from_clients,
            data.len() as u64,
        );
        if let Some(link) = &self.link {
            // Read before the pause took hold, or held by it.
            if link.joined.get() {
                if let Some(backend) = &*link.backend.borrow() {
                    backend.send_data(data.freeze());
                }
            } else {
                link.pending.borrow_mut().extend_from_slice(&data);
            }
            return;
        }
        if self.buffer.len() + data.len() > self.setup.max_buffer {
            tracing::warn!(
                conn = %conn.id(),
                peer = ?conn.peer_addr(),
                max_buffer = self.setup.max_buffer,
                "no route within max_buffer bytes; closing the client"
            );
            conn.close_connection();
            return;
        }
        self.buffer.extend_from_slice(&data);
        match (self.setup.route)(&self.buffer) {
            Route::Noop => {}
            Route::Reply(reply) => {
                self.buffer.clear();
                conn.send_data(reply);
            }
            Route::Close => conn.close_connection(),
            Route::CloseWith(message) => {
                conn.send_data(message);
                conn.close_connection_after_writing();
            }
            Route::Remote(remote) => {
                tracing::debug!(conn = %conn.id(), peer = ?conn.peer_addr(), endpoint = %remote.endpoint, "routed");
                self.take_route(conn, remote);
            }
        }
    }

    fn unbind(&mut self, conn: &Conn<BytesCodec>, reason: UnbindReason) {
        self.setup.shared.relay_ended(conn);
        if reason.is_error() {
            tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), %reason, "client connection ended");
        }
        if let Some(link) = self.link.take() {
            if let Some(backend) = link.backend.borrow_mut().take() {
                backend.close_connection_after_writing();
            }
        }
        self.setup.shared.session_closed();
    }
}

/// The backend's handler.
struct Back {
    setup: Rc<Setup>,
    client: Conn<BytesCodec>,
    link: Rc<Link>,
    endpoint: Endpoint,
    retries_left: u32,
    inactivity: Option<std::time::Duration>,
}

impl Connection for Back {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn connection_completed(&mut self, conn: &Conn<BytesCodec>) {
        let replay = std::mem::take(&mut *self.link.pending.borrow_mut());
        if !replay.is_empty() {
            conn.send_data(Bytes::from(replay));
        }
        self.link.joined.set(true);
        if let Some(timeout) = self.inactivity {
            conn.set_comm_inactivity_timeout(timeout);
        }
        let shared = &self.setup.shared;
        let bufsize = self.setup.bufsize;
        match self.client.proxy_incoming_to(conn, bufsize) {
            Ok(()) => shared.relay_started(&self.client, Way::In),
            Err(e) => {
                tracing::warn!(conn = %self.client.id(), peer = ?self.client.peer_addr(), error = %e, "cannot relay to the backend")
            }
        }
        match conn.proxy_incoming_to(&self.client, bufsize) {
            Ok(()) => shared.relay_started(conn, Way::Out),
            Err(e) => {
                tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), error = %e, "cannot relay from the backend")
            }
        }
        add(&shared.counters.routed, 1);
        self.client.resume();
    }

    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        // Only if a relay could not start: copy.
        add(
            &self.setup.shared.counters.bytes_to_clients,
            data.len() as u64,
        );
        self.client.send_data(data.freeze());
    }

    fn proxy_target_unbound(&mut self, conn: &Conn<BytesCodec>) {
        conn.close_connection_after_writing();
    }

    fn unbind(&mut self, conn: &Conn<BytesCodec>, reason: UnbindReason) {
        self.setup.shared.relay_ended(conn);
        let joined = self.link.joined.get();
        if !joined {
            if let UnbindReason::ConnectFailed(e) = &reason {
                if self.retries_left > 0 && !self.client.is_closed() {
                    self.retries_left -= 1;
                    tracing::debug!(endpoint = %self.endpoint, error = %e, left = self.retries_left, "connect refused; retrying");
                    match conn.reconnect_after(self.setup.retry_delay, self.endpoint.clone()) {
                        Ok(()) => {
                            add(&self.setup.shared.counters.connect_retries, 1);
                            return;
                        }
                        Err(e) => tracing::debug!(error = %e, "cannot retry"),
                    }
                }
            }
        }
        let stopped = matches!(reason, UnbindReason::ReactorStopped);
        if reason.is_error() && !stopped {
            tracing::warn!(
                conn = %conn.id(),
                peer = ?conn.peer_addr(),
                client = %self.client.id(),
                endpoint = %self.endpoint,
                %reason,
                "backend connection ended"
            );
        }
        let client_open = !self.client.is_closed();
        if joined {
            self.client.close_connection_after_writing();
        } else {
            self.client.close_connection();
        }
        match reason {
            UnbindReason::ConnectFailed(_) | UnbindReason::ConnectTimeout if client_open => {
                connect_error(&self.setup, &self.endpoint);
            }
            UnbindReason::InactivityTimeout => {
                add(&self.setup.shared.counters.inactivity_errors, 1);
                if let Some(f) = &self.setup.on_inactivity_error {
                    f(&self.endpoint);
                }
            }
            _ => {}
        }
    }
}
