//! A server the reactors of a group serve together
//! ([`Builder::run_each`](crate::Builder::run_each)): each reactor's `n`-th
//! `start_server` with the same address text is the same server. Either
//! each reactor binds a listener of its own on the same port with
//! `SO_REUSEPORT` and the kernel spreads the connections, or one reactor
//! listens and hands the accepted sockets round robin to the reactors that
//! serve it (a std socket passed through the target's [`Handle`](crate::Handle)
//! and registered with the target's runtime there). Either way a
//! connection lives its whole life on the reactor that got it.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::net::{TcpListener, TcpStream};

use crate::error::{Error, Result};
use crate::net::address::Addr;
use crate::net::connection::Connection;
use crate::net::server::{bind_tcp, serve, Listener, Server};
use crate::net::transport::BoxTransport;
use crate::reactor::core::Core;
use crate::reactor::group::{Group, GroupKey, Membership};

/// Hand-offs one poll of the acceptor makes before it lets other work run.
const HANDOFFS_PER_POLL: usize = 64;

/// What a reactor keeps of its group servers: how many it started per
/// address text, and the hand-off queues by key (for deliveries).
#[derive(Default)]
struct Local {
    started: RefCell<HashMap<String, u32>>,
    handed: RefCell<HashMap<GroupKey, Weak<Handed>>>,
}

/// Starts this reactor's share of a group server on `addrs` (the
/// resolution of `shown`).
pub(crate) fn start<F, H>(
    core: Rc<Core>,
    member: Membership,
    shown: String,
    addrs: Vec<SocketAddr>,
    factory: F,
) -> Result<Server>
where
    F: FnMut() -> H + 'static,
    H: Connection,
{
    let local = core.local(Local::default);
    let seq = {
        let mut started = local.started.borrow_mut();
        let n = started.entry(shown.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let key: GroupKey = (shown, seq);
    let group = member.group.clone();
    let backlog = core.config.listen_backlog;
    if !group.handoff {
        let listener = group.with_server(&key, |known| {
            let (listener, addr) =
                bind_first(known.map_or(addrs.clone(), |a| vec![a]), backlog, true)?;
            Ok((listener, addr))
        })?;
        return serve(core, Listener::Tcp(listener), factory);
    }
    // Hand-off: the first reactor to start it listens; every reactor
    // (that one too) takes sockets from its queue.
    let owner = group.with_server(&key, |known| match known {
        Some(addr) => Ok((None, addr)),
        None => {
            let (listener, addr) = bind_first(addrs.clone(), backlog, false)?;
            Ok((Some(listener), addr))
        }
    })?;
    let addr = group
        .addr(&key)
        .ok_or_else(|| Error::bind(key.0.clone(), io::Error::other("no address")))?;
    group.join_server(&key, member.index);
    let handed = Rc::new(Handed {
        key: key.clone(),
        index: member.index,
        group,
        addr,
        queue: RefCell::new(VecDeque::new()),
        waker: RefCell::new(None),
        tcp: owner,
    });
    local
        .handed
        .borrow_mut()
        .insert(key, Rc::downgrade(&handed));
    serve(core, Listener::Handed(handed), factory)
}

/// Binds the first of `addrs` that binds; its listener and address.
fn bind_first(
    addrs: Vec<SocketAddr>,
    backlog: u32,
    reuseport: bool,
) -> Result<(TcpListener, SocketAddr)> {
    let mut last = (
        String::from("the address"),
        io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"),
    );
    for a in addrs {
        match bind_tcp(a, backlog, reuseport).and_then(|l| l.local_addr().map(|addr| (l, addr))) {
            Ok(bound) => return Ok(bound),
            Err(e) => last = (a.to_string(), e),
        }
    }
    Err(Error::bind(last.0, last.1))
}

/// One reactor's share of a hand-off server: the sockets handed to it, and
/// (on the reactor that listens) the listener.
pub(crate) struct Handed {
    key: GroupKey,
    index: usize,
    group: Arc<Group>,
    addr: SocketAddr,
    queue: RefCell<VecDeque<(std::net::TcpStream, SocketAddr)>>,
    waker: RefCell<Option<Waker>>,
    tcp: Option<TcpListener>,
}

impl Handed {
    pub(crate) fn local_addr(&self) -> Addr {
        Addr::Inet(self.addr)
    }

    fn push(&self, stream: std::net::TcpStream, peer: SocketAddr) {
        self.queue.borrow_mut().push_back((stream, peer));
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// The next socket for this reactor: one handed to it, or (on the
    /// listening reactor) one accepted whose turn is this reactor's; the
    /// others go to their reactors on the way.
    pub(crate) fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(BoxTransport, Addr)>> {
        if let Some((stream, peer)) = self.queue.borrow_mut().pop_front() {
            return Poll::Ready(TcpStream::from_std(stream).map(|s| transport(s, peer)));
        }
        if let Some(listener) = &self.tcp {
            for _ in 0..HANDOFFS_PER_POLL {
                match listener.poll_accept(cx) {
                    Poll::Ready(Ok((stream, peer))) => {
                        let target = self.group.next_member(&self.key).unwrap_or(self.index);
                        if target == self.index {
                            return Poll::Ready(Ok(transport(stream, peer)));
                        }
                        self.hand_to(target, stream, peer);
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        *self.waker.borrow_mut() = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            }
            // More may be waiting: poll again after other work.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Sends an accepted socket to reactor `target`; dropped (closed) if it
    /// cannot take it.
    fn hand_to(&self, target: usize, stream: TcpStream, peer: SocketAddr) {
        let Some(handle) = self.group.handle(target) else {
            return;
        };
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "hand-off: cannot detach an accepted socket");
                return;
            }
        };
        let key = self.key.clone();
        if let Err(e) = handle.schedule(move || deliver(key, std_stream, peer)) {
            tracing::debug!(%peer, target, error = %e, "hand-off: the reactor is stopping; connection dropped");
        }
    }
}

impl Drop for Handed {
    fn drop(&mut self) {
        self.group.leave_server(&self.key, self.index);
    }
}

/// On the target reactor: queues a handed socket for its share of `key`.
fn deliver(key: GroupKey, stream: std::net::TcpStream, peer: SocketAddr) {
    let Ok(core) = Core::current("hand-off") else {
        return;
    };
    let handed = core
        .local(Local::default)
        .handed
        .borrow()
        .get(&key)
        .and_then(Weak::upgrade);
    match handed {
        Some(h) => h.push(stream, peer),
        None => {
            tracing::debug!(%peer, "hand-off: this reactor no longer serves the address; connection dropped")
        }
    }
}

fn transport(stream: TcpStream, peer: SocketAddr) -> (BoxTransport, Addr) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    (Box::new(stream) as BoxTransport, Addr::Inet(peer))
}
