//! em-http: an evented HTTP/1.1 server on em's connections (work in progress).

// The WebSocket protocol layer (RFC 6455) as pure logic over bytes; the
// engine wires it into connections later, hence crate-private for now.
#[allow(dead_code, unused_imports, unreachable_pub)]
pub(crate) mod websocket;
