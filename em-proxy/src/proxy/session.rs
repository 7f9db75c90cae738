//! The proxy's engine: [`Front`], the client's handler, owns the session
//! ([`Core`]); [`Back`], one per backend, reports to it.
//!
//! **Which way bytes move.** Without `on_data`, with one server and no
//! mirror, the client's input is relayed by em (`proxy_incoming_to`, the
//! splice path); otherwise it comes to `Front::receive_data` and is
//! copied to each backend. Without `on_response`, with one server, the
//! server's replies are relayed by em to the client; otherwise they come
//! to `Back::receive_data`, through `on_response`.
//!
//! **Backpressure.** em's relays hold the reader while the writer has
//! more than `bufsize` waiting. On the copy path the same rule is kept by
//! hand: a server's watermarks are (`bufsize`, `bufsize / 4`); past the
//! high one the client is paused, and the server's `outbound_drained`
//! resumes it; a client behind on replies pauses the servers until its
//! own `outbound_drained`. A mirror never pauses anyone: past its
//! watermark, its copies are dropped and counted.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use em_core::{Conn, Connection, ConnectionId, Endpoint, UnbindReason};
use tokio_util::codec::BytesCodec;

use super::{Data, Finish, OnConnect, OnData, OnFinish, OnResponse, Session, Setup};
use crate::backend::{BackendSpec, Role};
use crate::server::Way;
use crate::stats::add;

/// How long a mirror may go without progress once its client has gone:
/// its queued copy is written if it reads, and it is closed if it does not.
const MIRROR_LINGER: Duration = Duration::from_secs(5);

/// The client's handler.
pub(crate) struct Front {
    setup: Rc<Setup>,
    core: Option<Rc<Core>>,
}

impl Front {
    pub(crate) fn new(setup: Rc<Setup>) -> Front {
        Front { setup, core: None }
    }
}

/// One backend of a session.
struct Slot {
    name: Rc<str>,
    role: Role,
    conn: Conn<BytesCodec>,
}

/// A session: the client, its backends and its callbacks.
struct Core {
    setup: Rc<Setup>,
    client: Conn<BytesCodec>,
    backends: RefCell<Vec<Slot>>,
    on_data: RefCell<Option<OnData>>,
    on_response: RefCell<Option<OnResponse>>,
    on_connect: RefCell<Option<OnConnect>>,
    on_finish: RefCell<Option<OnFinish>>,
    /// The client is paused because a server is behind.
    client_held: Cell<bool>,
    /// The servers are paused because the client is behind.
    servers_held: Cell<bool>,
}

impl Connection for Front {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        let setup = self.setup.clone();
        setup.shared.session_opened();
        if let Some(tls) = &setup.options.tls {
            if let Err(e) = conn.start_tls(tls) {
                tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), error = %e, "cannot start TLS; closing the client");
                conn.close_connection();
                return;
            }
        }
        let mut session = Session {
            client: conn.clone(),
            backends: Vec::new(),
            on_data: None,
            on_response: None,
            on_connect: None,
            on_finish: None,
        };
        (setup.configure)(&mut session);
        let core = Rc::new(Core {
            setup: setup.clone(),
            client: conn.clone(),
            backends: RefCell::new(Vec::new()),
            on_data: RefCell::new(session.on_data),
            on_response: RefCell::new(session.on_response),
            on_connect: RefCell::new(session.on_connect),
            on_finish: RefCell::new(session.on_finish),
            client_held: Cell::new(false),
            servers_held: Cell::new(false),
        });
        self.core = Some(core.clone());
        core.open(session.backends);
    }

    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        if let Some(core) = &self.core {
            core.client_sent(data.freeze());
        }
    }

    fn outbound_drained(&mut self, _: &Conn<BytesCodec>) {
        if let Some(core) = &self.core {
            core.release_servers();
        }
    }

    fn unbind(&mut self, conn: &Conn<BytesCodec>, reason: UnbindReason) {
        self.setup.shared.relay_ended(conn);
        if reason.is_error() {
            tracing::warn!(conn = %conn.id(), peer = ?conn.peer_addr(), %reason, "client connection ended");
        } else {
            tracing::debug!(conn = %conn.id(), peer = ?conn.peer_addr(), %reason, "client gone");
        }
        if let Some(core) = self.core.take() {
            for slot in core.backends.borrow_mut().drain(..) {
                if slot.role == Role::Mirror {
                    slot.conn.set_comm_inactivity_timeout(MIRROR_LINGER);
                }
                slot.conn.close_connection_after_writing();
            }
        }
        self.setup.shared.session_closed();
    }
}

impl Core {
    /// Connects the session's backends and sets up the relays em can run.
    fn open(self: &Rc<Self>, specs: Vec<BackendSpec>) {
        let setup = &self.setup;
        let counters = &setup.shared.counters;
        let now = Instant::now();
        for spec in specs {
            if spec.role == Role::Mirror && !setup.mirrors.should_try(&spec.name, now) {
                add(&counters.mirror_skipped, 1);
                continue;
            }
            let back = Back {
                core: Rc::downgrade(self),
                setup: setup.clone(),
                name: spec.name.clone(),
                role: spec.role,
                endpoint: spec.endpoint.clone(),
            };
            match em_core::connect(spec.endpoint.clone(), back) {
                Ok(conn) => {
                    let high = match spec.role {
                        Role::Relay => setup.options.bufsize,
                        Role::Mirror => setup.options.mirror_watermark,
                    };
                    set_watermark(&conn, high);
                    self.backends.borrow_mut().push(Slot {
                        name: spec.name,
                        role: spec.role,
                        conn,
                    });
                }
                Err(e) => {
                    tracing::warn!(
                        conn = %self.client.id(),
                        peer = ?self.client.peer_addr(),
                        backend = %spec.name,
                        endpoint = %spec.endpoint,
                        error = %e,
                        "cannot connect to the backend"
                    );
                    if spec.role == Role::Mirror {
                        add(&counters.mirror_failures, 1);
                        setup.mirrors.failed(&spec.name, now);
                    }
                }
            }
        }
        let backends = self.backends.borrow();
        let servers: Vec<&Conn<BytesCodec>> = backends
            .iter()
            .filter(|s| s.role == Role::Relay)
            .map(|s| &s.conn)
            .collect();
        if servers.is_empty() {
            tracing::warn!(
                conn = %self.client.id(),
                peer = ?self.client.peer_addr(),
                "no server for this client (the setup opened none, or none could be reached); closing it"
            );
            self.client.close_connection();
            return;
        }
        let bufsize = setup.options.bufsize;
        let mirrors = backends.len() > servers.len();
        if let [server] = servers[..] {
            if self.on_data.borrow().is_none() && !mirrors {
                match self.client.proxy_incoming_to(server, bufsize) {
                    Ok(()) => setup.shared.relay_started(&self.client, Way::In),
                    Err(e) => {
                        tracing::warn!(conn = %self.client.id(), peer = ?self.client.peer_addr(), error = %e, "cannot relay to the server; copying")
                    }
                }
            }
            if self.on_response.borrow().is_none() {
                match server.proxy_incoming_to(&self.client, bufsize) {
                    Ok(()) => setup.shared.relay_started(server, Way::Out),
                    Err(e) => {
                        tracing::warn!(conn = %self.client.id(), peer = ?self.client.peer_addr(), error = %e, "cannot relay from the server; copying")
                    }
                }
            }
        }
    }

    /// A chunk from the client: through `on_data`, to the backends.
    fn client_sent(&self, data: Bytes) {
        let counters = &self.setup.shared.counters;
        add(&counters.bytes_from_clients, data.len() as u64);
        let routed = match self.on_data.borrow_mut().as_mut() {
            Some(on_data) => on_data(data),
            None => Data::All(data),
        };
        let (data, only) = match routed {
            Data::All(data) => (data, None),
            Data::To(data, names) => (data, Some(names)),
            Data::Drop => return,
        };
        if data.is_empty() {
            return;
        }
        let len = data.len() as u64;
        let mut behind = false;
        for slot in self.backends.borrow().iter() {
            if let Some(names) = &only {
                if !names.iter().any(|n| **n == *slot.name) {
                    continue;
                }
            }
            match slot.role {
                Role::Relay => {
                    slot.conn.send_data(data.clone());
                    behind |= slot.conn.is_above_high_watermark();
                }
                Role::Mirror => {
                    if slot.conn.outbound_data_size() >= self.setup.options.mirror_watermark {
                        add(&counters.mirror_dropped_bytes, len);
                        add(&counters.mirror_dropped_chunks, 1);
                    } else {
                        slot.conn.send_data(data.clone());
                        add(&counters.mirror_bytes, len);
                    }
                }
            }
        }
        if behind && !self.client_held.replace(true) {
            self.client.pause();
        }
    }

    /// A chunk a server replied: through `on_response`, to the client.
    fn server_replied(&self, name: &str, data: Bytes) {
        let reply = match self.on_response.borrow_mut().as_mut() {
            Some(on_response) => on_response(name, data),
            None => Some(data),
        };
        let Some(reply) = reply.filter(|r| !r.is_empty()) else {
            return;
        };
        add(
            &self.setup.shared.counters.bytes_to_clients,
            reply.len() as u64,
        );
        self.client.send_data(reply);
        if self.client.is_above_high_watermark() && !self.servers_held.replace(true) {
            for slot in self.servers() {
                slot.pause();
            }
        }
    }

    fn servers(&self) -> Vec<Conn<BytesCodec>> {
        self.backends
            .borrow()
            .iter()
            .filter(|s| s.role == Role::Relay)
            .map(|s| s.conn.clone())
            .collect()
    }

    /// The client caught up: the servers may be read again.
    fn release_servers(&self) {
        if self.servers_held.replace(false) {
            for server in self.servers() {
                server.resume();
            }
        }
    }

    /// A server caught up: the client may be read again once none is
    /// behind.
    fn server_drained(&self) {
        if self.client_held.get()
            && !self
                .backends
                .borrow()
                .iter()
                .any(|s| s.role == Role::Relay && s.conn.is_above_high_watermark())
        {
            self.client_held.set(false);
            self.client.resume();
        }
    }

    fn remove(&self, id: ConnectionId) {
        self.backends.borrow_mut().retain(|s| s.conn.id() != id);
        // A server gone may have been the one holding the client.
        self.server_drained();
    }
}

/// Sets `conn`'s high watermark to `high` (low: a quarter of it), raising
/// its hard cap on queued output if it has to.
fn set_watermark(conn: &Conn<BytesCodec>, high: usize) {
    if high > conn.max_outbound() {
        let _ = conn.set_max_outbound(high.saturating_mul(2));
    }
    if let Err(e) = conn.set_outbound_watermarks(high, high / 4) {
        tracing::warn!(conn = %conn.id(), error = %e, "cannot set the backend's watermarks");
    }
}

/// A backend's handler.
struct Back {
    core: Weak<Core>,
    setup: Rc<Setup>,
    name: Rc<str>,
    role: Role,
    endpoint: Endpoint,
}

impl Connection for Back {
    type Codec = BytesCodec;
    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn connection_completed(&mut self, _: &Conn<BytesCodec>) {
        if self.role == Role::Mirror {
            self.setup.mirrors.succeeded(&self.name);
        }
        if let Some(core) = self.core.upgrade() {
            if let Some(on_connect) = core.on_connect.borrow_mut().as_mut() {
                on_connect(&self.name);
            }
        }
    }

    fn receive_data(&mut self, _: &Conn<BytesCodec>, data: BytesMut) {
        // A mirror's replies are read and dropped.
        if self.role == Role::Relay {
            if let Some(core) = self.core.upgrade() {
                core.server_replied(&self.name, data.freeze());
            }
        }
    }

    fn outbound_drained(&mut self, _: &Conn<BytesCodec>) {
        if self.role == Role::Relay {
            if let Some(core) = self.core.upgrade() {
                core.server_drained();
            }
        }
    }

    fn unbind(&mut self, conn: &Conn<BytesCodec>, reason: UnbindReason) {
        self.setup.shared.relay_ended(conn);
        let stopped = matches!(reason, UnbindReason::ReactorStopped);
        if reason.is_error() && !stopped {
            tracing::warn!(
                conn = %conn.id(),
                peer = ?conn.peer_addr(),
                backend = %self.name,
                endpoint = %self.endpoint,
                %reason,
                "backend connection ended"
            );
        }
        let core = self.core.upgrade();
        if let Some(core) = &core {
            core.remove(conn.id());
        }
        match self.role {
            Role::Mirror => {
                if reason.is_error() && !stopped {
                    add(&self.setup.shared.counters.mirror_failures, 1);
                    let delay = self.setup.mirrors.failed(&self.name, Instant::now());
                    tracing::debug!(backend = %self.name, ?delay, "new sessions skip this mirror for a while");
                }
            }
            Role::Relay => {
                let Some(core) = core else { return };
                if core.client.is_closed() {
                    return;
                }
                let finish = match core.on_finish.borrow_mut().as_mut() {
                    Some(on_finish) => on_finish(&self.name),
                    None => Finish::Close,
                };
                if finish == Finish::Close {
                    core.client.close_connection_after_writing();
                }
            }
        }
    }
}
