//! em-amqp against Debian's rabbitmq-server: declare, publish with
//! confirms, consume with acks and prefetch, the broker's refusals (404,
//! 406, 403), the bridge into an em Queue, heartbeats through a fault
//! proxy, a peer that does not speak AMQP, and the broker killed and
//! started again mid-stream. Most tests share one broker (started once per
//! test binary, killed when it exits); the fault tests start their own.

mod support;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::future::Future;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

use em::testing::{FakeServer, FaultProxy, TestReactor, Toxic};
use em_amqp::{
    AMQPValue, BasicProperties, Channel, Client, ConsumeOptions, Delivery, FieldTable, Options,
    QueueBridge, QueueOptions,
};

use support::rabbitmq::RabbitMq;

/// The broker most tests share: started by the first test that asks.
fn broker() -> &'static RabbitMq {
    static BROKER: OnceLock<RabbitMq> = OnceLock::new();
    BROKER.get_or_init(|| RabbitMq::start("amqp-shared"))
}

/// The longest any awaited event may take.
const LIMIT: Duration = Duration::from_secs(30);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match em::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: nothing within {LIMIT:?}"),
    }
}

/// Waits (bounded) until `cond` holds, looking every 10 ms: for states
/// with no event to await (a counter, a flag of the client).
async fn until(what: &str, cond: impl Fn() -> bool) {
    within(what, async {
        while !cond() {
            em::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

fn fast() -> Options {
    Options::default().reconnect_delays(Duration::from_millis(50), Duration::from_millis(500))
}

/// Deliveries, kept for the test to look at.
#[derive(Clone, Default)]
struct Inbox(
    Rc<RefCell<Vec<Delivery>>>,
    Rc<RefCell<Option<em::Deferred<(), ()>>>>,
);

impl Inbox {
    fn push(&self, d: Delivery) {
        self.0.borrow_mut().push(d);
        if let Some(w) = self.1.borrow_mut().take() {
            w.succeed(());
        }
    }
    fn len(&self) -> usize {
        self.0.borrow().len()
    }
    async fn wait_for(&self, n: usize) {
        within(&format!("{n} deliveries"), async {
            while self.len() < n {
                let w = em::Deferred::new();
                *self.1.borrow_mut() = Some(w.clone());
                let _ = w.await;
            }
        })
        .await
    }
    fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

async fn consume(ch: &Channel, queue: &str, inbox: &Inbox) -> String {
    let i = inbox.clone();
    ch.basic_consume(queue, ConsumeOptions::default(), move |d| i.push(d))
        .await
        .expect("basic.consume")
}

#[test]
fn declare_publish_with_confirms_consume_and_ack_against_rabbitmq() {
    let url = broker().url();
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let client = Client::connect_with(&url, fast()).unwrap();
        let ch = within("channel", client.channel()).await.unwrap();
        assert!(ch.is_open());
        let info = ch
            .queue_declare("basics", QueueOptions::default())
            .await
            .unwrap();
        assert_eq!((info.name.as_str(), info.message_count), ("basics", 0));
        ch.confirm_select().await.unwrap();

        // 100 messages given at once (pipelined), each confirmed.
        let mut headers = FieldTable::default();
        headers.insert("attempt".into(), AMQPValue::LongInt(3));
        let confirms: Vec<_> = (0..100)
            .map(|n| {
                let props = BasicProperties::default()
                    .with_content_type("text/plain".into())
                    .with_message_id(format!("m{n}").into())
                    .with_headers(headers.clone());
                ch.basic_publish("", "basics", format!("message {n}"), props)
            })
            .collect();
        assert_eq!(ch.unconfirmed(), 100);
        for c in confirms {
            within("confirm", c).await.unwrap();
        }
        assert_eq!(ch.unconfirmed(), 0);
        // An empty body, and one of 300 KiB (three frames of 128 KiB).
        let big: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
        ch.basic_publish("", "basics", b"", BasicProperties::default())
            .await
            .unwrap();
        ch.basic_publish("", "basics", &big, BasicProperties::default())
            .await
            .unwrap();
        let passive = QueueOptions {
            passive: true,
            ..Default::default()
        };
        let info = ch.queue_declare("basics", passive.clone()).await.unwrap();
        assert_eq!(info.message_count, 102);

        let inbox = Inbox::default();
        let tag = consume(&ch, "basics", &inbox).await;
        assert!(tag.starts_with("amq.ctag"), "{tag}");
        inbox.wait_for(102).await;
        let got = inbox.take();
        for (n, d) in got.iter().take(100).enumerate() {
            assert_eq!(d.body().as_ref(), format!("message {n}").as_bytes());
            assert_eq!(d.routing_key(), "basics");
            assert_eq!(d.exchange(), "");
            assert_eq!(d.consumer_tag(), tag);
            assert!(!d.redelivered());
            let p = d.properties();
            assert_eq!(p.content_type().as_ref().unwrap().as_str(), "text/plain");
            assert_eq!(p.message_id().as_ref().unwrap().as_str(), format!("m{n}"));
            let h = p.headers().as_ref().unwrap();
            assert_eq!(h.inner().get("attempt"), Some(&AMQPValue::LongInt(3)));
        }
        assert!(got[100].body().is_empty());
        assert_eq!(got[101].body().as_ref(), &big[..]);
        for d in &got {
            d.ack().unwrap();
        }
        let err = got[0].ack().unwrap_err();
        assert!(
            err.is_invalid_argument(),
            "a second ack is refused here: {err}"
        );
        ch.basic_cancel(&tag).await.unwrap();
        // Acks are not answered; a round trip after them sees them applied.
        let info = ch.queue_declare("basics", passive).await.unwrap();
        assert_eq!((info.message_count, info.consumer_count), (0, 0));
        ch.close().await.unwrap();
        assert!(!ch.is_open());
        assert!(ch.closed_reason().unwrap().is_closed());
        client.close().await.unwrap();
        assert!(!client.is_connected());
    });
    reactor.stop().unwrap();
}

#[test]
fn the_prefetch_holds_back_what_is_not_acknowledged_against_rabbitmq() {
    let url = broker().url();
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let client = Client::connect_with(&url, fast()).unwrap();
        let ch = client.channel().await.unwrap();
        ch.queue_declare("prefetch", QueueOptions::default())
            .await
            .unwrap();
        for n in 0..10 {
            ch.basic_publish("", "prefetch", format!("{n}"), BasicProperties::default());
        }
        ch.basic_qos(3).await.unwrap();
        let inbox = Inbox::default();
        consume(&ch, "prefetch", &inbox).await;
        inbox.wait_for(3).await;
        // The broker holds the other 7 back (ready, not sent).
        let other = client.channel().await.unwrap();
        let passive = QueueOptions {
            passive: true,
            ..Default::default()
        };
        let info = other
            .queue_declare("prefetch", passive.clone())
            .await
            .unwrap();
        assert_eq!(info.message_count, 7);
        assert_eq!(inbox.len(), 3);
        // One ack lets exactly one more come.
        inbox.0.borrow()[0].ack().unwrap();
        inbox.wait_for(4).await;
        let info = other.queue_declare("prefetch", passive).await.unwrap();
        assert_eq!(info.message_count, 6);
        // A nack with requeue gives it back: it comes again, redelivered.
        let given_back = inbox.0.borrow()[1].body().clone();
        inbox.0.borrow()[1].nack(true).unwrap();
        inbox.wait_for(5).await;
        let again = inbox.0.borrow()[4].body().clone();
        assert_eq!(again, given_back);
        assert!(inbox.0.borrow()[4].redelivered());
        client.close().await.unwrap();
    });
    reactor.stop().unwrap();
}

#[test]
fn the_broker_closing_a_channel_fails_that_channel_only_against_rabbitmq() {
    let url = broker().url();
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let client = Client::connect_with(&url, fast()).unwrap();
        let ch = client.channel().await.unwrap();
        // 404: a passive declare of a queue that is not there.
        let passive = QueueOptions {
            passive: true,
            ..Default::default()
        };
        let pending_after = {
            let missing = ch.queue_declare("no-such-queue", passive);
            // Pipelined behind it: fails with the same reason.
            let after = ch.basic_qos(1);
            let err = within("404", missing).await.unwrap_err();
            assert!(err.is_channel_closed(), "{err}");
            assert_eq!(err.reply_code(), Some(404));
            assert!(err.to_string().contains("no-such-queue"), "{err}");
            after
        };
        let err = pending_after.await.unwrap_err();
        assert_eq!(err.reply_code(), Some(404), "{err}");
        assert!(!ch.is_open());
        let err = ch.basic_qos(1).await.unwrap_err();
        assert_eq!(err.reply_code(), Some(404), "later calls too: {err}");
        let err = ch
            .basic_publish("", "x", "y", BasicProperties::default())
            .await
            .unwrap_err();
        assert!(err.is_channel_closed(), "{err}");

        // 406: redeclared with other properties.
        let ch = client.channel().await.unwrap();
        ch.queue_declare(
            "durable-one",
            QueueOptions {
                durable: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let err = ch
            .queue_declare("durable-one", QueueOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.reply_code(), Some(406), "{err}");

        // The connection and a fresh channel are fine.
        assert!(client.is_connected());
        let ch = client.channel().await.unwrap();
        ch.queue_delete("durable-one").await.unwrap();
        // Names over 255 bytes are refused here, before anything is sent.
        let err = ch
            .queue_declare(&"q".repeat(256), QueueOptions::default())
            .await
            .unwrap_err();
        assert!(err.is_invalid_argument(), "{err}");
        assert!(ch.is_open());
        client.close().await.unwrap();
        // Calls on a closed client fail at once.
        let err = client.channel().await.unwrap_err();
        assert!(err.is_closed(), "{err}");
    });
    reactor.stop().unwrap();
}

#[test]
fn a_refused_login_is_not_retried_against_rabbitmq() {
    let url = format!("amqp://guest:wrong@{}/%2f", broker().addr());
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let client = Client::connect_with(&url, fast()).unwrap();
        let err = within("the refusal", client.channel()).await.unwrap_err();
        assert!(err.is_connection_closed(), "{err}");
        assert_eq!(err.reply_code(), Some(403), "{err}");
        assert_eq!(client.reconnects(), 0);
        let err = client.channel().await.unwrap_err();
        assert_eq!(err.reply_code(), Some(403), "{err}");
    });
    reactor.stop().unwrap();
}

#[test]
fn the_bridge_acks_after_done_and_gives_back_a_dropped_job_against_rabbitmq() {
    let url = broker().url();
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let client = Client::connect_with(&url, fast()).unwrap();
        let ch = client.channel().await.unwrap();
        ch.queue_declare(
            "bridge-jobs",
            QueueOptions {
                durable: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        ch.confirm_select().await.unwrap();
        for n in 1..=5 {
            ch.basic_publish(
                "",
                "bridge-jobs",
                format!("job-{n}"),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        }
        let bridge = QueueBridge::start(&client, "bridge-jobs", 2);
        let jobs = bridge.jobs();
        // Dropped without done (a consumer that gave up): back to RabbitMQ.
        let first = within("a job", jobs.pop_async()).await;
        let name = first.body().clone();
        drop(first);
        assert_eq!(bridge.requeued(), 1);
        let mut done = BTreeSet::new();
        let mut came_again = false;
        while done.len() < 5 {
            let job = within("a job", jobs.pop_async()).await;
            if *job.body() == name {
                assert!(job.redelivered());
                came_again = true;
            }
            done.insert(String::from_utf8(job.body().to_vec()).unwrap());
            job.done().unwrap();
        }
        assert!(came_again);
        assert_eq!(done.len(), 5);
        assert_eq!(bridge.acked(), 5);
        assert_eq!(bridge.delivered(), 6);
        assert_eq!(bridge.redelivered(), 1);
        assert!(bridge.is_consuming());
        bridge.stop();
        let passive = QueueOptions {
            passive: true,
            ..Default::default()
        };
        let info = ch.queue_declare("bridge-jobs", passive).await.unwrap();
        assert_eq!(info.message_count, 0, "every job acknowledged");
        ch.queue_delete("bridge-jobs").await.unwrap();
        client.close().await.unwrap();
    });
    reactor.stop().unwrap();
}

#[test]
fn a_silent_broker_is_caught_by_heartbeats_and_the_client_reconnects_against_rabbitmq() {
    let upstream: std::net::SocketAddr = broker().addr().parse().unwrap();
    let proxy = FaultProxy::start(upstream);
    let url = format!("amqp://guest:guest@{}/%2f", proxy.local_addr());
    let reactor = TestReactor::start();
    let ups = reactor.run(move || async move {
        let options = fast().heartbeat(Duration::from_secs(1));
        let client = Client::connect_with(&url, options).unwrap();
        let ups = Rc::new(Cell::new(0));
        let downs = Rc::new(RefCell::new(Vec::new()));
        let (u, d) = (ups.clone(), downs.clone());
        client.on_connected(move |_| u.set(u.get() + 1));
        client.on_disconnected(move |e| d.borrow_mut().push(e.to_string()));
        within("the first channel", client.channel()).await.unwrap();
        assert_eq!(client.tuning().0, Duration::from_secs(1));
        // The broker's frames stop coming (held by the proxy).
        let held = proxy.add_toxic(Toxic::timeout(Duration::ZERO));
        until("the heartbeat check", || !downs.borrow().is_empty()).await;
        assert!(
            downs.borrow()[0].contains("heartbeat"),
            "{:?}",
            downs.borrow()
        );
        proxy.remove_toxic(held);
        until("the reconnect", || client.is_connected()).await;
        let ch = within("a channel again", client.channel()).await.unwrap();
        assert!(ch.is_open());
        assert!(client.reconnects() >= 1);
        // A broker that never answers Connection.Close: the socket closes
        // anyway (after 5 s), and close() resolves.
        proxy.add_toxic(Toxic::timeout(Duration::ZERO));
        within("close with no answer", client.close())
            .await
            .unwrap();
        assert!(!client.is_connected());
        ups.get()
    });
    assert_eq!(
        ups, 2,
        "on_connected after the first handshake and after the reconnect"
    );
    reactor.stop().unwrap();
}

#[test]
fn a_peer_that_does_not_speak_amqp_is_retried_and_nothing_panics() {
    let fake = FakeServer::handler(|conn, _data| {
        conn.send_data("HTTP/1.1 400 Bad Request\r\n\r\n");
        conn.close_connection_after_writing();
    });
    let url = format!("amqp://guest:guest@{}/%2f", fake.local_addr());
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let client = Client::connect_with(&url, fast()).unwrap();
        let downs = Rc::new(Cell::new(0));
        let d = downs.clone();
        client.on_disconnected(move |_| d.set(d.get() + 1));
        let channel = client.channel();
        until("two retries", || client.reconnects() >= 2).await;
        assert!(!client.is_connected());
        assert_eq!(downs.get(), 0, "never up, so never down");
        assert!(!channel.is_resolved(), "still waiting for a broker");
        client.close().await.unwrap();
        let err = channel.await.unwrap_err();
        assert!(err.is_closed(), "{err}");
    });
    reactor.stop().unwrap();
}

/// What the kill test keeps on the reactor thread between its phases.
struct Survivors {
    client: Client,
    ch: Channel,
    bridge: QueueBridge,
    held: Vec<em_amqp::Job>,
    in_flight: em_amqp::Reply<()>,
}

thread_local! {
    static SURVIVORS: RefCell<Option<Survivors>> = const { RefCell::new(None) };
}

/// The broker killed (SIGKILL) and started again on the same port: the
/// bridge reconnects and carries on; what was in flight comes again; what
/// was published while it was down failed and is counted. In phases, each
/// its own `run` (each bounded), the kill and the restart on the test
/// thread between them.
#[test]
fn the_bridge_carries_on_after_the_broker_is_killed_and_restarted_against_rabbitmq() {
    let mut broker = RabbitMq::start("amqp-kill");
    let url = broker.url();
    let reactor = TestReactor::start();
    // Twenty persistent jobs; five taken and finished, five taken and held,
    // and a publish whose confirm has not come when the broker dies.
    let (finished, held_names) = reactor.run(move || async move {
        let client = Client::connect_with(&url, fast()).unwrap();
        let ch = client.channel().await.unwrap();
        let durable = QueueOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare("survivors", durable).await.unwrap();
        ch.confirm_select().await.unwrap();
        let persistent = BasicProperties::default().with_delivery_mode(2);
        for n in 1..=20 {
            ch.basic_publish("", "survivors", format!("job-{n}"), persistent.clone())
                .await
                .unwrap();
        }
        let bridge = QueueBridge::start(&client, "survivors", 5);
        let jobs = bridge.jobs();
        let mut finished = BTreeSet::new();
        for _ in 0..5 {
            let job = within("a job", jobs.pop_async()).await;
            finished.insert(job.body().clone());
            job.done().unwrap();
        }
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(within("a job", jobs.pop_async()).await);
        }
        let held_names: Vec<_> = held.iter().map(|j| j.body().clone()).collect();
        let in_flight = ch.basic_publish("", "survivors", "late", persistent);
        SURVIVORS.with(|s| {
            *s.borrow_mut() = Some(Survivors {
                client,
                ch,
                bridge,
                held,
                in_flight,
            })
        });
        (finished, held_names)
    });

    // RabbitMQ writes the queue's declaration to disk within ~2 s; a kill
    // before that loses the queue (not this client's doing).
    broker.wait_until_on_disk("survivors");
    broker.kill();

    // While it is down: the channel is gone, publishing fails at once, and
    // the held jobs cannot be acknowledged (the broker has them).
    let late_confirmed = reactor.run(|| async {
        let (client, ch, held, in_flight) = SURVIVORS.with(|s| {
            let mut s = s.borrow_mut();
            let s = s.as_mut().unwrap();
            (
                s.client.clone(),
                s.ch.clone(),
                std::mem::take(&mut s.held),
                s.in_flight.clone(),
            )
        });
        until("the client to notice", || !client.is_connected()).await;
        let late = within("the unconfirmed publish", in_flight).await;
        if let Err(e) = &late {
            assert!(e.is_disconnected(), "{e}");
        }
        assert!(!ch.is_open());
        let err = ch
            .basic_publish("", "survivors", "lost", BasicProperties::default())
            .await
            .unwrap_err();
        assert!(err.is_disconnected(), "{err}");
        for job in held {
            let err = job.done().unwrap_err();
            assert!(err.is_disconnected(), "{err}");
        }
        late.is_ok()
    });

    broker.restart();

    // Every job not finished before the kill comes again (at least once):
    // the five held and the ten never taken. The acks of the five finished
    // may not have reached the broker's disk when it was killed; those may
    // come again too. "late" comes if its confirm came before the kill.
    reactor.run(move || async move {
        let (client, bridge_jobs) = SURVIVORS.with(|s| {
            let s = s.borrow();
            let s = s.as_ref().unwrap();
            (s.client.clone(), s.bridge.jobs())
        });
        let wanted: BTreeSet<_> = (1..=20)
            .map(|n| bytes::Bytes::from(format!("job-{n}")))
            .collect();
        let mut after = BTreeSet::new();
        let mut redelivered = BTreeSet::new();
        while !wanted
            .iter()
            .all(|j| finished.contains(j) || after.contains(j))
            || !held_names.iter().all(|j| after.contains(j))
            || (late_confirmed && !after.contains(&b"late"[..]))
        {
            let Ok(job) = em::timeout(LIMIT, bridge_jobs.pop_async()).await else {
                let (starts, last, delivered, discarded) = SURVIVORS.with(|s| {
                    let s = s.borrow();
                    let b = &s.as_ref().unwrap().bridge;
                    (b.starts(), b.last_error(), b.delivered(), b.discarded())
                });
                let other = client.channel().await.unwrap();
                let passive = QueueOptions {
                    passive: true,
                    ..Default::default()
                };
                let info = other.queue_declare("survivors", passive).await;
                panic!(
                    "jobs after the restart: nothing within {LIMIT:?}; the queue now {info:?}; after {after:?}, finished \
                     {finished:?}, held {held_names:?}, late confirmed {late_confirmed}, connected \
                     {}, reconnects {}, bridge starts {starts}, delivered {delivered}, discarded \
                     {discarded}, last error {last:?}",
                    client.is_connected(),
                    client.reconnects()
                );
            };
            if job.redelivered() {
                redelivered.insert(job.body().clone());
            }
            after.insert(job.body().clone());
            job.done().unwrap();
        }
        let Survivors { bridge, .. } = SURVIVORS.with(|s| s.borrow_mut().take()).unwrap();
        assert!(client.reconnects() >= 1);
        assert!(bridge.is_consuming());
        assert!(bridge.starts() >= 2, "consumed again after the restart");
        for j in &held_names {
            assert!(
                redelivered.contains(j),
                "held job {j:?} came back flagged redelivered"
            );
        }
        assert!(
            !after.contains(&b"lost"[..]),
            "refused while down, never sent"
        );
        bridge.stop();
        client.close().await.unwrap();
    });
    reactor.stop().unwrap();
}

/// A consumer callback that panics is contained: the message goes back to
/// the queue and comes again (redelivered), the channel and the connection
/// carry on, and the panic is reported, not lost.
#[test]
fn a_panicking_consumer_is_contained_and_its_message_comes_again_against_rabbitmq() {
    let url = broker().url();
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let client = Client::connect_with(&url, fast()).unwrap();
        let ch = client.channel().await.unwrap();
        ch.queue_declare("panics", QueueOptions::default())
            .await
            .unwrap();
        ch.confirm_select().await.unwrap();
        ch.basic_publish("", "panics", "boom", BasicProperties::default())
            .await
            .unwrap();
        ch.basic_publish("", "panics", "calm", BasicProperties::default())
            .await
            .unwrap();
        let inbox = Inbox::default();
        let i = inbox.clone();
        ch.basic_consume("panics", ConsumeOptions::default(), move |d| {
            if d.body().as_ref() == b"boom" && !d.redelivered() {
                panic!("a consumer fell over on {:?}", d.body());
            }
            d.ack().unwrap();
            i.push(d);
        })
        .await
        .unwrap();
        inbox.wait_for(2).await;
        let got = inbox.take();
        let boom = got.iter().find(|d| d.body().as_ref() == b"boom").unwrap();
        assert!(boom.redelivered());
        assert!(ch.is_open(), "the channel carries on");
        assert_eq!(client.reconnects(), 0, "and the connection");
        let passive = QueueOptions {
            passive: true,
            ..Default::default()
        };
        let info = ch.queue_declare("panics", passive).await.unwrap();
        assert_eq!(info.message_count, 0);
        client.close().await.unwrap();
    });
    let err = reactor.stop().unwrap_err();
    assert_eq!(err.panics().len(), 1, "{err}");
    assert!(err.panics()[0].contains("a consumer fell over"), "{err}");
}

/// Both sides closing a channel at once (the broker's 404 crossing our
/// close) ends that channel only; the connection carries on.
#[test]
fn closes_that_cross_end_the_channel_only_against_rabbitmq() {
    let url = broker().url();
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let client = Client::connect_with(&url, fast()).unwrap();
        for _ in 0..20 {
            let ch = client.channel().await.unwrap();
            // The broker closes the channel (404, no such exchange) while
            // our Close is on its way.
            let publish =
                ch.basic_publish("no-such-exchange", "x", "y", BasicProperties::default());
            let closed = Rc::new(RefCell::new(None));
            let c = closed.clone();
            ch.on_closed(move |why| *c.borrow_mut() = Some(why.clone()));
            within("close", ch.close()).await.unwrap();
            let _ = publish.await;
            assert!(closed.borrow().is_some());
            assert!(!ch.is_open());
        }
        assert_eq!(client.reconnects(), 0, "the connection carried on");
        let ch = client.channel().await.unwrap();
        ch.queue_declare(
            "",
            QueueOptions {
                exclusive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        client.close().await.unwrap();
    });
    reactor.stop().unwrap();
}

/// The bridge's queue deleted under it (the broker cancels the consumer):
/// the bridge consumes again (declaring the queue again) while the
/// connection stays up.
#[test]
fn the_bridge_consumes_again_when_its_queue_is_deleted_against_rabbitmq() {
    let url = broker().url();
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let client = Client::connect_with(&url, fast()).unwrap();
        let bridge = QueueBridge::start(&client, "deleted-under-it", 4);
        until("consuming", || bridge.starts() == 1).await;
        let ch = client.channel().await.unwrap();
        assert_eq!(ch.queue_delete("deleted-under-it").await.unwrap(), 0);
        until("consuming again", || {
            bridge.starts() == 2 && bridge.is_consuming()
        })
        .await;
        ch.confirm_select().await.unwrap();
        ch.basic_publish("", "deleted-under-it", "after", BasicProperties::default())
            .await
            .unwrap();
        let job = within("a job", bridge.jobs().pop_async()).await;
        assert_eq!(job.body().as_ref(), b"after");
        job.done().unwrap();
        assert_eq!(client.reconnects(), 0);
        ch.queue_delete("deleted-under-it").await.unwrap();
        bridge.stop();
        client.close().await.unwrap();
    });
    reactor.stop().unwrap();
}

/// A peer that accepts and never speaks (a balancer with no broker behind
/// it): each try is given up after the connection timeout, and retried.
#[test]
fn a_silent_peer_is_given_up_after_the_connection_timeout() {
    let fake = FakeServer::recording().start();
    let url = format!("amqp://guest:guest@{}/%2f", fake.local_addr());
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let options = fast().connection_timeout(Duration::from_millis(200));
        let client = Client::connect_with(&url, options).unwrap();
        let channel = client.channel();
        until("two tries given up", || client.reconnects() >= 2).await;
        assert!(!channel.is_resolved(), "still waiting for a broker");
        client.close().await.unwrap();
        assert!(channel.await.unwrap_err().is_closed());
    });
    assert!(fake.connections() >= 2, "each try connected");
    reactor.stop().unwrap();
}
