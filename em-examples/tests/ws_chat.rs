//! `ws_chat` end to end: it serves its page at `/`, two WebSocket clients
//! join at `/ws`, a line from one reaches both, and it exits 0 on SIGTERM.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::Running;

type Client = tungstenite::WebSocket<TcpStream>;

fn join(addr: &str) -> Client {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (ws, response) = tungstenite::client(format!("ws://{addr}/ws"), stream).expect("join");
    assert_eq!(response.status(), 101);
    ws
}

fn next_text(ws: &mut Client) -> String {
    loop {
        match ws.read().expect("a message within the read timeout") {
            tungstenite::Message::Text(text) => return text.to_string(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[test]
fn a_line_from_one_member_reaches_both() {
    let (chat, addr) = Running::start(env!("CARGO_BIN_EXE_ws_chat"), &["--listen", "127.0.0.1:0"]);

    let mut page = TcpStream::connect(&addr).unwrap();
    page.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    page.write_all(b"GET / HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut html = String::new();
    page.read_to_string(&mut html).unwrap();
    assert!(html.starts_with("HTTP/1.1 200"), "{html}");
    assert!(html.contains("new WebSocket"), "{html}");

    let mut alice = join(&addr);
    let mut bob = join(&addr);
    // Each joined (its `on_open`, which subscribes it, ran in the reactor
    // callback that wrote its 101) before either sends.
    alice
        .send(tungstenite::Message::text("alice here"))
        .unwrap();
    assert_eq!(next_text(&mut alice), "alice here");
    assert_eq!(next_text(&mut bob), "alice here");
    bob.send(tungstenite::Message::text("hello from bob"))
        .unwrap();
    assert_eq!(next_text(&mut bob), "hello from bob");
    assert_eq!(next_text(&mut alice), "hello from bob");

    alice.close(None).unwrap();
    bob.close(None).unwrap();
    chat.terminate();
}
