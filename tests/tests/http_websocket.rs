//! em-http's WebSockets over real sockets: echo, fragmentation, control
//! frames, both closing handshakes, protocol errors and their close codes,
//! refused handshakes, isolation between sockets, and interop with
//! tungstenite's client and Python's `websockets`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::mpsc;

use em_http::http;
use em_http::websocket::{self, Message, WebSocket, WebSocketHandler, WebSocketOptions};
use em_http::{Body, IntoResponse};
use tungstenite::protocol::frame::coding::CloseCode;

use support::*;

/// Echoes every message; `close-me` makes the server close with 4000
/// "bye". Logs `open`, `ping <payload>`, `close <code> <reason>`.
struct Recorder {
    log: Log,
}

impl WebSocketHandler for Recorder {
    fn on_open(&mut self, _ws: &WebSocket) {
        self.log.push("open");
    }

    fn on_message(&mut self, ws: &WebSocket, message: Message) {
        if message == Message::Text("close-me".into()) {
            ws.close(4000, "bye").unwrap();
            assert!(!ws.is_open());
            assert!(ws.send("too late").is_err());
            return;
        }
        ws.send(message).unwrap();
    }

    fn on_ping(&mut self, _ws: &WebSocket, payload: bytes::Bytes) {
        self.log
            .push(format!("ping {}", String::from_utf8_lossy(&payload)));
    }

    fn on_close(&mut self, ws: &WebSocket, code: Option<u16>, reason: &str) {
        assert!(!ws.is_open());
        self.log.push(format!("close {code:?} {reason}"));
    }
}

/// Serves a [`Recorder`] WebSocket at `/ws` with `options`; anything else
/// is 404.
fn serve(options: WebSocketOptions, log: &Log) -> SocketAddr {
    let log = log.clone();
    let server = em_http::serve("127.0.0.1:0", move |request: http::Request<Body>| {
        let (log, options) = (log.clone(), options.clone());
        async move {
            if request.uri().path() == "/ws" {
                assert!(websocket::is_upgrade(&request));
                websocket::accept_with(&request, options, Recorder { log }).into_response()
            } else {
                http::StatusCode::NOT_FOUND.into_response()
            }
        }
    })
    .expect("serve");
    server.local_addr().inet().unwrap()
}

/// Runs a reactor serving [`Recorder`]s while `client` runs on a thread
/// with the server's address; returns the client's value and the log.
fn with_server<T: Send + 'static>(
    options: WebSocketOptions,
    client: impl FnOnce(SocketAddr) -> T + Send + 'static,
) -> (T, Vec<String>) {
    let log = Log::default();
    let (done_tx, done_rx) = mpsc::channel();
    let server_log = log.clone();
    run_with_watchdog(move || {
        let addr = serve(options, &server_log);
        spawn_peer(em::handle().unwrap(), done_tx, move || client(addr));
    })
    .unwrap();
    (join_peer(&done_rx), log.events())
}

type Client = tungstenite::WebSocket<TcpStream>;

fn connect(addr: SocketAddr) -> Client {
    let (ws, response) = tungstenite::client(format!("ws://{addr}/ws"), client(addr)).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// Reads until the server's close frame; its code.
fn read_close(ws: &mut Client) -> Option<(u16, String)> {
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Close(frame) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()))
            }
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[test]
fn echoes_text_and_binary_and_answers_pings() {
    let ((), log) = with_server(WebSocketOptions::new(), |addr| {
        let mut ws = connect(addr);
        ws.send(tungstenite::Message::text("héllo")).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("héllo"));
        ws.send(tungstenite::Message::binary(vec![0u8, 1, 2, 255]))
            .unwrap();
        assert_eq!(
            ws.read().unwrap(),
            tungstenite::Message::binary(vec![0u8, 1, 2, 255])
        );
        ws.send(tungstenite::Message::Ping("are you there".into()))
            .unwrap();
        assert_eq!(
            ws.read().unwrap(),
            tungstenite::Message::Pong("are you there".into())
        );
        ws.close(None).unwrap();
        assert_eq!(read_close(&mut ws), None);
    });
    assert_eq!(log, ["open", "ping are you there", "close None "]);
}

#[test]
fn client_close_1000_is_echoed_and_reported() {
    let (close, log) = with_server(WebSocketOptions::new(), |addr| {
        let mut ws = connect(addr);
        ws.close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        }))
        .unwrap();
        let close = read_close(&mut ws);
        // The server then closes the TCP connection.
        assert!(matches!(
            ws.read(),
            Err(tungstenite::Error::ConnectionClosed)
        ));
        close
    });
    assert_eq!(close, Some((1000, String::new())));
    assert_eq!(log, ["open", "close Some(1000) done"]);
}

#[test]
fn server_close_4000_reaches_the_client() {
    let (close, log) = with_server(WebSocketOptions::new(), |addr| {
        let mut ws = connect(addr);
        ws.send(tungstenite::Message::text("close-me")).unwrap();
        let close = read_close(&mut ws);
        // tungstenite answers the close; the server then ends the TCP
        // connection.
        match ws.read() {
            Err(tungstenite::Error::ConnectionClosed) => {}
            other => panic!("after the close: {other:?}"),
        }
        close
    });
    assert_eq!(close, Some((4000, "bye".to_owned())));
    assert_eq!(log, ["open", "close Some(4000) bye"]);
}

/// A hand-made client: raw frames, masked or not, over a std socket.
struct Raw(TcpStream);

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;

impl Raw {
    /// The handshake, with `extra` bytes written in the same write.
    fn connect_with(addr: SocketAddr, extra: &[u8]) -> Raw {
        let mut s = client(addr);
        let mut request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .into_bytes();
        request.extend_from_slice(extra);
        s.write_all(&request).unwrap();
        // Byte by byte: what follows the head is frames, left in the socket.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        Raw(s)
    }

    fn connect(addr: SocketAddr) -> Raw {
        Raw::connect_with(addr, &[])
    }

    fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        let mask_bit = u8::from(masked) << 7;
        match payload.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [0x12, 0x34, 0x56, 0x78];
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.0
            .write_all(&Raw::frame(fin, opcode, payload, true))
            .unwrap();
    }

    /// One server frame: opcode and payload.
    fn read(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0; 2];
        self.0.read_exact(&mut head).unwrap();
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0; 2];
                self.0.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0; 8];
                self.0.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0; len];
        self.0.read_exact(&mut payload).unwrap();
        (head[0] & 0x0f, payload)
    }

    /// Reads the server's close frame, checks that the TCP connection ends
    /// after it, and gives its code.
    fn expect_close(&mut self) -> u16 {
        let (opcode, payload) = self.read();
        assert_eq!(opcode, CLOSE, "{payload:?}");
        let rest = read_until_closed(&mut self.0);
        assert!(rest.is_empty(), "bytes after the close frame: {rest:?}");
        u16::from_be_bytes([payload[0], payload[1]])
    }
}

#[test]
fn a_fragmented_mebibyte_arrives_whole() {
    let ((), _) = with_server(WebSocketOptions::new(), |addr| {
        let mut raw = Raw::connect(addr);
        let data = pattern(1 << 20, 7);
        let chunks: Vec<&[u8]> = data.chunks(10_000).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 { BINARY } else { CONTINUATION };
            raw.send(i == chunks.len() - 1, opcode, chunk);
            if i == 50 {
                // A ping in the middle of the message is answered at once.
                raw.send(true, 0x9, b"mid");
                assert_eq!(raw.read(), (0xA, b"mid".to_vec()));
            }
        }
        let (opcode, echoed) = raw.read();
        assert_eq!(opcode, BINARY);
        assert!(echoed == data, "the echo differs");
    });
}

#[test]
fn a_frame_in_the_handshakes_read_is_handled() {
    let ((), _) = with_server(WebSocketOptions::new(), |addr| {
        let mut raw = Raw::connect_with(addr, &Raw::frame(true, TEXT, b"early", true));
        assert_eq!(raw.read(), (TEXT, b"early".to_vec()));
    });
}

#[test]
fn an_unmasked_frame_is_closed_with_1002() {
    let (code, log) = with_server(WebSocketOptions::new(), |addr| {
        let mut raw = Raw::connect(addr);
        raw.0
            .write_all(&Raw::frame(true, TEXT, b"naked", false))
            .unwrap();
        raw.expect_close()
    });
    assert_eq!(code, 1002);
    assert_eq!(log[1], "close Some(1002) client frame is not masked");
}

#[test]
fn invalid_utf8_is_closed_with_1007() {
    let (code, log) = with_server(WebSocketOptions::new(), |addr| {
        let mut raw = Raw::connect(addr);
        raw.send(true, TEXT, &[b'o', b'k', 0xff, 0xfe]);
        raw.expect_close()
    });
    assert_eq!(code, 1007);
    assert!(log[1].starts_with("close Some(1007)"), "{log:?}");
}

#[test]
fn a_message_over_the_limit_is_closed_with_1009() {
    let options = WebSocketOptions::new().max_message_size(1000);
    let (code, log) = with_server(options, |addr| {
        let mut raw = Raw::connect(addr);
        raw.send(false, BINARY, &[1; 600]);
        raw.send(true, CONTINUATION, &[2; 600]);
        raw.expect_close()
    });
    assert_eq!(code, 1009);
    assert!(log[1].starts_with("close Some(1009)"), "{log:?}");
}

/// Sends `request` raw and reads the answer's head.
fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = client(addr);
    s.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            return head;
        }
    }
}

#[test]
fn bad_handshakes_are_refused() {
    let ((missing_key, wrong_version), log) = with_server(WebSocketOptions::new(), |addr| {
        let missing_key = raw_exchange(
            addr,
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
        );
        let wrong_version = raw_exchange(
            addr,
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
        );
        (missing_key, wrong_version)
    });
    assert!(missing_key.starts_with("HTTP/1.1 400"), "{missing_key}");
    assert!(wrong_version.starts_with("HTTP/1.1 426"), "{wrong_version}");
    assert!(
        wrong_version
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13\r\n"),
        "{wrong_version}"
    );
    assert!(log.is_empty(), "no handler ran: {log:?}");
}

#[test]
fn a_misbehaving_socket_does_not_disturb_another() {
    let ((), log) = with_server(WebSocketOptions::new(), |addr| {
        let mut good = connect(addr);
        let mut bad = Raw::connect(addr);
        good.send(tungstenite::Message::text("one")).unwrap();
        assert_eq!(good.read().unwrap(), tungstenite::Message::text("one"));
        bad.0
            .write_all(&Raw::frame(true, TEXT, b"naked", false))
            .unwrap();
        assert_eq!(bad.expect_close(), 1002);
        good.send(tungstenite::Message::text("two")).unwrap();
        assert_eq!(good.read().unwrap(), tungstenite::Message::text("two"));
        good.close(None).unwrap();
        assert_eq!(read_close(&mut good), None);
    });
    assert_eq!(log.iter().filter(|e| *e == "open").count(), 2);
    assert!(log.contains(&"close Some(1002) client frame is not masked".to_owned()));
    assert!(log.contains(&"close None ".to_owned()));
}

/// Python's `websockets` client: echo of text and binary, a ping, a clean
/// close.
const PYTHON_CLIENT: &str = r#"
import asyncio, sys
import websockets

async def main(url):
    async with websockets.connect(url) as ws:
        await ws.send("hello from python")
        print("text", await ws.recv())
        await ws.send(bytes([1, 2, 3]))
        print("binary", list(await ws.recv()))
        pong = await ws.ping(b"py")
        latency = await asyncio.wait_for(pong, 10)
        print("pong")
        await ws.close(1000, "bye")
        print("closed", ws.close_code)

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 20))
"#;

#[test]
fn python_websockets_client_interoperates() {
    let probe = Command::new("python3")
        .args(["-c", "import websockets"])
        .output()
        .unwrap_or_else(|e| panic!("python3 is required for this test (CI installs it): {e}"));
    assert!(
        probe.status.success(),
        "Python's `websockets` package is required for this test \
         (`python3 -m pip install websockets`; .ci/run installs it): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let (output, log) = with_server(WebSocketOptions::new(), |addr| {
        Command::new("python3")
            .args(["-c", PYTHON_CLIENT, &format!("ws://{addr}/ws")])
            .output()
            .expect("run python3")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python client failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        "text hello from python\nbinary [1, 2, 3]\npong\nclosed 1000\n"
    );
    assert_eq!(log, ["open", "ping py", "close Some(1000) bye"]);
}

#[test]
fn websocket_is_reactor_only() {
    assert_not_send!(WebSocket);
    assert_not_sync!(WebSocket);
    fn require_send_sync<T: Send + Sync>() {}
    require_send_sync::<WebSocketOptions>();
    require_send_sync::<websocket::SendError>();
}

#[test]
fn the_subprotocol_is_chosen_from_the_servers_list() {
    let options = WebSocketOptions::new().protocols(["chat", "superchat"]);
    let (chosen, _) = with_server(options, |addr| {
        let mut request =
            tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{addr}/ws"))
                .unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "mqtt, superchat, chat".parse().unwrap(),
        );
        let (mut ws, response) = tungstenite::client(request, client(addr)).unwrap();
        ws.close(None).unwrap();
        response.headers()["sec-websocket-protocol"]
            .to_str()
            .unwrap()
            .to_owned()
    });
    assert_eq!(chosen, "superchat");
}

#[test]
fn keep_alive_pings_and_drops_a_silent_peer() {
    let options =
        WebSocketOptions::new().ping_interval(Some(std::time::Duration::from_millis(200)));
    let ((), log) = with_server(options, |addr| {
        let mut raw = Raw::connect(addr);
        // Pings come; answering them keeps the socket open.
        for _ in 0..3 {
            let (opcode, payload) = raw.read();
            assert_eq!((opcode, payload.len()), (0x9, 0));
            raw.send(true, 0xA, b"");
        }
        // Silence: the next ping goes unanswered, then the server drops
        // the connection without a close frame.
        let (opcode, _) = raw.read();
        assert_eq!(opcode, 0x9);
        let rest = read_until_closed(&mut raw.0);
        assert!(rest.is_empty(), "{rest:?}");
    });
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[1].starts_with("close None "), "{log:?}");
}

#[test]
fn an_unanswered_close_times_out_and_a_dropped_peer_is_reported() {
    let options = WebSocketOptions::new().close_timeout(std::time::Duration::from_millis(100));
    let ((), log) = with_server(options, |addr| {
        // The server closes; this peer never answers: after the timeout
        // the server drops the connection.
        let mut raw = Raw::connect(addr);
        raw.send(true, TEXT, b"close-me");
        assert_eq!(raw.expect_close(), 4000);
        // A peer that just goes away.
        let raw = Raw::connect(addr);
        drop(raw);
        // A round trip on a third socket orders its open after the drop.
        let mut third = Raw::connect(addr);
        third.send(true, TEXT, b"x");
        assert_eq!(third.read(), (TEXT, b"x".to_vec()));
    });
    // The timed-out close, then the dropped peer (the third socket may
    // open before the reactor sees the drop, and close at the end).
    assert_eq!(log[..2], ["open", "close None closed locally"], "{log:?}");
    assert!(
        log.contains(&"close None closed by the peer".to_owned()),
        "{log:?}"
    );
}
