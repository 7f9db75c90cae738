//! `Toxic`: the faults a [`FaultProxy`](super::FaultProxy) injects, as
//! values (Toxiproxy's toxics), and the direction each applies to.

use std::time::Duration;

/// Which way a [`Toxic`] acts on the bytes of each proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the code under test) to the upstream server.
    Upstream,
    /// From the upstream server to the client: the default, as in
    /// Toxiproxy.
    Downstream,
}

/// A fault for a [`FaultProxy`](super::FaultProxy) to inject, on one
/// direction of every connection it proxies (Toxiproxy's toxics). A plain
/// value: build it, pick its direction with [`upstream`](Toxic::upstream)
/// or [`downstream`](Toxic::downstream) (the default), and hand it to
/// [`FaultProxy::add_toxic`](super::FaultProxy::add_toxic). Any thread.
///
/// The toxics of one direction act in the order they were added, each on
/// what the one before let through; bytes never overtake earlier bytes.
/// Times are the reactor's clock (em timers), so on a
/// [paused](crate::testing::TestReactor::paused) reactor they are exact.
///
/// ```
/// use em::testing::Toxic;
/// use std::time::Duration;
///
/// let slow_replies = Toxic::latency(Duration::from_millis(100)).jitter(Duration::from_millis(10));
/// let slow_uploads = Toxic::bandwidth(64 * 1024).upstream();
/// # let _ = (slow_replies, slow_uploads);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toxic {
    pub(crate) kind: Kind,
    pub(crate) direction: Direction,
}

/// What a toxic does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Latency {
        delay: Duration,
        jitter: Duration,
    },
    Bandwidth {
        bytes_per_s: u64,
    },
    SlowClose {
        delay: Duration,
    },
    Timeout {
        after: Duration,
    },
    Slicer {
        average: usize,
        variation: usize,
        delay: Duration,
    },
    LimitData {
        bytes: u64,
    },
    ResetPeer {
        after: Duration,
    },
}

impl Toxic {
    fn new(kind: Kind) -> Toxic {
        Toxic {
            kind,
            direction: Direction::Downstream,
        }
    }

    /// Delays every chunk by `delay` (plus or minus the
    /// [`jitter`](Toxic::jitter)), and the close after the last one: the
    /// time a chunk waits counts from when it reached the toxic, so a
    /// stream keeps its rate and arrives `delay` later.
    pub fn latency(delay: Duration) -> Toxic {
        Toxic::new(Kind::Latency {
            delay,
            jitter: Duration::ZERO,
        })
    }

    /// A [`latency`](Toxic::latency) toxic's random variation: each
    /// chunk's delay is drawn uniformly from `delay ± jitter` (never below
    /// zero, and never overtaking an earlier chunk). Panics on any other
    /// toxic.
    pub fn jitter(mut self, jitter: Duration) -> Toxic {
        match &mut self.kind {
            Kind::Latency { jitter: j, .. } => *j = jitter,
            other => panic!("Toxic::jitter applies to Toxic::latency only, not to {other:?}"),
        }
        self
    }

    /// Lets through at most `bytes_per_s` bytes a second, in slices of a
    /// tenth of a second at most; the rest waits in the proxy (reading
    /// from the sender holds once 1 MiB waits). Panics if `bytes_per_s` is
    /// zero.
    pub fn bandwidth(bytes_per_s: u64) -> Toxic {
        assert!(bytes_per_s > 0, "Toxic::bandwidth needs a rate above zero");
        Toxic::new(Kind::Bandwidth { bytes_per_s })
    }

    /// Delays the close: once the sender has closed and its bytes have
    /// passed, the receiver's side is closed `delay` later.
    pub fn slow_close(delay: Duration) -> Toxic {
        Toxic::new(Kind::SlowClose { delay })
    }

    /// A black hole: no byte passes (they are held), and `after` the toxic
    /// reached the connection, both sides are closed, the held bytes
    /// dropped. With `after` zero the connection is never closed by it and
    /// the held bytes go on, in order, once the toxic is removed
    /// (Toxiproxy's `timeout`).
    pub fn timeout(after: Duration) -> Toxic {
        Toxic::new(Kind::Timeout { after })
    }

    /// Cuts every chunk into slices of `average ± variation` bytes (drawn
    /// uniformly; at least one byte), sent `delay` apart: many small reads
    /// at the receiver. Panics if `average` is zero or `variation` is above
    /// it.
    pub fn slicer(average: usize, variation: usize, delay: Duration) -> Toxic {
        assert!(
            average > 0,
            "Toxic::slicer needs an average size above zero"
        );
        assert!(
            variation <= average,
            "Toxic::slicer: the variation cannot exceed the average size"
        );
        Toxic::new(Kind::Slicer {
            average,
            variation,
            delay,
        })
    }

    /// Lets exactly `bytes` bytes through (counted from when the toxic
    /// reached the connection), then closes the connection: the receiver
    /// gets the `bytes` bytes and then the end of the stream; the sender's
    /// side is closed at once.
    pub fn limit_data(bytes: u64) -> Toxic {
        Toxic::new(Kind::LimitData { bytes })
    }

    /// Resets the connection at once: the receiver's side is closed with a
    /// TCP RST (it reads `ECONNRESET`, `io::ErrorKind::ConnectionReset`),
    /// and the sender's side is closed.
    pub fn reset_peer() -> Toxic {
        Toxic::reset_peer_after(Duration::ZERO)
    }

    /// [`reset_peer`](Toxic::reset_peer), `after` the toxic reached the
    /// connection; bytes pass until then.
    pub fn reset_peer_after(after: Duration) -> Toxic {
        Toxic::new(Kind::ResetPeer { after })
    }

    /// This toxic, on the bytes from the client to the upstream server.
    pub fn upstream(mut self) -> Toxic {
        self.direction = Direction::Upstream;
        self
    }

    /// This toxic, on the bytes from the upstream server to the client
    /// (the default).
    pub fn downstream(mut self) -> Toxic {
        self.direction = Direction::Downstream;
        self
    }

    /// The direction it acts on.
    pub fn direction(&self) -> Direction {
        self.direction
    }
}

/// Names a toxic added to a [`FaultProxy`](super::FaultProxy), for
/// [`remove_toxic`](super::FaultProxy::remove_toxic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ToxicId(pub(crate) u64);
