//! Several reactors, one per core ([`Builder::reactors`](crate::Builder::reactors)
//! and [`Builder::run_each`](crate::Builder::run_each)): n threads, each a
//! reactor of its own (a current-thread runtime and a `LocalSet`), sharing
//! what a group shares and nothing else: one stop, every reactor's
//! [`Handle`], and the servers they serve together. A connection lives its
//! whole life on the reactor that accepted it; timers, ticks and defers
//! stay per reactor.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};
use crate::reactor::core::{ConnectionId, Core};
use crate::reactor::remote::Handle;

/// A server the group serves together: the `n`-th `start_server` of each
/// reactor with the same address text is the same server.
pub(crate) type GroupKey = (String, u32);

/// What the reactors of a group share. `Send + Sync`; every reactor holds
/// it through its [`Membership`].
pub(crate) struct Group {
    size: usize,
    /// Every reactor's handle, by index, once all have started.
    handles: Mutex<Vec<Option<Handle>>>,
    started: Condvar,
    /// A reactor could not be started: the others stop at once.
    aborted: AtomicBool,
    servers: Mutex<HashMap<GroupKey, GroupServer>>,
    /// One acceptor hands accepted sockets round robin to the reactors
    /// (rather than a listener per reactor with `SO_REUSEPORT`).
    pub(crate) handoff: bool,
}

#[derive(Debug, Default)]
struct GroupServer {
    /// The address every reactor binds (with the port the first one got).
    addr: Option<SocketAddr>,
    /// Hand-off: the reactors serving it, in the order they joined.
    members: Vec<usize>,
    next: usize,
}

/// A reactor's place in its group.
#[derive(Clone)]
pub(crate) struct Membership {
    pub(crate) index: usize,
    pub(crate) group: Arc<Group>,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("index", &self.index)
            .field("reactors", &self.group.size)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Group {
    pub(crate) fn new(size: usize, handoff: bool) -> Arc<Self> {
        Arc::new(Group {
            size,
            handles: Mutex::new(vec![None; size]),
            started: Condvar::new(),
            aborted: AtomicBool::new(false),
            servers: Mutex::new(HashMap::new()),
            handoff,
        })
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Reactor `index` has started: records its handle, then waits until
    /// every reactor of the group has (so that the run blocks see all
    /// handles). Called once per reactor, before its run block. False when
    /// the group was aborted: a reactor could not be started.
    pub(crate) fn arrive(&self, index: usize, handle: Handle) -> bool {
        let mut handles = lock(&self.handles);
        handles[index] = Some(handle);
        if handles.iter().all(Option::is_some) {
            self.started.notify_all();
            return true;
        }
        while !handles.iter().all(Option::is_some) {
            if self.aborted.load(Ordering::SeqCst) {
                return false;
            }
            handles = self
                .started
                .wait(handles)
                .unwrap_or_else(PoisonError::into_inner);
        }
        true
    }

    /// A reactor could not be started: those waiting in [`Group::arrive`]
    /// give up.
    pub(crate) fn abort(&self) {
        let _handles = lock(&self.handles);
        self.aborted.store(true, Ordering::SeqCst);
        self.started.notify_all();
    }

    /// Every reactor's handle, by index.
    pub(crate) fn handles(&self) -> Vec<Handle> {
        lock(&self.handles).iter().flatten().cloned().collect()
    }

    /// Reactor `index`'s handle.
    pub(crate) fn handle(&self, index: usize) -> Option<Handle> {
        lock(&self.handles).get(index).cloned().flatten()
    }

    /// Stops every reactor of the group (each stops as `em::stop` stops
    /// one); a no-op for those already stopping.
    pub(crate) fn stop_all(&self) {
        for handle in self.handles() {
            handle.stop();
        }
    }

    /// Runs `f` with the address the first reactor bound for `key` (`None`
    /// for the first), and records the address `f` bound.
    pub(crate) fn with_server<R>(
        &self,
        key: &GroupKey,
        f: impl FnOnce(Option<SocketAddr>) -> Result<(R, SocketAddr)>,
    ) -> Result<R> {
        // Held across the bind, so that a second reactor binds the port the
        // first one got (port 0).
        let mut servers = lock(&self.servers);
        let known = servers.get(key).and_then(|s| s.addr);
        let (r, addr) = f(known)?;
        servers.entry(key.clone()).or_default().addr = Some(addr);
        Ok(r)
    }

    /// Hand-off: reactor `index` serves `key` from now on.
    pub(crate) fn join_server(&self, key: &GroupKey, index: usize) {
        let mut servers = lock(&self.servers);
        let server = servers.entry(key.clone()).or_default();
        if !server.members.contains(&index) {
            server.members.push(index);
        }
    }

    /// Hand-off: reactor `index` no longer serves `key`.
    pub(crate) fn leave_server(&self, key: &GroupKey, index: usize) {
        if let Some(server) = lock(&self.servers).get_mut(key) {
            server.members.retain(|m| *m != index);
        }
    }

    /// Hand-off: the reactor the next accepted socket of `key` goes to.
    pub(crate) fn next_member(&self, key: &GroupKey) -> Option<usize> {
        let mut servers = lock(&self.servers);
        let server = servers.get_mut(key)?;
        if server.members.is_empty() {
            return None;
        }
        let i = server.next % server.members.len();
        server.next = server.next.wrapping_add(1);
        Some(server.members[i])
    }

    /// Hand-off: the address of `key`'s listener, once bound.
    pub(crate) fn addr(&self, key: &GroupKey) -> Option<SocketAddr> {
        lock(&self.servers).get(key).and_then(|s| s.addr)
    }
}

/// The index of the reactor running on this thread in its group: `0` for a
/// reactor on its own, `0..n` for one of [`Builder::run_each`](crate::Builder::run_each)'s
/// `n`. Reactor thread only.
///
/// Errors with `is_no_reactor()` where no reactor runs.
///
/// ```
/// # use em_core as em;
/// em::Reactor::builder().reactors(2).run_each(|index| {
///     assert_eq!(em::reactor_index().unwrap(), index);
///     em::stop(); // stops both
/// })?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub fn reactor_index() -> Result<usize> {
    let core = Core::current("reactor_index")?;
    Ok(core.config.member.as_ref().map_or(0, |m| m.index))
}

/// The handle of every reactor of this thread's group, by index (one, for a
/// reactor on its own): to reach any reactor from any thread. Reactor
/// thread only (the handles themselves are `Send`).
///
/// Errors with `is_no_reactor()` where no reactor runs.
pub fn handles() -> Result<Vec<Handle>> {
    let core = Core::current("handles")?;
    Ok(match &core.config.member {
        Some(m) => m.group.handles(),
        None => vec![Handle::new(core.remote.clone())],
    })
}

/// The handle of the reactor that owns connection `id` (its index is part
/// of the id): to run a closure on that connection's reactor from another
/// reactor of the group, with [`Handle::schedule`]. Reactor thread only.
///
/// Errors with `is_no_reactor()` where no reactor runs, and
/// `is_invalid_argument()` for an id of another group or reactor.
pub fn handle_for(id: ConnectionId) -> Result<Handle> {
    let core = Core::current("handle_for")?;
    match (id.reactor_index(), &core.config.member) {
        (None, None) => Ok(Handle::new(core.remote.clone())),
        (Some(index), Some(m)) => m
            .group
            .handle(index)
            .ok_or_else(|| Error::invalid_argument("handle_for", "no such reactor in this group")),
        _ => Err(Error::invalid_argument(
            "handle_for",
            "the connection is not of this reactor's group",
        )),
    }
}

/// Pinning reactor threads to cores (`Builder::pin_to_cores`).
pub(crate) mod affinity {
    use std::sync::Mutex;

    /// The cores the process ran on before a group pinned its reactors:
    /// what a worker thread started from a pinned reactor goes back to.
    static UNPINNED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

    /// Records `cpus` as the cores of an unpinned thread.
    pub(crate) fn remember_unpinned(cpus: &[usize]) {
        let mut unpinned = UNPINNED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if unpinned.is_empty() {
            unpinned.extend_from_slice(cpus);
        }
    }

    /// Gives the calling thread every core the process had before a group
    /// pinned its reactors (a no-op when none did): for worker threads a
    /// pinned reactor starts, which would otherwise inherit its one core.
    pub(crate) fn unpin_current_thread() {
        let cpus = UNPINNED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if cpus.is_empty() {
            return;
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::thread::{sched_setaffinity, CpuSet};
            let mut set = CpuSet::new();
            for cpu in cpus {
                set.set(cpu);
            }
            if let Err(e) = sched_setaffinity(None, &set) {
                tracing::debug!(error = %e, "cannot unpin a worker thread");
            }
        }
    }

    /// The cores this process may run on, in order.
    pub(crate) fn cpus() -> Vec<usize> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::thread::{sched_getaffinity, CpuSet};
            match sched_getaffinity(None) {
                Ok(set) => (0..CpuSet::MAX_CPU).filter(|c| set.is_set(*c)).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "pin_to_cores: cannot read this process's cores; not pinning");
                    Vec::new()
                }
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            tracing::warn!("pin_to_cores: not supported on this system; not pinning");
            Vec::new()
        }
    }

    /// Gives the calling thread back, when dropped, the cores it had
    /// before [`pin_caller`] pinned it.
    pub(crate) struct Restore {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        saved: Option<rustix::thread::CpuSet>,
    }

    impl Drop for Restore {
        fn drop(&mut self) {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            if let Some(set) = self.saved.take() {
                if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
                    tracing::warn!(error = %e, "pin_to_cores: cannot unpin the calling thread");
                }
            }
        }
    }

    /// [`pin`] for a thread that is the caller's again once its reactor
    /// stops (reactor 0 of `run_each`): the guard restores its cores.
    pub(crate) fn pin_caller(cpu: Option<usize>) -> Restore {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let saved = cpu.and_then(|_| rustix::thread::sched_getaffinity(None).ok());
        pin(cpu);
        Restore {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            saved,
        }
    }

    /// Pins the calling thread to `cpu`, if given; a refusal is logged.
    pub(crate) fn pin(cpu: Option<usize>) {
        let Some(cpu) = cpu else {
            return;
        };
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::thread::{sched_setaffinity, CpuSet};
            let mut set = CpuSet::new();
            set.set(cpu);
            if let Err(e) = sched_setaffinity(None, &set) {
                tracing::warn!(cpu, error = %e, "pin_to_cores: cannot pin a reactor thread");
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = cpu;
    }
}
