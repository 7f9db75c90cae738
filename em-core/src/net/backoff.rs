//! `Backoff`: exponential delays between reconnect attempts.

use std::time::Duration;

/// Exponential backoff for reconnecting clients (what Twisted's
/// `ReconnectingClientFactory` gives): each [`next_delay`](Backoff::next_delay)
/// is the previous one times the factor, from `initial` up to `max`, with
/// [`reset`](Backoff::reset) once connected. A plain value, any thread.
///
/// ```
/// # use em_core as em;
/// use std::time::Duration;
/// use em::{Backoff, Conn, Connection, UnbindReason};
/// use bytes::BytesMut;
/// use tokio_util::codec::BytesCodec;
///
/// /// A long-lived client: reconnects after 0.1 s, 0.2 s, 0.4 s, … up to 30 s.
/// struct Persistent {
///     addr: std::net::SocketAddr,
///     backoff: Backoff,
/// }
///
/// impl Connection for Persistent {
///     type Codec = BytesCodec;
///     fn codec(&self) -> BytesCodec { BytesCodec::new() }
///     fn connection_completed(&mut self, _: &Conn<BytesCodec>) {
///         self.backoff.reset();
///     }
///     fn receive_data(&mut self, _: &Conn<BytesCodec>, _: BytesMut) {}
///     fn unbind(&mut self, conn: &Conn<BytesCodec>, reason: UnbindReason) {
///         if !matches!(reason, UnbindReason::ReactorStopped) {
///             let _ = conn.reconnect_after(self.backoff.next_delay(), self.addr);
///         }
///     }
/// }
///
/// let _client = Persistent {
///     addr: "127.0.0.1:7".parse().unwrap(),
///     backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(30)),
/// };
/// let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
/// assert_eq!(backoff.next_delay(), Duration::from_millis(100));
/// assert_eq!(backoff.next_delay(), Duration::from_millis(200));
/// backoff.reset();
/// assert_eq!(backoff.next_delay(), Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: u32,
    next: Duration,
}

impl Backoff {
    /// Delays from `initial`, doubling, capped at `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            factor: 2,
            next: initial,
        }
    }

    /// The same with growth `factor` instead of 2 (1 keeps the delay
    /// constant; 0 is taken as 1).
    pub fn with_factor(mut self, factor: u32) -> Self {
        self.factor = factor.max(1);
        self
    }

    /// The delay before the next attempt; the one after grows by the factor.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(self.factor).min(self.max);
        delay
    }

    /// Back to `initial` (call it once connected).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}
