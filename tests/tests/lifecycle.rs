//! The reactor's life: `run`, `stop`, running twice, and the typed errors of
//! calls made at the wrong time (EventMachine R3, R5, R7–R9).

mod support;

use std::time::Duration;

use std::cell::Cell;
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use bytes::BytesMut;
use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::BytesCodec;

use futures::FutureExt;

use support::*;

/// One echo round trip through a fresh server, on the reactor running here.
fn echo_once(tag: &'static [u8]) -> Vec<u8> {
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        assert!(em::reactor_thread());
        assert!(em::reactor_running());
        let server = em::start_server("127.0.0.1:0", || Echo)?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            echo_round(&mut client(addr), tag)
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx)
}

/// R9: `run` can run again on the same thread after it returned, with a
/// fresh reactor each time.
#[test]
fn run_twice_in_a_row_on_the_same_thread() {
    assert_eq!(echo_once(b"first run"), b"first run");
    assert!(!em::reactor_thread());
    assert_eq!(echo_once(b"second run"), b"second run");
    assert!(!em::reactor_thread());
}

/// `run` inside a running reactor, from the run block or from a callback,
/// is an `is_already_running()` error, not a panic, and its block does not
/// run; the outer reactor carries on.
#[test]
fn run_inside_a_running_reactor_is_an_error() {
    let inner_ran = Rc::new(Cell::new(false));
    let errors = Log::default();
    let (ran, e) = (inner_ran.clone(), errors.clone());
    run_with_watchdog(move || {
        let r = ran.clone();
        match em::run(move || r.set(true)) {
            Err(err) if err.is_already_running() => e.push("run block: already running"),
            other => e.push(format!("run block: {other:?}")),
        }
        let e = e.clone();
        em::next_tick(move || {
            let r = ran.clone();
            match em::Reactor::new().run(move || r.set(true)) {
                Err(err) if err.is_already_running() => e.push("tick: already running"),
                other => e.push(format!("tick: {other:?}")),
            }
            em::stop();
        });
    })
    .unwrap();
    assert_eq!(
        errors.events(),
        ["run block: already running", "tick: already running"]
    );
    assert!(!inner_ran.get(), "the inner run block never runs");
}

/// `em::run` inside a tokio runtime is refused too (the async entry point is
/// `Reactor::run_local`).
#[test]
fn run_inside_a_tokio_runtime_is_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async { em::run(em::stop) });
    let err = result.expect_err("run inside a runtime");
    assert!(err.is_already_running(), "{err:?}");
}

/// `Handle::schedule` after the reactor stopped is an `is_not_running()`
/// error, and the closure is dropped without running.
#[test]
fn handle_schedule_after_stop_is_not_running() {
    let (handle_tx, handle_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let handle = em::handle()?;
        assert!(handle.is_running());
        handle_tx.send(handle).unwrap();
        em::stop();
        Ok(())
    })
    .unwrap();
    let handle = recv(&handle_rx);
    assert!(!handle.is_running());
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let err = handle
        .schedule(move || r.store(true, Ordering::SeqCst))
        .expect_err("the reactor has stopped");
    assert!(err.is_not_running(), "{err:?}");
    assert!(!ran.load(Ordering::SeqCst));
    handle.stop(); // a no-op now
                   // From another thread as well.
    let from_thread =
        std::thread::spawn(move || handle.schedule(|| {}).map_err(|e| e.is_not_running()))
            .join()
            .unwrap();
    assert_eq!(from_thread, Err(true));
}

/// R7: reactor-only calls outside a reactor are typed errors whose message
/// names the call; `stop` there is a harmless no-op.
#[test]
fn reactor_calls_outside_a_reactor_are_no_reactor_errors() {
    let (_guard, addr) = refusing_addr();
    let errors = [
        (
            "start_server",
            em::start_server("127.0.0.1:0", || Echo).map(drop),
        ),
        ("connect", em::connect(addr, Echo).map(drop)),
        ("spawn", em::spawn(async {}).map(drop)),
        ("handle", em::handle().map(drop)),
    ];
    for (call, result) in errors {
        let err = result.expect_err(call);
        assert!(err.is_no_reactor(), "{call}: {err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{call}:")),
            "the message names {call}: {message}"
        );
    }
    em::stop();
    assert!(!em::reactor_thread());
    assert!(!em::stopping());
    assert_eq!(em::connection_count(), 0);
}

/// Once the reactor stops, every call that would create something is
/// refused with `is_stopping()`: servers, clients, attach, pairs, tasks,
/// timers, defers, deferred timeouts and closures from other threads.
#[test]
fn calls_while_stopping_are_stopping_errors() {
    use em::DeferOptions;
    let (_guard, addr) = refusing_addr();
    let (tx, rx) = mpsc::channel();
    // A small pool, so that the defer's refusal is not a pool quirk.
    let builder = em::Reactor::builder().threadpool_size(1);
    run_builder_with_watchdog(builder, move || {
        let handle = em::handle().unwrap();
        em::stop();
        assert!(em::stopping());
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let results: Vec<(&str, em::Result<()>)> = vec![
            (
                "start_server",
                em::start_server("127.0.0.1:0", || Echo).map(drop),
            ),
            (
                "start_unix_domain_server",
                em::start_unix_domain_server(std::env::temp_dir().join("em-never.sock"), || Echo)
                    .map(drop),
            ),
            ("connect", em::connect(addr, Echo).map(drop)),
            (
                "connect_unix_domain",
                em::connect_unix_domain("/nonexistent", Echo).map(drop),
            ),
            ("attach", em::attach(a, Echo).map(drop)),
            ("connect_pair", em::connect_pair(Echo, Echo).map(drop)),
            ("spawn", em::spawn(async {}).map(drop)),
            ("add_timer", em::add_timer(Duration::ZERO, || {}).map(drop)),
            (
                "add_periodic_timer",
                em::add_periodic_timer(Duration::from_millis(1), |_| {}).map(drop),
            ),
            ("defer", em::defer(|| (), |()| {})),
            ("defer_op", em::defer_op(|| ())),
            (
                "Deferred::timeout",
                em::Deferred::<(), ()>::new().timeout(Duration::from_secs(1), ()),
            ),
            ("Handle::schedule", handle.schedule(|| {})),
        ];
        let refused: Vec<(&str, bool)> = results
            .iter()
            .map(|(name, r)| (*name, r.as_ref().is_err_and(|e| e.is_stopping())))
            .collect();
        let async_refused = match em::defer_async(|| ()).now_or_never() {
            Some(Err(e)) => e.is_stopping(),
            _ => false,
        };
        tx.send((refused, async_refused)).unwrap();
    })
    .unwrap();
    let (refused, async_refused) = recv(&rx);
    for (name, ok) in refused {
        assert!(ok, "{name} was not refused with is_stopping()");
    }
    assert!(
        async_refused,
        "defer_async was not refused with is_stopping()"
    );
}

/// A run block that returns an error stops the reactor, and `run` returns
/// that error (`is_init()`); a run block that panics gives `is_panic()`; the
/// thread can run a reactor again afterwards.
#[test]
fn run_block_error_and_panic_come_back_from_run() {
    let err = run_with_watchdog(|| {
        Err(std::io::Error::other("run block failed on purpose"))?;
        Ok(())
    })
    .expect_err("the run block failed");
    assert!(err.is_init(), "{err:?}");
    assert!(
        err.to_string().contains("run block failed on purpose"),
        "{err}"
    );

    let err = run_with_watchdog(|| -> em::Result<()> { panic!("run block panics on purpose") })
        .expect_err("the run block panicked");
    assert!(err.is_panic(), "{err:?}");
    assert!(
        err.to_string().contains("run block panics on purpose"),
        "{err}"
    );

    assert_eq!(echo_once(b"after errors"), b"after errors");
}

/// Counts unbinds by reason; stops the reactor once `open` connections are
/// accepted.
struct Held {
    accepted: Rc<Cell<usize>>,
    log: Log,
    open: usize,
}

impl Connection for Held {
    type Codec = BytesCodec;

    fn codec(&self) -> BytesCodec {
        BytesCodec::new()
    }

    fn post_init(&mut self, _: &Conn<BytesCodec>) {
        self.accepted.set(self.accepted.get() + 1);
        if self.accepted.get() == self.open {
            self.log
                .push(format!("stop with {} connections", em::connection_count()));
            em::stop();
        }
    }

    fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}

    fn unbind(&mut self, _: &Conn<BytesCodec>, why: UnbindReason) {
        assert!(em::reactor_thread(), "R5: unbind runs inside the reactor");
        self.log.push(format!("unbind {}", reason(&why)));
    }
}

/// Stopping with 100 open connections runs 100 `unbind(ReactorStopped)`,
/// closes the sockets, and `run` returns.
#[test]
fn stop_with_100_open_connections_unbinds_each_once() {
    const OPEN: usize = 100;
    let log = Log::default();
    let l = log.clone();
    let (clients_tx, clients_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let accepted = Rc::new(Cell::new(0));
        let server = em::start_server("127.0.0.1:0", move || Held {
            accepted: accepted.clone(),
            log: l.clone(),
            open: OPEN,
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        // The clients stay open until the test has checked them.
        std::thread::spawn(move || {
            let clients: Vec<TcpStream> = (0..OPEN).map(|_| client(addr)).collect();
            clients_tx.send(clients).unwrap();
        });
        Ok(())
    })
    .unwrap();
    let mut events = log.events();
    assert_eq!(events.remove(0), format!("stop with {OPEN} connections"));
    assert_eq!(events.len(), OPEN, "one unbind per connection");
    assert!(
        events.iter().all(|e| e == "unbind ReactorStopped"),
        "{events:?}"
    );
    for mut c in recv(&clients_rx) {
        assert_eq!(read_until_closed(&mut c), b"", "the server closed it");
    }
}

/// EventMachine R5: at stop, the shutdown hooks run last registered first,
/// while the connections are still open, and only then do the connections
/// get their `unbind(ReactorStopped)`.
#[test]
fn shutdown_hooks_run_in_reverse_order_before_the_last_unbinds() {
    struct Member {
        name: &'static str,
        log: Log,
    }
    impl em::Connection for Member {
        type Codec = tokio_util::codec::BytesCodec;
        fn codec(&self) -> Self::Codec {
            tokio_util::codec::BytesCodec::new()
        }
        fn receive_data(&mut self, _: &em::Conn<Self::Codec>, _: bytes::BytesMut) {}
        fn unbind(&mut self, _: &em::Conn<Self::Codec>, why: em::UnbindReason) {
            self.log
                .push(format!("unbind {} {}", self.name, reason(&why)));
        }
    }
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let (a, _b) = em::connect_pair(
            Member {
                name: "a",
                log: l.clone(),
            },
            Member {
                name: "b",
                log: l.clone(),
            },
        )?;
        for n in 1..=3 {
            let (l, a) = (l.clone(), a.clone());
            em::add_shutdown_hook(move || {
                l.push(format!("hook {n} open={}", !a.is_closed()));
            })?;
        }
        em::next_tick(em::stop);
        Ok(())
    })
    .unwrap();
    let events = log.events();
    assert_eq!(
        events[..3],
        ["hook 3 open=true", "hook 2 open=true", "hook 1 open=true"]
    );
    let mut unbinds = events[3..].to_vec();
    unbinds.sort();
    assert_eq!(
        unbinds,
        ["unbind a ReactorStopped", "unbind b ReactorStopped"]
    );
}

/// `add_shutdown_hook` where no reactor runs is a typed error.
#[test]
fn add_shutdown_hook_outside_a_reactor_is_a_typed_error() {
    let err = em::add_shutdown_hook(|| {}).unwrap_err();
    assert!(err.is_no_reactor(), "{err}");
}
