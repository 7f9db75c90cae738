//! The network engine: connections on any transport, servers and clients.
//!
//! * [`connection`]: the `Connection` trait handlers implement, and
//!   `UnbindReason`; [`handler`]: `Handler`, a `Connection` on raw bytes
//!   with no codec to name, over [`raw_codec`]; [`conn`]: the `Conn`
//!   handle callbacks get.
//! * [`driver`]: the engine, one future per connection: the lifecycle
//!   (exactly one `unbind`, timeouts, panics, stop, reconnect) over a pump
//!   that moves the bytes.
//! * [`transport`]: what carries the bytes (TCP, Unix-domain sockets, pipe
//!   ends, in-memory pairs, UDP sockets), private behind one trait.
//! * [`address`]: `Addr`, the address of any transport.
//! * [`server`], [`client`], [`backoff`]: listening, connecting, and delays
//!   between reconnects; [`attach`]: connections and servers on descriptors
//!   the program already has, and `detach`; [`pair`]: in-memory pairs;
//!   [`closure_handler`]: handlers from a closure.
//! * [`datagram`]: UDP sockets as connections (`open_datagram_socket`,
//!   `send_datagram`), over the datagram pump.
//! * [`file`]: `send_file_data` and `stream_file_data`, a file streamed
//!   into a connection's output within its watermarks.
//! * [`proxy`]: `proxy_incoming_to`, one connection's input queued on
//!   another's output, past the codecs (spliced in the kernel where it
//!   can be).
//! * [`socket_options`]: `TCP_NODELAY`, keep-alive, any option through
//!   socket2, and raw `set_sock_opt`/`get_sock_opt`, on a connection's
//!   socket.
//! * [`socket`]: procedural connections (`Socket`, a `Stream` and `Sink`
//!   of frames) and `SocketListener`, over a private handler.
//! * [`tls`]: `start_tls` and its options, errors and session details; the
//!   TLS transport itself wraps the one beneath, in `transport/tls.rs`.
//! * [`watch`]: watched descriptors (`watch`), which em polls but
//!   neither reads nor writes: `notify_readable` and `notify_writable`.

pub(crate) mod address;
pub(crate) mod attach;
pub(crate) mod backoff;
pub(crate) mod client;
pub(crate) mod closure_handler;
pub(crate) mod conn;
pub(crate) mod connection;
pub(crate) mod datagram;
pub(crate) mod driver;
pub(crate) mod file;
pub(crate) mod handler;
pub(crate) mod pair;
pub(crate) mod proxy;
pub(crate) mod raw_codec;
pub(crate) mod server;
pub(crate) mod shared_server;
pub(crate) mod socket;
pub(crate) mod socket_options;
pub(crate) mod tls;
pub(crate) mod transport;
pub(crate) mod watch;
