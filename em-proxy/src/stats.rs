//! The counters of a proxy or a router ([`Stats`]), kept in cells on the
//! reactor thread.

use std::cell::Cell;
use std::fmt;

/// A snapshot of a proxy's or a router's counters, from
/// [`ProxyServer::stats`](crate::ProxyServer::stats). Totals since the
/// server started, except `clients_open`. Bytes relayed kernel to kernel
/// (the splice path) are counted too, as em counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Client connections accepted.
    pub clients_accepted: u64,
    /// Client sessions open now.
    pub clients_open: u64,
    /// Bytes read from clients.
    pub bytes_from_clients: u64,
    /// Bytes written to clients from backends (replies, after
    /// `on_response`).
    pub bytes_to_clients: u64,
    /// Bytes copied to mirrors.
    pub mirror_bytes: u64,
    /// Bytes not copied to a mirror because its queue was past its
    /// watermark (the mirror was slow or stuck).
    pub mirror_dropped_bytes: u64,
    /// Chunks not copied to a mirror, as `mirror_dropped_bytes`.
    pub mirror_dropped_chunks: u64,
    /// Mirror connections that failed (refused, reset, timed out).
    pub mirror_failures: u64,
    /// Sessions that went without a mirror because it had failed recently
    /// and its back-off delay had not passed.
    pub mirror_skipped: u64,
    /// Router: sessions routed to a backend and joined to it.
    pub routed: u64,
    /// Router: connect attempts retried after a refusal.
    pub connect_retries: u64,
    /// Router: routes whose backend could not be reached (refused past the
    /// retries, or timed out): `on_connect_error` ran.
    pub connect_errors: u64,
    /// Router: sessions whose backend was idle past the route's inactivity
    /// timeout: `on_inactivity_error` ran.
    pub inactivity_errors: u64,
}

/// `clients=N open=N in=BYTES out=BYTES mirrored=BYTES mirror_dropped=BYTES
/// mirror_failures=N …`: one line, for a live display.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "clients={} open={} in={} out={} mirrored={} mirror_dropped={} \
             mirror_dropped_chunks={} mirror_failures={} mirror_skipped={} routed={} \
             connect_retries={} connect_errors={} inactivity_errors={}",
            self.clients_accepted,
            self.clients_open,
            self.bytes_from_clients,
            self.bytes_to_clients,
            self.mirror_bytes,
            self.mirror_dropped_bytes,
            self.mirror_dropped_chunks,
            self.mirror_failures,
            self.mirror_skipped,
            self.routed,
            self.connect_retries,
            self.connect_errors,
            self.inactivity_errors,
        )
    }
}

/// The live counters behind [`Stats`] (reactor thread only).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) clients_accepted: Cell<u64>,
    pub(crate) bytes_from_clients: Cell<u64>,
    pub(crate) bytes_to_clients: Cell<u64>,
    pub(crate) mirror_bytes: Cell<u64>,
    pub(crate) mirror_dropped_bytes: Cell<u64>,
    pub(crate) mirror_dropped_chunks: Cell<u64>,
    pub(crate) mirror_failures: Cell<u64>,
    pub(crate) mirror_skipped: Cell<u64>,
    pub(crate) routed: Cell<u64>,
    pub(crate) connect_retries: Cell<u64>,
    pub(crate) connect_errors: Cell<u64>,
    pub(crate) inactivity_errors: Cell<u64>,
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &Cell<u64>, n: u64) {
    counter.set(counter.get().wrapping_add(n));
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            clients_accepted: self.clients_accepted.get(),
            clients_open: 0,
            bytes_from_clients: self.bytes_from_clients.get(),
            bytes_to_clients: self.bytes_to_clients.get(),
            mirror_bytes: self.mirror_bytes.get(),
            mirror_dropped_bytes: self.mirror_dropped_bytes.get(),
            mirror_dropped_chunks: self.mirror_dropped_chunks.get(),
            mirror_failures: self.mirror_failures.get(),
            mirror_skipped: self.mirror_skipped.get(),
            routed: self.routed.get(),
            connect_retries: self.connect_retries.get(),
            connect_errors: self.connect_errors.get(),
            inactivity_errors: self.inactivity_errors.get(),
        }
    }
}
