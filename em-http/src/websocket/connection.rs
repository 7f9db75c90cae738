//! The engine under a [`WebSocket`]: the `Upgraded` protocol that decodes
//! frames, joins messages, answers pings and closes, fails the connection
//! on a protocol error, and calls the [`WebSocketHandler`].

use bytes::BytesMut;
use em_core::UnbindReason;
use tokio_util::codec::Decoder;

use super::codec::FrameCodec;
use super::error::WsError;
use super::handler::WebSocketHandler;
use super::message::{encode_close, encode_close_reply, encode_pong, Assembler, Incoming, Message};
use super::options::WebSocketOptions;
use super::socket::{State, WebSocket};
use crate::upgrade::{Upgraded, UpgradedIo};

/// One WebSocket connection's protocol; reactor thread only.
pub(crate) struct WsConnection<H> {
    handler: H,
    codec: FrameCodec,
    assembler: Assembler,
    options: WebSocketOptions,
    protocol: Option<String>,
    /// Made at `on_open`.
    ws: Option<WebSocket>,
    /// `on_close` was delivered: nothing more is.
    closed: bool,
}

impl<H: WebSocketHandler> WsConnection<H> {
    pub(crate) fn new(handler: H, options: WebSocketOptions, protocol: Option<String>) -> Self {
        let mut codec = FrameCodec::new();
        codec.set_max_frame_size(options.max_frame_size);
        let mut assembler = Assembler::new();
        assembler.set_max_message_size(options.max_message_size);
        WsConnection {
            handler,
            codec,
            assembler,
            options,
            protocol,
            ws: None,
            closed: false,
        }
    }

    fn start_pinger(&self, ws: &WebSocket) {
        let Some(interval) = self.options.ping_interval else {
            return;
        };
        let weak = ws.downgrade();
        let pinger = em_timers::add_periodic_timer(interval, move |timer| {
            let Some(shared) = weak.upgrade() else {
                timer.cancel();
                return;
            };
            if shared.state.get() != State::Open {
                return;
            }
            // Judged only once a ping is out: a peer gets a whole interval
            // to answer it.
            let heard = shared.heard.replace(false);
            if shared.pinged.replace(true) && !heard {
                tracing::debug!(conn = %shared.io.id(), "websocket: keep-alive ping unanswered, dropping");
                shared.io.close();
                return;
            }
            let mut frame = BytesMut::new();
            encode_keepalive_ping(&mut frame);
            shared.io.send_bytes(frame.freeze());
        });
        match pinger {
            Ok(pinger) => *ws.shared.pinger.borrow_mut() = Some(pinger),
            Err(error) => {
                tracing::warn!(conn = %ws.id(), peer = ?ws.peer_addr().map(|a| a.to_string()), %error, "websocket: no keep-alive pings")
            }
        }
    }

    /// One incoming message or control frame.
    fn deliver(&mut self, ws: &WebSocket, incoming: Incoming) {
        let state = ws.shared.state.get();
        match incoming {
            Incoming::Text(text) if state == State::Open => {
                self.handler.on_message(ws, Message::Text(text));
            }
            Incoming::Binary(data) if state == State::Open => {
                self.handler.on_message(ws, Message::Binary(data));
            }
            // Closing: messages are no longer delivered.
            Incoming::Text(_) | Incoming::Binary(_) => {}
            Incoming::Ping(payload) => {
                if state == State::Open {
                    let mut frame = BytesMut::new();
                    encode_pong(&payload, &mut frame).expect("a ping's payload fits a pong");
                    ws.shared.io.send_bytes(frame.freeze());
                }
                self.handler.on_ping(ws, payload);
            }
            Incoming::Pong(payload) => self.handler.on_pong(ws, payload),
            Incoming::Close(close) => {
                if state == State::Open {
                    // The peer started: echo its code (RFC 6455 §5.5.1).
                    let mut frame = BytesMut::new();
                    encode_close_reply(close.as_ref(), &mut frame);
                    ws.shared.io.send_bytes(frame.freeze());
                }
                // The server closes the TCP connection first (§7.1.1).
                ws.shared.io.close_after_writing();
                match close {
                    Some((code, reason)) => self.finish(ws, Some(code), &reason),
                    None => self.finish(ws, None, ""),
                }
            }
        }
    }

    /// The peer broke the protocol: close with the error's code.
    fn fail(&mut self, ws: &WebSocket, error: WsError) {
        tracing::debug!(conn = %ws.id(), %error, "websocket: failing the connection");
        let code = error.close_code();
        let reason = error.to_string();
        if let Some(code) = code {
            if ws.shared.state.get() == State::Open {
                let mut frame = BytesMut::new();
                encode_close(code, &reason, &mut frame);
                ws.shared.io.send_bytes(frame.freeze());
            }
            ws.shared.io.close_after_writing();
        } else {
            ws.shared.io.close();
        }
        self.finish(ws, code, &reason);
    }

    /// Delivers `on_close`, once.
    fn finish(&mut self, ws: &WebSocket, code: Option<u16>, reason: &str) {
        if self.closed {
            return;
        }
        self.closed = true;
        ws.shared.state.set(State::Closed);
        ws.shared.cancel_timers();
        self.handler.on_close(ws, code, reason);
    }
}

/// A keep-alive ping: empty payload.
fn encode_keepalive_ping(frame: &mut BytesMut) {
    super::message::encode_ping(&[], frame).expect("an empty payload fits");
}

impl<H: WebSocketHandler> Upgraded for WsConnection<H> {
    fn on_open(&mut self, io: &UpgradedIo) {
        let ws = WebSocket::new(io.clone(), self.protocol.take(), self.options.close_timeout);
        self.ws = Some(ws.clone());
        self.start_pinger(&ws);
        self.handler.on_open(&ws);
    }

    fn on_data(&mut self, _io: &UpgradedIo, data: &mut BytesMut) {
        let Some(ws) = self.ws.clone() else {
            return;
        };
        ws.shared.heard.set(true);
        while !self.closed {
            let frame = match self.codec.decode(data) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(error) => return self.fail(&ws, error),
            };
            match self.assembler.push(frame) {
                Ok(Some(incoming)) => self.deliver(&ws, incoming),
                Ok(None) => {}
                Err(error) => return self.fail(&ws, error),
            }
        }
        // Closed: whatever follows is not looked at.
        data.clear();
    }

    fn on_drained(&mut self, _io: &UpgradedIo) {
        if let Some(ws) = self.ws.clone() {
            if !self.closed {
                self.handler.on_drained(&ws);
            }
        }
    }

    fn on_close(&mut self, _io: &UpgradedIo, reason: &UnbindReason) {
        if let Some(ws) = self.ws.clone() {
            self.finish(&ws, None, &reason.to_string());
        }
    }
}
