//! Options shared by the command client and the subscriber.

use std::time::Duration;

use crate::codec::DEFAULT_MAX_REPLY;

/// How a [`Client`](crate::Client) or [`Subscriber`](crate::Subscriber)
/// connects: the reconnect back-off and the largest reply accepted.
///
/// ```
/// use std::time::Duration;
/// let options = em_redis::Options::default()
///     .reconnect_delays(Duration::from_millis(50), Duration::from_secs(5))
///     .max_reply(1 << 20);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) max_reply: usize,
}

impl Default for Options {
    /// Reconnect after 100 ms, doubling to at most 10 s; replies up to
    /// 64 MiB.
    fn default() -> Self {
        Options {
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            max_reply: DEFAULT_MAX_REPLY,
        }
    }
}

impl Options {
    /// The first reconnect waits `min`; each next one twice as long, up
    /// to `max`; back to `min` once connected.
    pub fn reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// The largest reply accepted, in bytes; a larger one ends the
    /// connection with a protocol error (and it reconnects).
    pub fn max_reply(mut self, bytes: usize) -> Self {
        self.max_reply = bytes.max(64);
        self
    }
}
