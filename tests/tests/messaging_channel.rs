//! `em::Channel`: EventMachine's rules CH1–CH4, re-entrancy, the `Send`
//! sender and the stream form.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;

use futures::StreamExt;
use support::*;

/// CH1: ids start at 1 and count up; `num_subscribers` counts live ones.
#[test]
fn subscription_ids_start_at_one_and_count_live_subscribers() {
    run_with_watchdog(|| {
        let ch = em::Channel::<u32>::new();
        let a = ch.subscribe(|_| {});
        let b = ch.subscribe(|_| {});
        let c = ch.pop(|_| {});
        assert_eq!((a.get(), b.get(), c.get()), (1, 2, 3));
        assert_eq!(ch.num_subscribers(), 3);
        assert!(ch.unsubscribe(b));
        assert!(!ch.unsubscribe(b), "a second unsubscribe finds nothing");
        assert_eq!(ch.num_subscribers(), 2);
        ch.push(1); // the pop is used up
        assert_eq!(ch.num_subscribers(), 1);
        em::stop();
    })
    .unwrap();
}

/// CH2: on the reactor thread, push delivers before it returns, item-major,
/// in subscription order.
#[test]
fn push_delivers_synchronously_item_major_in_subscription_order() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let ch = em::Channel::new();
        let (l1, l2) = (l.clone(), l.clone());
        ch.subscribe(move |n: u32| l1.push(format!("s1 {n}")));
        ch.subscribe(move |n: u32| l2.push(format!("s2 {n}")));
        ch.push_all([1, 2]);
        l.push("after push");
        em::stop();
    })
    .unwrap();
    assert_eq!(log.events(), ["s1 1", "s2 1", "s1 2", "s2 2", "after push"]);
}

/// CH3: a push from another thread is delivered later, on the reactor
/// thread; a push before `run` is delivered once the reactor starts.
#[test]
fn pushes_from_other_threads_and_before_run_arrive_on_the_reactor_thread_later() {
    let log = Log::default();
    let l = log.clone();
    let ch = em::Channel::<String>::new();
    let reactor = thread::current().id();
    let l0 = l.clone();
    ch.subscribe(move |m| {
        assert_eq!(thread::current().id(), reactor);
        l0.push(m);
    });
    ch.push("before run".into());
    run_with_watchdog(move || -> em::Result<()> {
        l.push("run block");
        let sender = ch.sender()?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            sender.push("from thread".into()).unwrap();
            tx.send(()).unwrap();
        });
        recv(&rx); // pushed: still not delivered, the reactor is busy here
        l.push("after thread push");
        let ch2 = ch.clone();
        ch.subscribe(move |m| {
            if m == "from thread" {
                ch2.num_subscribers();
                em::stop();
            }
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(
        log.events(),
        [
            "run block",
            "after thread push",
            "before run",
            "from thread"
        ]
    );
}

/// CH4: no buffering; `pop` takes exactly the next item; `unsubscribe`
/// stops delivery.
#[test]
fn no_buffering_pop_takes_one_item_unsubscribe_stops_delivery() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let ch = em::Channel::new();
        ch.push(0); // nobody listens: lost
        let l1 = l.clone();
        ch.pop(move |n: u32| l1.push(format!("pop {n}")));
        let l2 = l.clone();
        let sub = ch.subscribe(move |n: u32| l2.push(format!("sub {n}")));
        ch.push_all([1, 2]);
        ch.unsubscribe(sub);
        ch.push(3);
        let l3 = l.clone();
        ch.subscribe(move |n: u32| l3.push(format!("late {n}")));
        ch.push(4);
        em::stop();
    })
    .unwrap();
    assert_eq!(log.events(), ["pop 1", "sub 1", "sub 2", "late 4"]);
}

/// Re-entrancy: a subscriber that subscribes, unsubscribes and pushes
/// during a delivery neither panics nor breaks item-major order.
#[test]
fn subscribers_may_subscribe_unsubscribe_and_push_during_delivery() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let ch = em::Channel::new();
        let victim = Rc::new(RefCell::new(None));
        let (c, v, l1) = (ch.clone(), victim.clone(), l.clone());
        ch.subscribe(move |n: u32| {
            l1.push(format!("a {n}"));
            if n == 1 {
                c.push(10); // nested: delivered after item 1 is done
                if let Some(id) = v.borrow_mut().take() {
                    c.unsubscribe(id); // b gets nothing more, not even 1
                }
                let l = l1.clone();
                c.subscribe(move |n: u32| l.push(format!("new {n}")));
            }
        });
        let l2 = l.clone();
        *victim.borrow_mut() = Some(ch.subscribe(move |n: u32| l2.push(format!("b {n}"))));
        ch.push(1);
        l.push("returned");
        em::stop();
    })
    .unwrap();
    assert_eq!(log.events(), ["a 1", "a 10", "new 10", "returned"]);
}

/// A panicking subscriber is contained; the others still get the item.
#[test]
fn a_panicking_subscriber_does_not_stop_delivery() {
    let log = Log::default();
    let l = log.clone();
    run_with_watchdog(move || {
        let ch = em::Channel::new();
        ch.subscribe(|n: u32| {
            if n == 1 {
                panic!("subscriber boom");
            }
        });
        let l1 = l.clone();
        ch.subscribe(move |n: u32| l1.push(format!("ok {n}")));
        ch.push_all([1, 2]);
        em::stop();
    })
    .unwrap();
    assert_eq!(log.events(), ["ok 1", "ok 2"]);
}

/// The stream form: items in order under `em::spawn`; it ends when the
/// channel is dropped; dropping it unsubscribes.
#[test]
fn subscribe_stream_yields_items_in_order_and_ends_with_the_channel() {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let ch = em::Channel::new();
        let stream = ch.subscribe_stream();
        let dropped = ch.subscribe_stream();
        assert_eq!(ch.num_subscribers(), 2);
        drop(dropped);
        assert_eq!(ch.num_subscribers(), 1);
        em::spawn(async move {
            let items: Vec<u32> = stream.collect().await;
            *g.borrow_mut() = items;
            em::stop();
        })?;
        em::next_tick(move || {
            ch.push_all(1..=5);
            drop(ch);
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(*got.borrow(), [1, 2, 3, 4, 5]);
}

/// Many threads push through clones of one sender: every item arrives once,
/// each thread's items in order.
#[test]
fn sender_from_four_threads_delivers_every_item_once_in_per_thread_order() {
    const PER: u32 = 5_000;
    let got = Rc::new(RefCell::new(vec![Vec::new(); 4]));
    let g = got.clone();
    // Senders do not keep the channel alive: the test does.
    let ch = em::Channel::<(usize, u32)>::new();
    let keep = ch.clone();
    run_with_watchdog(move || -> em::Result<()> {
        let seen = Rc::new(std::cell::Cell::new(0));
        ch.subscribe(move |(t, n)| {
            g.borrow_mut()[t].push(n);
            seen.set(seen.get() + 1);
            if seen.get() == 4 * PER {
                em::stop();
            }
        });
        let sender = ch.sender()?;
        for t in 0..4 {
            let s = sender.clone();
            thread::spawn(move || (0..PER).for_each(|n| s.push((t, n)).unwrap()));
        }
        Ok(())
    })
    .unwrap();
    drop(keep);
    for items in got.borrow().iter() {
        assert_eq!(*items, (0..PER).collect::<Vec<_>>());
    }
}

/// A push after the channel was dropped fails at once (the item is not
/// silently lost), from any thread, and says what is gone.
#[test]
fn a_push_after_the_channel_is_dropped_is_receiver_gone() {
    let (tx, rx) = std::sync::mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let ch = em::Channel::<u32>::new();
        let sender = ch.sender()?;
        sender.push(1)?;
        drop(ch);
        let handle = em::handle()?;
        thread::spawn(move || {
            tx.send(sender.push(2)).unwrap();
            handle.stop();
        });
        Ok(())
    })
    .unwrap();
    let err = recv(&rx).unwrap_err();
    assert!(err.is_receiver_gone(), "{err}");
    assert_eq!(
        err.to_string(),
        "ChannelSender::push: the channel was dropped on its reactor, so nothing receives the item"
    );
}

/// `sender` is reactor-only: a typed error elsewhere.
#[test]
fn sender_outside_a_reactor_is_a_typed_error() {
    let ch = em::Channel::<u32>::new();
    assert!(ch.sender().unwrap_err().is_no_reactor());
}

/// Compiles only for `Send + Sync` types.
fn require_send_sync<T: Send + Sync>() {}

/// The thread split is in the types: the primitives are reactor-owned
/// (`!Send`); the senders are the `Send + Sync` way in.
#[test]
fn primitives_are_not_send_and_senders_are_send_and_sync() {
    assert_not_send!(em::Channel<String>);
    assert_not_send!(em::ChannelStream<String>);
    assert_not_send!(em::Queue<String>);
    assert_not_send!(em::Deferred<String, String>);
    assert_not_send!(em::TickLoop);
    assert_not_send!(em::Pool<String>);
    assert_not_send!(em::PoolGuard<String>);
    assert_not_send!(em::Iteration);
    assert_not_send!(em::Done<String>);
    require_send_sync::<em::ChannelSender<String>>();
    require_send_sync::<em::QueueSender<String>>();
    require_send_sync::<em::SubscriptionId>();
}

/// The fan-out policy for connections (`subscribe_conn`): a subscriber that
/// does not read falls behind, and items are dropped for it and counted
/// instead of piling up until it is cut off; the publisher sees it behind;
/// the subscribers that read get every item; once the slow one reads
/// again it takes items again.
#[test]
fn a_connection_subscriber_that_falls_behind_drops_and_counts_items() {
    use std::cell::Cell;
    use std::rc::Rc;

    use em::{Conn, Connection, UnbindReason};
    use tokio_util::codec::LinesCodec;

    const ITEMS: usize = 1000;

    /// The server end of a subscriber: subscribes itself, with small
    /// watermarks so that falling behind comes quickly.
    struct Subscriber {
        channel: em::Channel<Rc<str>>,
        id: Rc<Cell<Option<em::SubscriptionId>>>,
        ended: Log,
    }
    impl Connection for Subscriber {
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new()
        }
        fn post_init(&mut self, conn: &Conn<LinesCodec>) {
            conn.set_outbound_watermarks(64 << 10, 16 << 10).unwrap();
            let id = self.channel.subscribe_conn(conn, |c, item: Rc<str>| {
                c.send_data(&*item);
            });
            self.id.set(Some(id));
        }
        fn receive_data(&mut self, _: &Conn<LinesCodec>, _: String) {}
        fn unbind(&mut self, _: &Conn<LinesCodec>, why: UnbindReason) {
            self.ended.push(reason(&why));
        }
    }

    /// The client end: records the lines it reads; `slow` ones start paused.
    struct Reader {
        slow: bool,
        lines: Rc<std::cell::RefCell<Vec<String>>>,
    }
    impl Connection for Reader {
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new()
        }
        fn post_init(&mut self, conn: &Conn<LinesCodec>) {
            if self.slow {
                conn.pause();
            }
        }
        fn receive_data(&mut self, _: &Conn<LinesCodec>, line: String) {
            self.lines.borrow_mut().push(line);
        }
    }

    let fast: Vec<Rc<std::cell::RefCell<Vec<String>>>> = (0..2).map(|_| Rc::default()).collect();
    let slow: Rc<std::cell::RefCell<Vec<String>>> = Rc::default();
    let slow_id: Rc<Cell<Option<em::SubscriptionId>>> = Rc::default();
    let ended = Log::default();
    let outcome: Rc<std::cell::RefCell<Vec<String>>> = Rc::default();
    let (f, s, sid, e, o) = (
        fast.clone(),
        slow.clone(),
        slow_id.clone(),
        ended.clone(),
        outcome.clone(),
    );
    run_with_watchdog(move || -> em::Result<()> {
        let channel = em::Channel::<Rc<str>>::new();
        for lines in &f {
            em::connect_pair(
                Subscriber {
                    channel: channel.clone(),
                    id: Rc::default(),
                    ended: e.clone(),
                },
                Reader {
                    slow: false,
                    lines: lines.clone(),
                },
            )?;
        }
        let (_, slow_client) = em::connect_pair(
            Subscriber {
                channel: channel.clone(),
                id: sid.clone(),
                ended: e.clone(),
            },
            Reader {
                slow: true,
                lines: s.clone(),
            },
        )?;
        let line = "x".repeat(1000);
        let mut next = 0;
        let mut resumed = false;
        em::tick_loop(move || {
            let delivered = f.iter().map(|l| l.borrow().len()).min().unwrap();
            if next < ITEMS {
                // Paced by the readers: the next item once they have this one.
                if delivered == next {
                    channel.push(Rc::from(format!("{next} {line}")));
                    next += 1;
                }
                return std::ops::ControlFlow::Continue(());
            }
            if delivered < ITEMS {
                return std::ops::ControlFlow::Continue(());
            }
            if !resumed {
                resumed = true;
                o.borrow_mut()
                    .push(format!("behind={}", channel.num_behind()));
                slow_client.resume();
            }
            if channel.num_behind() == 0 {
                let id = sid.get().unwrap();
                o.borrow_mut().push(format!(
                    "dropped={} total={}",
                    channel.dropped_for(id).unwrap(),
                    channel.dropped_count()
                ));
                channel.push(Rc::from("after"));
                let s = s.clone();
                em::tick_loop(move || {
                    if s.borrow().last().map(String::as_str) == Some("after") {
                        em::stop();
                        std::ops::ControlFlow::Break(())
                    } else {
                        std::ops::ControlFlow::Continue(())
                    }
                });
                return std::ops::ControlFlow::Break(());
            }
            std::ops::ControlFlow::Continue(())
        });
        Ok(())
    })
    .unwrap();
    let outcome = outcome.borrow();
    assert_eq!(
        outcome[0], "behind=1",
        "the publisher saw the slow subscriber behind"
    );
    for lines in &fast {
        let lines = lines.borrow();
        assert_eq!(
            lines.len(),
            ITEMS + 1,
            "a reading subscriber got every item"
        );
        assert_eq!(lines[ITEMS], "after");
        for (i, l) in lines[..ITEMS].iter().enumerate() {
            assert!(l.starts_with(&format!("{i} ")), "in order");
        }
    }
    let slow = slow.borrow();
    let got = slow.len() - 1;
    assert_eq!(
        slow.last().map(String::as_str),
        Some("after"),
        "it takes items again"
    );
    for (i, l) in slow[..got].iter().enumerate() {
        assert!(l.starts_with(&format!("{i} ")), "a prefix, in order");
    }
    assert!(got < ITEMS, "the slow subscriber fell behind");
    let dropped = ITEMS - got;
    assert_eq!(outcome[1], format!("dropped={dropped} total={dropped}"));
    assert!(
        ended.events().iter().all(|r| r == "ReactorStopped"),
        "{:?}",
        ended.events()
    );
}
