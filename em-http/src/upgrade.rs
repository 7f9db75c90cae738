//! Switching protocols: after a `101 Switching Protocols` response the
//! connection's bytes belong to an [`Upgraded`] protocol (WebSocket is one).

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use em_core::{Addr, Conn, ConnectionId, UnbindReason};

use crate::codec::{Outgoing, ServerCodec};

/// A protocol that takes over a connection after `101 Switching
/// Protocols` (see [`ResponseBody::upgrade`](crate::ResponseBody::upgrade)).
/// Its callbacks run on the reactor thread, as a connection handler's do.
pub trait Upgraded: 'static {
    /// The `101` response is written: the connection is the protocol's now.
    fn on_open(&mut self, io: &UpgradedIo) {
        let _ = io;
    }

    /// Bytes arrived. `data` holds what earlier calls left unconsumed
    /// followed by the new bytes; take what forms whole units and leave
    /// the rest in it.
    fn on_data(&mut self, io: &UpgradedIo, data: &mut BytesMut);

    /// The connection's output, having passed its high watermark, drained
    /// to the low one.
    fn on_drained(&mut self, io: &UpgradedIo) {
        let _ = io;
    }

    /// The connection ended, and why. Exactly once.
    fn on_close(&mut self, io: &UpgradedIo, reason: &UnbindReason) {
        let _ = (io, reason);
    }
}

/// The connection as an upgraded protocol sees it: bytes out, close,
/// backpressure. Cheap to clone; `!Send` (reactor thread only).
#[derive(Clone)]
pub struct UpgradedIo {
    conn: Conn<ServerCodec>,
}

impl UpgradedIo {
    pub(crate) fn new(conn: Conn<ServerCodec>) -> Self {
        UpgradedIo { conn }
    }

    /// Queues bytes to send; returns how many were queued (0 once closed).
    pub fn send(&self, data: &[u8]) -> usize {
        self.conn.send_data(Outgoing::Raw(data))
    }

    /// Queues shared bytes to send.
    pub fn send_bytes(&self, data: Bytes) -> usize {
        self.conn.send_data(Outgoing::Bytes(data))
    }

    /// Closes the connection now, dropping unsent output.
    pub fn close(&self) {
        self.conn.close_connection();
    }

    /// Closes the connection once the queued output is written.
    pub fn close_after_writing(&self) {
        self.conn.close_connection_after_writing();
    }

    /// Whether the queued output is above the high watermark (a slow peer).
    pub fn is_above_high_watermark(&self) -> bool {
        self.conn.is_above_high_watermark()
    }

    /// Bytes queued and not yet written.
    pub fn outbound_data_size(&self) -> usize {
        self.conn.outbound_data_size()
    }

    /// Stops reading from the peer until [`resume`](UpgradedIo::resume).
    pub fn pause(&self) {
        self.conn.pause();
    }

    /// Reads from the peer again.
    pub fn resume(&self) {
        self.conn.resume();
    }

    /// Closes the connection after `timeout` without a byte either way
    /// (zero: never).
    pub fn set_comm_inactivity_timeout(&self, timeout: Duration) {
        self.conn.set_comm_inactivity_timeout(timeout);
    }

    /// Whether the connection is closed or closing.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<Addr> {
        self.conn.peer_addr()
    }

    /// The connection's id (as em's logs show it).
    pub fn id(&self) -> ConnectionId {
        self.conn.id()
    }
}

impl fmt::Debug for UpgradedIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradedIo")
            .field("id", &self.conn.id())
            .finish()
    }
}
