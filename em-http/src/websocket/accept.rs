//! Answering an upgrade request: the `101 Switching Protocols` response
//! that hands the connection to a [`WebSocketHandler`], or the refusal.

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response};

use super::connection::WsConnection;
use super::handler::WebSocketHandler;
use super::handshake::{is_upgrade_request, negotiate};
use super::options::WebSocketOptions;
use crate::body::response::ResponseBody;

/// Whether `request` asks to become a WebSocket (`Upgrade: websocket` and
/// `Connection: upgrade`). Nothing else is checked: [`accept`] answers the
/// malformed ones. Any thread.
pub fn is_upgrade<B>(request: &Request<B>) -> bool {
    is_upgrade_request(request)
}

/// Answers a WebSocket upgrade request with the default
/// [`WebSocketOptions`]: see [`accept_with`].
pub fn accept<B>(request: &Request<B>, handler: impl WebSocketHandler) -> Response<ResponseBody> {
    accept_with(request, WebSocketOptions::default(), handler)
}

/// Answers a WebSocket upgrade request (RFC 6455 §4.2). Made on the reactor
/// thread, in a request handler; return the response from it.
///
/// A valid request gets `101 Switching Protocols` (with the subprotocol
/// chosen from [`WebSocketOptions::protocols`], if any); once it is
/// written, the connection belongs to `handler`, whose
/// [`on_open`](WebSocketHandler::on_open) comes first. An invalid one gets
/// the refusal and `handler` is dropped: `426 Upgrade Required` with
/// `Sec-WebSocket-Version: 13` for a version other than 13, `400 Bad
/// Request` otherwise (not `GET`, not HTTP/1.1, no `Upgrade: websocket` or
/// `Connection: upgrade`, a missing or malformed `Sec-WebSocket-Key`), with
/// a one-line `text/plain` body saying what was wrong.
pub fn accept_with<B>(
    request: &Request<B>,
    options: WebSocketOptions,
    handler: impl WebSocketHandler,
) -> Response<ResponseBody> {
    let protocols: Vec<&str> = options.protocols.iter().map(String::as_str).collect();
    match negotiate(request, &protocols) {
        Ok(accept) => {
            let protocol = accept.protocol.clone();
            let connection = WsConnection::new(handler, options, protocol);
            accept
                .into_response()
                .map(|()| ResponseBody::upgrade(connection))
        }
        Err(error) => {
            tracing::debug!(%error, "websocket: handshake refused");
            let mut response = error
                .response()
                .map(|()| ResponseBody::from(format!("{error}\n")));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
    }
}
