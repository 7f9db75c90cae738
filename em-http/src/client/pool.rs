//! Keep-alive connection reuse: a client's open connections by origin
//! (scheme, host, port and proxy), the idle ones kept up to a bound and
//! closed by em's inactivity timeout after the idle timeout. Reactor thread
//! only.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::client::connection::ConnShared;

/// Which connections can carry a request: same scheme, host, port and
/// proxy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The proxy connected to, if any: host, port, and whether it is a
    /// SOCKS5 one.
    pub(crate) proxy: Option<(String, u16, bool)>,
}

impl PoolKey {
    /// Whether requests go to an HTTP proxy (in absolute form, or through
    /// `CONNECT`).
    pub(crate) fn http_proxy(&self) -> bool {
        matches!(self.proxy, Some((_, _, false)))
    }

    /// Where the TCP connection goes: the proxy, or the origin.
    pub(crate) fn dial(&self) -> (&str, u16) {
        match &self.proxy {
            Some((host, port, _)) => (host, *port),
            None => (&self.host, self.port),
        }
    }
}

/// One origin's connections: all of them (open or being opened), and
/// those idle, most recently used last. Each connection keeps a weak
/// handle to its origin's, so that only a checkout looks its key up.
#[derive(Debug, Default)]
pub(crate) struct Origin {
    all: RefCell<Vec<Rc<ConnShared>>>,
    /// Idle connections, each once (`ConnShared::listed_idle`). An entry
    /// may have gone busy (taken by a pipelined request) or closed since:
    /// `checkout` skips such entries as it meets them.
    idle: RefCell<Vec<Rc<ConnShared>>>,
}

/// One client's connections.
#[derive(Debug)]
pub(crate) struct Pool {
    by_origin: RefCell<HashMap<PoolKey, Rc<Origin>>>,
    max_idle_per_host: usize,
    idle_timeout: Duration,
    /// Requests one connection may carry at once (1: no pipelining).
    pipeline_depth: usize,
}

impl Pool {
    pub(crate) fn new(
        max_idle_per_host: usize,
        idle_timeout: Duration,
        pipeline_depth: usize,
    ) -> Self {
        Pool {
            by_origin: RefCell::new(HashMap::new()),
            max_idle_per_host,
            idle_timeout,
            pipeline_depth: pipeline_depth.max(1),
        }
    }

    /// A connection that can carry a request to `key` now: an idle one
    /// first (the most recently used), else, where pipelining is on and
    /// the request may be pipelined, the least busy one with room. Takes
    /// constant time in the common case (an idle connection at hand).
    pub(crate) fn checkout(&self, key: &PoolKey, pipelinable: bool) -> Option<Rc<ConnShared>> {
        let origin = self.by_origin.borrow().get(key)?.clone();
        let mut idle = origin.idle.borrow_mut();
        while let Some(conn) = idle.pop() {
            conn.listed_idle.set(false);
            if conn.available(0) {
                return Some(conn);
            }
        }
        if pipelinable && self.pipeline_depth > 1 {
            return origin
                .all
                .borrow()
                .iter()
                .filter(|c| c.available(self.pipeline_depth - 1))
                .min_by_key(|c| c.in_flight())
                .cloned();
        }
        None
    }

    /// A connection still being set up that a pipelinable request to
    /// `key` may wait for instead of opening its own (where pipelining is
    /// on): requests started together share connections as they would
    /// once those are open. See [`ConnShared::join_setup`].
    pub(crate) fn joinable(&self, key: &PoolKey) -> Option<Rc<ConnShared>> {
        if self.pipeline_depth <= 1 {
            return None;
        }
        let map = self.by_origin.borrow();
        let all = map.get(key)?.all.borrow();
        all.iter()
            .find(|c| c.joinable(self.pipeline_depth - 1))
            .cloned()
    }

    /// A new connection joins the pool (as soon as it is made, so that
    /// pipelinable requests can wait for it).
    pub(crate) fn insert(&self, conn: &Rc<ConnShared>) {
        let origin = self
            .by_origin
            .borrow_mut()
            .entry(conn.key.clone())
            .or_default()
            .clone();
        origin.all.borrow_mut().push(conn.clone());
        *conn.origin.borrow_mut() = Rc::downgrade(&origin);
    }

    /// `conn` has nothing in flight: whether to keep it (its inactivity
    /// timeout becomes the idle timeout) or close it (as many as
    /// `max_idle_per_host` are idle already, or it is not in the pool).
    pub(crate) fn idle(&self, conn: &Rc<ConnShared>) -> bool {
        if !conn.listed_idle.get() {
            let Some(origin) = conn.origin.borrow().upgrade() else {
                return false;
            };
            let mut idle = origin.idle.borrow_mut();
            // Entries gone stale first, so that they do not count.
            if idle.len() >= self.max_idle_per_host {
                idle.retain(|c| {
                    let keep = c.available(0);
                    c.listed_idle.set(keep);
                    keep
                });
            }
            if idle.len() >= self.max_idle_per_host {
                return false;
            }
            conn.listed_idle.set(true);
            idle.push(conn.clone());
        }
        conn.set_inactivity_timeout(self.idle_timeout);
        true
    }

    /// `conn` ended, or will carry no more requests.
    pub(crate) fn remove(&self, conn: &ConnShared) {
        let Some(origin) = conn.origin.replace(Weak::new()).upgrade() else {
            return;
        };
        let empty = {
            let mut all = origin.all.borrow_mut();
            all.retain(|c| !std::ptr::eq(&**c, conn));
            all.is_empty()
        };
        if conn.listed_idle.replace(false) {
            origin
                .idle
                .borrow_mut()
                .retain(|c| !std::ptr::eq(&**c, conn));
        }
        if empty {
            let mut map = self.by_origin.borrow_mut();
            if map.get(&conn.key).is_some_and(|o| Rc::ptr_eq(o, &origin)) {
                map.remove(&conn.key);
            }
        }
    }

    /// Connections open or being opened, and how many of them are idle.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let map = self.by_origin.borrow();
        let open = map.values().map(|o| o.all.borrow().len()).sum();
        let idle = map
            .values()
            .map(|o| {
                o.all
                    .borrow()
                    .iter()
                    .filter(|c| c.is_open() && c.in_flight() == 0)
                    .count()
            })
            .sum();
        (open, idle)
    }
}
