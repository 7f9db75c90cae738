//! Defer's reactor options, as an extension trait on `em::Builder`:
//! the pool size, the shutdown timeout, and which pool runs the ops.

use std::time::Duration;

use em_core::extension::{self, ReactorOption};
use em_core::Builder;

/// EventMachine's default `threadpool_size`.
const DEFAULT_THREADPOOL_SIZE: usize = 20;

/// Which threads run deferred ops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeferBackend {
    /// em's own pool of at most `threadpool_size` std threads (the
    /// default): the bound is defer's alone, hand-offs go by batch both
    /// ways, and a stopping reactor never waits for a running op (see the
    /// crate docs).
    #[default]
    Dedicated,
    /// tokio's blocking pool (`spawn_blocking`) of the runtime the reactor
    /// runs on: for programs that host em inside their own runtime (with
    /// `Reactor::run_local`) and want its `max_blocking_threads` limit and
    /// its tooling to apply to defers too. `threadpool_size` and
    /// `shutdown_timeout` do not apply: tokio's limit bounds the ops, and an
    /// op still running when the reactor stops is left to tokio (its
    /// callback never runs; dropping the runtime waits for it). Each op
    /// costs a tokio task and a wake-up of its own.
    TokioBlocking,
}

/// Defer's options of one reactor.
#[derive(Debug, Clone)]
pub(crate) struct DeferConfig {
    pub(crate) threadpool_size: usize,
    pub(crate) shutdown_timeout: Option<Duration>,
    pub(crate) backend: DeferBackend,
}

impl Default for DeferConfig {
    fn default() -> Self {
        DeferConfig {
            threadpool_size: DEFAULT_THREADPOOL_SIZE,
            shutdown_timeout: None,
            backend: DeferBackend::Dedicated,
        }
    }
}

impl ReactorOption for DeferConfig {
    fn check(&self) -> Result<(), String> {
        if self.threadpool_size == 0 {
            return Err("threadpool_size must be at least 1".into());
        }
        Ok(())
    }
}

/// Defer's options on `em::Builder` (in the `em` facade's prelude).
///
/// ```
/// # mod em { pub use em_core::*; pub use em_defer::*; }
/// use std::time::Duration;
/// use em::{DeferBackend, DeferOptions};
///
/// let reactor = em::Reactor::builder()
///     .threadpool_size(4)
///     .shutdown_timeout(Duration::from_secs(1))
///     .defer_backend(DeferBackend::Dedicated)
///     .build()?;
/// assert!(em::Reactor::builder().threadpool_size(0).build().unwrap_err().is_config());
/// # let _ = reactor;
/// # Ok::<(), em_core::Error>(())
/// ```
pub trait DeferOptions {
    /// How many `defer` ops run at once on em's pool (default 20, as
    /// EventMachine); more wait in FIFO order. At least 1: `build` errors
    /// with `is_config()` on 0.
    fn threadpool_size(self, threads: usize) -> Self;

    /// How long a stopping reactor waits for `defer` ops still running on
    /// em's pool (default: it does not wait; their callbacks never run).
    fn shutdown_timeout(self, timeout: Duration) -> Self;

    /// Which threads run the ops (default [`DeferBackend::Dedicated`]).
    fn defer_backend(self, backend: DeferBackend) -> Self;
}

impl DeferOptions for Builder {
    fn threadpool_size(self, threads: usize) -> Self {
        extension::configure(self, |c: &mut DeferConfig| c.threadpool_size = threads)
    }

    fn shutdown_timeout(self, timeout: Duration) -> Self {
        extension::configure(self, |c: &mut DeferConfig| {
            c.shutdown_timeout = Some(timeout)
        })
    }

    fn defer_backend(self, backend: DeferBackend) -> Self {
        extension::configure(self, |c: &mut DeferConfig| c.backend = backend)
    }
}
