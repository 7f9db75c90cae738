//! Several reactors, one per core (`Builder::reactors`, `run_each`): how
//! connections spread over the group, that each stays on its reactor's
//! thread, one stop for the group, errors and panics, reaching another
//! reactor through its `Handle`, per-reactor timers, shared servers, and
//! pinning to cores.

mod support;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use bytes::BytesMut;
use em::{Conn, Connection, ConnectionId, UnbindReason};
use tokio_util::codec::{BytesCodec, LinesCodec};

use support::*;

/// Values pushed from several reactor threads.
type Shared<T> = Arc<Mutex<Vec<T>>>;

/// What a run block tells the client thread once its server is up.
struct Ready {
    index: usize,
    addrs: Vec<SocketAddr>,
    handles: Vec<em::Handle>,
}

/// Spawns the client thread of a group test: it waits (bounded) until all
/// `n` run blocks sent their [`Ready`], checks that they serve the same
/// addresses, runs `f` with those and the group's handles, and stops the
/// group when `f` ends, however it ends.
fn clients<T: Send + 'static>(
    n: usize,
    f: impl FnOnce(&[SocketAddr], &[em::Handle]) -> T + Send + 'static,
) -> (mpsc::Sender<Ready>, thread::JoinHandle<T>) {
    let (tx, rx) = mpsc::channel::<Ready>();
    let t = thread::spawn(move || {
        let mut ready: Vec<Ready> = (0..n).map(|_| recv(&rx)).collect();
        ready.sort_by_key(|r| r.index);
        let indices: Vec<usize> = ready.iter().map(|r| r.index).collect();
        assert_eq!(indices, (0..n).collect::<Vec<_>>());
        for r in &ready {
            assert_eq!(
                r.addrs, ready[0].addrs,
                "every reactor serves the same addresses"
            );
        }
        let handles = ready[0].handles.clone();
        let _stop = StopOnDrop(handles[0].clone());
        f(&ready[0].addrs, &handles)
    });
    (tx, t)
}

/// Joins a client thread; re-raises its panic.
fn join<T>(t: thread::JoinHandle<T>) -> T {
    t.join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Opens `total` connections to `addr` from 4 threads, each echoing one
/// message before it closes.
fn connect_and_echo_each(addr: SocketAddr, total: usize) {
    const THREADS: usize = 4;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for i in (t..total).step_by(THREADS) {
                    let mut s = client(addr);
                    let msg = format!("hello {i}");
                    assert_eq!(echo_round(&mut s, msg.as_bytes()), msg.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        join(t);
    }
}

// ---------------------------------------------------------------------
// 1-3: 1,000 connections over two reactors, both accept paths.
// ---------------------------------------------------------------------

/// One connection's life as its handler saw it.
#[derive(Debug)]
struct ConnRecord {
    id: ConnectionId,
    /// `reactor_index()` in `post_init`.
    reactor: usize,
    /// Each callback and the thread it ran on.
    calls: Vec<(&'static str, ThreadId)>,
}

#[derive(Debug, Default)]
struct Observations {
    conns: Vec<ConnRecord>,
    /// The thread each reactor's run block ran on.
    reactor_threads: HashMap<usize, ThreadId>,
}

/// Echoes, and records the thread of each callback; hands its record in at
/// `unbind`.
struct Recorder {
    id: Option<ConnectionId>,
    reactor: usize,
    calls: Vec<(&'static str, ThreadId)>,
    obs: Arc<Mutex<Observations>>,
}

impl Connection for Recorder {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn post_init(&mut self, conn: &Conn<BytesCodec>) {
        self.id = Some(conn.id());
        self.reactor = em::reactor_index().expect("reactor_index");
        self.calls.push(("post_init", thread::current().id()));
    }

    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        self.calls.push(("receive_data", thread::current().id()));
        conn.send_data(data);
    }

    fn unbind(&mut self, _conn: &Conn<BytesCodec>, _reason: UnbindReason) {
        self.calls.push(("unbind", thread::current().id()));
        self.obs.lock().unwrap().conns.push(ConnRecord {
            id: self.id.expect("post_init ran"),
            reactor: self.reactor,
            calls: std::mem::take(&mut self.calls),
        });
    }
}

const CONNECTIONS: usize = 1000;

/// Two reactors serve one server on "127.0.0.1:0" (with `SO_REUSEPORT`
/// listeners, or one acceptor handing off); 1,000 clients echo once each.
fn thousand_connections_on_two_reactors(handoff: bool) -> Observations {
    let obs = Arc::new(Mutex::new(Observations::default()));
    let (ready, client) = clients(2, |addrs, _| {
        connect_and_echo_each(addrs[0], CONNECTIONS);
    });
    let seen = obs.clone();
    run_each_with_watchdog(
        em::Reactor::builder().reactors(2).accept_handoff(handoff),
        move |index| -> em::Result<()> {
            seen.lock()
                .unwrap()
                .reactor_threads
                .insert(index, thread::current().id());
            let obs = seen.clone();
            let server = em::start_server("127.0.0.1:0", move || Recorder {
                id: None,
                reactor: usize::MAX,
                calls: Vec::new(),
                obs: obs.clone(),
            })?;
            ready
                .send(Ready {
                    index,
                    addrs: vec![server.local_addr().inet().expect("a TCP server")],
                    handles: em::handles()?,
                })
                .ok();
            Ok(())
        },
    )
    .unwrap();
    join(client);
    Arc::try_unwrap(obs)
        .expect("the group is down")
        .into_inner()
        .unwrap()
}

fn per_reactor(obs: &Observations) -> [usize; 2] {
    let mut counts = [0; 2];
    for c in &obs.conns {
        counts[c.reactor] += 1;
    }
    counts
}

#[test]
fn reuseport_spreads_connections_across_reactors() {
    let obs = thousand_connections_on_two_reactors(false);
    let counts = per_reactor(&obs);
    assert_eq!(counts.iter().sum::<usize>(), CONNECTIONS, "{counts:?}");
    // The kernel spreads by a hash of the 4-tuple: about half each.
    for c in counts {
        assert!(c >= CONNECTIONS / 10, "uneven spread: {counts:?}");
    }
}

#[test]
fn handoff_splits_connections_round_robin() {
    let obs = thousand_connections_on_two_reactors(true);
    assert_eq!(
        per_reactor(&obs),
        [CONNECTIONS / 2, CONNECTIONS / 2],
        "round robin over two reactors"
    );
}

/// Every callback of a connection runs on one thread: the thread of the
/// reactor whose index the connection's id carries.
fn assert_callbacks_on_owner_thread(obs: &Observations) {
    assert_eq!(obs.conns.len(), CONNECTIONS);
    assert_eq!(obs.reactor_threads.len(), 2);
    assert_ne!(obs.reactor_threads[&0], obs.reactor_threads[&1]);
    for c in &obs.conns {
        let names: Vec<&str> = c.calls.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["post_init", "receive_data", "unbind"], "{}", c.id);
        let owner = c.id.reactor_index().expect("a group's connection");
        assert_eq!(owner, c.reactor, "{}: reactor_index() in post_init", c.id);
        for (name, thread) in &c.calls {
            assert_eq!(
                *thread, obs.reactor_threads[&owner],
                "{}: {name} ran off reactor {owner}'s thread",
                c.id
            );
        }
    }
}

#[test]
fn callbacks_of_a_connection_run_on_its_reactor_thread_reuseport() {
    assert_callbacks_on_owner_thread(&thousand_connections_on_two_reactors(false));
}

#[test]
fn callbacks_of_a_connection_run_on_its_reactor_thread_handoff() {
    assert_callbacks_on_owner_thread(&thousand_connections_on_two_reactors(true));
}

#[test]
fn connection_ids_are_unique_across_reactors_and_show_the_reactor() {
    for handoff in [false, true] {
        let obs = thousand_connections_on_two_reactors(handoff);
        let ids: HashSet<ConnectionId> = obs.conns.iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), CONNECTIONS, "duplicate ids (handoff {handoff})");
        // Each reactor numbers its own connections; the reactor bits keep
        // them apart.
        let numbers: Vec<HashSet<u64>> = (0..2)
            .map(|r| {
                obs.conns
                    .iter()
                    .filter(|c| c.reactor == r)
                    .map(|c| c.id.get() & ((1 << 48) - 1))
                    .collect()
            })
            .collect();
        assert!(
            !numbers[0].is_disjoint(&numbers[1]),
            "both reactors count from the same start, so the low bits overlap"
        );
        for c in &obs.conns {
            let shown = c.id.to_string();
            let prefix = format!("#{}.", c.reactor);
            let n = shown
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{shown} does not start with {prefix}"));
            assert_eq!(n.parse::<u64>().unwrap(), c.id.get() & ((1 << 48) - 1));
        }
    }
}

// ---------------------------------------------------------------------
// 4: one stop for the group.
// ---------------------------------------------------------------------

/// Counts `post_init`s and `unbind(ReactorStopped)`s per reactor.
struct StopCounter {
    accepted: mpsc::Sender<usize>,
    stopped: Arc<[AtomicUsize; 2]>,
}

impl Connection for StopCounter {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn post_init(&mut self, _conn: &Conn<BytesCodec>) {
        self.accepted.send(em::reactor_index().unwrap()).ok();
    }

    fn receive_data(&mut self, _conn: &Conn<BytesCodec>, _data: BytesMut) {}

    fn unbind(&mut self, _conn: &Conn<BytesCodec>, reason: UnbindReason) {
        if matches!(reason, UnbindReason::ReactorStopped) {
            self.stopped[em::reactor_index().unwrap()].fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Two reactors with hand-off serve 10 connections (5 each); once all are
/// accepted, `stop` stops the group. Returns the run's result, the
/// shutdown hooks run per reactor, and the `unbind(ReactorStopped)` per
/// reactor.
fn stop_group_with_open_connections(
    stop: impl FnOnce(&[em::Handle]) + Send + 'static,
) -> (em::Result<()>, [usize; 2], [usize; 2]) {
    const OPEN: usize = 10;
    let hooks: Arc<[AtomicUsize; 2]> = Arc::default();
    let stopped: Arc<[AtomicUsize; 2]> = Arc::default();
    let (accepted_tx, accepted_rx) = mpsc::channel();
    let (ready, client) = clients(2, move |addrs, handles| {
        let mut socks: Vec<_> = (0..OPEN).map(|_| client(addrs[0])).collect();
        let mut per = [0; 2];
        for _ in 0..OPEN {
            per[recv(&accepted_rx)] += 1;
        }
        assert_eq!(per, [OPEN / 2; 2], "hand-off round robin");
        stop(handles);
        // Every socket is closed by the group's teardown.
        for s in &mut socks {
            read_until_closed(s);
        }
    });
    let (h, st) = (hooks.clone(), stopped.clone());
    let accepted_tx = Mutex::new(accepted_tx);
    let result = run_each_with_watchdog(
        em::Reactor::builder().reactors(2).accept_handoff(true),
        move |index| -> em::Result<()> {
            let h = h.clone();
            em::add_shutdown_hook(move || {
                h[em::reactor_index().unwrap()].fetch_add(1, Ordering::SeqCst);
            })?;
            let accepted = accepted_tx.lock().unwrap().clone();
            let st = st.clone();
            let server = em::start_server("127.0.0.1:0", move || StopCounter {
                accepted: accepted.clone(),
                stopped: st.clone(),
            })?;
            ready
                .send(Ready {
                    index,
                    addrs: vec![server.local_addr().inet().unwrap()],
                    handles: em::handles()?,
                })
                .ok();
            Ok(())
        },
    );
    join(client);
    let load = |a: &[AtomicUsize; 2]| [a[0].load(Ordering::SeqCst), a[1].load(Ordering::SeqCst)];
    (result, load(&hooks), load(&stopped))
}

#[test]
fn stop_from_a_timer_on_reactor_1_stops_the_whole_group() {
    let fired = Arc::new(AtomicUsize::new(usize::MAX));
    let f = fired.clone();
    let (result, hooks, stopped) = stop_group_with_open_connections(move |handles| {
        handles[1]
            .schedule(move || {
                em::add_timer(Duration::from_millis(1), move || {
                    f.store(em::reactor_index().unwrap(), Ordering::SeqCst);
                    em::stop();
                })
                .expect("add_timer");
            })
            .expect("schedule on reactor 1");
    });
    result.expect("a clean stop");
    assert_eq!(
        fired.load(Ordering::SeqCst),
        1,
        "the timer ran on reactor 1"
    );
    assert_eq!(hooks, [1, 1], "each reactor ran its shutdown hook once");
    assert_eq!(stopped, [5, 5], "every open connection got unbind");
}

#[test]
fn handle_stop_from_a_plain_thread_stops_the_whole_group() {
    let (result, hooks, stopped) = stop_group_with_open_connections(|handles| handles[0].stop());
    result.expect("a clean stop");
    assert_eq!(hooks, [1, 1], "each reactor ran its shutdown hook once");
    assert_eq!(stopped, [5, 5], "every open connection got unbind");
}

// ---------------------------------------------------------------------
// 5: errors and panics.
// ---------------------------------------------------------------------

#[test]
fn run_block_error_on_reactor_1_stops_the_group_and_is_returned() {
    let hooks = Arc::new(AtomicUsize::new(0));
    let h = hooks.clone();
    let err = run_each_with_watchdog(em::Reactor::builder().reactors(2), move |index| {
        let h = h.clone();
        em::add_shutdown_hook(move || {
            h.fetch_add(1, Ordering::SeqCst);
        })?;
        if index == 1 {
            return Err("no luck on reactor 1".into());
        }
        Ok(())
    })
    .expect_err("reactor 1's run block failed");
    assert!(err.is_init(), "{err}");
    assert!(err.to_string().contains("no luck on reactor 1"), "{err}");
    assert_eq!(hooks.load(Ordering::SeqCst), 2, "both reactors tore down");
}

#[test]
fn when_every_run_block_fails_the_first_reactors_error_is_returned() {
    let err = run_each_with_watchdog(em::Reactor::builder().reactors(2), |index| {
        Err::<(), em::Error>(format!("run block {index} failed").into())
    })
    .expect_err("both run blocks failed");
    assert!(err.is_init(), "{err}");
    assert!(err.to_string().contains("run block 0 failed"), "{err}");
}

#[test]
fn panic_with_stop_on_panic_stops_the_group_and_reaches_the_error_handler() {
    let reports: Shared<(Option<String>, String, usize)> = Arc::default();
    let r = reports.clone();
    let hooks = Arc::new(AtomicUsize::new(0));
    let h = hooks.clone();
    let err = run_each_with_watchdog(
        em::Reactor::builder()
            .reactors(2)
            .stop_on_panic(true)
            .error_handler(move |report| {
                r.lock().unwrap().push((
                    thread::current().name().map(str::to_owned),
                    report.message().to_owned(),
                    em::reactor_index().unwrap(),
                ));
            }),
        move |index| -> em::Result<()> {
            let h = h.clone();
            em::add_shutdown_hook(move || {
                h.fetch_add(1, Ordering::SeqCst);
            })?;
            if index == 1 {
                em::next_tick(|| panic!("kaboom on reactor 1"));
            }
            Ok(())
        },
    )
    .expect_err("the panic stops the group");
    assert!(err.is_panic(), "{err}");
    assert!(err.to_string().contains("kaboom on reactor 1"), "{err}");
    assert_eq!(
        *reports.lock().unwrap(),
        [(
            Some("em-reactor-1".to_owned()),
            "kaboom on reactor 1".to_owned(),
            1
        )]
    );
    assert_eq!(hooks.load(Ordering::SeqCst), 2, "both reactors tore down");
}

/// Reactor 0 runs on the caller's thread with the group's error handler;
/// once `run_each` returns, the handler the caller had set there is back.
#[test]
fn the_group_error_handler_gives_the_calling_thread_its_own_back() {
    let callers: Rc<RefCell<Vec<String>>> = Rc::default();
    let c = callers.clone();
    em::set_error_handler(move |report| c.borrow_mut().push(report.message().to_owned()));
    let group: Shared<String> = Arc::default();
    let g = group.clone();
    run_each_with_watchdog(
        em::Reactor::builder()
            .reactors(2)
            .error_handler(move |report| g.lock().unwrap().push(report.message().to_owned())),
        |index| {
            if index == 0 {
                em::next_tick(|| panic!("in the group"));
                em::next_tick(em::stop);
            }
        },
    )
    .unwrap();
    assert_eq!(*group.lock().unwrap(), ["in the group"]);
    assert!(callers.borrow().is_empty(), "{:?}", callers.borrow());
    run_with_watchdog(|| {
        em::next_tick(|| panic!("after the group"));
        em::next_tick(em::stop);
    })
    .unwrap();
    em::clear_error_handler();
    assert_eq!(*callers.borrow(), ["after the group"]);
}

// ---------------------------------------------------------------------
// 6: handles and handle_for.
// ---------------------------------------------------------------------

thread_local! {
    /// The connections of this reactor thread, by id.
    static CONNS: RefCell<HashMap<ConnectionId, Conn<LinesCodec>>> = RefCell::default();
}

/// Greets with its reactor's index; on "relay", asks reactor 0 to send on
/// this connection through `handle_for`.
struct Relay;

impl Connection for Relay {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        CONNS.with(|c| c.borrow_mut().insert(conn.id(), conn.clone()));
        conn.send_data(format!("reactor {}", em::reactor_index().unwrap()));
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        assert_eq!(line, "relay");
        let id = conn.id();
        let first = em::handles().unwrap()[0].clone();
        first
            .schedule(move || {
                // On reactor 0: reach the owner of `id`.
                let from = em::reactor_index().unwrap();
                let owner = em::handle_for(id).expect("handle_for");
                owner
                    .schedule(move || {
                        let on = em::reactor_index().unwrap();
                        let conn = CONNS.with(|c| c.borrow().get(&id).cloned());
                        conn.expect("the owner keeps the connection")
                            .send_data(format!("from reactor {from}, sent on reactor {on}"));
                    })
                    .expect("schedule on the owner");
            })
            .expect("schedule on reactor 0");
    }

    fn unbind(&mut self, conn: &Conn<LinesCodec>, _reason: UnbindReason) {
        CONNS.with(|c| c.borrow_mut().remove(&conn.id()));
    }
}

#[test]
fn handle_for_reaches_the_reactor_owning_a_connection() {
    let handle_counts: Arc<Mutex<Vec<usize>>> = Arc::default();
    let (ready, client) = clients(2, |addrs, _| {
        // Hand-off, round robin: one connection on each reactor.
        let mut a = LineClient::connect(addrs[0]);
        let mut b = LineClient::connect(addrs[0]);
        let (ga, gb) = (a.recv(), b.recv());
        let mut greetings = [ga.clone(), gb.clone()];
        greetings.sort();
        assert_eq!(greetings, ["reactor 0", "reactor 1"]);
        let on_1 = if ga == "reactor 1" { &mut a } else { &mut b };
        on_1.send("relay");
        on_1.recv()
    });
    let counts = handle_counts.clone();
    run_each_with_watchdog(
        em::Reactor::builder().reactors(2).accept_handoff(true),
        move |index| -> em::Result<()> {
            counts.lock().unwrap().push(em::handles()?.len());
            let server = em::start_server("127.0.0.1:0", || Relay)?;
            ready
                .send(Ready {
                    index,
                    addrs: vec![server.local_addr().inet().unwrap()],
                    handles: em::handles()?,
                })
                .ok();
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(join(client), "from reactor 0, sent on reactor 1");
    assert_eq!(*handle_counts.lock().unwrap(), [2, 2]);
}

// ---------------------------------------------------------------------
// 7: one reactor per core.
// ---------------------------------------------------------------------

#[test]
fn zero_reactors_means_one_per_available_core() {
    let cores = thread::available_parallelism().unwrap().get();
    let indices: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen = indices.clone();
    run_each_with_watchdog(em::Reactor::builder().reactors(0), move |index| {
        assert_eq!(em::reactor_index().unwrap(), index);
        let mut seen = seen.lock().unwrap();
        seen.push(index);
        // All reactors are up before any run block runs: the last run block
        // stops the group.
        if seen.len() == cores {
            em::stop();
        }
    })
    .unwrap();
    let mut indices = indices.lock().unwrap().clone();
    indices.sort();
    assert_eq!(indices, (0..cores).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------
// 8: timers, ticks and defers stay per reactor.
// ---------------------------------------------------------------------

#[test]
fn timers_ticks_and_defers_run_on_the_reactor_that_added_them() {
    const N: usize = 2;
    // (kind, reactor that added it, reactor_index() where it ran, same thread)
    let ran: Shared<(&'static str, usize, usize, bool)> = Arc::default();
    let log = ran.clone();
    run_each_with_watchdog(em::Reactor::builder().reactors(N), move |index| {
        let me = thread::current().id();
        let record = {
            let log = log.clone();
            move |kind: &'static str| {
                let mut log = log.lock().unwrap();
                log.push((
                    kind,
                    index,
                    em::reactor_index().unwrap(),
                    thread::current().id() == me,
                ));
                if log.len() == 3 * N {
                    em::stop();
                }
            }
        };
        let r = record.clone();
        em::add_timer(Duration::from_millis(5), move || r("timer")).unwrap();
        let r = record.clone();
        em::next_tick(move || r("tick"));
        em::defer(
            || 7,
            move |v: i32| {
                assert_eq!(v, 7);
                record("defer")
            },
        )
        .unwrap();
    })
    .unwrap();
    let ran = ran.lock().unwrap();
    assert_eq!(ran.len(), 3 * N, "{ran:?}");
    for (kind, added, on, same_thread) in ran.iter() {
        assert_eq!(added, on, "a {kind} added on reactor {added} ran on {on}");
        assert!(
            same_thread,
            "a {kind} of reactor {added} ran off its thread"
        );
    }
    for kind in ["timer", "tick", "defer"] {
        let mut by: Vec<usize> = ran.iter().filter(|r| r.0 == kind).map(|r| r.1).collect();
        by.sort();
        assert_eq!(by, (0..N).collect::<Vec<_>>(), "{kind}");
    }
}

// ---------------------------------------------------------------------
// 9: what a group serves together.
// ---------------------------------------------------------------------

#[test]
fn unix_domain_servers_are_refused_in_a_group() {
    let dir = TempDir::new("reactors-unix");
    let path = dir.join("sock");
    let refused: Arc<Mutex<Vec<bool>>> = Arc::default();
    let r = refused.clone();
    run_each_with_watchdog(em::Reactor::builder().reactors(2), move |_| {
        let e = em::start_unix_domain_server(&path, || Echo).expect_err("refused in a group");
        r.lock().unwrap().push(e.is_unsupported());
        if r.lock().unwrap().len() == 2 {
            em::stop();
        }
    })
    .unwrap();
    assert_eq!(*refused.lock().unwrap(), [true, true]);
}

/// Counts the connections each reactor accepted, per server.
struct Tally {
    server: usize,
    tally: Arc<Mutex<[[usize; 2]; 2]>>,
}

impl Connection for Tally {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn post_init(&mut self, _conn: &Conn<BytesCodec>) {
        self.tally.lock().unwrap()[self.server][em::reactor_index().unwrap()] += 1;
    }

    fn receive_data(&mut self, conn: &Conn<BytesCodec>, data: BytesMut) {
        conn.send_data(data);
    }
}

/// Each reactor starts two servers on "127.0.0.1:0"; `per_server`
/// connections go to each. Returns the connections per server per reactor.
fn two_servers(handoff: bool, per_server: usize) -> [[usize; 2]; 2] {
    let tally: Arc<Mutex<[[usize; 2]; 2]>> = Arc::default();
    let (ready, client) = clients(2, move |addrs, _| {
        assert_eq!(addrs.len(), 2);
        assert_ne!(addrs[0], addrs[1], "two servers, two ports");
        for addr in addrs {
            connect_and_echo_each(*addr, per_server);
        }
    });
    let t = tally.clone();
    run_each_with_watchdog(
        em::Reactor::builder().reactors(2).accept_handoff(handoff),
        move |index| -> em::Result<()> {
            let mut addrs = Vec::new();
            for server in 0..2 {
                let tally = t.clone();
                let s = em::start_server("127.0.0.1:0", move || Tally {
                    server,
                    tally: tally.clone(),
                })?;
                addrs.push(s.local_addr().inet().unwrap());
            }
            ready
                .send(Ready {
                    index,
                    addrs,
                    handles: em::handles()?,
                })
                .ok();
            Ok(())
        },
    )
    .unwrap();
    join(client);
    let tally = *tally.lock().unwrap();
    tally
}

#[test]
fn two_servers_on_the_same_address_text_are_two_shared_servers_reuseport() {
    let tally = two_servers(false, 200);
    for (server, per) in tally.iter().enumerate() {
        assert_eq!(per.iter().sum::<usize>(), 200, "server {server}: {tally:?}");
        for c in per {
            assert!(*c >= 20, "server {server} not spread: {tally:?}");
        }
    }
}

#[test]
fn two_servers_on_the_same_address_text_are_two_shared_servers_handoff() {
    assert_eq!(two_servers(true, 10), [[5, 5], [5, 5]]);
}

// ---------------------------------------------------------------------
// 10: pinning.
// ---------------------------------------------------------------------

/// The cores the calling thread may run on.
#[cfg(target_os = "linux")]
fn cpus_of_this_thread() -> Vec<usize> {
    use rustix::thread::{sched_getaffinity, CpuSet};
    let set = sched_getaffinity(None).expect("sched_getaffinity");
    (0..CpuSet::MAX_CPU).filter(|c| set.is_set(*c)).collect()
}

#[cfg(target_os = "linux")]
#[test]
fn pin_to_cores_pins_each_reactor_to_one_core() {
    // Read on a thread of its own: reactor 0 pins the test's thread.
    let allowed = thread::spawn(cpus_of_this_thread).join().unwrap();
    let n = 2;
    let pinned: Shared<(usize, Vec<usize>)> = Arc::default();
    let p = pinned.clone();
    run_each_with_watchdog(
        em::Reactor::builder().reactors(n).pin_to_cores(true),
        move |index| {
            let mut p = p.lock().unwrap();
            p.push((index, cpus_of_this_thread()));
            if p.len() == n {
                em::stop();
            }
        },
    )
    .unwrap();
    let mut pinned = pinned.lock().unwrap().clone();
    pinned.sort();
    for (index, cpus) in &pinned {
        assert_eq!(cpus.len(), 1, "reactor {index} on {cpus:?}");
        assert!(allowed.contains(&cpus[0]), "reactor {index} on {cpus:?}");
        // Reactor i on the i-th allowed core, round robin.
        assert_eq!(cpus[0], allowed[index % allowed.len()], "reactor {index}");
    }
}

/// Reactor 0 runs on the caller's thread and is pinned there; once
/// `run_each` returns, that thread is the caller's again, with the cores it
/// had (threads it spawns later inherit them).
#[cfg(target_os = "linux")]
#[test]
fn pin_to_cores_gives_the_calling_thread_its_cores_back() {
    let before = cpus_of_this_thread();
    run_each_with_watchdog(
        em::Reactor::builder().reactors(2).pin_to_cores(true),
        |_| em::stop(),
    )
    .unwrap();
    assert_eq!(
        cpus_of_this_thread(),
        before,
        "run_each left the calling thread pinned"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn defer_pool_threads_of_a_pinned_reactor_get_every_core_back() {
    use std::sync::{Arc, Mutex};
    let all = rustix::thread::sched_getaffinity(None).unwrap().count();
    if all < 2 {
        return; // nothing to tell apart on one core
    }
    let seen: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
    let s = seen.clone();
    em::Reactor::builder()
        .reactors(2)
        .pin_to_cores(true)
        .run_each(move |index| -> em::Result<()> {
            let reactor_cores = rustix::thread::sched_getaffinity(None).unwrap().count();
            let s = s.clone();
            em::defer(
                || rustix::thread::sched_getaffinity(None).unwrap().count(),
                move |worker_cores| {
                    s.lock().unwrap().push((reactor_cores, worker_cores));
                    if index == 0 {
                        em::stop();
                    }
                },
            )?;
            Ok(())
        })
        .unwrap();
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    for (reactor_cores, worker_cores) in seen.iter() {
        assert_eq!(*reactor_cores, 1, "a pinned reactor has one core");
        assert_eq!(*worker_cores, all, "its defer worker has them all");
    }
}
