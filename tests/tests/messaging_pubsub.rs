//! A pub/sub round trip over TCP on `em::Channel`: 1,000 subscribers on
//! real sockets, every message arriving once and in order, and a
//! subscriber that never reads holding nobody up.

mod support;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::mpsc;

use em::{Conn, Connection, UnbindReason};
use support::*;
use tokio_util::codec::LinesCodec;

const SUBSCRIBERS: usize = 1_000;
const MESSAGES: usize = 200;

type Topics = Rc<RefCell<HashMap<String, em::Channel<Rc<str>>>>>;

/// The pubsub example's protocol: `SUB t`, `UNSUB t`, `PUB t message`.
struct Client {
    topics: Topics,
    subscriptions: HashMap<String, em::SubscriptionId>,
}

impl Connection for Client {
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::new_with_max_length(1024)
    }

    fn receive_data(&mut self, conn: &Conn<LinesCodec>, line: String) {
        let (verb, rest) = line.split_once(' ').unwrap_or((&line, ""));
        match verb {
            "SUB" => {
                let ch = self
                    .topics
                    .borrow_mut()
                    .entry(rest.to_owned())
                    .or_default()
                    .clone();
                let me = conn.clone();
                let id = ch.subscribe(move |m: Rc<str>| {
                    me.send_data(&*m);
                });
                self.subscriptions.insert(rest.to_owned(), id);
                conn.send_data(format!("SUBSCRIBED {rest}"));
            }
            "UNSUB" => {
                if let Some(id) = self.subscriptions.remove(rest) {
                    self.topics.borrow()[rest].unsubscribe(id);
                }
                conn.send_data(format!("UNSUBSCRIBED {rest}"));
            }
            "PUB" => {
                let (topic, msg) = rest.split_once(' ').unwrap();
                let ch = self.topics.borrow().get(topic).cloned();
                let n = ch.as_ref().map_or(0, |c| c.num_subscribers());
                if let Some(ch) = ch {
                    ch.push(Rc::from(format!("MSG {topic} {msg}")));
                }
                conn.send_data(format!("PUBLISHED {topic} {n}"));
            }
            _ => {
                conn.send_data("ERR");
            }
        }
    }

    fn unbind(&mut self, _: &Conn<LinesCodec>, _: UnbindReason) {
        let topics = self.topics.borrow();
        for (topic, id) in self.subscriptions.drain() {
            if let Some(ch) = topics.get(&topic) {
                ch.unsubscribe(id);
            }
        }
    }
}

#[test]
fn a_thousand_subscribers_get_every_message_once_in_order() {
    let (done_tx, done_rx) = mpsc::channel();
    run_with_watchdog(move || -> em::Result<()> {
        let topics = Topics::default();
        let server = em::start_server("127.0.0.1:0", move || Client {
            topics: topics.clone(),
            subscriptions: HashMap::new(),
        })?;
        let addr = server.local_addr().inet().expect("a TCP server");
        spawn_peer(em::handle()?, done_tx, move || {
            // One subscriber that never reads: it must not hold anyone up.
            let mut slow = LineClient::connect(addr);
            assert_eq!(slow.round("SUB news"), "SUBSCRIBED news");
            let mut subs: Vec<LineClient> = (0..SUBSCRIBERS)
                .map(|_| {
                    let mut c = LineClient::connect(addr);
                    assert_eq!(c.round("SUB news"), "SUBSCRIBED news");
                    c
                })
                .collect();
            let mut publisher = LineClient::connect(addr);
            for i in 0..MESSAGES {
                publisher.send(&format!("PUB news m{i}"));
            }
            for _ in 0..MESSAGES {
                assert_eq!(
                    publisher.recv(),
                    format!("PUBLISHED news {}", SUBSCRIBERS + 1)
                );
            }
            for (n, c) in subs.iter_mut().enumerate() {
                for i in 0..MESSAGES {
                    assert_eq!(c.recv(), format!("MSG news m{i}"), "subscriber {n}");
                }
                // Nothing more, no duplicate: the next line answers UNSUB.
                assert_eq!(c.round("UNSUB news"), "UNSUBSCRIBED news", "subscriber {n}");
            }
            drop(slow);
        });
        Ok(())
    })
    .unwrap();
    join_peer(&done_rx);
}
