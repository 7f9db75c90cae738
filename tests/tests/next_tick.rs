//! `next_tick`: FIFO, the snapshot rule, ticks queued before `run` and at
//! `stop` (EventMachine R2, R6, N2, N3, N8), and fairness to I/O.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;

use em::{Conn, Connection, UnbindReason};
use tokio_util::codec::LinesCodec;

use support::*;

/// N2: ticks run FIFO, on the reactor thread, never before `next_tick`
/// returns.
#[test]
fn next_tick_runs_fifo_and_never_synchronously() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let reactor = std::thread::current().id();
        for i in 0..100 {
            let lt = l.clone();
            em::next_tick(move || {
                assert_eq!(std::thread::current().id(), reactor);
                lt.push(i.to_string());
                if i == 99 {
                    em::stop();
                }
            });
            l.push(format!("queued {i}"));
        }
    })
    .unwrap();
    let mut expected: Vec<String> = (0..100).map(|i| format!("queued {i}")).collect();
    expected.extend((0..100).map(|i| i.to_string()));
    assert_eq!(log.events(), expected);
}

/// N3: ticks queued while the queue drains run after everything that was
/// queued before the drain began, however many the drain holds.
#[test]
fn ticks_queued_while_draining_run_after_everything_already_queued() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        for name in ["t1", "t2", "t3"] {
            let l = l.clone();
            em::next_tick(move || {
                l.push(name);
                let l2 = l.clone();
                em::next_tick(move || {
                    l2.push(format!("{name} nested"));
                    let l3 = l2.clone();
                    em::next_tick(move || {
                        l3.push(format!("{name} nested twice"));
                        if name == "t3" {
                            em::stop();
                        }
                    });
                });
            });
        }
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "t1",
            "t2",
            "t3",
            "t1 nested",
            "t2 nested",
            "t3 nested",
            "t1 nested twice",
            "t2 nested twice",
            "t3 nested twice",
        ]
    );
}

/// R2: ticks queued before `run` run in the first pass, after the run block
/// and before ticks the run block queued.
#[test]
fn next_tick_before_run_runs_after_the_run_block() {
    let log = Log::default();
    let l = log.clone();
    em::next_tick(move || l.push("pre_run_tick"));
    let l = log.clone();
    run_with_watchdog(move || {
        l.push("run_block");
        let l = l.clone();
        em::next_tick(move || {
            l.push("tick_in_block");
            em::stop();
        });
    })
    .unwrap();
    assert_eq!(log.events(), ["run_block", "pre_run_tick", "tick_in_block"]);
}

/// R6: ticks still queued at stop are dropped: they run neither in this run
/// nor in the next one on the same thread. That includes ticks queued by
/// `unbind` during the teardown.
#[test]
fn ticks_queued_at_stop_are_dropped_and_never_run_later() {
    /// Stops the reactor from `post_init`, queueing a tick right after the
    /// stop, and queues another from its `unbind`.
    struct StopsInPostInit {
        log: Log,
    }
    impl Connection for StopsInPostInit {
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new()
        }
        fn post_init(&mut self, _: &Conn<LinesCodec>) {
            self.log.push("stopping");
            em::stop();
            let l = self.log.clone();
            em::next_tick(move || l.push("queued at stop"));
            self.log.push("after stop");
        }
        fn receive_data(&mut self, _: &Conn<LinesCodec>, _: String) {}
        fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
            self.log.push(format!("unbind {}", reason(&why)));
            let l = self.log.clone();
            em::next_tick(move || l.push("tick from unbind"));
        }
    }

    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || StopsInPostInit { log: l.clone() })?;
        em::connect(server.local_addr(), Echo)?;
        Ok(())
    })
    .unwrap();

    let l = log.clone();
    run_with_watchdog(move || {
        l.push("second run");
        let l = l.clone();
        em::next_tick(move || {
            l.push("second run tick");
            em::stop();
        });
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "stopping",
            "after stop",
            "unbind ReactorStopped",
            "second run",
            "second run tick"
        ]
    );
}

/// N8 (em contains panics): a panicking tick does not stop the reactor nor
/// the ticks after it.
#[test]
fn panicking_tick_does_not_stop_the_ticks_after_it() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let (l1, l2) = (l.clone(), l.clone());
        em::next_tick(move || l1.push("t1"));
        em::next_tick(|| panic!("tick panics"));
        em::next_tick(move || {
            l2.push("t3");
            em::stop();
        });
    })
    .expect("a contained panic does not stop the reactor with an error");
    assert_eq!(log.events(), ["t1", "t3"]);
}

const CHAIN: u64 = 1_000_000;

/// One link of a chain of [`CHAIN`] ticks, each queueing the next.
fn link(count: Rc<Cell<u64>>, done: Rc<dyn Fn()>) {
    count.set(count.get() + 1);
    if count.get() < CHAIN {
        em::next_tick(move || link(count, done));
    } else {
        done();
    }
}

/// Pings the echo server 100 times, one at a time, noting how far the chain
/// was at each reply.
struct Pinger {
    chain: Rc<Cell<u64>>,
    replies: Rc<Cell<u64>>,
    chain_at_last_reply: Rc<Cell<u64>>,
    done: Rc<dyn Fn()>,
}

impl Connection for Pinger {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new()
    }

    fn post_init(&mut self, conn: &Conn<LinesCodec>) {
        conn.send_data("0");
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        assert_eq!(line, self.replies.get().to_string());
        self.replies.set(self.replies.get() + 1);
        self.chain_at_last_reply.set(self.chain.get());
        if self.replies.get() < 100 {
            conn.send_data(self.replies.get().to_string());
        } else {
            conn.close_connection();
            (self.done)();
        }
    }
}

/// A chain of a million self-rescheduling ticks does not starve I/O: an echo
/// client (on the same reactor, so the check is independent of OS
/// scheduling) gets all of its 100 replies while the chain still runs.
#[test]
fn million_tick_chain_does_not_starve_an_echo_client() {
    let chain = Rc::new(Cell::new(0));
    let replies = Rc::new(Cell::new(0));
    let chain_at_last_reply = Rc::new(Cell::new(0));
    let (c, r, at) = (chain.clone(), replies.clone(), chain_at_last_reply.clone());
    run_with_watchdog(move || -> em::Result<()> {
        // Stop when both the chain and the client are done.
        let finished = Rc::new(Cell::new(0));
        let done: Rc<dyn Fn()> = Rc::new(move || {
            finished.set(finished.get() + 1);
            if finished.get() == 2 {
                em::stop();
            }
        });
        let server = em::start_server("127.0.0.1:0", LineEcho::default)?;
        let d = done.clone();
        let count = c.clone();
        em::next_tick(move || link(count, d));
        em::connect(
            server.local_addr(),
            Pinger {
                chain: c,
                replies: r,
                chain_at_last_reply: at,
                done,
            },
        )?;
        Ok(())
    })
    .unwrap();
    assert_eq!(chain.get(), CHAIN, "the chain ran to its end");
    assert_eq!(replies.get(), 100, "the client got every reply");
    assert!(
        chain_at_last_reply.get() < CHAIN,
        "the client got its replies while the chain still ran (chain at {} of {CHAIN})",
        chain_at_last_reply.get()
    );
}

/// The same with a client on another thread: its first reply comes while
/// the chain still runs. The chain starts only when the connection is
/// accepted, and the client's first line is then already on its way.
#[test]
fn million_tick_chain_does_not_starve_a_client_on_another_thread() {
    struct StartsChain {
        chain: Rc<Cell<u64>>,
        chain_at_first_line: Rc<Cell<Option<u64>>>,
    }
    impl Connection for StartsChain {
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new()
        }
        fn post_init(&mut self, _: &Conn<LinesCodec>) {
            let count = self.chain.clone();
            em::next_tick(move || link(count, Rc::new(|| {})));
        }
        fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
            if self.chain_at_first_line.get().is_none() {
                self.chain_at_first_line.set(Some(self.chain.get()));
            }
            conn.send_data(line);
        }
    }

    let chain = Rc::new(Cell::new(0));
    let at_first = Rc::new(Cell::new(None));
    let (c, a) = (chain.clone(), at_first.clone());
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let server = em::start_server("127.0.0.1:0", move || StartsChain {
            chain: c.clone(),
            chain_at_first_line: a.clone(),
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            let mut s = LineClient::connect(addr);
            (0..10).map(|i| s.round(&i.to_string())).collect::<Vec<_>>()
        });
        Ok(())
    })
    .unwrap();
    let answers = join_peer(&done_rx);
    assert_eq!(answers, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    let at_first = at_first.get().expect("the server got a line");
    assert!(
        at_first < CHAIN,
        "the first line was served while the chain still ran (chain at {at_first} of {CHAIN})"
    );
}
