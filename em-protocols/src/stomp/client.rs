//! The STOMP client: the `Stomp` handle (EventMachine's `EM::Protocols::Stomp`
//! verbs), the `StompHandler` trait the user implements, and
//! `StompConnection`, the em `Connection` that joins them.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use bytes::Bytes;
use em_core::{Conn, Connection, UnbindReason};

use super::codec::StompCodec;
use super::frame::{StompFrame, StompVersion};

/// What a STOMP client does with the frames the server sends: the user's
/// half of EventMachine's `EM::Protocols::Stomp` mixin. Every callback runs
/// on the reactor thread, with the connection's [`Stomp`] handle, in the
/// order of em's [`Connection`] contract: `post_init`, (for clients)
/// `connection_completed`, `receive_msg` per frame, `unbind` once.
///
/// ```
/// use em_protocols::{AckMode, Stomp, StompConnection, StompFrame, StompHandler};
///
/// /// Subscribes once connected and prints every message.
/// struct Printer;
///
/// impl StompHandler for Printer {
///     fn connection_completed(&mut self, stomp: &Stomp) {
///         stomp.connect("guest", "guest", "/");
///     }
///     fn receive_msg(&mut self, stomp: &Stomp, msg: StompFrame) {
///         match msg.command.as_str() {
///             "CONNECTED" => {
///                 stomp.subscribe("/queue/a", AckMode::Client);
///             }
///             "MESSAGE" => {
///                 tracing::info!(body = %String::from_utf8_lossy(&msg.body), "message");
///                 stomp.ack(&msg);
///             }
///             _ => {}
///         }
///     }
/// }
///
/// // em_core::connect("localhost:61613", StompConnection::new(Printer))?;
/// let _client = StompConnection::new(Printer);
/// ```
pub trait StompHandler: 'static {
    /// The handler is bound to its connection, before any data (frames
    /// sent here leave once the connection is up).
    fn post_init(&mut self, stomp: &Stomp) {
        let _ = stomp;
    }

    /// Clients only: the TCP connect succeeded. EventMachine's examples call
    /// [`Stomp::connect`] here.
    fn connection_completed(&mut self, stomp: &Stomp) {
        let _ = stomp;
    }

    /// One frame from the server: `CONNECTED`, `MESSAGE`, `RECEIPT` or
    /// `ERROR` (EventMachine's `receive_msg`). For `CONNECTED`, the
    /// negotiated [`version`](Stomp::version) is already set. After the
    /// `RECEIPT` of a [`disconnect`](Stomp::disconnect), the connection is
    /// closed when this returns.
    fn receive_msg(&mut self, stomp: &Stomp, frame: StompFrame);

    /// The connection is gone, and why. Exactly once.
    fn unbind(&mut self, stomp: &Stomp, reason: UnbindReason) {
        let _ = (stomp, reason);
    }
}

/// How a subscription's messages are acknowledged (the `ack` header of
/// `SUBSCRIBE`). EventMachine's `subscribe(dest, ack)` takes a boolean:
/// `false` is [`Auto`](AckMode::Auto), `true` is [`Client`](AckMode::Client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// The server considers a message acknowledged once sent.
    Auto,
    /// [`Stomp::ack`] acknowledges a message and every one before it on
    /// that subscription.
    Client,
    /// [`Stomp::ack`] acknowledges that one message (STOMP 1.1 and later).
    ClientIndividual,
}

impl AckMode {
    /// The header value: `auto`, `client` or `client-individual`.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Client => "client",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

/// State shared by a connection's [`Stomp`] handles.
#[derive(Debug, Default)]
struct Shared {
    next_subscription: Cell<u64>,
    next_receipt: Cell<u64>,
    version: Cell<Option<StompVersion>>,
    disconnect_receipt: RefCell<Option<String>>,
}

/// A STOMP client connection: EventMachine's `EM::Protocols::Stomp` verbs
/// (`connect`, `send`, `subscribe`, `ack`…) on one em connection. A cheap
/// `Clone` handle, `!Send` like the [`Conn`] inside it: callbacks of a
/// [`StompHandler`] get it, and may keep a clone to send later (from a
/// timer, say).
///
/// Each verb queues one frame with [`Conn::send_data`] and never blocks;
/// those that return a number return what `send_data` does (the bytes
/// queued, `0` when the connection is closed or closing). The server's
/// answers come to [`StompHandler::receive_msg`].
#[derive(Clone)]
pub struct Stomp {
    conn: Conn<StompCodec>,
    shared: Rc<Shared>,
}

impl Stomp {
    /// The em connection underneath, for everything else
    /// (`close_connection`, `peer_addr`, timeouts…).
    pub fn conn(&self) -> &Conn<StompCodec> {
        &self.conn
    }

    /// The version the server's `CONNECTED` frame named (`1.0` when it named
    /// none), or `None` before it came.
    pub fn version(&self) -> Option<StompVersion> {
        self.shared.version.get()
    }

    /// Sends any frame as it is (`BEGIN`, `COMMIT`, a `SEND` with a
    /// `transaction` header…). EventMachine's `send_frame`. The codec adds
    /// `content-length` when the body is not empty.
    pub fn send_frame(&self, frame: StompFrame) -> usize {
        self.conn.send_data(frame)
    }

    /// Sends `CONNECT` for STOMP 1.0 to 1.2 (`accept-version:1.0,1.1,1.2`),
    /// naming the virtual `host`, with `login` and `passcode` unless `login`
    /// is empty, and no heart-beats (`heart-beat:0,0`). The server answers
    /// `CONNECTED` (or `ERROR`) to `receive_msg`.
    pub fn connect(&self, login: &str, passcode: &str, host: &str) -> usize {
        let mut frame = StompFrame::new("CONNECT")
            .with_header("accept-version", "1.0,1.1,1.2")
            .with_header("host", host);
        if !login.is_empty() {
            frame = frame
                .with_header("login", login)
                .with_header("passcode", passcode);
        }
        self.send_frame(frame.with_header("heart-beat", "0,0"))
    }

    /// Sends `CONNECT` with exactly these headers: EventMachine's
    /// `connect(parms)`. Without `accept-version` the server speaks 1.0.
    pub fn connect_with_headers(&self, headers: &[(&str, &str)]) -> usize {
        self.send_frame(with_headers(StompFrame::new("CONNECT"), headers))
    }

    /// Sends `body` to `destination` (`SEND`), with `headers` after the
    /// `destination` header. EventMachine's `send(dest, body, parms)`; em adds
    /// no `content-type` (EventMachine adds `text/plain`), so give one when
    /// the receiver needs it.
    pub fn send(
        &self,
        destination: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> usize {
        let frame = StompFrame::new("SEND").with_header("destination", destination);
        self.send_frame(with_headers(frame, headers).with_body(body))
    }

    /// Subscribes to `destination` (`SUBSCRIBE`) and returns the new
    /// subscription's id (`sub-0`, `sub-1`…), which the server's `MESSAGE`
    /// frames carry in their `subscription` header and which
    /// [`unsubscribe`](Self::unsubscribe) takes.
    pub fn subscribe(&self, destination: &str, ack: AckMode) -> String {
        let id = format!("sub-{}", bump(&self.shared.next_subscription));
        self.send_frame(
            StompFrame::new("SUBSCRIBE")
                .with_header("id", id.clone())
                .with_header("destination", destination)
                .with_header("ack", ack.as_str()),
        );
        id
    }

    /// Ends the subscription `id` (`UNSUBSCRIBE`).
    pub fn unsubscribe(&self, id: &str) -> usize {
        self.send_frame(StompFrame::new("UNSUBSCRIBE").with_header("id", id))
    }

    /// Acknowledges `message` (`ACK`), naming it as the negotiated version
    /// wants: STOMP 1.2 by its `ack` header (as `id`), 1.1 by `message-id`
    /// and `subscription`, 1.0 by `message-id`. EventMachine's `ack(msgid)`
    /// takes the id; em takes the message, so that the right header is sent.
    pub fn ack(&self, message: &StompFrame) -> usize {
        self.send_frame(self.acknowledgement("ACK", message))
    }

    /// Refuses `message` (`NACK`, STOMP 1.1 and later), naming it as
    /// [`ack`](Self::ack) does.
    pub fn nack(&self, message: &StompFrame) -> usize {
        self.send_frame(self.acknowledgement("NACK", message))
    }

    /// Sends `DISCONNECT` with a `receipt` header and returns the receipt's
    /// id. The server's `RECEIPT` for it goes to `receive_msg`, and the
    /// connection is closed right after, as STOMP asks (a server that closes
    /// first ends it with `PeerClosed`).
    pub fn disconnect(&self) -> String {
        let receipt = format!("receipt-{}", bump(&self.shared.next_receipt));
        *self.shared.disconnect_receipt.borrow_mut() = Some(receipt.clone());
        self.send_frame(StompFrame::new("DISCONNECT").with_header("receipt", receipt.clone()));
        receipt
    }

    fn acknowledgement(&self, command: &str, message: &StompFrame) -> StompFrame {
        let mut frame = StompFrame::new(command);
        let version = self.version().unwrap_or(StompVersion::V1_2);
        if let (StompVersion::V1_2, Some(ack)) = (version, message.header("ack")) {
            return frame.with_header("id", ack);
        }
        if let Some(id) = message.header("message-id") {
            frame = frame.with_header("message-id", id);
        }
        if version >= StompVersion::V1_1 {
            if let Some(sub) = message.header("subscription") {
                frame = frame.with_header("subscription", sub);
            }
        }
        frame
    }
}

impl fmt::Debug for Stomp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stomp")
            .field("conn", &self.conn.id())
            .field("version", &self.version())
            .finish()
    }
}

fn with_headers(mut frame: StompFrame, headers: &[(&str, &str)]) -> StompFrame {
    frame
        .headers
        .extend(headers.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())));
    frame
}

fn bump(counter: &Cell<u64>) -> u64 {
    let n = counter.get();
    counter.set(n + 1);
    n
}

/// The em [`Connection`] of a STOMP client: give it to `em::connect` (or
/// `connect_unix_domain`, `attach`, `connect_pair`) with your
/// [`StompHandler`]. It frames the stream with a [`StompCodec`], hands each
/// frame to `receive_msg`, switches the codec to the version the server's
/// `CONNECTED` names, and closes after the receipt of
/// [`Stomp::disconnect`].
///
/// ```no_run
/// use em_protocols::{Stomp, StompConnection, StompFrame, StompHandler};
///
/// struct Hello;
/// impl StompHandler for Hello {
///     fn connection_completed(&mut self, stomp: &Stomp) {
///         stomp.connect("guest", "guest", "/");
///         stomp.send("/queue/a", "hello", &[("content-type", "text/plain")]);
///         stomp.disconnect();
///     }
///     fn receive_msg(&mut self, _: &Stomp, _: StompFrame) {}
///     fn unbind(&mut self, _: &Stomp, _: em_core::UnbindReason) {
///         em_core::stop();
///     }
/// }
///
/// em_core::run(|| em_core::connect("localhost:61613", StompConnection::new(Hello)).map(drop))?;
/// # Ok::<(), em_core::Error>(())
/// ```
pub struct StompConnection<H> {
    handler: H,
    codec: StompCodec,
    shared: Rc<Shared>,
}

impl<H: StompHandler> StompConnection<H> {
    /// A client connection for `handler`, with a STOMP 1.2 codec and its
    /// default limits.
    pub fn new(handler: H) -> Self {
        Self::new_with_codec(handler, StompCodec::new())
    }

    /// A client connection for `handler` framed by `codec` (its limits,
    /// its starting version).
    pub fn new_with_codec(handler: H, codec: StompCodec) -> Self {
        StompConnection {
            handler,
            codec,
            shared: Rc::default(),
        }
    }

    fn stomp(&self, conn: &Conn<StompCodec>) -> Stomp {
        Stomp {
            conn: conn.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<H: StompHandler> Connection for StompConnection<H> {
    type Codec = StompCodec;

    /// The codec reads header text leniently until `CONNECTED` names the
    /// version: a 1.0 broker's `ERROR` before it may hold backslashes.
    fn codec(&self) -> StompCodec {
        let mut codec = self.codec.clone();
        codec.set_lenient_until_version();
        codec
    }

    fn post_init(&mut self, conn: &Conn<StompCodec>) {
        let stomp = self.stomp(conn);
        self.handler.post_init(&stomp);
    }

    fn connection_completed(&mut self, conn: &Conn<StompCodec>) {
        let stomp = self.stomp(conn);
        self.handler.connection_completed(&stomp);
    }

    fn receive_data(&mut self, conn: &Conn<StompCodec>, frame: StompFrame) {
        let stomp = self.stomp(conn);
        let mut last = false;
        match frame.command.as_str() {
            "CONNECTED" => {
                let version = match frame.header("version") {
                    None => StompVersion::V1_0,
                    Some(v) => StompVersion::parse(v).unwrap_or_else(|| {
                        tracing::debug!(conn = %conn.id(), version = v, "unknown STOMP version: speaking 1.2");
                        StompVersion::V1_2
                    }),
                };
                self.shared.version.set(Some(version));
                // Not inside the codec here: this cannot fail.
                let _ = conn.with_codec(|codec| codec.set_version(version));
            }
            "RECEIPT" => {
                let ours = self.shared.disconnect_receipt.borrow();
                last = ours.is_some() && ours.as_deref() == frame.header("receipt-id");
            }
            _ => {}
        }
        self.handler.receive_msg(&stomp, frame);
        if last {
            conn.close_connection_after_writing();
        }
    }

    fn unbind(&mut self, conn: &Conn<StompCodec>, reason: UnbindReason) {
        let stomp = self.stomp(conn);
        self.handler.unbind(&stomp, reason);
    }
}

impl<H> fmt::Debug for StompConnection<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StompConnection")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    struct Nothing;
    impl StompHandler for Nothing {
        fn receive_msg(&mut self, _: &Stomp, _: StompFrame) {}
    }

    #[test]
    fn an_error_before_connected_from_a_1_0_broker_is_read() {
        let mut codec = StompConnection::new(Nothing).codec();
        let mut wire = BytesMut::from(&b"ERROR\nmessage:bad C:\\path\n\nno\0"[..]);
        let frame = codec.decode(&mut wire).unwrap().unwrap();
        assert_eq!(frame.header("message"), Some("bad C:\\path"));
    }
}
