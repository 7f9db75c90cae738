//! `Link`: one proxied connection, the client's and the upstream's, with a
//! [`Lane`] each way, and the handlers of its two connections.

use std::cell::{OnceCell, RefCell};
use std::rc::{Rc, Weak};

use bytes::BytesMut;
use em_core::{Conn, Handler, UnbindReason};
use tokio::time::Instant;

use super::lane::{Ends, Lane};
use super::toxic::{Direction, Kind, ToxicId};
use super::Proxy;

/// One proxied connection.
pub(crate) struct Link {
    client: Conn,
    upstream: OnceCell<Conn>,
    /// Client to upstream.
    up: RefCell<Lane>,
    /// Upstream to client.
    down: RefCell<Lane>,
}

impl Link {
    /// Opens the upstream side of the client connection `client` and
    /// joins the two, with the proxy's toxics on each lane. Reactor
    /// thread, in the client's `post_init`.
    pub(crate) fn open(proxy: &Proxy, client: &Conn) -> Option<Rc<Link>> {
        let seed = proxy.next_seed();
        let link = Rc::new(Link {
            client: client.clone(),
            upstream: OnceCell::new(),
            up: RefCell::new(Lane::new(seed ^ 0x5555)),
            down: RefCell::new(Lane::new(seed ^ 0xaaaa_0000)),
        });
        let side = UpstreamSide { link: link.clone() };
        let upstream = match em_core::connect(proxy.upstream.clone(), side) {
            Ok(upstream) => upstream,
            Err(e) => {
                tracing::debug!(conn = %client.id(), upstream = %proxy.upstream, error = %e, "fault proxy: cannot connect upstream");
                client.close_connection();
                return None;
            }
        };
        tracing::debug!(conn = %client.id(), peer = ?client.peer_addr().map(|a| a.to_string()),
            upstream_conn = %upstream.id(), upstream = %proxy.upstream, "fault proxy: connection");
        let _ = link.upstream.set(upstream);
        for (id, toxic) in proxy.toxics.borrow().iter() {
            link.add_toxic(*id, toxic.kind.clone(), toxic.direction);
        }
        for direction in [Direction::Upstream, Direction::Downstream] {
            link.with_lane(direction, |lane, ends| {
                lane.splice(ends);
                None
            });
        }
        Some(link)
    }

    /// Adds a toxic to the lane of `direction`.
    pub(crate) fn add_toxic(self: &Rc<Self>, id: ToxicId, kind: Kind, direction: Direction) {
        tracing::debug!(conn = %self.client.id(), ?id, ?direction, ?kind, "fault proxy: toxic on");
        self.with_lane(direction, |lane, ends| lane.add(id, kind, ends));
    }

    /// Removes a toxic from the lane of `direction`.
    pub(crate) fn remove_toxic(self: &Rc<Self>, id: ToxicId, direction: Direction) {
        self.with_lane(direction, |lane, ends| {
            let (had, next) = lane.remove(id, ends);
            if had {
                tracing::debug!(conn = %self.client.id(), ?id, ?direction, spliced = !lane.is_toxic(), "fault proxy: toxic off");
            }
            next
        });
    }

    /// Bytes waiting in the toxics of both lanes.
    pub(crate) fn held_bytes(&self) -> usize {
        self.up.borrow().buffered() + self.down.borrow().buffered()
    }

    /// Closes both sides now (the proxy going down or stopping).
    pub(crate) fn close(&self) {
        self.client.close_connection();
        if let Some(upstream) = self.upstream.get() {
            upstream.close_connection();
        }
    }

    /// Runs `f` on the lane of `direction` with its ends, then arms the
    /// lane's timer for the time `f` returns.
    fn with_lane(
        self: &Rc<Self>,
        direction: Direction,
        f: impl FnOnce(&mut Lane, &Ends<'_>) -> Option<Instant>,
    ) {
        let Some(upstream) = self.upstream.get() else {
            return;
        };
        let (lane, ends) = match direction {
            Direction::Upstream => (
                &self.up,
                Ends {
                    source: &self.client,
                    target: upstream,
                },
            ),
            Direction::Downstream => (
                &self.down,
                Ends {
                    source: upstream,
                    target: &self.client,
                },
            ),
        };
        let mut lane = lane.borrow_mut();
        if let Some(at) = f(&mut lane, &ends) {
            let link = Rc::downgrade(self);
            lane.arm(at, move |delay| {
                em_timers::add_timer(delay, move || fire(&link, direction)).ok()
            });
        }
    }

    fn receive(self: &Rc<Self>, direction: Direction, data: BytesMut) {
        self.with_lane(direction, |lane, ends| lane.receive(data.freeze(), ends));
    }

    fn drained(self: &Rc<Self>, direction: Direction) {
        self.with_lane(direction, |lane, ends| {
            lane.drained(ends);
            None
        });
    }

    /// The connection on side `from` ended: its lane out ends after what
    /// it holds, and its lane in is dropped.
    fn ended(self: &Rc<Self>, from: Direction, reason: &UnbindReason) {
        let side = match from {
            Direction::Upstream => "client",
            Direction::Downstream => "upstream",
        };
        tracing::debug!(conn = %self.client.id(), side, %reason, "fault proxy: side closed");
        let back = match from {
            Direction::Upstream => &self.down,
            Direction::Downstream => &self.up,
        };
        back.borrow_mut().target_ended();
        self.with_lane(from, |lane, ends| lane.source_ended(ends));
    }
}

fn fire(link: &Weak<Link>, direction: Direction) {
    if let Some(link) = link.upgrade() {
        link.with_lane(direction, |lane, ends| lane.timer_fired(ends));
    }
}

/// The handler of the client's connection (accepted by the proxy).
pub(crate) struct ClientSide {
    pub(crate) proxy: Weak<Proxy>,
    pub(crate) link: Option<Rc<Link>>,
}

impl Handler for ClientSide {
    fn post_init(&mut self, conn: &Conn) {
        let Some(proxy) = self.proxy.upgrade() else {
            conn.close_connection();
            return;
        };
        self.link = Link::open(&proxy, conn);
        if let Some(link) = &self.link {
            proxy.links.borrow_mut().retain(|l| l.strong_count() > 0);
            proxy.links.borrow_mut().push(Rc::downgrade(link));
        }
    }

    fn receive_data(&mut self, _: &Conn, data: BytesMut) {
        if let Some(link) = &self.link {
            link.receive(Direction::Upstream, data);
        }
    }

    fn outbound_drained(&mut self, _: &Conn) {
        if let Some(link) = &self.link {
            link.drained(Direction::Downstream);
        }
    }

    fn unbind(&mut self, _: &Conn, reason: UnbindReason) {
        if let Some(link) = self.link.take() {
            link.ended(Direction::Upstream, &reason);
        }
    }
}

/// The handler of the proxy's connection to the upstream server.
struct UpstreamSide {
    link: Rc<Link>,
}

impl Handler for UpstreamSide {
    fn receive_data(&mut self, _: &Conn, data: BytesMut) {
        self.link.receive(Direction::Downstream, data);
    }

    fn outbound_drained(&mut self, _: &Conn) {
        self.link.drained(Direction::Upstream);
    }

    fn unbind(&mut self, _: &Conn, reason: UnbindReason) {
        self.link.ended(Direction::Downstream, &reason);
    }
}
