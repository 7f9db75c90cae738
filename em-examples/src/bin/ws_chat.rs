//! A WebSocket chat room on em-http: `ws_chat --listen ADDR` (default
//! 127.0.0.1:8091). `GET /` serves a small HTML page with a chat client in
//! inline JavaScript; `/ws` is the WebSocket. Every text message a socket
//! sends is pushed on an em `Channel` that every open socket subscribes to
//! (and unsubscribes from when it closes), so it reaches everyone, the
//! sender included. Prints `listening on ADDR` once ready; stops on
//! SIGINT/SIGTERM.

use clap::Parser;
use em_http::http::{header, HeaderValue, Request, Response, StatusCode};
use em_http::websocket::{self, Message, WebSocket, WebSocketHandler};
use em_http::{Body, ResponseBody};

/// Serves a chat page and a broadcasting WebSocket.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: String,
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>em chat</title>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" autofocus><button>Send</button></form>
<script>
const log = document.getElementById("log");
const text = document.getElementById("text");
const ws = new WebSocket(`ws://${location.host}/ws`);
const say = (line) => {
  const item = document.createElement("li");
  item.textContent = line;
  log.appendChild(item);
};
ws.onopen = () => say("(connected)");
ws.onmessage = (event) => say(event.data);
ws.onclose = (event) => say(`(closed ${event.code})`);
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  if (text.value) ws.send(text.value);
  text.value = "";
};
</script>
"#;

/// One chat member: subscribed to the room while open.
struct Member {
    room: em::Channel<String>,
    subscription: Option<em::SubscriptionId>,
}

impl WebSocketHandler for Member {
    fn on_open(&mut self, ws: &WebSocket) {
        tracing::info!(id = %ws.id(), peer = ?ws.peer_addr(), "joined");
        let ws = ws.clone();
        self.subscription = Some(self.room.subscribe(move |line: String| {
            // A member whose output is backed up misses lines rather than
            // growing its queue without bound.
            if !ws.is_above_high_watermark() {
                let _ = ws.send_text(line);
            }
        }));
    }

    fn on_message(&mut self, _ws: &WebSocket, message: Message) {
        // Text is broadcast; binary messages are not part of the chat.
        if let Message::Text(line) = message {
            self.room.push(line);
        }
    }

    fn on_close(&mut self, ws: &WebSocket, code: Option<u16>, reason: &str) {
        tracing::info!(id = %ws.id(), ?code, reason, "left");
        if let Some(subscription) = self.subscription.take() {
            self.room.unsubscribe(subscription);
        }
    }
}

fn route(request: &Request<Body>, room: &em::Channel<String>) -> Response<ResponseBody> {
    match request.uri().path() {
        "/" => {
            let mut response = Response::new(ResponseBody::from(PAGE));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        "/ws" => websocket::accept(
            request,
            Member {
                room: room.clone(),
                subscription: None,
            },
        ),
        _ => {
            let mut response = Response::new(ResponseBody::from("Not Found\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    em::run(move || {
        let room = em::Channel::<String>::new();
        let server = em_http::serve(args.listen.as_str(), move |request: Request<Body>| {
            let response = route(&request, &room);
            async move { response }
        })?;
        em_examples::stop_on_signal()?;
        em_examples::out!("listening on {}", server.local_addr());
        Ok(())
    })?;
    Ok(())
}
