//! em-redis against Debian's redis-server (started by each test on a
//! Unix-domain socket of its own): typed commands and server errors,
//! pipelining, the callback style, pub/sub, the bridge between em Channels
//! in two reactors, the broker killed and started again mid-stream, and a
//! peer that does not speak RESP.

mod support;

use std::cell::RefCell;
use std::time::Duration;

use bytes::Bytes;
use em::testing::TestReactor;
use em_redis::{Bridge, Client, Cmd, Options, Subscriber, Value};

use support::redis::RedisServer;
use support::*;

fn fast_reconnects() -> Options {
    Options::default().reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
}

#[test]
fn typed_commands_and_server_errors_against_redis_server() {
    let redis = RedisServer::start("typed");
    let endpoint = redis.endpoint();
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let c = Client::connect(endpoint).unwrap();
        assert_eq!(c.ping().await.unwrap(), "PONG");
        c.set("greeting", "hello").await.unwrap();
        let v: Option<String> = c.get("greeting").await.unwrap();
        assert_eq!(v.as_deref(), Some("hello"));
        let missing: Option<Bytes> = c.get("nothing here").await.unwrap();
        assert_eq!(missing, None);
        assert_eq!(c.incr("n").await.unwrap(), 1);
        assert_eq!(c.incr("n").await.unwrap(), 2);
        assert!(c.exists("n").await.unwrap());
        assert!(c.expire("n", 60).await.unwrap());
        assert_eq!(c.del("n").await.unwrap(), 1);
        assert!(!c.exists("n").await.unwrap());
        c.cmd(["RPUSH", "list", "a", "b", "c"]).await.unwrap();
        let list: Vec<String> = c.cmd_as(["LRANGE", "list", "0", "-1"]).await.unwrap();
        assert_eq!(list, ["a", "b", "c"]);
        let binary = Bytes::from_static(&[0, 159, 146, 150, 255]);
        c.set("bin", binary.clone()).await.unwrap();
        assert_eq!(c.get::<Bytes>("bin").await.unwrap(), Some(binary));
        let mixed = Cmd::new("SET").arg("ttl").arg(5).arg("EX").arg(100);
        assert_eq!(c.cmd(mixed).await.unwrap(), Value::Status("OK".into()));

        // A server error fails that command only.
        let err = c.incr("greeting").await.unwrap_err();
        assert!(err.is_server(), "{err}");
        assert!(
            err.server_message().unwrap().contains("not an integer"),
            "{err}"
        );
        let err = c.cmd(["NO-SUCH-COMMAND"]).await.unwrap_err();
        assert!(err.to_string().contains("unknown command"), "{err}");
        // A reply of the wrong shape for the type asked for.
        let err = c.cmd_as::<i64>(["GET", "greeting"]).await.unwrap_err();
        assert!(err.is_unexpected_reply(), "{err}");
        assert_eq!(c.ping().await.unwrap(), "PONG", "the connection is fine");
    });
    reactor.stop().unwrap();
}

#[test]
fn commands_given_together_are_pipelined_and_answered_in_order_against_redis_server() {
    let redis = RedisServer::start("pipeline");
    let endpoint = redis.endpoint();
    let reactor = TestReactor::start();
    let (values, writes) = reactor.run(move || async move {
        let c = Client::connect(endpoint).unwrap();
        c.ping().await.unwrap();
        // 1,000 commands given before any reply is awaited.
        let replies: Vec<_> = (0..1000).map(|_| c.incr("counter")).collect();
        let mut values = Vec::new();
        for r in replies {
            values.push(r.await.unwrap());
        }
        // The server saw them as one stream: its count of commands.
        let info: String = c.cmd_as(["INFO", "stats"]).await.unwrap();
        (values, info)
    });
    assert_eq!(values, (1..=1000).collect::<Vec<i64>>());
    assert!(writes.contains("total_commands_processed"), "{writes}");
    reactor.stop().unwrap();
}

#[test]
fn callbacks_run_on_the_reactor_in_order_against_redis_server() {
    let redis = RedisServer::start("callbacks");
    let endpoint = redis.endpoint();
    let reactor = TestReactor::start();
    let (tx, rx) = std::sync::mpsc::channel();
    reactor.block_on(move || {
        let c = Client::connect(endpoint).unwrap();
        let reactor_thread = std::thread::current().id();
        for i in 0..5 {
            let tx = tx.clone();
            c.cmd_as::<i64>(Cmd::new("INCRBY").arg("k").arg(i))
                .callback(move |r| {
                    assert_eq!(std::thread::current().id(), reactor_thread);
                    tx.send(r.unwrap()).unwrap();
                });
        }
    });
    let got: Vec<i64> = (0..5).map(|_| recv(&rx)).collect();
    assert_eq!(got, [0, 1, 3, 6, 10]);
    reactor.stop().unwrap();
}

#[test]
fn subscribe_and_psubscribe_get_every_message_in_order_against_redis_server() {
    let redis = RedisServer::start("pubsub");
    let endpoint = redis.endpoint();
    let reactor = TestReactor::start();
    let (plain_tx, plain_rx) = std::sync::mpsc::channel();
    let (pattern_tx, pattern_rx) = std::sync::mpsc::channel();
    let receivers = reactor.run(move || async move {
        let sub = Subscriber::connect(endpoint.clone()).unwrap();
        sub.subscribe("news", move |m| plain_tx.send(m).unwrap())
            .await
            .unwrap();
        sub.psubscribe("news*", move |ch, m| pattern_tx.send((ch, m)).unwrap())
            .await
            .unwrap();
        let c = Client::connect(endpoint).unwrap();
        let mut receivers = Vec::new();
        for i in 0..100 {
            receivers.push(c.publish("news", format!("m{i}")).await.unwrap());
        }
        c.publish("newsroom", "elsewhere").await.unwrap();
        c.publish("sport", "nobody listens").await.unwrap();
        SUBSCRIBER.with(|s| *s.borrow_mut() = Some(sub));
        receivers
    });
    let plain: Vec<Bytes> = (0..100).map(|_| recv(&plain_rx)).collect();
    let patterned: Vec<(Bytes, Bytes)> = (0..101).map(|_| recv(&pattern_rx)).collect();
    let expected: Vec<Bytes> = (0..100).map(|i| Bytes::from(format!("m{i}"))).collect();
    assert_eq!(plain, expected);
    assert_eq!(
        receivers,
        vec![2; 100],
        "the channel and the pattern subscription"
    );
    assert_eq!(patterned.len(), 101);
    assert_eq!(
        patterned[100],
        (Bytes::from("newsroom"), Bytes::from("elsewhere"))
    );
    reactor.stop().unwrap();
}

/// Messages alternating between two channels each reach their own
/// channel's callback; a second subscribe to a channel replaces its
/// callback from the next message on, and after an unsubscribe the
/// channel's messages reach nobody here.
#[test]
fn each_message_reaches_its_channels_current_callback_against_redis_server() {
    let redis = RedisServer::start("callbacks");
    let endpoint = redis.endpoint();
    let reactor = TestReactor::start();
    let (tx, rx) = std::sync::mpsc::channel::<(&'static str, Bytes)>();
    reactor.run(move || async move {
        let sub = Subscriber::connect(endpoint.clone()).unwrap();
        let (a, b) = (tx.clone(), tx.clone());
        sub.subscribe("a", move |m| a.send(("first a", m)).unwrap())
            .await
            .unwrap();
        sub.subscribe("b", move |m| b.send(("b", m)).unwrap())
            .await
            .unwrap();
        let c = Client::connect(endpoint).unwrap();
        // The last before the second subscribe is on "a".
        for i in 0..5 {
            let channel = if i % 2 == 0 { "a" } else { "b" };
            assert_eq!(c.publish(channel, format!("{i}")).await.unwrap(), 1);
        }
        let again = tx.clone();
        sub.subscribe("a", move |m| again.send(("second a", m)).unwrap())
            .await
            .unwrap();
        assert_eq!(c.publish("a", "5").await.unwrap(), 1);
        sub.unsubscribe("a");
        // Until Redis has the UNSUBSCRIBE, what it sends on "a" is dropped
        // here; then it counts no subscriber.
        while c.publish("a", "dropped").await.unwrap() == 1 {}
        assert_eq!(c.publish("b", "6").await.unwrap(), 1);
        sub.close();
    });
    let got: Vec<(&str, Bytes)> = (0..7).map(|_| recv(&rx)).collect();
    let expected: Vec<(&str, Bytes)> = [
        ("first a", "0"),
        ("b", "1"),
        ("first a", "2"),
        ("b", "3"),
        ("first a", "4"),
        ("second a", "5"),
        ("b", "6"),
    ]
    .into_iter()
    .map(|(who, m)| (who, Bytes::from(m)))
    .collect();
    assert_eq!(got, expected);
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "nothing after the unsubscribe"
    );
    reactor.stop().unwrap();
}

/// Two reactors, each with a local em Channel bridged to the same Redis
/// channel: what either publishes reaches the subscribers of both, once.
#[test]
fn a_bridge_shares_a_channel_between_two_reactors_against_redis_server() {
    let redis = RedisServer::start("bridge");
    let reactors = [TestReactor::start(), TestReactor::start()];
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| std::sync::mpsc::channel::<Bytes>()).unzip();
    for (reactor, tx) in reactors.iter().zip(txs) {
        let endpoint = redis.endpoint();
        reactor.run(move || async move {
            let topic = em::Channel::new();
            topic.subscribe(move |m: Bytes| tx.send(m).unwrap());
            let bridge = Bridge::start(endpoint, "room", &topic).unwrap();
            bridge.ready().await.unwrap();
            BRIDGE.with(|b| *b.borrow_mut() = Some(bridge));
        });
    }
    for (i, reactor) in reactors.iter().enumerate() {
        reactor.run(move || async move {
            let bridge = BRIDGE.with(|b| b.borrow().clone()).unwrap();
            for n in 0..10 {
                bridge.publish(format!("r{i} {n}")).await.unwrap();
            }
        });
    }
    for rx in &rxs {
        let log: Vec<Bytes> = (0..20).map(|_| recv(rx)).collect();
        for r in 0..2 {
            let from_r: Vec<&Bytes> = log
                .iter()
                .filter(|m| m.starts_with(format!("r{r} ").as_bytes()))
                .collect();
            let want: Vec<Bytes> = (0..10).map(|n| Bytes::from(format!("r{r} {n}"))).collect();
            assert_eq!(
                from_r,
                want.iter().collect::<Vec<_>>(),
                "each once, in order"
            );
        }
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "nothing delivered twice"
        );
    }
    for reactor in reactors {
        reactor.stop().unwrap();
    }
}

thread_local! {
    /// The bridge of the reactor this runs on (one per TestReactor thread).
    static BRIDGE: RefCell<Option<Bridge>> = const { RefCell::new(None) };
    /// A subscriber kept alive on the reactor after the future that made it.
    static SUBSCRIBER: RefCell<Option<Subscriber>> = const { RefCell::new(None) };
}

/// The broker is killed while a bridge publishes a numbered message every
/// few milliseconds, then started again: the publishes given while it is
/// down fail at once and are counted as lost, the bridge reconnects and
/// subscribes again by itself, and the messages after come through, each
/// once, in order.
#[test]
fn a_bridge_survives_the_redis_server_killed_and_started_again() {
    let mut redis = RedisServer::start("outage");
    let endpoint = redis.endpoint();
    let reactor = TestReactor::start();
    let (msg_tx, messages) = std::sync::mpsc::channel::<u64>();
    let (state_tx, states) = std::sync::mpsc::channel::<bool>();
    reactor.run(move || async move {
        let topic = em::Channel::new();
        topic.subscribe(move |m: Bytes| {
            msg_tx
                .send(std::str::from_utf8(&m).unwrap().parse().unwrap())
                .unwrap()
        });
        let bridge = Bridge::start_with(endpoint, "seq", &topic, fast_reconnects()).unwrap();
        bridge.ready().await.unwrap();
        let up = state_tx.clone();
        bridge.on_connected(move || up.send(true).unwrap());
        bridge.on_disconnected(move |_why| state_tx.send(false).unwrap());
        BRIDGE.with(|b| *b.borrow_mut() = Some(bridge));
    });
    let publish = |n: u64| {
        reactor.run(move || async move {
            let bridge = BRIDGE.with(|b| b.borrow().clone()).unwrap();
            bridge.publish(n.to_string()).await.is_ok()
        })
    };
    let bridge_says = |f: fn(&Bridge) -> u64| {
        reactor.block_on(move || BRIDGE.with(|b| f(b.borrow().as_ref().unwrap())))
    };
    for n in 0..10 {
        assert!(publish(n));
    }
    let before: Vec<u64> = (0..10).map(|_| recv(&messages)).collect();
    assert_eq!(before, (0..10).collect::<Vec<_>>());

    redis.kill();
    assert!(!recv(&states), "the bridge saw the broker go");
    // Down: each publish fails at once, and is counted as lost.
    let failed = (10..15).filter(|&n| !publish(n)).count();
    assert_eq!(failed, 5);
    assert_eq!(bridge_says(Bridge::lost), 5);

    redis.restart();
    // Whole again: both connections up and the subscription confirmed.
    loop {
        if recv(&states) {
            break;
        }
    }
    for n in 15..25 {
        assert!(publish(n), "publish {n} after the restart");
    }
    let after: Vec<u64> = (0..10).map(|_| recv(&messages)).collect();
    assert_eq!(
        after,
        (15..25).collect::<Vec<_>>(),
        "each once, in order; 10..15 lost"
    );
    assert!(
        messages.recv_timeout(Duration::from_millis(100)).is_err(),
        "nothing more, nothing twice"
    );
    assert!(
        bridge_says(Bridge::reconnects) >= 2,
        "both connections reconnected"
    );
    assert_eq!(bridge_says(Bridge::received), 20);
    reactor.stop().unwrap();
}

/// A peer that answers with something that is not RESP: the command fails,
/// the connection is dropped (and reconnects), the reactor carries on.
#[test]
fn a_peer_that_does_not_speak_resp_fails_the_command_not_the_reactor() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0; 64];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        let _ = s.read(&mut buf);
    });
    let reactor = TestReactor::start();
    let err = reactor.run(move || async move {
        let c = Client::connect_with(addr, fast_reconnects()).unwrap();
        let err = c.ping().await.unwrap_err();
        c.close();
        err
    });
    assert!(err.is_disconnected(), "{err}");
    assert!(err.to_string().contains("codec error"), "{err}");
    server.join().unwrap();
    assert_eq!(reactor.block_on(|| 1 + 1), 2);
    reactor.stop().unwrap();
}

/// Dropping the last handle of a client closes its connection once the
/// replies due have come: their callbacks still run, then the connection
/// ends, and it does not reconnect.
#[test]
fn dropping_the_last_client_closes_after_the_replies_due_against_redis_server() {
    let redis = RedisServer::start("drop");
    let endpoint = redis.endpoint();
    let reactor = TestReactor::start();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    reactor.block_on(move || {
        let c = Client::connect(endpoint).unwrap();
        let down = tx.clone();
        c.on_disconnected(move |why| down.send(format!("down: {why}")).unwrap());
        for i in 0..3 {
            let tx = tx.clone();
            c.cmd_as::<i64>(Cmd::new("INCRBY").arg("k").arg(i))
                .callback(move |r| tx.send(format!("reply {}", r.unwrap())).unwrap());
        }
        drop(c);
    });
    let events: Vec<String> = (0..4).map(|_| recv(&rx)).collect();
    assert_eq!(
        events,
        ["reply 0", "reply 1", "reply 3", "down: closed locally"]
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "no reconnect, nothing more"
    );
    assert_eq!(reactor.block_on(em::connection_count), 0);
    reactor.stop().unwrap();
}

/// A message callback may unsubscribe (or subscribe) on its own
/// subscriber: no borrow is held while it runs.
#[test]
fn a_message_callback_can_unsubscribe_its_own_subscriber_against_redis_server() {
    let redis = RedisServer::start("unsubscribe");
    let endpoint = redis.endpoint();
    let reactor = TestReactor::start();
    let (tx, rx) = std::sync::mpsc::channel::<Bytes>();
    reactor.run(move || async move {
        let sub = Subscriber::connect(endpoint.clone()).unwrap();
        let me = sub.clone();
        sub.subscribe("once", move |m| {
            me.unsubscribe("once");
            tx.send(m).unwrap();
        })
        .await
        .unwrap();
        let c = Client::connect(endpoint).unwrap();
        assert_eq!(c.publish("once", "first").await.unwrap(), 1);
        // The UNSUBSCRIBE goes out on the subscriber's connection: publish
        // until Redis has taken it (bounded by the TestReactor's limit).
        while c.publish("once", "probe").await.unwrap() == 1 {}
        assert_eq!(
            c.publish("once", "second").await.unwrap(),
            0,
            "unsubscribed"
        );
        sub.close();
    });
    assert_eq!(recv(&rx), Bytes::from("first"));
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "nothing after the unsubscribe"
    );
    reactor.stop().unwrap();
}

/// Commands that put a connection in push mode are refused on a Client
/// (their messages would be taken for replies), and a subscription Redis
/// refuses fails its reply instead of waiting forever.
#[test]
fn push_mode_commands_are_refused_and_a_refused_subscription_fails_against_redis_server() {
    let redis = RedisServer::start("refused");
    let endpoint = redis.endpoint();
    let reactor = TestReactor::start();
    reactor.run(move || async move {
        let c = Client::connect(endpoint.clone()).unwrap();
        let err = c.cmd(["subscribe", "x"]).await.unwrap_err();
        assert!(err.is_invalid_command(), "{err}");
        assert!(err.to_string().contains("Subscriber"), "{err}");
        // No channel is allowed for the default user any more.
        c.cmd(["ACL", "SETUSER", "default", "resetchannels"])
            .await
            .unwrap();
        let sub = Subscriber::connect(endpoint).unwrap();
        let err = sub.subscribe("news", |_| {}).await.unwrap_err();
        assert!(err.is_server(), "{err}");
        assert!(err.server_message().unwrap().contains("NOPERM"), "{err}");
        assert_eq!(c.ping().await.unwrap(), "PONG");
        sub.close();
    });
    reactor.stop().unwrap();
}

/// A bridge with an on_connected callback, once dropped, closes both its
/// connections (its callbacks hold no strong handle to each other).
#[test]
fn a_dropped_bridge_closes_its_connections_against_redis_server() {
    let redis = RedisServer::start("drop-bridge");
    let endpoint = redis.endpoint();
    let reactor = TestReactor::start();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    reactor.run(move || async move {
        let topic = em::Channel::new();
        let bridge = Bridge::start(endpoint, "t", &topic).unwrap();
        bridge.ready().await.unwrap();
        bridge.on_connected(|| {});
        bridge.on_disconnected(move |why| tx.send(why.to_owned()).unwrap());
        assert_eq!(em::connection_count(), 2);
        drop(bridge);
    });
    assert_eq!(recv(&rx), "closed locally");
    assert_eq!(recv(&rx), "closed locally");
    assert_eq!(reactor.block_on(em::connection_count), 0);
    reactor.stop().unwrap();
}
